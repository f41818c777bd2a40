"""`run_sweep`: every (arm, seed) of a spec pretrained and scored as an ordinary run dir.

The runs go seed-major (sweep.spec.SweepSpec.cells). Run again, a sweep keeps what is done: a
finished run whose config_sha256 is the one its arm and seed ask for is kept (and scored if it
is not yet), an interrupted one resumed from its checkpoint with its own clock, a failed one
kept as failed (every run that started counts; none is retried until it passes). A spec whose
runs differ from the recorded one's is refused (sweep.layout.save_spec). One `cram sweep`
holds DIR's lock at a time; each run dir keeps its own lock, so `--cell` jobs of a SLURM array
run side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from crambench.errors import UserError
from crambench.locks import dir_lock
from crambench.progress import progress_line
from crambench.units import format_duration
from sweep import guards
from sweep.layout import run_dir, save_spec
from sweep.spec import Arm, SweepSpec, load_spec

EVAL_FILES = {"probe": "probe.json", "glue": "glue.json"}
TO_TRAIN = ("new", "resume", "restart")  # the cell states that train


@dataclass
class Cell:
    """One (arm, seed) and what a run of the sweep finds in its run dir."""

    index: int
    arm: Arm
    seed: int
    path: Path
    state: str  # new | resume | restart | done | failed
    config_sha256: str
    trained_s: float = 0.0  # training time already on the run's clock (a resumed run)


def run_sweep(spec_path, out, *, dry_run=False, cell: int | None = None, quiet=False,
              clock_factory=None) -> int:
    """Run (or, with `dry_run`, show) the sweep of `spec_path` into `out`; `cell`: only that
    index of the plan. Returns the exit status (130: interrupted, 1: a run failed).
    `clock_factory()` makes each run's trainer clock (tests pass a fake one)."""
    spec = load_spec(spec_path)
    out = Path(out)
    if cell is not None and not 0 <= cell < len(spec.cells()):
        raise UserError(f"--cell {cell}: the plan has cells 0 to {len(spec.cells()) - 1}")
    check_before_training(spec)
    if dry_run:
        print(format_plan(spec, out, plan(spec, out)))
        return 0
    if cell is not None:  # one job of many: the run dir's own lock is enough
        save_spec(out, spec)
        return execute(spec, [plan(spec, out)[cell]], quiet=quiet, clock_factory=clock_factory)
    with dir_lock(out, owner="cram sweep"):
        save_spec(out, spec)
        return execute(spec, plan(spec, out), quiet=quiet, clock_factory=clock_factory)


def fitted_overrides(arm: Arm) -> list[str]:
    """The arm's overrides after the data dir's vocabulary and row length (which a preset
    can only guess), so that an arm's own overrides still win."""
    from data_prep import open_data_dir

    data = open_data_dir(arm.data)
    return [f"model.vocab_size={data.vocab_size}", f"model.seq_len={data.seq_len}",
            *arm.overrides]


def arm_config(spec: SweepSpec, arm: Arm, seed: int):
    """The resolved config a run of `arm` with `seed` trains (as cram pretrain resolves it)."""
    from cramming.config import load_config, validate

    try:
        cfg = load_config(arm.preset, fitted_overrides(arm))
        cfg.train.budget_s, cfg.seed = spec.budget_s, seed
        validate(cfg)
    except UserError as err:
        raise UserError(f"arm {arm.name}: {err}") from None
    return cfg


def check_before_training(spec: SweepSpec) -> None:
    """The comparability guards on the recipes and data dirs, before any run starts."""
    from data_prep import open_data_dir

    facts = {}
    for arm in spec.arms:
        cfg = arm_config(spec, arm, spec.seeds[0])
        manifest = open_data_dir(arm.data).manifest
        facts[arm.name] = {
            "train.mask_prob": cfg.train.mask_prob,
            "train.mask_token_prob": cfg.train.mask_token_prob,
            "train.random_token_prob": cfg.train.random_token_prob,
            "model.vocab_size": cfg.model.vocab_size,
            "data_sha256": manifest["data_sha256"],
            "tokenizer_sha256": manifest["tokenizer_sha256"]}
    guards.check_comparable(spec.metric, facts)


def plan(spec: SweepSpec, out: Path) -> list[Cell]:
    """Every cell with what its run dir holds now."""
    from cramming.config import config_sha256

    cells = []
    for index, (arm, seed) in enumerate(spec.cells()):
        path = run_dir(out, arm.name, seed)
        expected = config_sha256(arm_config(spec, arm, seed))
        state, trained = cell_state(path, expected)
        cells.append(Cell(index, arm, seed, path, state, expected, trained))
    return cells


def cell_state(path: Path, expected: str) -> tuple[str, float]:
    """(new | resume | restart | done | failed, training seconds already done) of a run dir; a
    run of another recipe is a UserError naming the run dir. `restart`: killed before its first
    checkpoint, so nothing can be resumed; it trains again from the start, same recipe and
    seed."""
    from crambench.contracts import read_json_object
    from cramming.config import config_sha256

    config = path / "config.yaml"
    if not config.is_file():
        return "new", 0.0
    if config_sha256(config) != expected:
        raise UserError(f"{path} holds a run of another recipe (config_sha256 differs from its "
                        "arm's): move it away or use another --out")
    summary = read_json_object(path / "summary.json") if (path / "summary.json").is_file() \
        else {}
    if summary.get("status") == "failed":
        return "failed", summary.get("train_elapsed_s") or 0.0
    if summary.get("stopped_by") in ("budget", "steps"):
        return "done", summary.get("train_elapsed_s") or 0.0
    state = path / "checkpoint" / "train_state.json"
    if not state.is_file():
        return "restart", 0.0
    return "resume", read_json_object(state).get("elapsed_s", 0.0)


def execute(spec: SweepSpec, cells: list[Cell], *, quiet: bool, clock_factory) -> int:
    """Train and score each cell in order; stops at an interrupt (130)."""
    from cramming.train.pretrain import pretrain
    from cramming.train.summary import RunFailed

    started, overheads, failed = time.monotonic(), [], 0
    for number, cell in enumerate(cells):
        left = time_left(spec, cells[number:], overheads)
        progress_line(f"cram sweep: [{number + 1}/{len(cells)}] arm {cell.arm.name}, seed "
                      f"{cell.seed} ({cell.state}); {left} left for the sweep", quiet=quiet)
        t0 = time.monotonic()
        extra = {} if clock_factory is None else {"clock": clock_factory()}
        if cell.state in TO_TRAIN:
            try:
                if cell.state in ("new", "restart"):
                    summary = pretrain(cell.arm.data, cell.path, budget_s=spec.budget_s,
                                       preset=cell.arm.preset,
                                       overrides=fitted_overrides(cell.arm), device=spec.device,
                                       seed=cell.seed, quiet=quiet,
                                       force=cell.state == "restart", **extra)
                else:
                    summary = pretrain(resume=cell.path, device=spec.device, quiet=quiet,
                                       **extra)
            except RunFailed as err:
                print(f"cram sweep: arm {cell.arm.name}, seed {cell.seed} failed: {err}")
                failed += 1
                continue
            if summary["stopped_by"] == "interrupt":
                print(f"cram sweep: interrupted in arm {cell.arm.name}, seed {cell.seed}; run "
                      "the same command again to resume it")
                return 130
            trained = summary["train_elapsed_s"] - cell.trained_s
            print(f"cram sweep: arm {cell.arm.name}, seed {cell.seed}: {summary['steps']} steps "
                  f"in {summary['train_elapsed_s']:.1f}s, val loss {summary['val_loss']}")
        elif cell.state == "failed":
            failed += 1
            continue
        else:
            trained = 0.0
        score(spec, cell.path, quiet=quiet)
        overheads.append(max(0.0, time.monotonic() - t0 - trained))
    progress_line(f"cram sweep: {len(cells)} runs in {format_duration(time.monotonic() - started)}"
                  + (f", {failed} failed" if failed else ""), quiet=quiet)
    return 1 if failed else 0


def time_left(spec: SweepSpec, cells: list[Cell], overheads: list[float]) -> str:
    """The sweep's remaining time: the training left in each run, plus each run's set-up, val
    loss and scoring as measured on the runs done so far (unknown before the first)."""
    todo = [c for c in cells if c.state in TO_TRAIN]
    training = sum(max(0.0, spec.budget_s - c.trained_s) for c in todo)
    if not overheads:
        return f"at least {format_duration(training)}"
    unscored = [c for c in cells if c.state != "failed"]
    return f"about {format_duration(training + len(unscored) * sum(overheads) / len(overheads))}"


def score(spec: SweepSpec, run: Path, *, quiet: bool) -> None:
    """Score a finished run as the spec asks, unless its results file already holds that."""
    suite = spec.eval.suite
    if suite == "none" or scored(spec, run):
        return
    if suite == "probe":
        from glue_eval.probes import evaluate_probes

        evaluate_probes(run, seeds=list(spec.eval.seeds), force=True, quiet=quiet,
                        device=spec.device)
    else:
        from glue_eval.evaluate import evaluate_glue

        evaluate_glue(run, tasks=list(spec.eval.tasks) or "all", glue_dir=spec.eval.glue_dir,
                      protocol=spec.eval.protocol, seeds=list(spec.eval.seeds), force=True,
                      quiet=quiet, device=spec.device)


def scored(spec: SweepSpec, run: Path) -> bool:
    """Whether RUN/eval/ holds results with the spec's protocol, seeds and tasks."""
    import json

    path = run / "eval" / EVAL_FILES[spec.eval.suite]
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return False
    protocol = record.get("protocol") or {}
    if protocol.get("seeds") != list(spec.eval.seeds):
        return False
    if spec.eval.suite == "glue":
        tasks = set(spec.eval.tasks) if spec.eval.tasks else None
        return protocol.get("name") == spec.eval.protocol and (
            tasks is None or tasks == set(record.get("tasks") or {}))
    return True


def format_plan(spec: SweepSpec, out: Path, cells: list[Cell]) -> str:
    """What `--dry-run` prints: each cell, its state and the time the sweep needs."""
    lines = [f"sweep into {out}: {len(spec.arms)} arms x {len(spec.seeds)} seeds = {len(cells)} "
             f"runs, seed-major, {spec.budget_s:g}s of pretraining each, metric {spec.metric}",
             f"{'cell':>4}  {'arm':<16}{'seed':>5}  {'state':<8}recipe"]
    for cell in cells:
        recipe = " ".join([f"--preset {cell.arm.preset}", *cell.arm.overrides])
        lines.append(f"{cell.index:>4}  {cell.arm.name:<16}{cell.seed:>5}  {cell.state:<8}"
                     f"{recipe}")
    todo = [c for c in cells if c.state in TO_TRAIN]
    training = sum(max(0.0, spec.budget_s - c.trained_s) for c in todo)
    after = "set-up and val loss" if spec.eval.suite == "none" else \
        f"set-up, val loss and {spec.eval.suite} evaluation"
    lines.append(f"to run: {len(todo)} of {len(cells)} runs, {format_duration(training)} of "
                 f"pretraining, plus each run's {after}" if todo
                 else "to run: nothing; every run of the sweep has ended (a run not yet scored "
                      "is scored)")
    return "\n".join(lines)
