"""The run-dir layer of `cram leaderboard validate`: an entry's claims against the files that
carry them.

A trained run's entry with `--run RUN` (`run_problems`): every field copied from summary.json
equals its record there; every time claim agrees with config.yaml, the checkpoint's train state
and metrics.jsonl, and the model's shape with config.yaml and final/model_config.json
(`leaderboard.claims`); every hash of the chain data -> tokenizer -> config -> model -> results
recomputes from its file; a derived run's parent is unchanged (`lineage_problems`); an
extracted run's search table is its search.json (`leaderboard.extraction`); a compressed run's
sizes recompute from its stored files (`leaderboard.compressed`); the data sources are the data
dir's manifest's; the results are the results file, field for field, with every prediction file
as recorded (`leaderboard.prediction_checks`); the loss curve is the one metrics.jsonl gives.

An outside model's entry has no run: with `--results FILE` its results are checked against the
file (`outside_results_problems`), with `--model PATH` its files against the model folder
(`model_folder_problems`).

Every path an entry or a record names is followed only inside its run dir or data dir (the run
dir is read through `leaderboard.records`).
"""

from __future__ import annotations

import json
from pathlib import Path

from crambench.contracts import hash_pair, sha256_file
from crambench.errors import UserError
from crambench.plugin import defined_hooks
from glue_eval.model_folder import identity_files, listing_differences
from leaderboard import claims, compressed, cross_checks
from leaderboard.extraction import extraction_run_problems
from leaderboard.prediction_checks import prediction_problems
from leaderboard.records import (
    data_dir_of,
    entry_hardware,
    loss_curve,
    parent_dir,
    read_config,
    read_data_manifest,
    read_parent_summary,
    read_run_summary,
    read_train_state,
    run_file,
)
from leaderboard.values import differences


def run_problems(entry: dict, run: Path) -> list[str]:
    """Recompute what the run dir can tell: copied fields, time claims, the model's shape,
    the hash chain, the data sources, the results and the loss curve."""
    try:
        summary = read_run_summary(run)
    except UserError as err:
        return [str(err)]
    try:  # what submit copied: the whole hardware record, segments included
        summary = {**summary, "hardware": entry_hardware(summary["hardware"],
                                                         run / "summary.json")}
    except UserError as err:
        return [str(err)]
    problems = claims.summary_problems(entry, summary, run)
    try:
        config = read_config(run)
    except UserError as err:
        config = None  # the hash check below still names the file
        problems.append(f"config.yaml cannot be read: {err}")
    else:
        problems += claims.time_problems(entry, summary, run, config)
        problems += claims.shape_problems(entry, run, config)
    computed, found = cross_checks.cross_check(entry, run, config)
    problems += found + cross_checks.claim_problems(entry, computed)
    problems += _hash_problems(entry, run, summary, config)
    problems += lineage_problems(entry, run) + extraction_run_problems(entry, run, summary)
    problems += compressed.run_problems(entry, run)
    problems += _data_problems(entry, run, summary)
    problems += results_file_problems(entry, run)
    try:
        curve = loss_curve(run)
    except UserError as err:
        problems.append(f"loss_curve cannot be recomputed: {err}")
    else:
        if entry["loss_curve"] != curve:
            problems.append(f"loss_curve does not match {run}/metrics.jsonl")
    return problems


def _data_problems(entry: dict, run: Path, summary: dict) -> list[str]:
    """The entry's data sources and tokenizer are the ones the data dir's manifest records."""
    try:
        manifest = read_data_manifest(run, summary)
    except UserError as err:
        return [f"data.sources cannot be checked: {err}"]
    problems = []
    if entry["data"]["sources"] != manifest.get("sources", []):
        problems.append("data.sources differ from the data dir's manifest.json")
    if "settings" in entry["data"] and entry["data"]["settings"] != (
            manifest.get("pipeline") or {}).get("settings"):
        problems.append("data.settings differ from the pipeline settings of the data dir's "
                        "manifest.json")
    if entry["hashes"]["tokenizer_sha256"] != manifest.get("tokenizer_sha256"):
        problems.append("hashes.tokenizer_sha256 differs from the tokenizer_sha256 of the data "
                        "dir's manifest.json: the run's tokenizer is not its data's")
    return problems


def results_file_problems(entry: dict, run: Path) -> list[str]:
    """The entry's results must be the results file (`results_file` in `run`, the run dir or
    the folder of an outside model's results), field for field, with its prediction files."""
    try:
        path = run_file(run, entry["results_file"], "results_file")
    except UserError as err:
        return [str(err)]
    if not path.is_file():
        return [f"results_file {path} not found (is the run scored? `cram eval glue --run "
                f"{run}`)"]
    try:
        on_disk = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return [f"results_file {path} cannot be read: {err}"]
    # Scores first: they are what a reader of the difference cares about.
    places = sorted(differences(entry["results"], on_disk),
                    key=lambda where: (not where.startswith("tasks."), where))
    problems = []
    if places:
        more = f" and {len(places) - 3} more" if len(places) > 3 else ""
        problems.append(f"results differ from {path} at {', '.join(places[:3])}{more}")
    return problems + prediction_problems(entry, path.parent)


def _hash_problems(entry: dict, run: Path, summary: dict, config) -> list[str]:
    """Each hash of the chain recomputed from its file (`config`: the parsed config.yaml, or
    None when it cannot be read)."""
    from cramming import config_sha256
    from data_prep import open_data_dir

    hashes, problems = entry["hashes"], []

    def check(name: str, compute) -> None:
        try:
            actual = compute()
        except UserError as err:
            problems.append(f"hashes.{name} cannot be recomputed: {err}")
            return
        except OSError as err:
            problems.append(f"hashes.{name} cannot be recomputed: {err.filename}: "
                            f"{err.strerror}")
            return
        if actual != hashes[name]:
            shown = hash_pair(hashes[name], actual)
            problems.append(f"hashes.{name} {shown[0]} does not match the recomputed "
                            f"{shown[1]}")

    check("data_sha256",
          lambda: open_data_dir(data_dir_of(run, summary), verify_hashes=True).data_sha256)
    check("tokenizer_sha256", lambda: sha256_file(run_file(run, "final/tokenizer.json")))
    if config is not None:
        check("config_sha256", lambda: config_sha256(config))
        problems += plugin_problems(run, config) + code_record_problems(entry, run, config)
    check("model_sha256", lambda: sha256_file(run_file(run, "final/model.safetensors")))
    try:
        results = run_file(run, entry["results_file"], "results_file")
    except UserError:
        return problems  # the results check says so
    if results.is_file():  # if not, the results check says so
        check("eval_sha256", lambda: sha256_file(results))
    return problems


def plugin_problems(run: Path, config) -> list[str]:
    """The run's copy of its plug-in (RUN/code/plugin.py) against the hash config.yaml records,
    which config_sha256 covers: rehashed, never imported (the validator runs no entrant's
    code)."""
    if not config.plugin.file:
        return []
    try:
        copy = run_file(run, config.plugin.file, "plugin.file of config.yaml")
        actual = sha256_file(copy)
    except UserError as err:
        return [f"the run's plug-in cannot be checked: {err}"]
    except OSError as err:
        return [f"the run's plug-in cannot be checked: {err.filename}: {err.strerror}"]
    if actual != config.plugin.sha256:
        shown = hash_pair(config.plugin.sha256, actual)
        return [f"{copy} has sha256 {shown[1]}, not the {shown[0]} that config.yaml records "
                "(plugin.sha256): the run's code was changed after it trained"]
    return []


def code_record_problems(entry: dict, run: Path, config) -> list[str]:
    """The entry's code record against the records it repeats: the harness fields at the top
    level, the plug-in and its options in config.yaml, the local-changes diff in RUN/code/
    (rehashed), init_sha256 in the checkpoint's train state."""
    code = entry.get("code")
    if code is None:  # a run from before the record
        return []
    problems = [f"code.{key} {code[key]!r} is not the entry's {top} {entry.get(top)!r}"
                for key, top in (("version", "code_version"), ("sha256", "code_sha256"))
                if code[key] != entry.get(top)]
    if code["plugin_sha256"] != (config.plugin.sha256 or None):
        problems.append(f"code.plugin_sha256 is {code['plugin_sha256']!r} but config.yaml's "
                        f"plugin.sha256 is {config.plugin.sha256 or None!r}")
    if config.plugin.file:
        try:
            hooks = defined_hooks(run_file(run, config.plugin.file, "plugin.file of config.yaml"))
        except UserError:
            hooks = None  # plugin_problems names the file
        if hooks is not None and code["plugin_hooks"] != hooks:
            problems.append(f"code.plugin_hooks {code['plugin_hooks']} are not the hooks "
                            f"{hooks} that {config.plugin.file} defines")
    elif code["plugin_hooks"]:
        problems.append(f"code.plugin_hooks {code['plugin_hooks']} but the run has no plug-in")
    if code["plugin_options"] != dict(config.plugin.options):
        problems.append("code.plugin_options differ from config.yaml's plugin.options")
    version = str(code["version"] or "")
    if "+git." in version and code["local_changes"] != version.endswith(".dirty"):
        problems.append(f"code.local_changes is {code['local_changes']} but code.version "
                        f"{version!r} says the checkout was "
                        f"{'modified' if version.endswith('.dirty') else 'clean'}")
    diff = run / "code" / "harness.diff"
    if code["local_changes"]:
        try:
            actual = sha256_file(run_file(run, "code/harness.diff"))
        except (UserError, OSError):
            problems.append(f"code.local_changes is true but {diff} cannot be read: the "
                            "run keeps its checkout's diff there")
        else:
            if actual != code["harness_diff_sha256"]:
                shown = hash_pair(code["harness_diff_sha256"], actual)
                problems.append(f"{diff} has sha256 {shown[1]}, not the {shown[0]} of "
                                "code.harness_diff_sha256: the diff was changed")
    elif diff.exists() or code["harness_diff_sha256"] is not None:
        problems.append(f"code.local_changes is false but the run has {diff} or a "
                        "harness_diff_sha256")
    try:
        state = read_train_state(run)
    except UserError:
        return problems  # the time claims say so
    if code["init_sha256"] != state.get("init_sha256"):
        problems.append(f"code.init_sha256 {code['init_sha256']!r} is not the "
                        f"{state.get('init_sha256')!r} of checkpoint/train_state.json")
    return problems


def lineage_problems(entry: dict, run: Path) -> list[str]:
    """A derived run's parent must still be the run it was derived from: the same summary
    (so the same training time and budget) and the same final model."""
    lineage = entry.get("lineage")
    if lineage is None:
        return []
    parent = parent_dir(lineage, run)
    if parent is None:
        return [f"lineage.parent_run {lineage['parent_run']} not found (from {run} or from "
                "here): the parent's hashes cannot be checked"]
    problems = []
    for key, path in (("parent_summary_sha256", parent / "summary.json"),
                      ("parent_model_sha256", parent / "final" / "model.safetensors")):
        try:
            actual = sha256_file(path)
        except OSError as err:
            problems.append(f"lineage.{key} cannot be recomputed: {path}: {err.strerror}")
            continue
        if actual != lineage[key]:
            shown = hash_pair(lineage[key], actual)
            problems.append(f"lineage.{key} {shown[0]} does not match {path} ({shown[1]})")
    if not problems:  # the summary is the one hashed: its times are the parent's
        summary = read_parent_summary(parent)
        for part in ("train_elapsed_s", "budget_s"):
            if summary.get(part) != lineage[f"parent_{part}"]:
                problems.append(f"lineage.parent_{part} is {lineage[f'parent_{part}']!r} but "
                                f"{parent}/summary.json says {summary.get(part)!r}")
    return problems


def outside_results_problems(entry: dict, results_path: Path) -> list[str]:
    """An outside model's results are the results file at `results_path`, field for field,
    with the recorded hash, and every prediction file matches its sha256."""
    results_path = Path(results_path)
    if results_path.name != entry["results_file"]:
        return [f"results_file is {entry['results_file']} but the results given are "
                f"{results_path}"]
    problems = results_file_problems(entry, results_path.parent)
    if results_path.is_file() and sha256_file(results_path) != entry["hashes"]["eval_sha256"]:
        shown = hash_pair(entry["hashes"]["eval_sha256"], sha256_file(results_path))
        problems.append(f"hashes.eval_sha256 {shown[0]} does not match {results_path} "
                        f"({shown[1]})")
    return problems


def model_folder_problems(entry: dict, folder: Path) -> list[str]:
    """An outside model's folder: its files hash (and weigh) as `outside_model.files` records."""
    if not folder.is_dir():
        return [f"model folder {folder} not found"]
    recorded = entry["outside_model"]["files"]
    actual = identity_files(folder)
    changed = listing_differences(recorded, actual)
    if changed:
        return [f"outside_model.files do not match the model folder {folder}: "
                f"{', '.join(changed)}"]
    sizes = {f["file"]: f["bytes"] for f in actual}
    return [f"outside_model.files {f['file']} bytes is {f['bytes']}, the file in {folder} has "
            f"{sizes[f['file']]}" for f in recorded if f["bytes"] != sizes[f["file"]]]
