"""Each guard refuses in one line naming the arms and the field; the token warning says the
number."""

import pytest

from crambench.errors import UserError
from sweep.guards import check_comparable, check_hardware, token_warnings
from sweep.outcomes import Outcome

FACTS = {"train.mask_prob": 0.25, "train.mask_token_prob": 0.8, "train.random_token_prob": 0.1,
         "model.vocab_size": 8192, "data_sha256": "a" * 64, "tokenizer_sha256": "b" * 64}


@pytest.mark.parametrize("field, value", [
    ("train.mask_prob", 0.4), ("train.random_token_prob", 0.0), ("model.vocab_size", 4096),
    ("data_sha256", "c" * 64), ("tokenizer_sha256", "d" * 64)])
def test_val_loss_is_refused_across_what_changes_its_meaning(field, value):
    facts = {"baseline": FACTS, "same": dict(FACTS), "changed": {**FACTS, field: value}}
    with pytest.raises(UserError) as err:
        check_comparable("val_loss", facts)
    message = str(err.value)
    assert message.startswith(f"metric val_loss cannot compare arms baseline and changed: "
                              f"{field} differs")
    assert "GLUE" in message and "\n" not in message
    check_comparable("avg_cramming", facts)  # a downstream score compares them


def test_probes_are_refused_across_data_dirs_but_not_across_masking():
    check_comparable("probe_avg", {"baseline": FACTS, "m": {**FACTS, "train.mask_prob": 0.4}})
    with pytest.raises(UserError, match=r"arms baseline and d: data_sha256 differs \(aaaaaaaaaaaa"
                                        r" vs cccccccccccc\)"):
        check_comparable("continuation.accuracy",
                         {"baseline": FACTS, "d": {**FACTS, "data_sha256": "c" * 64}})


def test_one_sweep_runs_on_one_kind_of_hardware(tmp_path):
    runs = [Outcome("baseline", 0, tmp_path, "complete", hardware="cpu (x86)"),
            Outcome("mlp", 0, tmp_path, "complete", hardware="cpu (x86)"),
            Outcome("mlp", 1, tmp_path, "failed", hardware="NVIDIA H100")]
    check_hardware(runs[:2])
    with pytest.raises(UserError, match=r"^arms baseline \(seed 0\) and mlp \(seed 1\) ran on "
                                        r"different hardware \(cpu \(x86\) vs NVIDIA H100\)"):
        check_hardware(runs)


def test_fewer_tokens_than_the_first_billion_is_a_warning_with_the_number():
    warnings = token_warnings({"baseline": 1_234_567.0, "big": 2e9})
    assert len(warnings) == 1
    assert warnings[0].startswith("arm baseline saw 1,234,567 tokens per run, fewer than the "
                                  "first 1,000,000,000")
    every = token_warnings({"baseline": 1_234_567.0, "mlp": 987_654.0})
    assert every == ["every arm saw 987,654 to 1,234,567 tokens per run, fewer than the first "
                     "1,000,000,000 in which pretraining is still unstable: the verdict speaks "
                     "of this budget, not of a full one"]
