"""What each run of a sweep came to, read from its run dir alone (summary.json, config.yaml,
eval/*.json): status, the metric's value, steps, tokens seen and speed, and the settings the
guards compare."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from crambench.errors import UserError
from sweep.layout import run_dir
from sweep.spec import SweepSpec

# Config fields that change what the val MLM loss measures (masking decides which tokens
# are scored, and how they are hidden).
MASKING = ("train.mask_prob", "train.mask_token_prob", "train.random_token_prob")


@dataclass
class Outcome:
    """One (arm, seed). status: complete | failed | interrupted | running (a run dir without
    a summary: killed, or training elsewhere) | not started."""

    arm: str
    seed: int
    path: Path
    status: str
    value: float | None = None  # the spec's metric; None unless complete and scored
    steps: int | None = None
    tokens_seen: int | None = None
    train_elapsed_s: float | None = None
    hardware: str | None = None  # the device's name, as summary.json gives it
    facts: dict = field(default_factory=dict)  # what the guards compare

    @property
    def tokens_per_s(self) -> float | None:
        if not self.tokens_seen or not self.train_elapsed_s:
            return None
        return self.tokens_seen / self.train_elapsed_s

    @property
    def started(self) -> bool:
        return self.status != "not started"


def read_outcomes(out, spec: SweepSpec) -> list[Outcome]:
    """Every (arm, seed) of the spec, in the sweep's order."""
    return [read_outcome(run_dir(out, arm.name, seed), spec, arm.name, seed)
            for arm, seed in spec.cells()]


def read_outcome(path: Path, spec: SweepSpec, arm: str, seed: int) -> Outcome:
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        status = "running" if (path / "config.yaml").is_file() else "not started"
        return Outcome(arm, seed, path, status)
    summary = _json(summary_path)
    status = summary.get("status") or "complete"
    hardware = summary.get("hardware") or {}
    names = hardware.get("device_names") or [hardware.get("gpu_name") or hardware.get("cpu_name")]
    outcome = Outcome(arm, seed, path, status, steps=summary.get("steps"),
                      tokens_seen=summary.get("tokens_seen"),
                      train_elapsed_s=summary.get("train_elapsed_s"),
                      hardware=" + ".join(str(n) for n in names),
                      facts=run_facts(path, summary))
    if status == "complete":
        outcome.value = metric_value(path, summary, spec)
    return outcome


def run_facts(path: Path, summary: dict) -> dict:
    """The settings a val-loss comparison needs to be equal, from the run's own records."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(path / "config.yaml")
    facts = {key: OmegaConf.select(config, key) for key in MASKING}
    facts["model.vocab_size"] = OmegaConf.select(config, "model.vocab_size")
    facts["data_sha256"] = summary.get("data_sha256")
    facts["tokenizer_sha256"] = summary.get("tokenizer_sha256")
    return facts


def metric_value(path: Path, summary: dict, spec: SweepSpec) -> float | None:
    """The spec's metric of a complete run; None while its evaluation is missing."""
    if spec.metric == "val_loss":
        return summary.get("val_loss")
    suite = spec.eval.suite
    results = path / "eval" / f"{suite}.json"
    if not results.is_file():
        return None
    record = _json(results)
    if spec.metric in ("avg_cramming", "avg_glue"):
        return (record.get(spec.metric) or {}).get("value")
    tasks = record.get("tasks") or {}
    if spec.metric == "probe_avg":
        scores = [t["metrics"]["accuracy"] for t in tasks.values()]
        return sum(scores) / len(scores) if scores else None
    task, _, key = spec.metric.partition(".")
    return ((tasks.get(task) or {}).get("metrics") or {}).get(key)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({err})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is not a JSON object")
    return value
