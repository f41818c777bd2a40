"""`extract`: a finished teacher run in, a smaller distilled run out (contract 2 plus the
shared `lineage` record, an `extracted_from` record and the search table `search.json`).

    1. candidates: sub-shapes of the teacher (space.py), each sliced from its weights
       (slicing.py);
    2. search: each candidate trains by distillation (distill.py) for an equal share of the
       search budget, then is scored: val MLM and distillation loss, size, FLOPs, latency
       at batch 1 and 64 on this device (measure.py);
    3. choice: the highest W-coefficient (ranking.py); the Pareto front is printed beside it;
    4. the chosen candidate keeps training for the rest of --budget and is written as a run.

One clock covers all of it (Rules v1, rule 2: the budget covers all training): it starts
before the teacher is loaded and stops when the chosen candidate's training ends, so the
slicing, every candidate's training and scoring, and the final training all count; the final
save and val loss do not, as in `cram pretrain`. The run dir is built under a temporary name
and appears whole or not at all; an interrupted extraction leaves nothing (no resume).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crambench.errors import UserError
from crambench.progress import progress_line
from cramming.extract.ranking import FRONT_AXES, TRADEOFF
from cramming.extract.space import Shape, candidate_space, teacher_shape

if TYPE_CHECKING:  # torch and the trainer load inside extract(), not on import
    import torch

    from cramming.config import ModelConfig, PretrainConfig
    from data_prep.reader import DataDir

SEARCH_FORMAT = "cram-extract-search/1"
SEARCH_FILE = "search.json"
SEARCH_SHARE = 0.5  # of --budget, when --search-budget is not given
TEMPERATURE = 2.0  # of the soft targets: DistilBERT's (Sanh et al. 2019)
ALPHA = 0.5  # weight of the soft targets against the MLM loss: an even mix
# Margin on the measured cost of one candidate (build, first checkpoint, one step, scoring):
# as the trainer's, timing noise must not push a candidate past its share.
SAFETY = 1.5


def extract(teacher, data, out, *, budget, search_budget=None, space=(), tradeoff=TRADEOFF,
            temperature=TEMPERATURE, alpha=ALPHA, device="auto", seed=None, overrides=(),
            force=False, quiet=False, clock=time.monotonic) -> dict:
    """Extract, distill and write `out`; returns its summary (format cram-run/1).

    UserError, before anything is written, for: a teacher without a finished final/ (or one
    whose config, weights or tokenizer disagree), a data dir whose tokenizer is not the
    teacher's, a bad or empty space, a budget too small for one step per candidate (the
    message says how much is needed). The teacher run dir is held under its shared lock
    throughout (`crambench.locks.read_lock`): no `cram pretrain` rewrites it meanwhile."""
    from crambench.locks import read_lock
    from cramming.lineage import read_parent

    if not Path(teacher).is_dir():
        read_parent(teacher)  # the one-line refusal of a run dir that is not there
    with read_lock(teacher):
        return _extract(teacher, data, out, budget=budget, search_budget=search_budget,
                        space=space, tradeoff=tradeoff, temperature=temperature, alpha=alpha,
                        device=device, seed=seed, overrides=overrides, force=force,
                        quiet=quiet, clock=clock)


def _extract(teacher, data, out, *, budget, search_budget, space, tradeoff, temperature,
             alpha, device, seed, overrides, force, quiet, clock) -> dict:
    import torch

    from crambench.files import refuse_output_over_inputs
    from cramming.config import check_derived_overrides, load_config
    from cramming.final import open_final
    from cramming.lineage import read_parent
    from cramming.train.budget import parse_budget
    from cramming.train.hardware import detect_hardware, resolve_device, resolve_precision
    from data_prep import open_data_dir

    refuse_output_over_inputs(out, teacher=teacher, data=data)
    stage_budget_s = parse_budget(budget)
    search_s = (parse_budget(search_budget) if search_budget is not None
                else stage_budget_s * SEARCH_SHARE)
    if search_s >= stage_budget_s:
        raise UserError(f"--search-budget {search_budget} leaves nothing of --budget {budget} "
                        "for training the chosen candidate; make it smaller")
    for name, value, low in (("--tradeoff", tradeoff, 0.0), ("--temperature", temperature, 1e-9)):
        if not value >= low or value == float("inf"):
            raise UserError(f"{name} {value} must be a finite number >= {low:g}")
    if not 0 <= alpha <= 1:
        raise UserError(f"--alpha {alpha} must lie in [0, 1] (the weight of the soft targets)")
    teacher, out = Path(teacher), Path(out)
    check_derived_overrides(overrides, "cram extract")
    parent = read_parent(teacher)
    final = open_final(teacher / "final", "cram extract")
    teacher_cfg, teacher_state = final.cfg, final.state
    from cramming.extract.slicing import check_sliceable

    check_sliceable(teacher_cfg, where=f"{teacher}/final/model_config.json: ")
    if not (teacher / "config.yaml").is_file():
        raise UserError(f"teacher run {teacher} has no config.yaml: its training recipe "
                        "(optimizer, schedules) is what the candidates train with")
    data_dir = open_data_dir(data)
    check_tokenizer(data_dir, teacher, teacher_cfg)
    shapes = candidate_space(teacher_cfg, space)
    if out.resolve() == teacher.resolve():
        raise UserError(f"--out {out} is the teacher run; name a new run dir")
    if out.exists() and not force:
        raise UserError(f"{out} already exists; use --force to replace it")

    base = load_config(teacher / "config.yaml", overrides, saved=True)  # LEGACY-filled
    base.train.budget_s = stage_budget_s
    base.data.path = str(Path(data_dir.path).resolve())
    if device != "auto":
        base.impl.device = device
    if seed is not None:
        base.seed = seed
    dev = resolve_device(base.impl.device)
    hardware = detect_hardware(dev)
    precision = resolve_precision(base.impl.precision, dev)
    if base.impl.threads:
        torch.set_num_threads(base.impl.threads)
    # The optimizer's first construction imports torch._dynamo (seconds): pay that once, off
    # the clock, so it does not count as the cost of every candidate in the budget check.
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    job = Extraction(
        teacher_run=teacher, out=Path(out), parent=parent, teacher_cfg=teacher_cfg, base=base,
        data_dir=data_dir, shapes=shapes, stage_budget_s=stage_budget_s, search_s=search_s,
        tradeoff=tradeoff, temperature=temperature, alpha=alpha, dev=dev, hardware=hardware,
        precision=precision, quiet=quiet, clock=clock)
    from crambench.files import atomic_dir

    with atomic_dir(out, force=force) as tmp:
        summary = job.run(tmp, teacher_state)
    return {"format": "cram-run/1", **summary}


def check_tokenizer(data_dir, teacher: Path, teacher_cfg) -> None:
    """The data dir must speak the teacher's vocabulary: same tokenizer (compared as parsed
    JSON, so formatting does not matter), vocabulary size and row length."""
    theirs = teacher / "final" / "tokenizer.json"
    if not theirs.is_file():
        raise UserError(f"teacher run {teacher} has no final/tokenizer.json")
    try:
        same = json.loads(theirs.read_text()) == json.loads(data_dir.tokenizer_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"cannot compare tokenizers {theirs} and {data_dir.tokenizer_path}: "
                        f"{err}") from None
    if not same:
        raise UserError(f"data dir {data_dir.path} has a different tokenizer than the teacher "
                        f"({theirs}): distillation needs the teacher's vocabulary; prepare the "
                        f"data with --tokenizer {theirs}")
    for field in ("vocab_size", "seq_len"):
        if getattr(data_dir, field) != getattr(teacher_cfg, field):
            raise UserError(f"data dir {data_dir.path} has {field} {getattr(data_dir, field)}, "
                            f"the teacher {getattr(teacher_cfg, field)}")


@dataclasses.dataclass
class Extraction:
    """One extraction's settings and what it measured; `run` does the work into a folder."""

    teacher_run: Path
    out: Path  # where the run lands (it is built under a temporary name)
    parent: dict  # the teacher's lineage record (cramming.lineage.read_parent)
    teacher_cfg: ModelConfig
    base: PretrainConfig  # the teacher's recipe, with this budget, data and device
    data_dir: DataDir
    shapes: list[Shape]
    stage_budget_s: float
    search_s: float
    tradeoff: float
    temperature: float
    alpha: float
    dev: torch.device
    hardware: dict
    precision: str  # bf16 | fp16 | fp32
    quiet: bool
    clock: Callable[[], float]  # seconds, monotonic; a fake in tests

    def say(self, message: str) -> None:
        progress_line(f"cram extract: {message}", quiet=self.quiet)

    def run(self, tmp: Path, teacher_state: dict) -> dict:
        from datetime import UTC, datetime

        from cramming.extract.distill import DistillationObjective
        from cramming.model import CrammedBert
        from cramming.train.budget import Budget
        from cramming.train.pretrain import StopSignal

        self.started_utc = datetime.now(UTC).isoformat(timespec="seconds")
        # The clock starts here: before the teacher is built, after the inputs are checked.
        self.stage = Budget(self.stage_budget_s, clock=self.clock)
        teacher = CrammedBert(self.teacher_cfg)
        teacher.load_state_dict(teacher_state)
        teacher = teacher.to(self.dev).eval().requires_grad_(False)
        self.teacher = teacher
        self.objective = DistillationObjective(teacher, temperature=self.temperature,
                                               alpha=self.alpha)
        with StopSignal() as self.stop:
            reference, slot, window = self.plan_search(tmp)
            rows = [self.search(shape, tmp, window, i) for i, shape in enumerate(self.shapes, 1)]
            search_elapsed = self.stage.elapsed()
            from cramming.extract.ranking import rank_candidates

            ranked = rank_candidates(rows, reference, self.tradeoff)
            chosen = ranked[0]
            if chosen["w"] is None:
                raise UserError("no candidate made a training step; give a larger --budget")
            model, state = self.continue_training(chosen, tmp)
        search = self.search_record(ranked, reference, chosen, slot, window, search_elapsed)
        return self.write(tmp, model, state, search)

    def plan_search(self, tmp: Path) -> tuple[dict, float, float]:
        """(the teacher's scores, slot, training window per candidate): the search budget is
        shared equally, each slot holding a candidate's training and its scoring. The cost of
        one candidate is measured on the largest (build, first checkpoint, one step, scoring);
        a budget that cannot pay it for every candidate and for one step of the final
        training is a UserError that says how much would."""
        from cramming.train.budget import Budget

        n = len(self.shapes)
        slot = self.search_s / n
        largest = max(self.shapes, key=lambda s: s.layers * s.hidden * (s.hidden + s.ffn))
        cfg = self.config_for(largest)
        cfg.train.max_steps = 1
        started = self.stage.elapsed()
        # One step, whatever the budget: on a clock of its own (reading the same time) that
        # no step can overrun, so that a budget too small is reported here, not as a warning.
        probe_clock = Budget(self.stage_budget_s + 1e6, clock=self.clock)
        model, _ = self.train_candidate(largest, cfg, tmp / "probe", probe_clock, quiet=True)
        trained = self.stage.elapsed()
        self.score(model, largest, trained=None)
        scored = self.stage.elapsed()
        shutil.rmtree(tmp / "probe")
        # The teacher's own scores: the reference point of the ranking (W = 1).
        reference = self.score(self.teacher, teacher_shape(self.teacher_cfg), trained=None)
        train_need = SAFETY * (trained - started)
        score_reserve = SAFETY * (scored - trained)
        need = train_need + score_reserve
        overhead = self.stage.elapsed()  # probe and reference: paid out of the final training
        if slot < need or self.stage_budget_s - self.search_s - overhead < train_need:
            search_need = n * need
            total_need = search_need + overhead + train_need
            raise UserError(
                f"budget too small: each of the {n} candidates needs about {need:.1f}s for one "
                f"training step and its scoring (measured on the largest, {largest.name}) but "
                f"gets {slot:.1f}s of the {self.search_s:g}s search, and the chosen one needs "
                f"about {train_need + overhead:.1f}s after it; give --budget "
                f"{_seconds(2 * max(search_need, overhead + train_need))} (half for the "
                f"search), or --search-budget {_seconds(search_need)} with --budget "
                f"{_seconds(total_need)}, or fewer candidates with --space")
        self.say(f"{n} candidates, {slot:.1f}s each ({slot - score_reserve:.1f}s of training, "
                 f"{score_reserve:.1f}s for scoring) in a {self.search_s:g}s search; then the "
                 f"chosen one trains for the rest of {self.stage_budget_s:g}s")
        return reference, slot, slot - score_reserve

    def config_for(self, shape: Shape):
        cfg = copy.deepcopy(self.base)
        cfg.model = shape.model_config(self.teacher_cfg)
        return cfg

    def train_candidate(self, shape: Shape, cfg, work: Path, window, *, resume: Path = None,
                        quiet: bool | None = None):
        """Train one candidate by distillation within `window` (a window of the stage clock),
        from the teacher's slices or, with `resume`, from a candidate's search checkpoint.
        Returns (model, train state); the state's stopped_by says how training ended."""
        import torch

        from cramming.extract.slicing import extract_model
        from cramming.model import CrammedBert
        from cramming.train.budget import DurationEstimate
        from cramming.train.checkpoint import load_checkpoint, save_checkpoint
        from cramming.train.optimizers import build_optimizer
        from cramming.train.pretrain import RowStream, initial_state, train_loop
        from cramming.train.run_dir import MetricsLog

        work.mkdir(parents=True, exist_ok=True)
        state = initial_state(cfg, self.data_dir, f"extract:{shape.name}")
        durations = tuple(DurationEstimate() for _ in range(3))
        if resume is None:
            model, selection = extract_model(self.teacher, shape, seed=cfg.seed)
            state["layers_kept"] = selection.layers
        else:
            model = CrammedBert(cfg.model).to(self.dev)
        optimizer = build_optimizer(model, cfg.optim, self.dev)
        scaler = torch.amp.GradScaler(self.dev.type, enabled=self.precision == "fp16")
        if resume is not None:
            resumed = load_checkpoint(resume, model=model, optimizer=optimizer, scaler=scaler,
                                      restore_rng=False)
            state.update({k: resumed[k] for k in ("step", "tokens", "rows", "nonfinite_skips",
                                                  "train_loss", "layers_kept", "elapsed_s")})
            durations = resume_durations(resumed)
            shutil.copyfile(resume / "metrics.jsonl", work / "metrics.jsonl")
        rows = RowStream(self.data_dir, seed=cfg.seed, start=state["rows"],
                         chunk=cfg.impl.micro_batch)
        metrics = MetricsLog(work / "metrics.jsonl",
                             resume_step=state["step"] if resume is not None else None,
                             resume_elapsed=state.get("elapsed_s"))
        stopped_by = train_loop(model, optimizer, scaler, rows, window, cfg, state, run=work,
                                metrics=metrics, stop=self.stop, data_dir=self.data_dir,
                                precision=self.precision,
                                quiet=self.quiet if quiet is None else quiet,
                                durations=durations, objective=self.objective,
                                command="cram extract")
        if stopped_by == "interrupt":
            raise KeyboardInterrupt
        state["stopped_by"] = stopped_by
        state["train_s"] = round(state["elapsed_s"] - window.window_start, 3)
        save_checkpoint(work, model=model, optimizer=optimizer, scaler=scaler,
                        train_state={**state, "durations": [d.estimate() for d in durations]})
        return model, state

    def score(self, model, shape: Shape, *, trained: dict | None) -> dict:
        """One row of the search table: shape, costs, latency, val losses (and training)."""
        from cramming.extract.distill import validation_losses
        from cramming.extract.measure import costs, latencies

        cfg = self.config_for(shape)
        row = {"name": shape.name, **shape.to_dict(), **costs(cfg.model),
               **latencies(model, self.precision),
               **validation_losses(model, self.teacher, self.data_dir, cfg, self.precision,
                                   self.temperature)}
        if trained is not None:
            row.update({key: trained[key] for key in ("layers_kept", "steps", "tokens",
                                                      "train_loss", "train_s", "stopped_by")})
        return row

    def search(self, shape: Shape, tmp: Path, window_s: float, index: int) -> dict:
        cfg = self.config_for(shape)
        model, state = self.train_candidate(shape, cfg, tmp / "search" / shape.name,
                                            self.stage.window(window_s))
        trained = {**state, "steps": state["step"]}
        row = self.score(model, shape, trained=trained)
        self.say(f"[{index}/{len(self.shapes)}] {shape.name}: {row['steps']} steps in "
                 f"{row['train_s']:.1f}s, val loss {row['val_loss']}, distill "
                 f"{row['val_distill_loss']}, {row['params']:,} params, "
                 f"{row['latency_b1_ms']:.2f} / {row['latency_b64_ms']:.1f} ms at batch 1 / 64")
        return row

    def continue_training(self, chosen: dict, tmp: Path):
        shape = Shape(*(chosen[k] for k in ("layers", "heads", "hidden", "ffn")))
        if self.stage.remaining() <= 0:
            raise UserError(f"the search took {self.stage.elapsed():.0f}s, all of --budget "
                            f"{self.stage_budget_s:g}s; give a larger --budget or a smaller "
                            "--search-budget")
        self.say(f"chose {shape.name} (W {chosen['w']:.4f}); training it for the "
                 f"{self.stage.remaining():.0f}s left")
        cfg = self.config_for(shape)
        model, state = self.train_candidate(shape, cfg, tmp, self.stage.window(),
                                            resume=tmp / "search" / shape.name)
        shutil.rmtree(tmp / "search")
        state["started_utc"] = self.started_utc
        self.final_cfg = cfg
        return model, state

    def search_record(self, ranked, reference, chosen, slot, window, search_elapsed) -> dict:
        return {
            "format": SEARCH_FORMAT,
            "teacher": {"run": str(self.teacher_run),
                        "model_sha256": self.parent["model_sha256"], **reference},
            "budget": {"stage_budget_s": self.stage_budget_s, "search_budget_s": self.search_s,
                       "slot_s": round(slot, 3), "train_window_s": round(window, 3),
                       "search_elapsed_s": round(search_elapsed, 3)},
            "objective": {"temperature": self.temperature, "alpha": self.alpha},
            "ranking": {"tradeoff": self.tradeoff, "front_axes": list(FRONT_AXES)},
            "device": self.hardware["gpu_name"] or self.hardware["cpu_name"],
            "candidates": ranked,
            "chosen": chosen["name"],
        }

    def write(self, tmp: Path, model, state: dict, search: dict) -> dict:
        from crambench.contracts import sha256_file
        from crambench.files import write_json_atomic, write_text_atomic
        from cramming.config import to_yaml
        from cramming.lineage import lineage_record, lineage_totals
        from cramming.train.run_dir import keep_local_changes
        from cramming.train.summary import RunFailed, finish_run, run_failure

        stage_elapsed = state["elapsed_s"]
        failure = run_failure(state, self.stage_budget_s)
        if failure:  # the run would not count: write nothing (exit status 1, as pretrain's)
            raise RunFailed(f"extraction failed, nothing written: {failure}")
        write_text_atomic(tmp / "config.yaml", to_yaml(self.final_cfg))
        keep_local_changes(tmp)  # the code record's diff, as a pretraining run keeps it
        write_json_atomic(tmp / SEARCH_FILE, search)
        lineage = lineage_record(self.teacher_run, out=self.out, stage="extract",
                                 method=f"distill:{search['chosen']}",
                                 stage_train_elapsed_s=stage_elapsed,
                                 stage_budget_s=self.stage_budget_s)
        extracted_from = {
            "teacher_run": str(self.teacher_run),
            "teacher_model_sha256": self.parent["model_sha256"],
            "extraction_s": stage_elapsed,
            "search_file": SEARCH_FILE,
            "search_sha256": sha256_file(tmp / SEARCH_FILE),
            "candidates": len(search["candidates"]),
            "chosen": search["chosen"],
        }
        extra = {**lineage_totals(lineage), "lineage": lineage, "extracted_from": extracted_from}
        summary = finish_run(tmp, model, self.final_cfg, state, data_dir=self.data_dir,
                             hardware=self.hardware, precision=self.precision, extra=extra)
        return {k: v for k, v in summary.items() if k != "format"}


def ranking_table(search: dict) -> str:
    """The search table of a `search.json` record as text: the candidates ranked by W, the
    teacher last (W = 1), the Pareto front marked; `cram extract` prints it as a result."""
    header = (f"rank  {'candidate':<20} {'params':>11} {'no emb':>10} {'ms b1':>8} "
              f"{'ms b64':>8} {'val loss':>8} {'distill':>8} {'W':>7}  front")
    teacher = {**search["teacher"], "name": "teacher " + search["teacher"]["name"],
               "rank": "-", "w": 1.0, "pareto": False}
    lines = [header]
    for row in [*search["candidates"], teacher]:
        w = "-" if row["w"] is None else f"{row['w']:.4f}"
        loss, soft = (("-" if row[k] is None else f"{row[k]:.4f}")
                      for k in ("val_loss", "val_distill_loss"))
        lines.append(f"{row['rank']:>4}  {row['name']:<20} {row['params']:>11,} "
                     f"{row['params_no_embedding']:>10,} {row['latency_b1_ms']:>8.2f} "
                     f"{row['latency_b64_ms']:>8.1f} {loss:>8} {soft:>8} {w:>7}  "
                     f"{'*' if row['pareto'] else ''}")
    front = [row["name"] for row in search["candidates"] if row["pareto"]]
    lines.append(f"W = (ppl_T/ppl_c) * [(P_T/P_c)^1/2 (t1_T/t1_c)^1/4 (t64_T/t64_c)^1/4]^"
                 f"{search['ranking']['tradeoff']:g}, against the teacher (last row, W = 1)")
    lines.append(f"Pareto front on ({', '.join(search['ranking']['front_axes'])}), "
                 f"marked *: {', '.join(front)}")
    return "\n".join(lines)


def resume_durations(train_state: dict):
    """Duration estimates saved with a candidate's search checkpoint, so the final training's
    first step is checked against the deadline like every later one."""
    from cramming.train.budget import DurationEstimate

    durations = tuple(DurationEstimate() for _ in range(3))
    for estimate, seconds in zip(durations, train_state.get("durations") or (), strict=False):
        estimate.update(seconds)
    return durations


def _seconds(seconds: float) -> str:
    """A budget string the user can paste: whole seconds, rounded up, at least 1."""
    return f"{max(1, int(seconds) + 1)}s"
