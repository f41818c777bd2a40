"""impl.micro_batch=auto: the fastest power of two that fits, chosen from a probe."""

from __future__ import annotations

import json

import pytest
import torch

from crambench.errors import UserError
from cramming.config import load_config
from cramming.train.micro_batch import choose_micro_batch

GIB = 2**30


def fake_device(seconds_per_sequence: dict[int, float], bytes_per_sequence: int,
                oom_from: int | None = None):
    """A probe of a device whose memory use grows linearly with the micro-batch, with a given
    speed per size, and that runs out of memory from `oom_from` sequences on."""
    tried = []

    def try_size(n: int):
        tried.append(n)
        if oom_from is not None and n >= oom_from:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return seconds_per_sequence[n], 2 * GIB + n * bytes_per_sequence

    return try_size, tried


def test_the_fastest_size_that_fits_with_headroom_wins():
    speed = {128: 1.0e-3, 256: 0.8e-3, 512: 0.7e-3, 1024: 0.72e-3, 2048: 0.75e-3}
    try_size, tried = fake_device(speed, bytes_per_sequence=GIB // 16)
    chosen, trials = choose_micro_batch(try_size, memory_bytes=80 * GIB)
    assert chosen == 512  # 1024 fits too (66 GiB of 68) but is slower per sequence
    assert tried == [128, 256, 512, 1024, 2048]  # 2048 needs 130 GiB: the doubling stops there
    assert [t["fits"] for t in trials] == [True, True, True, True, False]


def test_headroom_and_out_of_memory_end_the_search():
    speed = {128: 1.0e-3, 256: 0.5e-3, 512: 0.25e-3}
    # 256 sequences use 2 + 16 = 18 GiB: over 85% of a 20 GiB card, so 128 it is.
    try_size, tried = fake_device(speed, bytes_per_sequence=GIB // 16)
    assert choose_micro_batch(try_size, memory_bytes=20 * GIB)[0] == 128
    assert tried == [128, 256]
    try_size, tried = fake_device(speed, bytes_per_sequence=1, oom_from=512)
    chosen, trials = choose_micro_batch(try_size, memory_bytes=80 * GIB)
    assert chosen == 256 and trials[-1] == {"micro_batch": 512, "fits": False,
                                            "reason": "out of memory"}
    try_size, _ = fake_device(speed, bytes_per_sequence=1, oom_from=128)
    with pytest.raises(RuntimeError, match="not even 128 sequences fit"):
        choose_micro_batch(try_size, memory_bytes=80 * GIB)


def test_auto_is_a_config_value_and_nothing_else_is():
    assert load_config("tiny", ["impl.micro_batch=auto"]).impl.micro_batch == "auto"
    with pytest.raises(UserError, match="impl.micro_batch='big': a number of sequences or auto"):
        load_config("tiny", ["impl.micro_batch=big"])


@pytest.mark.train
def test_on_a_cpu_auto_trains_at_128_and_records_it(pretrain_data, pretrain_overrides, tmp_path):
    from conftest import TickingClock

    from cramming.train.pretrain import pretrain

    summary = pretrain(pretrain_data, tmp_path / "run", budget_s=2, preset="tiny",
                       overrides=[*pretrain_overrides, "impl.micro_batch=auto",
                                  "train.max_steps=2"], quiet=True, clock=TickingClock(0.01))
    assert summary["micro_batch"] == 128 and summary["steps"] == 2
    assert "micro_batch: 128" in (tmp_path / "run" / "config.yaml").read_text()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["micro_batch"] == 128


@pytest.mark.train
def test_profile_steps_write_a_trace_into_the_run(pretrain_data, pretrain_overrides, tmp_path):
    from conftest import TickingClock

    from cramming.train.pretrain import pretrain

    summary = pretrain(pretrain_data, tmp_path / "run", budget_s=2, preset="tiny",
                       overrides=[*pretrain_overrides, "impl.profile_steps=2",
                                  "train.max_steps=4"], quiet=True, clock=TickingClock(0.01))
    trace = json.loads((tmp_path / "run" / "profile" / "trace.json").read_text())
    names = {event.get("name", "") for event in trace["traceEvents"]}
    assert "ProfilerStep#1" in names and "ProfilerStep#2" in names  # after step 0's warm-up
    assert not any(name.startswith("ProfilerStep#3") for name in names)
    assert summary["profile_steps"] == 2
    again = pretrain(pretrain_data, tmp_path / "run", budget_s=2, preset="tiny", force=True,
                     overrides=[*pretrain_overrides, "train.max_steps=1"], quiet=True,
                     clock=TickingClock(0.01))
    assert again["profile_steps"] == 0 and not (tmp_path / "run" / "profile").exists()
