"""What a sweep refuses to compare, and what it warns about.

- The val MLM loss is the same measurement only on the same val rows, tokenizer, vocabulary
  and masking: a higher masking rate scores more (and harder) positions, another tokenizer
  another sequence of tokens. Across arms that differ there, the comparison needs a downstream
  score (GLUE; the probes where the data dir is the same).
- The probes are built from each arm's own data dir: across data dirs they are other tasks.
- One sweep, one kind of hardware: speed decides how many tokens a budget buys.
- Fewer tokens than the first billion: the cramming paper's runs see billions of tokens, and
  orderings of recipes measured early need not hold later; a warning, not a refusal.
"""

from __future__ import annotations

from crambench.errors import UserError

UNSTABLE_TOKENS = 1_000_000_000  # tokens; under this a verdict speaks of early training only
DATA_FIELDS = ("data_sha256", "tokenizer_sha256", "model.vocab_size")
VAL_LOSS_FIELDS = ("train.mask_prob", "train.mask_token_prob", "train.random_token_prob",
                   *DATA_FIELDS)


def check_comparable(metric: str, facts: dict[str, dict]) -> None:
    """`facts`: arm -> its settings (the first arm is the baseline). UserError naming the two
    arms and the field where the metric cannot compare them."""
    if metric == "val_loss":
        fields, instead = VAL_LOSS_FIELDS, "compare them on GLUE (metric: avg_cramming)"
    elif metric == "probe_avg" or metric.split(".")[0] in ("continuation", "word_order"):
        fields, instead = DATA_FIELDS, "the probes come from each arm's data dir; use GLUE"
    else:
        return
    arms = list(facts)
    base = arms[0]
    for arm in arms[1:]:
        for key in fields:
            ours, theirs = facts[base].get(key), facts[arm].get(key)
            if ours != theirs:
                raise UserError(f"metric {metric} cannot compare arms {base} and {arm}: {key} "
                                f"differs ({_short(ours)} vs {_short(theirs)}); {instead}")


def check_hardware(outcomes) -> None:
    """Every run that started on one kind of hardware, else UserError naming two runs."""
    first = None
    for outcome in outcomes:
        if outcome.hardware is None:
            continue
        if first is None:
            first = outcome
        elif outcome.hardware != first.hardware:
            raise UserError(f"arms {first.arm} (seed {first.seed}) and {outcome.arm} (seed "
                            f"{outcome.seed}) ran on different hardware ({first.hardware} vs "
                            f"{outcome.hardware}): a sweep compares recipes on one kind")


def token_warnings(tokens: dict[str, float]) -> list[str]:
    """arm -> mean tokens seen per run; a warning for each arm under UNSTABLE_TOKENS, or one
    for them all when every arm is (the common case of a short sweep), with their range."""
    few = {arm: seen for arm, seen in tokens.items() if seen < UNSTABLE_TOKENS}
    why = (f"fewer than the first {UNSTABLE_TOKENS:,} in which pretraining is still unstable: "
           "the verdict speaks of this budget, not of a full one")
    if len(few) > 1 and len(few) == len(tokens):
        return [f"every arm saw {min(few.values()):,.0f} to {max(few.values()):,.0f} tokens per "
                f"run, {why}"]
    return [f"arm {arm} saw {seen:,.0f} tokens per run, {why}" for arm, seen in few.items()]


def _short(value) -> str:
    text = str(value)
    return text[:12] if len(text) == 64 else text  # a sha256 in a line: its first 12
