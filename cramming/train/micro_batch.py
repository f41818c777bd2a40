"""`impl.micro_batch=auto`: the micro-batch a GPU trains fastest at, probed at the start of a run.

Powers of two from 128 are tried in turn (cramming trains at 96 to 512 sequences per micro-batch
depending on the card); each gets a few timed forward/backward passes of the run's own model on
random tokens, and the largest that fits in the device's memory with headroom and gives the most
sequences per second is kept. The probe runs on the clock (Rules v1, rule 2: all of a run's time
counts), before compilation, and is recorded in the summary. On a CPU `auto` is 128: its memory
is no limit, and a bigger micro-batch is not faster there.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from cramming.model import IGNORE_INDEX

CPU_MICRO_BATCH = 128
FIRST = 128
MAX_DOUBLINGS = 4  # 128 .. 2048
HEADROOM = 0.15  # share of device memory left free: the optimizer state, fragmentation


def choose_micro_batch(try_size: Callable[[int], tuple[float, int]], memory_bytes: int, *,
                       first: int = FIRST, doublings: int = MAX_DOUBLINGS,
                       headroom: float = HEADROOM) -> tuple[int, list[dict]]:
    """-> (micro-batch, trials). `try_size(n)` runs n sequences and returns (seconds per
    sequence, peak bytes), or raises torch.OutOfMemoryError. Sizes double from `first` until
    one does not fit in `memory_bytes` less `headroom`; the fastest per sequence of those that
    fit wins (the smallest on a tie). Raises RuntimeError when not even `first` fits."""
    limit = (1 - headroom) * memory_bytes
    trials, size = [], first
    for _ in range(doublings + 1):
        try:
            seconds, peak = try_size(size)
        except torch.OutOfMemoryError:
            trials.append({"micro_batch": size, "fits": False, "reason": "out of memory"})
            break
        fits = peak <= limit
        trials.append({"micro_batch": size, "fits": fits, "seconds_per_sequence": seconds,
                       "peak_bytes": peak})
        if not fits:
            break
        size *= 2
    fitting = [t for t in trials if t["fits"]]
    if not fitting:
        raise RuntimeError(f"impl.micro_batch=auto: not even {first} sequences fit in the "
                           f"device's memory with {headroom:.0%} headroom; set impl.micro_batch")
    best = min(fitting, key=lambda t: (t["seconds_per_sequence"], t["micro_batch"]))
    return best["micro_batch"], trials


def cuda_size_trial(model, seq_len: int, vocab_size: int, device, autocast_context,
                    repeats: int = 3) -> Callable[[int], tuple[float, int]]:
    """`try_size` for choose_micro_batch on a CUDA device: forward and backward of `model` on n
    random rows (25% of positions labelled), the first pass a warm-up, then `repeats` timed;
    the gradients are dropped after each."""

    def try_size(n: int) -> tuple[float, int]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        ids = torch.randint(5, vocab_size, (n, seq_len), device=device)
        labels = torch.where(torch.rand(ids.shape, device=device) < 0.25, ids,
                             torch.full_like(ids, IGNORE_INDEX))
        try:
            for index in range(repeats + 1):
                if index == 1:
                    torch.cuda.synchronize(device)
                    started = time.perf_counter()
                with autocast_context():
                    loss, _ = model(ids, labels)
                loss.backward()
                model.zero_grad(set_to_none=True)
            torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - started) / (repeats * n)
            return seconds, torch.cuda.max_memory_allocated(device)
        finally:
            model.zero_grad(set_to_none=True)
            del ids, labels
            torch.cuda.empty_cache()

    return try_size
