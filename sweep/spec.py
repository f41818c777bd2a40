"""The sweep spec (`format: cram-sweep/1`): a baseline recipe, its variants, the same budget,
several pretraining seeds, one evaluation and one metric.

```yaml
format: cram-sweep/1
data: data/demo            # the data dir every arm trains on (an arm may name its own)
budget: 60s                # wall-clock pretraining budget of every run
seeds: [0, 1]              # pretraining seeds: the config's `seed` (init, data order, masking)
baseline: {preset: tiny, overrides: [train.batch_size=16]}
variants:
  - {name: mlp, overrides: [model.ffn=mlp]}
  - {name: original-arch, preset: tiny+original-arch}
eval: {suite: probe, seeds: [0]}   # or glue: tasks, protocol, seeds, glue_dir; or none
metric: val_loss           # or avg_cramming, avg_glue, TASK.METRIC (rte.accuracy), probe_avg
alpha: 0.05
```

A variant is the baseline changed by what it names: its `preset` replaces the baseline's, its
`overrides` follow the baseline's (a later `key=value` wins). Relative paths are relative to
the folder `cram sweep` runs in, as paths on its command line are, and recorded absolute.
Every mistake is one line naming the key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from crambench.contracts import canonical_json
from crambench.errors import UserError
from crambench.options import parse_budget

FORMAT = "cram-sweep/1"
BASELINE = "baseline"  # the baseline arm's name unless the spec gives one
SUITES = ("probe", "glue", "none")
# Run-level metrics, read from the run dir or its results file; `TASK.METRIC` names one task.
METRICS = ("val_loss", "avg_cramming", "avg_glue", "probe_avg")
LOWER_IS_BETTER = ("val_loss",)  # MLM cross-entropy in nats; every score is higher-better
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")  # an arm's name is a folder name under runs/
KEYS = {"format", "data", "budget", "seeds", "baseline", "variants", "eval", "metric", "alpha",
        "device"}
ARM_KEYS = {"name", "preset", "overrides", "data"}
EVAL_KEYS = {"suite", "tasks", "protocol", "seeds", "glue_dir"}


@dataclass(frozen=True)
class Arm:
    """One recipe of the sweep: a preset (names joined by `+`, or a YAML file) and overrides."""

    name: str
    preset: str
    overrides: tuple[str, ...] = ()
    data: str = ""  # the data dir this arm trains on (the spec's unless the arm names one)


@dataclass(frozen=True)
class EvalSpec:
    """How each run is scored after pretraining (`cram eval probe` or `cram eval glue`)."""

    suite: str = "probe"  # probe | glue | none (val MLM loss alone)
    tasks: tuple[str, ...] = ()  # GLUE tasks; empty: every task of the protocol
    protocol: str = "cramming"  # GLUE fine-tuning protocol (glue_eval.PROTOCOLS)
    seeds: tuple[int, ...] = (0,)  # fine-tuning seeds; a task's score is their median
    glue_dir: str | None = None  # local GLUE folder; None: the Hub dataset


@dataclass(frozen=True)
class SweepSpec:
    """A parsed spec. `arms` is the baseline first, then the variants in the spec's order."""

    budget_s: float  # wall-clock pretraining budget of every run, seconds
    seeds: tuple[int, ...]  # pretraining seeds
    arms: tuple[Arm, ...]
    eval: EvalSpec = field(default_factory=EvalSpec)
    metric: str = "val_loss"
    alpha: float = 0.05  # family-wise error rate over the variants (Holm)
    device: str = "auto"  # auto | cuda | cpu: one device for every run

    @property
    def baseline(self) -> Arm:
        return self.arms[0]

    @property
    def variants(self) -> tuple[Arm, ...]:
        return self.arms[1:]

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)

    def cells(self) -> list[tuple[Arm, int]]:
        """(arm, seed) in the order they run: seed-major (every arm for the first seed, then
        the next), so a drift of the machine over the sweep touches every arm alike."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]

    def runs_sha256(self) -> str:
        """Hash of what decides the runs and their scores (not the metric or alpha, which
        the report may change): a sweep dir refuses a spec whose hash differs."""
        what = asdict(self)
        del what["metric"], what["alpha"]
        return hashlib.sha256(canonical_json(what)).hexdigest()


def load_spec(path) -> SweepSpec:
    """Read and check a spec file; UserError (one line, naming the key) on any mistake."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read sweep spec {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path} is not valid YAML: {getattr(err, 'problem', err)}{where}") \
            from None
    return parse_spec(raw, where=str(path), root=Path.cwd())


def parse_spec(raw, *, where: str = "spec", root: Path = Path(".")) -> SweepSpec:
    """A spec from its YAML mapping; relative paths are made absolute against `root`."""
    def fail(key: str, problem: str):
        raise UserError(f"{where}: {key}: {problem}")

    if not isinstance(raw, dict):
        raise UserError(f"{where}: not a YAML mapping (format:, data:, budget:, ...)")
    if raw.get("format") != FORMAT:
        fail("format", f"{raw.get('format')!r} is not a sweep spec format this version reads; "
                       f"use {FORMAT}")
    _unknown(raw, KEYS, "", fail)
    for key in ("budget", "seeds", "baseline"):
        if key not in raw:
            fail(key, "missing")
    try:
        budget_s = parse_budget(raw["budget"])
    except UserError as err:
        fail("budget", str(err))
    seeds = _seeds(raw["seeds"], "seeds", fail)
    data = _path(raw.get("data"), root) if raw.get("data") is not None else ""
    baseline = _arm(raw["baseline"], "baseline", BASELINE, data, root, fail, None)
    variants = raw.get("variants") or []
    if not isinstance(variants, list):
        fail("variants", "must be a list of arms (name, preset and/or overrides)")
    arms = [baseline]
    for number, item in enumerate(variants):
        arm = _arm(item, f"variants[{number}]", None, data, root, fail, baseline)
        if any(arm.name == other.name for other in arms):
            fail(f"variants[{number}].name", f"{arm.name!r} is taken by another arm")
        arms.append(arm)
    for number, arm in enumerate(arms):
        if not arm.data:
            fail("data" if number == 0 else f"variants[{number - 1}].data",
                 "no data dir: name one for the sweep (data:) or for this arm")
    evaluation = _eval(raw.get("eval") or {}, root, fail)
    metric = str(raw.get("metric", "val_loss"))
    _check_metric(metric, evaluation, fail)
    alpha = raw.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        fail("alpha", f"{alpha!r} must be a number in (0, 1), e.g. 0.05")
    device = raw.get("device", "auto")
    if device not in ("auto", "cuda", "cpu"):
        fail("device", f"{device!r}: choose auto, cuda or cpu")
    return SweepSpec(budget_s=budget_s, seeds=seeds, arms=tuple(arms), eval=evaluation,
                     metric=metric, alpha=float(alpha), device=device)


def _unknown(raw: dict, allowed: set[str], prefix: str, fail) -> None:
    extra = sorted(set(raw) - allowed)
    if extra:
        fail(prefix + extra[0], f"unknown key; known: {', '.join(sorted(allowed))}")


def _seeds(value, key: str, fail) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in items):
        fail(key, f"{value!r}: give a list of whole numbers >= 0, e.g. [0, 1, 2]")
    if len(set(items)) != len(items):
        fail(key, f"{value!r} repeats a seed")
    return tuple(items)


def _path(value, root: Path) -> str:
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else root / path)


def _arm(raw, key: str, default_name: str | None, data: str, root: Path, fail,
         baseline: Arm | None) -> Arm:
    if not isinstance(raw, dict):
        fail(key, "must be a mapping with preset and/or overrides")
    _unknown(raw, ARM_KEYS, key + ".", fail)
    name = raw.get("name", default_name)
    if name is None:
        fail(f"{key}.name", "missing: every variant needs a name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        fail(f"{key}.name", f"{name!r}: use lowercase letters, digits, '.', '_' and '-'")
    if baseline is not None and "preset" not in raw and "overrides" not in raw \
            and "data" not in raw:
        fail(key, "changes nothing: give a preset, overrides or a data dir")
    overrides = raw.get("overrides") or []
    if isinstance(overrides, str):
        overrides = overrides.split()
    if not isinstance(overrides, list) or any(not isinstance(o, str) or "=" not in o
                                              for o in overrides):
        fail(f"{key}.overrides", f"{overrides!r}: give a list of key=value strings")
    preset = raw.get("preset", baseline.preset if baseline else None)
    if preset is None:
        fail(f"{key}.preset", "missing: the baseline needs a preset (e.g. tiny)")
    preset = str(preset)
    if preset.endswith((".yaml", ".yml")):
        preset = _path(preset, root)
    own = _path(raw["data"], root) if raw.get("data") is not None else None
    inherited = baseline.overrides if baseline else ()
    return Arm(name=name, preset=preset, overrides=(*inherited, *overrides),
               data=own or (baseline.data if baseline else data))


def _eval(raw, root: Path, fail) -> EvalSpec:
    if not isinstance(raw, dict):
        fail("eval", "must be a mapping (suite, tasks, protocol, seeds, glue_dir)")
    _unknown(raw, EVAL_KEYS, "eval.", fail)
    suite = raw.get("suite", "probe")
    if suite not in SUITES:
        fail("eval.suite", f"{suite!r}: choose {', '.join(SUITES)}")
    tasks = raw.get("tasks") or []
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if suite != "glue" and (tasks or "glue_dir" in raw or "protocol" in raw):
        fail("eval", "tasks, protocol and glue_dir are for suite: glue")
    protocol = str(raw.get("protocol", "cramming"))
    from glue_eval.tasks import PROTOCOLS, TASKS  # tables only: no torch

    if protocol not in PROTOCOLS:
        fail("eval.protocol", f"{protocol!r}: choose {', '.join(PROTOCOLS)}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        fail("eval.tasks", f"unknown GLUE task {unknown[0]!r}; known: {', '.join(TASKS)}")
    seeds = _seeds(raw.get("seeds", [0]), "eval.seeds", fail)
    glue_dir = _path(raw["glue_dir"], root) if raw.get("glue_dir") is not None else None
    return EvalSpec(suite=suite, tasks=tuple(tasks), protocol=protocol, seeds=seeds,
                    glue_dir=glue_dir)


def suite_of(metric: str) -> str:
    """The eval suite a metric is read from: glue, probe, or none (the val loss)."""
    from glue_eval.tasks import TASKS

    if metric == "val_loss":
        return "none"
    if metric in ("avg_cramming", "avg_glue") or metric.partition(".")[0] in TASKS:
        return "glue"
    return "probe"


def spec_mapping(spec: SweepSpec) -> dict:
    """The spec as the YAML mapping a user writes (cram-sweep/1): `parse_spec` reads it back to
    the same runs (`runs_sha256`). A variant's overrides are its own, after the baseline's."""
    base = spec.baseline
    budget = f"{spec.budget_s:g}s"
    if parse_budget(budget) != spec.budget_s:  # e.g. 1e+06s: the seconds as a number
        budget = spec.budget_s
    variants = []
    for arm in spec.variants:
        own = arm.overrides
        if own[:len(base.overrides)] == base.overrides:
            own = own[len(base.overrides):]
        item = {"name": arm.name, "preset": arm.preset}
        if own:
            item["overrides"] = list(own)
        if arm.data != base.data:
            item["data"] = arm.data
        variants.append(item)
    evaluation = {"suite": spec.eval.suite, "seeds": list(spec.eval.seeds)}
    if spec.eval.suite == "glue":
        if spec.eval.tasks:
            evaluation["tasks"] = list(spec.eval.tasks)
        evaluation["protocol"] = spec.eval.protocol
        if spec.eval.glue_dir is not None:
            evaluation["glue_dir"] = spec.eval.glue_dir
    baseline = {"name": base.name, "preset": base.preset}
    if base.overrides:
        baseline["overrides"] = list(base.overrides)
    return {"format": FORMAT, "data": base.data, "budget": budget, "seeds": list(spec.seeds),
            "device": spec.device, "baseline": baseline, "variants": variants,
            "eval": evaluation, "metric": spec.metric, "alpha": spec.alpha}


def _check_metric(metric: str, evaluation: EvalSpec, fail) -> None:
    from glue_eval.tasks import TASKS

    if metric == "val_loss":
        return
    needs = {"avg_cramming": "glue", "avg_glue": "glue", "probe_avg": "probe"}.get(metric)
    if needs is None:
        task, _, key = metric.partition(".")
        known = task in TASKS or task in ("continuation", "word_order")
        if not key or not known:
            fail("metric", f"{metric!r}: choose {', '.join(METRICS)} or TASK.METRIC "
                           "(rte.accuracy, mrpc.f1, mnli.accuracy_m, continuation.accuracy)")
        needs = "glue" if task in TASKS else "probe"
        if task in TASKS and key not in TASKS[task].metric_keys:
            fail("metric", f"{metric!r}: {task} has {', '.join(TASKS[task].metric_keys)}")
        if needs == "glue" and evaluation.tasks and task not in evaluation.tasks:
            fail("metric", f"{metric!r}: {task} is not among eval.tasks")
    if evaluation.suite != needs:
        fail("metric", f"{metric!r} needs eval.suite {needs} (the spec's is "
                       f"{evaluation.suite})")
