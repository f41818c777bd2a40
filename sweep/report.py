"""`cram sweep report DIR`: every arm's runs, and every variant against the baseline.

Per arm: the runs that started (failed and interrupted ones shown as such, never dropped
quietly), n, the mean and sample standard deviation of the metric over pretraining seeds, each
seed's value, and the steps, tokens seen and tokens/s beside it (a change can trade speed for
quality per token). Per variant: the difference of means, its confidence interval and p-value
(Welch's t over the seeds, sweep.stats; for GLUE metrics the two-level bootstrap of
sweep.resample), Holm's adjusted p-value across the variants, and the verdict. Written to
DIR/report.json (`cram-sweep-report/1`) and drawn as DIR/report.svg (sweep.figure).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

from crambench.contracts import read_contract
from crambench.errors import UserError
from crambench.files import write_json_atomic
from crambench.locks import dir_lock
from sweep import guards, stats
from sweep.layout import run_dir, sweep_spec
from sweep.outcomes import read_outcome, read_outcomes
from sweep.spec import LOWER_IS_BETTER, Arm, EvalSpec, SweepSpec, parse_spec, suite_of

FORMAT = "cram-sweep-report/1"
REPORT = "report.json"
FIGURE = "report.svg"
BOOTSTRAP_SEED = 0  # the replicates are drawn from this seed: a report is reproducible


def sweep_report(out, *, spec_path=None, metric: str | None = None,
                 alpha: float | None = None) -> dict:
    """The report record of the sweep in `out` (its recorded spec, or `spec_path`), written
    to DIR/report.json; `metric` and `alpha` replace the spec's."""
    out = Path(out)
    if not (out / "runs").is_dir():
        raise UserError(f"{out / 'runs'} not found: no runs to report (cram sweep SPEC --out "
                        f"{out} makes them)")
    spec = with_metric(sweep_spec(out, spec_path), metric, alpha)
    with dir_lock(out, owner="cram sweep report"):
        record = build_report(out, spec)
        write_json_atomic(out / REPORT, record)
        from sweep.figure import draw_report

        draw_report(record, out / FIGURE)
    return record


def read_report(out) -> dict:
    """The report record `cram sweep report DIR` wrote to DIR/report.json; a UserError (one
    line, naming the file) when DIR is no sweep dir, the report is missing or of another
    format, or the runs changed since it was written (`check_current`)."""
    out = Path(out)
    if not (out / "runs").is_dir():
        raise UserError(f"{out} is not a sweep dir (no {out / 'runs'}: cram sweep SPEC --out "
                        f"{out} makes one)")
    path = out / REPORT
    if not path.is_file():
        raise UserError(f"{path} not found: run `cram sweep report {out}` first")
    record = read_contract(path, FORMAT)
    missing = [key for key in ("metric", "alpha", "budget_s", "seeds", "method", "arms",
                               "comparisons", "warnings") if key not in record]
    if missing:
        raise UserError(f"{path} is damaged: no {missing[0]!r}")
    check_current(out, record)
    return record


def site_view(out) -> dict:
    """What the results site shows of the sweep in `out` (`cram leaderboard build --sweep`):
    `record`, its report (`read_report`: refused when missing, foreign or stale); `spec`, the
    spec DIR/sweep.json recorded as the YAML mapping a user writes (None for run dirs collected
    by hand); `figure`, DIR/report.svg (drawn from the record if missing); `dir` and `folder`,
    the sweep dir as given and its folder's name."""
    from sweep.figure import render_report
    from sweep.layout import RECORD, read_spec
    from sweep.spec import spec_mapping

    out = Path(out)
    record = read_report(out)
    spec = spec_mapping(read_spec(out)) if (out / RECORD).is_file() else None
    figure = out / FIGURE
    return {"dir": str(out), "folder": out.resolve().name, "record": record, "spec": spec,
            "figure": figure.read_bytes() if figure.is_file() else render_report(record)}


def check_current(out, record: dict) -> None:
    """UserError when a run of the sweep in `out` now reads otherwise than the report recorded
    it (a run finished, failed, was scored or retrained since): the report is stale."""
    out = Path(out)
    spec = SweepSpec(budget_s=record["budget_s"], seeds=tuple(record["seeds"]),
                     arms=tuple(Arm(name, arm["preset"], tuple(arm["overrides"]), arm["data"])
                                for name, arm in record["arms"].items()),
                     eval=EvalSpec(suite=suite_of(record["metric"])), metric=record["metric"],
                     alpha=record["alpha"])
    for name, arm in record["arms"].items():
        for run in arm["runs"]:
            now = read_outcome(run_dir(out, name, run["seed"]), spec, name, run["seed"])
            then = (run["status"], run["value"], run["steps"], run["tokens_seen"])
            if then != (now.status, now.value, now.steps, now.tokens_seen):
                change = (f"was {run['status']}, is now {now.status}"
                          if run["status"] != now.status else "reads otherwise than recorded")
                raise UserError(f"{out / REPORT} is stale: arm {name} seed {run['seed']} "
                                f"{change}; run `cram sweep report {out}` again")


def with_metric(spec: SweepSpec, metric: str | None, alpha: float | None) -> SweepSpec:
    """The spec with another metric or alpha, checked as the spec's own would be."""
    if metric is None and alpha is None:
        return spec
    raw = {"format": "cram-sweep/1", "budget": spec.budget_s, "seeds": list(spec.seeds),
           "data": spec.baseline.data, "baseline": {"preset": spec.baseline.preset},
           "eval": {"suite": spec.eval.suite, "tasks": list(spec.eval.tasks)},
           "metric": metric or spec.metric, "alpha": spec.alpha if alpha is None else alpha}
    if spec.eval.suite != "glue":
        del raw["eval"]["tasks"]
    checked = parse_spec(raw, where="report")
    return dataclasses.replace(spec, metric=checked.metric, alpha=checked.alpha)


def build_report(out: Path, spec: SweepSpec) -> dict:
    outcomes = read_outcomes(out, spec)
    guards.check_hardware([o for o in outcomes if o.started])
    facts = {}
    for outcome in outcomes:
        if outcome.facts and outcome.arm not in facts:
            facts[outcome.arm] = outcome.facts
    if spec.baseline.name in facts:
        guards.check_comparable(spec.metric, {spec.baseline.name: facts[spec.baseline.name],
                                              **facts})
    arms = {arm.name: arm_summary(arm, [o for o in outcomes if o.arm == arm.name])
            for arm in spec.arms}
    warnings = guards.token_warnings({name: arm["tokens_seen"] for name, arm in arms.items()
                                      if arm["tokens_seen"] is not None})
    for name, arm in arms.items():
        unscored = [run for run in arm["runs"] if run["status"] != "complete"
                    or run["value"] is None]
        started = [run for run in arm["runs"] if run["status"] != "not started"]
        if unscored:
            listed = ", ".join(f"seed {r['seed']} {_what(r)}" for r in unscored)
            warnings.append(f"arm {name}: {len(started) - len(unscored)} of {len(arm['runs'])} "
                            f"runs scored ({listed}): n counts the scored ones")
    comparisons = compare(spec, arms)
    if bootstrapped(spec):
        from sweep.resample import REPLICATES

        method = {"test": "two-level bootstrap: pretraining seeds, then dev examples",
                  "replicates": REPLICATES, "seed": BOOTSTRAP_SEED, "correction": "Holm",
                  "confidence": 0.95}
    else:
        method = {"test": "Welch's t over pretraining seeds", "correction": "Holm",
                  "confidence": 1 - spec.alpha}
    return {"format": FORMAT, "dir": str(out), "metric": spec.metric,
            "lower_is_better": spec.metric in LOWER_IS_BETTER, "alpha": spec.alpha,
            "budget_s": spec.budget_s, "seeds": list(spec.seeds),
            "method": method, "arms": arms, "comparisons": comparisons, "warnings": warnings}


def _what(run: dict) -> str:
    return "not scored" if run["status"] == "complete" else run["status"]


def arm_summary(arm, outcomes) -> dict:
    runs = [{"seed": o.seed, "status": o.status, "value": o.value, "steps": o.steps,
             "tokens_seen": o.tokens_seen, "tokens_per_s": o.tokens_per_s, "run": str(o.path)}
            for o in outcomes]
    values = [r["value"] for r in runs if r["status"] == "complete" and r["value"] is not None]
    complete = [o for o in outcomes if o.status == "complete"]
    return {"preset": arm.preset, "overrides": list(arm.overrides), "data": arm.data,
            "n": len(values), "mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "values": values, "runs": runs,
            "steps": _mean([o.steps for o in complete]),
            "tokens_seen": _mean([o.tokens_seen for o in complete]),
            "tokens_per_s": _mean([o.tokens_per_s for o in complete])}


def bootstrapped(spec: SweepSpec) -> bool:
    """GLUE scores are resampled over pretraining seeds and dev examples (sweep.resample);
    run-level metrics (val loss, the probes' accuracy) take Welch's t over the seeds."""
    return spec.eval.suite == "glue" and spec.metric != "val_loss"


def compare(spec: SweepSpec, arms: dict) -> dict:
    """variant -> its comparison with the baseline (a test per variant, then Holm)."""
    base = arms[spec.baseline.name]
    testable = [arm.name for arm in spec.variants if base["values"] and arms[arm.name]["values"]]
    if bootstrapped(spec) and testable:
        test = glue_test(spec, arms)
    else:
        def test(name):
            return stats.welch(base["values"], arms[name]["values"], confidence=1 - spec.alpha)
    tests = {name: test(name) for name in testable}
    adjusted = dict(zip(tests, stats.holm([t["p"] for t in tests.values()]), strict=True))
    result = {}
    for arm in spec.variants:
        n = (base["n"], arms[arm.name]["n"])
        if arm.name not in tests:
            result[arm.name] = {"diff": None, "interval": None, "p": None, "p_holm": None,
                                "verdict": f"no comparison: n = {n[0]} and {n[1]} scored runs"}
            continue
        test = tests[arm.name]
        result[arm.name] = {**test, "p_holm": adjusted[arm.name],
                            "verdict": stats.verdict(test["diff"], adjusted[arm.name],
                                                     alpha=spec.alpha,
                                                     lower_is_better=spec.lower_is_better,
                                                     n=n)}
    return result


def glue_test(spec: SweepSpec, arms: dict):
    """The two-level bootstrap's test of a variant against the baseline, over every scored run
    of the sweep (sweep.resample)."""
    import numpy as np

    from glue_eval import TASKS
    from sweep import resample

    scored = {name: [run for run in arm["runs"] if run["status"] == "complete"
                     and run["value"] is not None] for name, arm in arms.items()}
    paths = {f"{name}/{run['seed']}": Path(run["run"]) for name, runs in scored.items()
             for run in runs}
    task = spec.metric.partition(".")[0]
    if task in TASKS:
        tasks = [task]
    else:  # the averages: every task the runs were scored on
        first = json.loads((next(iter(paths.values())) / "eval" / "glue.json").read_text())
        tasks = [name for name in TASKS if name in first.get("tasks", {})]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    labels, predictions = resample.read_glue_predictions(paths, tasks, spec.eval.glue_dir)
    per_run = resample.glue_replicates(rng, labels, predictions, spec.metric)
    replicated = {name: np.stack([per_run[f"{name}/{run['seed']}"] for run in runs])
                  for name, runs in scored.items() if runs}
    observed = {name: [run["value"] for run in runs] for name, runs in scored.items()}
    return lambda name: resample.compare_arms(rng, observed, replicated, spec.baseline.name,
                                              name)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def format_report(record: dict) -> str:
    """The tables `cram sweep report` prints."""
    better = "lower is better" if record["lower_is_better"] else "higher is better"
    lines = [f"sweep {record['dir']}: metric {record['metric']} ({better}), budget "
             f"{record['budget_s']:g}s, pretraining seeds {record['seeds']}",
             f"{'arm':<16}{'n':>3}{'mean':>10}{'sd':>9}  {'per seed':<26}{'steps':>8}"
             f"{'tokens':>12}{'tokens/s':>10}"]
    for name, arm in record["arms"].items():
        seeds = " ".join(_value(r) for r in arm["runs"])
        lines.append(f"{name:<16}{arm['n']:>3}{_num(arm['mean'], 10)}{_num(arm['sd'], 9)}  "
                     f"{seeds:<26}{_num(arm['steps'], 8, '.0f')}"
                     f"{_num(arm['tokens_seen'], 12, ',.0f')}"
                     f"{_num(arm['tokens_per_s'], 10, ',.0f')}")
    confidence = f"{100 * record['method']['confidence']:.0f}%"
    lines.append(f"{'variant':<16}{'diff':>10}  {confidence + ' interval':<22}{'p':>8}"
                 f"{'p (Holm)':>10}  verdict")
    for name, row in record["comparisons"].items():
        interval = (f"[{row['interval'][0]:+.4g}, {row['interval'][1]:+.4g}]"
                    if row["interval"] else "-")
        diff = f"{row['diff']:+.4g}" if row["diff"] is not None else "-"
        lines.append(f"{name:<16}{diff:>10}  {interval:<22}{_p(row['p']):>8}"
                     f"{_p(row['p_holm']):>10}  {row['verdict']}")
    lines += [f"warning: {w}" for w in record["warnings"]]
    lines.append(f"test: {record['method']['test']}; p (Holm): adjusted across the variants")
    return "\n".join(lines)


def _value(run: dict) -> str:
    if run["status"] != "complete" or run["value"] is None:
        return f"{run['seed']}:{_what(run).replace(' ', '-')}"
    return f"{run['seed']}:{run['value']:.4g}"


def _num(value, width: int, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}{spec}}"


def _p(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"
