"""`cram leaderboard validate`: is an entry well-formed, within the rules, and true?

This module only dispatches: which layers check an entry, for its kind and the options given.
Each layer lists every problem it finds as one line:
1. schema (`leaderboard.schema`): the entry parses against `entry.schema.json`, which names
   every field (an unknown field, at any level, is an error); the later layers assume it;
2. record-free (`leaderboard.entry_checks`): Rules v1, the track label, the averages, the time
   claims and a compressed or extracted entry's own consistency, from the entry alone;
3. with a run dir, `--run` (`leaderboard.run_checks`): every field, time claim and hash the run
   dir can vouch for, and a derived run's parent;
4. with a GLUE dir too, `--glue-dir` (`leaderboard.prediction_checks`): every metric recomputes
   from the saved dev predictions against the dev labels.
An outside model's entry has no run: it is checked alone, against its results file and
predictions (`--results`, `--glue-dir`) and against its model folder (`--model`).
"""

from __future__ import annotations

from pathlib import Path

from crambench.errors import UserError
from leaderboard.entry_checks import record_free_problems
from leaderboard.prediction_checks import metric_problems
from leaderboard.run_checks import model_folder_problems, outside_results_problems, run_problems
from leaderboard.schema import is_outside, read_entry, schema_errors


def validate_entries(paths, *, run=None, glue_dir=None, results=None,
                     model=None) -> dict[str, list[str]]:
    """Map each entry path to its problems (an empty list: valid). `results` and `model` are
    an outside model's results file and model folder."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no entry to validate")
    for option, value in (("--run", run), ("--results", results), ("--model", model)):
        if value is not None and len(paths) > 1:
            raise UserError(f"{option} checks one entry: give a single entry")
    if run is not None and (results is not None or model is not None):
        raise UserError("--run is a trained run's; --results and --model an outside model's: "
                        "not both")
    if glue_dir is not None and run is None and results is None:
        raise UserError("--glue-dir needs --run (or --results for an outside model): the saved "
                        "dev predictions live beside the results")
    return {str(path): validate_entry(path, run=run, glue_dir=glue_dir, results=results,
                                      model=model) for path in paths}


def validate_entry(path, *, run=None, glue_dir=None, results=None, model=None) -> list[str]:
    """The problems of one entry file: the schema first, then the layers its options ask for."""
    try:
        entry = read_entry(path)
    except UserError as err:
        return [str(err)]
    problems = schema_errors(entry)
    if problems:  # the later layers assume the schema's structure
        return problems
    if is_outside(entry):
        return _outside_entry_problems(entry, run=run, glue_dir=glue_dir, results=results,
                                       model=model)
    if results is not None or model is not None:
        return [f"--results and --model are for an outside model's entry; {path} is a trained "
                "run's: check it with --run RUN"]
    problems = record_free_problems(entry)
    if run is not None:
        problems += run_problems(entry, Path(run))
    if glue_dir is not None:
        problems += metric_problems(entry, Path(run), Path(glue_dir))
    return problems


def _outside_entry_problems(entry: dict, *, run=None, glue_dir=None, results=None,
                            model=None) -> list[str]:
    """An outside model's entry: alone, against its results file and predictions (`results`,
    with `glue_dir` the dev labels) and against its model folder (`model`)."""
    if run is not None:
        return [f"--run: {entry['name']} is an outside model's entry, with no run; give its "
                "results file with --results FILE"]
    problems = record_free_problems(entry)
    if results is not None:
        problems += outside_results_problems(entry, Path(results))
        if glue_dir is not None:
            problems += metric_problems(entry, Path(results).parent, Path(glue_dir))
    if model is not None:
        problems += model_folder_problems(entry, Path(model))
    return problems
