"""Rules v1 in one torch-free place: the trainer's track label and the validator's agree."""

import subprocess
import sys

import pytest

from crambench.errors import UserError


@pytest.mark.subprocess
def test_rules_module_imports_nothing_heavy():
    code = ("import sys, cramming.rules\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numpy', 'omegaconf', 'tokenizers')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_trainer_and_validator_read_the_same_rules():
    import cramming.rules as rules
    import leaderboard.tracks as tracks
    from cramming.train import hardware

    assert hardware.RANKED_GPUS is rules.RANKED_GPUS is tracks.RANKED_GPUS
    assert hardware.is_ranked_gpu is rules.is_ranked_gpu is tracks.is_ranked_gpu
    assert hardware.RANKED_BUDGET_S == tracks.RANKED_BUDGET_S == 24 * 3600


def test_ranked_track_rules():
    from cramming.rules import is_ranked_gpu
    from cramming.train.hardware import check_track, detect_hardware

    for name in ("NVIDIA GeForce RTX 2080 Ti", "NVIDIA RTX A4000", "NVIDIA RTX A6000"):
        assert is_ranked_gpu(name), name
    for name in ("NVIDIA GeForce RTX 2080", "NVIDIA RTX 6000 Ada Generation",
                 "NVIDIA H100 80GB HBM3", "NVIDIA RTX A6000 Ada"):
        assert not is_ranked_gpu(name), name
    ranked = {"track": "ranked", "gpu_name": "NVIDIA RTX A6000", "cpu_name": "x"}
    check_track(ranked, "ranked", 86400)
    with pytest.raises(UserError, match="over the ranked track"):
        check_track(ranked, "ranked", 86401)
    cpu = detect_hardware("cpu")
    assert cpu["track"] == "open" and cpu["gpu_count"] == 0
    check_track(cpu, "open", 10**6)
    with pytest.raises(UserError, match="not a ranked-track GPU"):
        check_track(cpu, "ranked", 60)
