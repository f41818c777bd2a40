"""What the benchmarks that train through `cram pretrain` share: a prepared corpus to train on,
a run on N ranks, and the steady throughput of a finished run, read from its metrics.jsonl."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path


def prepared_data(work: Path, vocab_size: int, data: str | None = None) -> Path:
    """`data` if given, else the embedded demo corpus prepared once into WORK/data-vVOCAB
    (about 7.6 MB of text: enough rows for minutes of training)."""
    if data:
        return Path(data)
    out = work / f"data-v{vocab_size}"
    if not (out / "manifest.json").is_file():
        command = [sys.executable, "-m", "cramming", "prepare", "--source", "demo", "--out",
                   str(out), "--vocab-size", str(vocab_size), "--quiet", "--force"]
        subprocess.run(command, check=True)
    return out


def vocab_override(data: Path, vocab_size: int) -> list[str]:
    """`["model.vocab_size=N"]` when the data dir's tokenizer reached N != `vocab_size` (a small
    corpus, the demo one among them, cannot fill a preset's 32,768), else []."""
    reached = json.loads((Path(data) / "manifest.json").read_text())["vocab_size"]
    return [] if reached == vocab_size else [f"model.vocab_size={reached}"]


def pretrain_ranks(nproc: int, run: Path, *, data: Path, device: str, preset: str, budget: str,
                   overrides: list[str], env: dict | None = None) -> dict:
    """`cram pretrain --nproc N` into `run` (replaced); its summary and steady tokens/s:
    {nproc, tokens_per_s, steps, stopped_by, train_elapsed_s, budget_overrun_s, device_names}.
    Raises CalledProcessError when the run fails."""
    command = [sys.executable, "-m", "cramming", "pretrain", "--nproc", str(nproc), "--device",
               device, "--data", str(data), "--preset", preset, "--budget", budget, "--out",
               str(run), "--force", "--quiet", *overrides]
    subprocess.run(command, check=True, env={**os.environ, "CI": "true", **(env or {})},
                   stdout=subprocess.DEVNULL)
    summary = json.loads((run / "summary.json").read_text())
    return {"nproc": nproc, "tokens_per_s": steady_tokens_per_s(metrics(run)),
            "steps": summary["steps"], "stopped_by": summary["stopped_by"],
            "train_elapsed_s": summary["train_elapsed_s"],
            "budget_overrun_s": round(summary["train_elapsed_s"] - summary["budget_s"], 3),
            "device_names": summary["hardware"]["device_names"]}


def scaling_efficiency(tokens_per_s: float | None, nproc: int,
                       single: float | None) -> float | None:
    """tokens/s on N ranks over N times tokens/s on one: 1.0 is linear scaling."""
    if not tokens_per_s or not single:
        return None
    return round(tokens_per_s / (nproc * single), 3)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
            if line.strip()]


def steady_tokens_per_s(records: list[dict], skip: float = 0.2) -> float | None:
    """Tokens per second (all ranks together) from the log line at `skip` of the run's log
    lines to the last one, so the first step (compilation) and warm-up are left out; None with
    fewer than two lines."""
    if len(records) < 2:
        return None
    first = records[min(len(records) - 2, math.floor(skip * len(records)))]
    last = records[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    return round((last["tokens"] - first["tokens"]) / seconds, 1) if seconds > 0 else None
