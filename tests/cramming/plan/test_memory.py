"""The training-memory estimate against the measured peak of real training steps on CPU.

How it is measured: tracemalloc does not see torch's allocations, and torch keeps no allocator
statistics on CPU, so each shape trains in a fresh subprocess and reports the growth of its
peak resident set across two full steps (forward, backward, AdamW). A one-step warm-up with a
toy model first loads all code paths, so the growth is tensors, not libraries. The peak is the
kernel's per-process high-water mark (`VmHWM` in /proc/self/status), reset after the warm-up by
writing 5 to /proc/self/clear_refs; `ru_maxrss` would not do: Linux carries the parent's peak
into a child across fork and exec, so under pytest it starts at the test runner's size.
glibc's malloc would otherwise serve mid-sized tensors from its heap and keep freed pages
resident, so `MALLOC_MMAP_THRESHOLD_` is pinned at 64 KiB: every tensor is mapped on its own
and returned on free, and the peak RSS tracks the peak of live tensor bytes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from cramming.config import ModelConfig
from cramming.plan.memory import largest_fitting_micro_batch, training_memory

# Each probe measures peak memory in a fresh process of its own.
pytestmark = pytest.mark.subprocess

PROBE = r"""
import json, sys
import torch
torch.set_num_threads(1)
from cramming.config import ModelConfig
from cramming.model import CrammedBert

def train(cfg, micro_batch):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg.vocab_size, (micro_batch, cfg.seq_len), generator=g)
    labels = torch.where(torch.rand(ids.shape, generator=g) < 0.25, ids, -100)
    model = CrammedBert(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(2):
        loss, _ = model(ids, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # gradients stay allocated, as in accumulation

def status_kib(field):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])

train(ModelConfig(vocab_size=64, hidden=32, layers=1, heads=1, ffn_hidden=64, seq_len=8), 2)
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current resident set
before = status_kib("VmRSS")
train(ModelConfig(**json.loads(sys.argv[1])), int(sys.argv[2]))
print((status_kib("VmHWM") - before) * 1024)
"""

# ~225, ~300 and ~375 MiB: large against the few MiB of noise, small enough to run in seconds.
SHAPES = [
    (dict(vocab_size=8192, hidden=128, layers=2, heads=2, ffn_hidden=512), 32),
    (dict(vocab_size=2048, hidden=256, layers=6, heads=4, ffn_hidden=1024), 16),  # blocks
    (dict(vocab_size=16384, hidden=192, layers=1, heads=3, ffn_hidden=768), 32),  # MLM head
]


def measured_peak_bytes(shape: dict, micro_batch: int) -> float:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(shape), str(micro_batch)],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="VmHWM, clear_refs and MALLOC_MMAP_THRESHOLD_ are Linux/glibc")
@pytest.mark.parametrize(("shape", "micro_batch"), SHAPES)
def test_estimate_matches_measured_peak_on_cpu(shape, micro_batch):
    estimate = training_memory(ModelConfig(**shape), micro_batch, precision="fp32")["total"]
    measured = measured_peak_bytes(shape, micro_batch)
    assert measured == pytest.approx(estimate, rel=0.15), (measured / 2**20, estimate / 2**20)


def test_estimate_parts_scale_as_they_should():
    cfg = ModelConfig()
    small, big = training_memory(cfg, 32), training_memory(cfg, 64)
    assert small["state"] == big["state"]  # weights and optimizer do not depend on the batch
    assert big["activations"] == pytest.approx(2 * small["activations"])
    fp32 = training_memory(cfg, 32, precision="fp32")
    assert fp32["activations"] > small["activations"]  # 16-bit activations are smaller
    # The reference at its micro-batch of 128 fits an A6000 (48 GiB), the paper's setting.
    assert training_memory(cfg, 128)["total"] < 40 * 2**30


def test_largest_fitting_micro_batch():
    cfg = ModelConfig()
    need_64 = training_memory(cfg, 64)["total"]
    assert largest_fitting_micro_batch(cfg, need_64, precision="bf16") == 64
    assert largest_fitting_micro_batch(cfg, need_64 - 1, precision="bf16") == 32
    assert largest_fitting_micro_batch(cfg, 1e6, precision="bf16") is None
