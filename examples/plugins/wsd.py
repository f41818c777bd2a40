"""Warmup-stable-decay (Hu et al. 2024, MiniCPM): a linear warm-up, a long constant stretch at
the peak, then a short decay to zero at the deadline; as every schedule here, a function of
f = elapsed / budget.

    cram pretrain --data data/demo --preset tiny --budget 90s --out runs/wsd \
        --plugin examples/plugins/wsd.py plugin.options.decay=0.2

Options: `warmup` (default 0.02) and `decay` (default 0.1), fractions of the budget.
"""

CRAM_PLUGIN_API = 1


def lr_factor(f, train, options):
    warmup, decay = float(options.get("warmup", 0.02)), float(options.get("decay", 0.1))
    f = min(max(f, 0.0), 1.0)
    if f < warmup:
        return f / warmup
    if f < 1.0 - decay:
        return 1.0
    return max(0.0, (1.0 - f) / decay)
