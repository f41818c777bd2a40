"""Which entries the site may rank: each one judged against its run dir and its predictions.

An entry is *verified* when it validates against its run dir (`validate --run`) and, for GLUE
results, its scores recompute from the saved dev predictions (`--glue-dir`); only verified
entries are ranked. An entry that passes the record-free checks but whose run dir or GLUE
folder was not given is *unverified*: shown apart, never ranked. An entry that fails any check
is *rejected*: left off the site, with its first problem. An outside model's entry is judged
the same way against its results folder instead of a run dir, and is never ranked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crambench.errors import UserError
from leaderboard.entry_checks import record_free_problems
from leaderboard.prediction_checks import metric_problems
from leaderboard.run_checks import outside_results_problems, run_problems
from leaderboard.schema import is_outside, read_entry, schema_errors

VERIFIED, UNVERIFIED, REJECTED = "verified", "unverified", "rejected"


@dataclass
class Judged:
    """One entry file and what the build made of it."""
    path: Path
    status: str
    entry: dict | None = None
    reasons: list[str] = field(default_factory=list)
    run: Path | None = None


def run_dir_for(path: Path, runs) -> Path | None:
    """The run dir of entry file `path`: `runs` is a folder holding RUNS/NAME for entry
    NAME.json, or a mapping NAME -> run dir; None when not given or not there."""
    if runs is None:
        return None
    run = runs.get(path.stem) if isinstance(runs, dict) else Path(runs) / path.stem
    return Path(run) if run is not None and Path(run).is_dir() else None


def judge_entries(entries_dir: Path, *, runs=None, glue_dir=None, outside=None) -> list[Judged]:
    """Every *.json in `entries_dir`, in name order, judged (see the module docstring)."""
    return [judge(path, runs=runs, glue_dir=glue_dir, outside=outside)
            for path in sorted(entries_dir.glob("*.json"))]


def judge(path: Path, *, runs=None, glue_dir=None, outside=None) -> Judged:
    """`outside`: a folder holding OUTSIDE/NAME/, the results folder of outside model entry
    NAME.json (or a mapping NAME -> folder), judged as run dirs are (verified then only says
    that its scores are its saved predictions': an outside model is never ranked)."""
    try:
        entry = read_entry(path)
    except UserError as err:
        return Judged(path, REJECTED, reasons=[str(err)])
    problems = schema_errors(entry)
    problems = problems or record_free_problems(entry)
    if problems:
        return Judged(path, REJECTED, entry, problems)
    if is_outside(entry):
        run, what = run_dir_for(path, outside), "results"
        where = "no --outside folder given" if outside is None else \
            f"no results folder for {path.name}"
    else:
        run, what = run_dir_for(path, runs), "run"
        where = "no --runs folder given" if runs is None else f"no run dir for {path.name}"
    if run is None:
        return Judged(path, UNVERIFIED, entry, [f"not checked against its {what}: {where}"])
    if is_outside(entry):
        problems = outside_results_problems(entry, run / entry["results_file"])
    else:
        problems = run_problems(entry, run)
    glue = entry["results"]["suite"] == "glue"
    if glue and glue_dir is not None:
        problems += metric_problems(entry, run, Path(glue_dir))
    if problems:
        return Judged(path, REJECTED, entry, problems, run)
    if glue and glue_dir is None:
        return Judged(path, UNVERIFIED, entry, ["scores not recomputed from its predictions: no "
                                                "--glue-dir given"], run)
    return Judged(path, VERIFIED, entry, [], run)
