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
