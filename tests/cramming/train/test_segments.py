"""Training segments: a run resumed on other hardware keeps the ranks and devices of every
part of its training, and is classified by its largest."""

from __future__ import annotations

import json

import pytest

from crambench.errors import UserError
from cramming.train.checkpoint import read_train_state
from cramming.train.segments import continue_segments, run_hardware, segment


def _job(ranks: int) -> dict:
    """`job_hardware` of a CPU job on `ranks` processes."""
    names = ["cpu (test)"] * ranks
    return {"device": "cpu", "gpu_name": None, "gpu_count": 0, "gpu_memory_gb": None,
            "cpu_name": "test", "world_size": ranks, "device_names": names, "track": "open",
            "track_reason": "2 cpu processes" if ranks > 1 else "CPU run"}


def test_a_two_rank_run_resumed_on_one_process_is_still_a_two_rank_run():
    segments = [segment(_job(2), step=0, elapsed_s=0.0),
                segment(_job(1), step=104, elapsed_s=22.417)]
    hardware = run_hardware(_job(1), segments)  # what the resuming process sees
    assert hardware["world_size"] == 2 and hardware["device_names"] == ["cpu (test)"] * 2
    assert hardware["track_reason"] == "2 cpu processes"
    assert [(s["world_size"], s["started_step"], s["started_elapsed_s"])
            for s in hardware["segments"]] == [(2, 0, 0.0), (1, 104, 22.417)]


def test_a_segment_whose_steps_were_all_lost_is_not_kept():
    """Two ranks killed before their first checkpoint after step 0, resumed on one: only
    the one process trained the steps the run keeps."""
    lost = segment(_job(2), step=0, elapsed_s=0.0)
    segments = continue_segments([lost], segment(_job(1), step=0, elapsed_s=0.0))
    assert [s["world_size"] for s in segments] == [1]
    kept = continue_segments([lost], segment(_job(1), step=40, elapsed_s=9.5))
    assert [s["world_size"] for s in kept] == [2, 1]


def test_a_stage_trained_in_one_process_records_one_segment():
    detected = {k: v for k, v in _job(1).items() if k not in ("world_size", "device_names")}
    hardware = run_hardware(detected, None)  # detect_hardware's record, as extract passes it
    assert hardware["world_size"] == 1 and hardware["device_names"] == ["cpu (test)"]
    assert len(hardware["segments"]) == 1


@pytest.mark.parametrize("segments, why", [
    ([], "is not a non-empty list"),
    ([{"world_size": 0, "device_names": []}], "[0].world_size 0 is not a whole number >= 1"),
    ([{"world_size": 2, "device_names": ["a"]}], "[0].device_names is not 2 device names"),
])
def test_a_checkpoint_with_damaged_segments_does_not_resume(tmp_path, segments, why):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "train_state.json").write_text(json.dumps({
        "format": "cram-checkpoint/2", "step": 3, "tokens": 384, "rows": 3, "elapsed_s": 1.5,
        "nonfinite_skips": 0, "train_loss": 5.0, "stopped_by": None, "config_sha256": "a" * 64,
        "data_sha256": "b" * 64, "model_sha256": "c" * 64, "state_sha256": "d" * 64,
        "started_utc": "2026-01-01T00:00:00+00:00", "preset": "tiny", "segments": segments}))
    with pytest.raises(UserError, match="segments") as caught:
        read_train_state(tmp_path)
    assert why in str(caught.value)
