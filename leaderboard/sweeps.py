"""A sweep's page on the results site: `cram leaderboard build --sweep DIR`.

One page per sweep, `sweeps/NAME.html` (NAME: the sweep dir's folder name, made safe for a
file name), rendered from `templates/sweep.html`, with the report's figure beside it
(`sweeps/NAME.svg`) and, where the sweep dir recorded its spec, the spec as a file
(`sweeps/NAME.yaml`) that the page's commands run again. The index lists the sweeps, each in
one line.

The sweep package sits above the leaderboard, so this module never reads a sweep dir: it is
given what `sweep.report.site_view` read (the report, refused there when missing, foreign or
stale; the recorded spec; the figure) and only formats it, as `cram sweep report` prints it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from crambench.errors import UserError

FOLDER = "sweeps"  # the sweep pages' folder in the site
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def page_name(folder: str) -> str:
    """A folder name as a file name of the site: letters, digits, '.', '_' and '-'."""
    return UNSAFE.sub("-", folder).strip(".-") or "sweep"


def name_sweeps(views: list[dict]) -> list[dict]:
    """Each view with its page `name` (its folder's, numbered after the first where two
    folders share one); UserError for a sweep dir given twice."""
    named, seen, names = [], {}, set()
    for view in views:
        key = str(Path(view["dir"]).resolve())
        if key in seen:
            raise UserError(f"--sweep {view['dir']}: given twice (also as {seen[key]})")
        seen[key] = view["dir"]
        name = base = page_name(view["folder"])
        number = 2
        while name in names:
            name, number = f"{base}-{number}", number + 1
        names.add(name)
        named.append({**view, "name": name})
    return named


def write_sweeps(site: Path, sweeps: list[dict]) -> None:
    """Each named sweep's page, figure and spec file into SITE/sweeps/."""
    if not sweeps:
        return
    from leaderboard.page import GENERATOR, template

    folder = site / FOLDER
    folder.mkdir()
    for sweep in sweeps:
        (folder / f"{sweep['name']}.svg").write_bytes(sweep["figure"])
        if sweep["spec"] is not None:
            (folder / f"{sweep['name']}.yaml").write_text(
                yaml.safe_dump(sweep["spec"], sort_keys=False))
        page = template("sweep.html").render(generator=GENERATOR, **sweep_view(sweep))
        (folder / f"{sweep['name']}.html").write_text(page)


def summary(sweep: dict) -> dict:
    """A sweep's line on the index: metric, budget, arms x seeds, each variant's verdict."""
    record = sweep["record"]
    return {"name": sweep["name"], "href": f"{FOLDER}/{sweep['name']}.html",
            "metric": record["metric"], "direction": _direction(record),
            "budget": _budget(record), "shape": _shape(record),
            "verdicts": "; ".join(f"{name}: {row['verdict']}"
                                  for name, row in record["comparisons"].items())}


def sweep_view(sweep: dict) -> dict:
    """What templates/sweep.html shows, every value formatted."""
    record, spec, name = sweep["record"], sweep["spec"], sweep["name"]
    names = list(record["arms"])
    baseline = record["arms"][names[0]]
    return {
        "name": name, "metric": record["metric"], "direction": _direction(record),
        "budget": _budget(record), "seeds": ", ".join(str(s) for s in record["seeds"]),
        "alpha": f"{record['alpha']:g}", "data": baseline["data"], "eval": _eval_text(spec),
        "baseline": names[0], "shape": _shape(record), "test": record["method"]["test"],
        "correction": record["method"]["correction"],
        "confidence": f"{100 * record['method']['confidence']:.0f}%",
        "arms": [_arm(arm_name, arm, baseline) for arm_name, arm in record["arms"].items()],
        "comparisons": [_comparison(variant, row)
                        for variant, row in record["comparisons"].items()],
        "warnings": list(record["warnings"]), "figure": f"{name}.svg",
        "spec_file": f"{name}.yaml" if spec is not None else None,
        "commands": commands(name, record, spec)}


def commands(name: str, record: dict, spec: dict | None) -> list[str]:
    """The commands that run the sweep again from the spec file beside its page (into a
    folder of the page's name) and report it as the page does: with the report's metric and
    alpha where they are not the spec's. Without a recorded spec, the report's alone."""
    if spec is None:
        return [f"cram sweep report {name} --spec SPEC"]
    report = f"cram sweep report {name}"
    if record["metric"] != spec["metric"]:
        report += f" --metric {record['metric']}"
    if record["alpha"] != spec["alpha"]:
        report += f" --alpha {record['alpha']:g}"
    return [f"cram sweep {name}.yaml --out {name}", report]


def _arm(name: str, arm: dict, baseline: dict) -> dict:
    runs = [{"seed": str(run["seed"]), "status": _status(run),
             "scored": run["status"] == "complete" and run["value"] is not None,
             "value": _num(run["value"]) if run["status"] == "complete" else "–",
             "steps": _num(run["steps"], ",.0f"), "tokens": _num(run["tokens_seen"], ",.0f"),
             "speed": _num(run["tokens_per_s"], ",.0f")}
            for run in arm["runs"]]
    return {"name": name, "recipe": " ".join([f"--preset {arm['preset']}", *arm["overrides"]]),
            "data": arm["data"] if arm["data"] != baseline["data"] else None,
            "n": str(arm["n"]), "mean": _num(arm["mean"]), "sd": _num(arm["sd"]),
            "steps": _num(arm["steps"], ",.0f"), "tokens": _num(arm["tokens_seen"], ",.0f"),
            "speed": _num(arm["tokens_per_s"], ",.0f"), "runs": runs}


def _status(run: dict) -> str:
    """complete, not scored (complete, its evaluation missing), failed, interrupted, running
    or not started."""
    if run["status"] == "complete" and run["value"] is None:
        return "not scored"
    return run["status"]


def _comparison(name: str, row: dict) -> dict:
    interval = row["interval"]
    return {"name": name, "diff": _num(row["diff"], "+.4g"),
            "interval": f"[{interval[0]:+.4g}, {interval[1]:+.4g}]" if interval else "–",
            "p": _p(row["p"]), "p_holm": _p(row["p_holm"]), "verdict": row["verdict"],
            "better": row["verdict"] == "better", "worse": row["verdict"] == "worse"}


def _eval_text(spec: dict | None) -> str:
    if spec is None:
        return "not recorded (runs collected by hand, reported with --spec)"
    evaluation = spec["eval"]
    seeds = ", ".join(str(s) for s in evaluation["seeds"])
    if evaluation["suite"] == "none":
        return "none (the val MLM loss only)"
    if evaluation["suite"] == "probe":
        return f"the offline probes, fine-tuning seeds {seeds}"
    tasks = ", ".join(evaluation.get("tasks") or ()) or "every task of the protocol"
    return f"GLUE ({tasks}), protocol {evaluation['protocol']}, fine-tuning seeds {seeds}"


def _shape(record: dict) -> str:
    return f"{len(record['arms'])} arms x {len(record['seeds'])} seeds"


def _direction(record: dict) -> str:
    return "lower is better" if record["lower_is_better"] else "higher is better"


def _budget(record: dict) -> str:
    return f"{record['budget_s']:g}s"  # as `cram sweep report` prints it


def _num(value, spec: str = ".4g") -> str:
    """A number as `cram sweep report` prints it; – for none."""
    return "–" if value is None else f"{value:{spec}}"


def _p(value) -> str:
    """A p-value as `cram sweep report` prints it: 0.042, <0.001; – for none."""
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"
