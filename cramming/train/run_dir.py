"""The run dir (contract 2, `cram-run/1`): creating or reopening it, metrics, summary."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cramming.config import config_sha256, load_config, to_yaml, validate
from cramming.train.checkpoint import read_train_state
from data_prep import UserError
from data_prep.files import write_json_atomic, write_text_atomic

RUN_FORMAT = "cram-run/1"
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoint", "final", "summary.json", "eval")
FINISHED = ("budget", "steps")  # stopped_by values of a run that cannot be resumed


def read_summary(run_dir) -> dict | None:
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


def check_fresh(out, *, force: bool) -> Path:
    """An existing run in `out` is an error unless `force`."""
    out = Path(out)
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not force:
        raise UserError(
            f"{out} already holds a run ({', '.join(held)}); "
            "use --force to replace it or --resume to continue it"
        )
    return out


def write_run(run: Path, cfg, *, fresh: bool) -> None:
    """Create the run dir (a fresh one replaces only a previous run's own files, never anything
    else the folder holds) and save the resolved config."""
    if fresh:
        for name in RUN_FILES:
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a file in the way, no permission
            raise UserError(f"cannot create run dir {run}: {err.strerror or err}") from None
    write_text_atomic(run / "config.yaml", to_yaml(cfg))


def open_resumable(run) -> Path:
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise UserError(f"--resume {run}: not a run dir (config.yaml is missing)")
    summary = read_summary(run)
    if summary and summary.get("stopped_by") in FINISHED:
        raise UserError(
            f"--resume {run}: the run already finished (stopped by {summary['stopped_by']})"
        )
    return run


class MetricsLog:
    """RUN/metrics.jsonl, one JSON object per log step. On resume, lines logged after the
    checkpoint are dropped so the step/elapsed sequence continues without a repeat."""

    def __init__(self, path, *, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if _logged_step(line) <= resume_step]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def append(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _logged_step(line: str) -> float:
    """The step of a metrics line; infinity (dropped on resume) for a line a crash cut short."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, TypeError, KeyError):
        return float("inf")


def write_summary(run_dir, summary: dict) -> None:
    write_json_atomic(Path(run_dir) / "summary.json", {"format": RUN_FORMAT, **summary})


def code_version() -> str:
    """Package version plus the git commit of the code, when it runs from a checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("cramming-bench")
    except PackageNotFoundError:
        base = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{base}+git.{commit}" if commit else base


def resolve_run(data_dir, out, budget_s, preset, overrides, device, seed, resume, force):
    """-> (run dir, resolved config, checkpoint train_state or None), writing nothing: every
    mismatch between preset, data dir and a run being resumed is a UserError here."""
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UserError(f"--resume {resume} writes into that run; drop --out {out}")
        run = open_resumable(resume)
        resumed = read_train_state(run)
        if resumed["data_sha256"] != data_dir.data_sha256:
            raise UserError(f"--resume {run}: {data_dir.path} is not the data dir it trained on")
        cfg = load_config(run / "config.yaml", overrides)
    else:
        if out is None:
            raise UserError("--out RUN is required (or --resume RUN)")
        cfg = _load_preset(preset, overrides, budget_s, data_dir, device)
    cfg.train.budget_s = budget_s
    cfg.data.path = str(Path(data_dir.path).resolve())  # readers may run from another folder
    if device != "auto":
        cfg.impl.device = device
    if seed is not None:
        cfg.seed = seed
    validate(cfg)  # again: --seed and --device are set after the overrides
    origin = f"run {resume}" if resume is not None else f"preset {preset}"
    for field, ours in (("vocab_size", cfg.model.vocab_size), ("seq_len", cfg.model.seq_len)):
        theirs = getattr(data_dir, field)
        if ours != theirs:
            raise UserError(
                f"model.{field}={ours} ({origin}) does not match the data dir "
                f"{data_dir.path} ({field} {theirs}); prepare the data with a matching "
                f"--{field.replace('_', '-')} or override model.{field}={theirs}")
    if data_dir.num_rows("train") < 1:
        raise UserError(f"data dir {data_dir.path} has no training rows")
    if resume is None:
        return check_fresh(out, force=force), cfg, None
    if resumed["config_sha256"] != config_sha256(cfg):
        raise UserError(f"--resume {run}: budget, seed or overrides change its recipe; "
                        f"resume with the same --budget and recipe (impl.* may change)")
    return run, cfg, resumed


def _load_preset(preset, overrides, budget_s, data_dir, device):
    """A preset name or file; `auto` asks the planner (cramming.plan.planner) for one. The planned
    YAML lives in a temporary folder only until it is loaded: config.yaml records the result."""
    if str(preset) != "auto":
        return load_config(preset, overrides)
    from cramming.plan.planner import preset_for_budget  # scipy and the laws load only when asked

    planned = preset_for_budget(budget_s, data=data_dir.path, device=device)
    try:
        return load_config(planned, overrides)
    finally:
        shutil.rmtree(planned.parent, ignore_errors=True)
