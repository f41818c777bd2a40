"""bench/throughput.py runs both models and ends with one JSON line (needs the bench extra)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"


@pytest.mark.subprocess
def test_throughput_bench_prints_one_json_line():
    pytest.importorskip("transformers", reason="the bench extra (transformers) is not installed")
    done = subprocess.run(
        [sys.executable, str(BENCH), "--preset", "tiny", "--batch", "4", "--reps", "2",
         "--steps", "1", "--threads", "1", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"]["hidden"] == 128 and result["batch"] == 4
    assert result["ours_tokens_per_s"] > 0 and result["hf_tokens_per_s"] > 0
    ratio = result["ours_tokens_per_s"] / result["hf_tokens_per_s"]
    assert result["speedup_vs_hf"] == pytest.approx(ratio, rel=0.01)
    assert result["params"]["ours"] > 0 and "mfu_ours" not in result  # no MFU without a GPU


@pytest.mark.parametrize(("name", "card", "tflops"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100 NVL", None),  # no sourced figure: no MFU rather than a wrong one
    ("NVIDIA H200", "H200 SXM", 989.4),
    ("NVIDIA H200 NVL", "H200 NVL", 836.0),
    ("NVIDIA RTX A6000", "RTX A6000", 154.8),
    ("NVIDIA GeForce RTX 2080 Ti", "RTX 2080 Ti", 53.8),
    ("Some Future GPU", "Some Future GPU", None),
])
def test_each_card_gets_its_own_peak(name, card, tflops):
    sys.path.insert(0, str(BENCH.parent))
    from throughput import peak_for

    assert peak_for(name) == {"device": card, "tflops": tflops}
