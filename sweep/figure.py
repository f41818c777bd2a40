"""The report's figure (DIR/report.svg): each arm's metric over its seeds, with the mean and its
confidence interval, and its training throughput beside it: a change that buys quality per
token with speed shows on both panels at once."""

from __future__ import annotations

import io
import math
from pathlib import Path

from crambench.files import write_bytes_atomic

LABELS = {"val_loss": "val MLM loss (lower is better)"}


def draw_report(record: dict, path: Path) -> Path:
    """Draw the report record to `path` (SVG, reproducible bytes: fixed ids, no date)."""
    write_bytes_atomic(path, render_report(record))
    return path


def render_report(record: dict) -> bytes:
    """The report record's figure as SVG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render off-screen
    matplotlib.rcParams.update({"svg.hashsalt": "cramming-bench", "svg.fonttype": "none",
                                "font.size": 10, "axes.spines.top": False,
                                "axes.spines.right": False})
    from matplotlib.figure import Figure
    from scipy import stats

    names = list(record["arms"])
    fig = Figure(figsize=(8.0, 0.6 * len(names) + 1.8), layout="constrained")
    quality, speed = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    for row, name in enumerate(names):
        arm = record["arms"][name]
        values = arm["values"]
        quality.plot(values, [row] * len(values), "o", color="#8a96a3", markersize=4)
        if arm["n"] >= 2:  # the mean and its t-interval over the seeds
            half = stats.t.ppf(0.5 + record["method"]["confidence"] / 2, arm["n"] - 1) \
                * arm["sd"] / math.sqrt(arm["n"])
            quality.errorbar(arm["mean"], row, xerr=half, fmt="D", color="#1f5fae",
                             capsize=4)
        elif arm["mean"] is not None:
            quality.plot(arm["mean"], row, "D", color="#1f5fae")
        if arm["tokens_per_s"]:
            speed.barh(row, arm["tokens_per_s"], color="#c0561b", height=0.5)
    quality.set_yticks(range(len(names)), [_label(name, record) for name in names])
    quality.invert_yaxis()
    quality.set_xlabel(LABELS.get(record["metric"], f"{record['metric']} (higher is better)"))
    speed.set_xlabel("training tokens/s")
    fig.suptitle(f"mean over pretraining seeds, {100 * record['method']['confidence']:.0f}% "
                 "interval; dots: each seed", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _label(name: str, record: dict) -> str:
    verdict = (record["comparisons"].get(name) or {}).get("verdict")
    return name if verdict is None else f"{name}\n{verdict.split(' with ')[0]}"
