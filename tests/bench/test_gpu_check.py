"""bench/gpu_check.py in its reduced CPU mode (one JSON line whose figures come from real runs,
no GPU needed) and the throughput arithmetic it shares with bench/ddp.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_grammar_data

from cramming.config import load_config
from data_prep import open_data_dir

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
from runs import scaling_efficiency, steady_tokens_per_s  # noqa: E402


def test_steady_throughput_leaves_out_the_first_fifth_of_the_log():
    # Step 1 took 9 s (compilation); then 1,000 tokens every 0.5 s.
    records = [{"elapsed_s": 9.0, "tokens": 1000}] + [
        {"elapsed_s": 9.0 + 0.5 * i, "tokens": 1000 * (i + 1)} for i in range(1, 10)]
    assert steady_tokens_per_s(records) == 2000.0
    assert steady_tokens_per_s(records[:1]) is None
    assert steady_tokens_per_s(records[:2]) == 2000.0  # two lines: the only interval
    assert scaling_efficiency(3000.0, 2, 2000.0) == 0.75
    assert scaling_efficiency(None, 2, 2000.0) is None and scaling_efficiency(1.0, 2, None) is None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # GLUE fine-tuning feeds rows of 128 tokens: the model needs that many positions.
    return make_grammar_data(tmp_path_factory.mktemp("bench"), val_fraction=0.1)


def _last_json(done) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_gpu_check_reduced_mode_on_the_cpu(data, tmp_path, shared_data):
    # No model.vocab_size override: the check takes the data dir's vocabulary itself (a small
    # corpus never fills the preset's).
    assert open_data_dir(data).vocab_size != load_config("tiny").model.vocab_size
    done = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--preset", "tiny",
         "--budget", "8s", "--data", str(data), "--work", str(tmp_path), "--glue-dir",
         str(shared_data / "glue"), "--task", "rte", "--nproc", "2"],
        capture_output=True, text=True, timeout=600)
    result = _last_json(done)
    assert result["bench"] == "gpu_check" and result["stopped_by"] == "budget"
    assert result["budget_overrun_s"] <= 0 and result["train_elapsed_s"] <= 8
    assert result["tokens_per_s"] > 0 and result["steps"] > 2
    assert result["mfu"] is None and result["peak_memory_gb"] is None  # no GPU peak here
    assert 0 < result["time_to_first_step_s"] < 8 and result["compile_s"] == 0.0
    assert result["micro_batches_per_step"]["first"] >= 1
    finetune = result["finetune"]
    assert finetune["task"] == "rte" and finetune["protocol"] == "quick"
    assert finetune["seconds"] > 0 and "accuracy" in finetune["metrics"]
    ddp = result["ddp"]
    assert ddp["nproc"] == 2 and len(ddp["device_names"]) == 2 and ddp["tokens_per_s"] > 0
    assert ddp["budget_overrun_s"] <= 0 and ddp["stopped_by"] == "budget"
