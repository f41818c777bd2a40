"""The run dir (contract 2, `cram-run/1`): creating or reopening it, metrics, summary."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from crambench.code import local_changes
from crambench.contracts import read_json_object
from crambench.errors import OutOfSpace, UserError, is_out_of_space
from crambench.files import (
    refuse_output_over_inputs,
    tidy,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from crambench.locks import dir_lock
from crambench.plugin import RUN_COPY, load_plugin
from cramming.config import (
    config_sha256,
    load_config,
    load_saved_config,
    to_yaml,
    validate,
)
from cramming.train.checkpoint import (
    END_RECORD,
    check_train_state,
    read_end_record,
    read_train_state,
)
from data_prep import open_data_dir

RUN_FORMAT = "cram-run/1"
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoint", "final", "summary.json", "eval",
             "profile", END_RECORD)
HARNESS_DIFF = "code/harness.diff"  # a run from a modified checkout: `git diff HEAD`
FINISHED = ("budget", "steps")  # stopped_by values of a run that cannot be resumed


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What `cram pretrain` is asked for, as given and before anything is read; `resolve_run`
    turns it into a run dir, a resolved config and an opened data dir.

    A new run needs `data`, `budget_s` and `out`; a resumed one (`resume`: its run dir) takes
    its own data dir and budget, and `data` and `budget_s`, when given, must match it."""

    data: str | None = None  # prepared data dir (cram prepare)
    out: str | None = None  # run dir to create
    budget_s: float | None = None  # wall-clock training budget, seconds (parse_budget)
    preset: str = "crammed-bert"  # a preset name, a YAML file, or "auto" (the planner)
    overrides: tuple[str, ...] = ()  # key=value config overrides
    device: str = "auto"  # auto | cuda | cpu: changes speed, not the recipe
    seed: int | None = None  # None: the preset's, or the resumed run's
    resume: str | None = None  # run dir to continue
    force: bool = False  # replace a run already in `out`
    plugin: str | None = None  # the entrant's code (crambench.plugin), copied into the run


@contextlib.contextmanager
def locked_run(out, resume) -> Iterator[None]:
    """Hold the run dir's lock for a whole `cram pretrain` (one writer per run dir; `cram eval`
    takes the same lock) and first repair what a killed run left: a checkpoint or final/ swap
    cut short, temporary files."""
    target = resume if resume is not None else out
    if target is None:
        raise UserError("--out RUN is required (or --resume RUN)")
    with dir_lock(target, owner="cram pretrain"):
        if Path(target).is_dir():  # not yet made (or a file in the way: resolve_run says so)
            for name in RUN_FILES:
                tidy(Path(target) / name)
        yield


def read_summary(run_dir) -> dict | None:
    path = Path(run_dir) / "summary.json"
    return read_json_object(path) if path.exists() else None


def never_trained(run: Path) -> bool:
    """A run dir killed before its first checkpoint: config.yaml and at most an empty
    metrics.jsonl, nothing that a restart would lose."""
    metrics = run / "metrics.jsonl"
    return ((run / "config.yaml").is_file()
            and not any((run / name).exists() for name in ("checkpoint", "final", "summary.json"))
            and (not metrics.exists() or metrics.stat().st_size == 0))


def check_fresh(out, *, force: bool) -> Path:
    """An existing run in `out` is an error unless `force` or it never trained a step."""
    out = Path(out)
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not force and not never_trained(out):
        summary = read_summary(out) or {}
        resumable = summary.get("stopped_by") == "interrupt" or not summary
        if resumable and (out / "checkpoint").is_dir():
            hint = f"continue it with `cram pretrain --resume {out}` or use --force to replace it"
        else:
            hint = "use --force to replace it or choose another --out"
        raise UserError(f"{out} already holds a run ({', '.join(held)}); {hint}")
    return out


def write_run(run: Path, cfg, *, fresh: bool, plugin_source=None) -> None:
    """Create the run dir (a fresh one replaces only a previous run's own files, never anything
    else the folder holds) and save the resolved config. `plugin_source`: the plug-in file a
    new run was given, copied to RUN/code/plugin.py (what every later stage loads)."""
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
    if fresh:
        keep_local_changes(run)
    copy = run / RUN_COPY
    if plugin_source is not None:
        copy.parent.mkdir(exist_ok=True)
        write_bytes_atomic(copy, Path(plugin_source).read_bytes())
    elif fresh and not cfg.plugin.file and copy.exists():  # a replaced run's code
        copy.unlink()
    write_text_atomic(run / "config.yaml", to_yaml(cfg))


def keep_local_changes(run: Path) -> None:
    """RUN/code/harness.diff: what a modified checkout changed (`git diff HEAD`), kept beside
    the run it trained; removed for a clean checkout (a replaced run's)."""
    diff = run / HARNESS_DIFF
    if local_changes():
        diff.parent.mkdir(exist_ok=True)
        write_text_atomic(diff, local_changes())
    elif diff.exists():
        diff.unlink()


def open_resumable(run) -> Path:
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise UserError(f"--resume {run}: not a run dir (config.yaml is missing)")
    summary = read_summary(run) or {}
    if summary.get("status") == "failed":
        raise UserError(f"--resume {run}: the run failed ({summary.get('failure')}); start it "
                        "again with --force")
    if summary.get("stopped_by") in FINISHED:
        raise UserError(
            f"--resume {run}: the run already finished (stopped by {summary['stopped_by']})"
        )
    return run


class MetricsLog:
    """RUN/metrics.jsonl, one JSON object per log step. On resume, lines logged after the
    checkpoint are dropped so the step/elapsed sequence continues without a repeat; a last line
    a crash cut short is dropped too, while any other damage is a UserError naming the line.

    `first_fields` go into the first record this log appends (the trainer's devices): a record
    written at another time than the summary and the checkpoints, which a validator compares
    with them."""

    def __init__(self, path, *, resume_step: int | None = None,
                 resume_elapsed: float | None = None, first_fields: dict | None = None):
        self.path = Path(path)
        self.first_fields = dict(first_fields or {})
        if resume_step is None:
            write_text_atomic(self.path, "")
        elif self.path.exists():
            kept = metrics_up_to(self.path, resume_step, resume_elapsed)
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def append(self, record: dict) -> None:
        record, self.first_fields = {**record, **self.first_fields}, {}
        try:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as err:
            if is_out_of_space(err):
                raise OutOfSpace(self.path, err, needed=len(json.dumps(record)) + 1) from None
            raise


def metrics_up_to(path: Path, step: int, elapsed_s: float | None) -> list[str]:
    """metrics.jsonl's lines up to `step`, checked: steps increase, times never go back, and
    none before `step` is later than the checkpoint's own elapsed_s (a resume must not gain
    time). Text after the last newline is a line a crash cut short: dropped. Any other damage
    is a UserError."""
    *lines, _cut_short = path.read_bytes().split(b"\n")
    kept, previous = [], (-1, 0.0)
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(raw.decode())
            logged = (record["step"], record["elapsed_s"])
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as err:
            what = ("not UTF-8 text" if isinstance(err, UnicodeDecodeError)
                    else "not a JSON record with step and elapsed_s")
            raise UserError(f"{where} is damaged ({what}); the run cannot resume until it is "
                            "repaired or removed") from None
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in logged)
        if not numbers or logged[0] <= previous[0] or logged[1] < previous[1]:
            raise UserError(f"{where} is damaged: step {logged[0]!r} at {logged[1]!r}s does not "
                            f"follow step {previous[0]} at {previous[1]}s")
        previous = logged
        if logged[0] > step:
            continue
        # Lines before the checkpoint's step were logged before it was saved; a line at its
        # step may be the run's last, logged as the loop ended, after it.
        if elapsed_s is not None and logged[0] < step and logged[1] > elapsed_s + 0.001:
            raise UserError(f"{where}: step {logged[0]} was logged at {logged[1]}s, after the "
                            f"checkpoint's elapsed_s {elapsed_s}s: one of them was edited")
        kept.append(raw.decode())
    return kept


def write_summary(run_dir, summary: dict) -> None:
    write_json_atomic(Path(run_dir) / "summary.json", {"format": RUN_FORMAT, **summary})


def resolve_run(request: RunRequest, *, quiet=False):
    """-> (run dir, resolved config, checkpoint train_state or None, opened data dir), writing
    nothing: every mismatch between preset, data dir and a run being resumed is a UserError here.
    The train state's "ended" is the run's end record (checked), or None.

    A resumed run knows its data dir and budget (config.yaml); `data` and `budget_s` may be None
    then, and must match the run when given. A run dir that never trained (killed before its
    first checkpoint) resumes from step 0 with its own config."""
    data, out, budget_s, preset = request.data, request.out, request.budget_s, request.preset
    overrides, device, seed, resume = (request.overrides, request.device, request.seed,
                                       request.resume)
    resumed = None
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise UserError(f"--resume {resume} writes into that run; drop --out {out}")
        if request.plugin is not None:
            raise UserError(f"--plugin does not apply with --resume: {resume} loads its own "
                            f"copy ({RUN_COPY})")
        run = open_resumable(resume)
        cfg = load_saved_config(run / "config.yaml", overrides)
        if budget_s is not None and budget_s != cfg.train.budget_s:
            raise UserError(f"--budget {budget_s:g}s does not match the run's budget "
                            f"{cfg.train.budget_s:g}s ({run / 'config.yaml'}); a resumed run "
                            "keeps its budget: drop --budget")
        budget_s = cfg.train.budget_s
        data_dir = _open_data(data, cfg.data.path, run)
        if not never_trained(run):
            resumed = read_train_state(run)
            if resumed["config_sha256"] != config_sha256(run / "config.yaml"):
                raise UserError(f"{run / 'config.yaml'} was changed or damaged after the "
                                f"checkpoint: its recipe no longer matches config_sha256 in "
                                f"{run / 'checkpoint' / 'train_state.json'}")
            if resumed["data_sha256"] != data_dir.data_sha256:
                raise UserError(f"--resume {run}: {data_dir.path} is not the data dir it "
                                "trained on")
    else:
        if out is None:
            raise UserError("--out RUN is required (or --resume RUN)")
        if data is None or budget_s is None:
            raise UserError("--data and --budget are required for a new run (--resume RUN "
                            "alone takes the run's own)")
        data_dir = open_data_dir(data)
        refuse_output_over_inputs(out, data=data)
        cfg = _load_preset(preset, overrides, budget_s, data_dir, device, quiet)
        _attach_plugin(cfg, request.plugin, data_dir.num_rows("train"))
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
    train_rows = data_dir.num_rows("train")
    if train_rows < 1:
        raise UserError(f"data dir {data_dir.path} has no training rows")
    for name in ("batch_size", "batch_start"):  # one step never sees a row twice
        if getattr(cfg.train, name) > train_rows:
            raise UserError(f"train.{name}={getattr(cfg.train, name)} is more than the "
                            f"{train_rows:,} train rows of {data_dir.path}: one step would see "
                            f"rows twice; lower it or prepare more data")
    if resume is None:
        run = check_fresh(out, force=request.force)
    elif resumed:
        if resumed["config_sha256"] != config_sha256(cfg):
            changed = _first_change(load_saved_config(run / "config.yaml"), cfg)
            raise UserError(f"--resume {run}: {changed} changes its recipe; resume with the "
                            "same recipe (impl.* may change)")
        check_train_state(resumed, cfg, run)
        # Set when training ended after this checkpoint and the end state was lost in the save.
        resumed["ended"] = read_end_record(run, resumed, cfg)
        if (run / "metrics.jsonl").exists():
            kept = metrics_up_to(run / "metrics.jsonl", resumed["step"], resumed["elapsed_s"])
            last = json.loads(kept[-1]) if kept else {}
            if last.get("step") == resumed["step"]:  # the run's last line, logged as it
                # ended, may follow its last checkpoint: the clock goes on from the later time
                resumed["elapsed_s"] = max(resumed["elapsed_s"], last["elapsed_s"])
                resumed["train_loss"] = last.get("loss", resumed["train_loss"])
    data_dir.check_token_ids()  # last (it reads every shard once): not found mid-training
    return run, cfg, resumed, data_dir


def _first_change(saved, cfg) -> str:
    """The first recipe field where `cfg` departs from the run's `saved` config, as
    "key=new (the run's: old)"."""
    def flat(tree, prefix=""):
        items = {}
        for key, value in tree.items():
            items.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict)
                         else {f"{prefix}{key}": value})
        return items

    def recipe(c):  # every field that decides the result, at its value (none left out)
        return {"model": dataclasses.asdict(c.model), "optim": dataclasses.asdict(c.optim),
                "train": dataclasses.asdict(c.train), "seed": c.seed,
                "plugin": dataclasses.asdict(c.plugin)}

    old, new = flat(recipe(saved)), flat(recipe(cfg))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}={new.get(key)} (the run's: {old.get(key)})"
    return "--seed or an override"


def _attach_plugin(cfg, source, train_rows: int) -> None:
    """Load and check a new run's plug-in (every hook it defines called once, before anything
    is written) and record where the run will keep it and its hash."""
    if cfg.plugin.file or cfg.plugin.sha256:  # an override or a preset tried to set them
        raise UserError("plugin.file and plugin.sha256 are set by --plugin FILE, not by "
                        "a preset or override")
    if source is None:
        if cfg.plugin.options:
            raise UserError("plugin.options given without --plugin FILE")
        return
    from cramming.plugins import check_hooks

    plugin = load_plugin(source)
    cfg.plugin.file, cfg.plugin.sha256 = RUN_COPY, plugin.sha256
    check_hooks(plugin, cfg, train_rows)


def _open_data(data, recorded: str, run: Path):
    """The data dir given on the command line, else the one the run recorded."""
    if data is not None:
        return open_data_dir(data)
    try:
        return open_data_dir(recorded)
    except UserError as err:
        raise UserError(f"{err} (the data dir named in {run / 'config.yaml'}; give --data DATA "
                        "if it moved)") from None


def _load_preset(preset, overrides, budget_s, data_dir, device, quiet):
    """A preset name or file; `auto` asks the planner (cramming.plan.planner) for one. The planned
    YAML lives in a temporary folder only until it is loaded: config.yaml records the result."""
    if str(preset) != "auto":
        return load_config(preset, overrides)
    from cramming.plan.planner import preset_for_budget  # scipy and the laws load only when asked

    planned = preset_for_budget(budget_s, data=data_dir.path, device=device, quiet=quiet)
    try:
        return load_config(planned, overrides)
    finally:
        shutil.rmtree(planned.parent, ignore_errors=True)
