"""Derived runs (cram compress, cram extract): the lineage record in summary, entry and
validator. The budget covers all training, so totals are the parent's plus the stage's.

Run dirs are written by hand to the contracts (test_entries.make_run); the derived run here is
what a derived stage writes: new weights, new results, and the lineage record.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil

import pytest
from test_entries import write_results

from crambench.errors import UserError
from cramming.lineage import lineage_record, lineage_totals, read_parent
from leaderboard import submit, validate_entries


def _derive(parent, out, *, stage="compress", method="prune:0.5", stage_elapsed=250.0,
            stage_budget=300.0):
    """A derived run dir beside `parent`, as a derived stage writes it: new weights, the
    config it trained with (the stage's budget), no checkpoint (nothing resumes a stage), its
    lineage and the summed totals."""
    shutil.copytree(parent, out)
    shutil.rmtree(out / "eval")
    shutil.rmtree(out / "checkpoint")
    config = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(config.replace(
        f"budget_s: {json.loads((parent / 'summary.json').read_text())['budget_s']}",
        f"budget_s: {stage_budget}"))
    weights = b"derived weights of " + out.name.encode()
    (out / "final" / "model.safetensors").write_bytes(weights)
    summary = json.loads((parent / "summary.json").read_text())
    lineage = lineage_record(parent, out=out, stage=stage, method=method,
                             stage_train_elapsed_s=stage_elapsed, stage_budget_s=stage_budget)
    from cramming import config_sha256

    summary.update(lineage_totals(lineage), lineage=lineage,
                   model_sha256=hashlib.sha256(weights).hexdigest(),
                   config_sha256=config_sha256(out / "config.yaml"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_results(out, model_sha256=summary["model_sha256"],
                  tokenizer_sha256=summary["tokenizer_sha256"])
    return out


@pytest.fixture
def derived(tmp_path):
    from test_entries import make_run

    parent = make_run(tmp_path, budget_s=80000.0, elapsed_s=79990.5)
    run = _derive(parent, tmp_path / "derived")
    entry_path = tmp_path / "entries" / "derived.json"
    return parent, run, entry_path, submit(run, "derived", out=entry_path)


def _problems(entry, tmp_path, run=None):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    return validate_entries([path], run=run)[str(path)]


def test_derived_entry_carries_lineage_and_summed_totals(derived):
    parent, run, entry_path, entry = derived
    lineage = entry["lineage"]
    assert lineage["stage"] == "compress" and lineage["method"] == "prune:0.5"
    assert lineage["parent_run"] == "../run"  # relative to the derived run dir
    parent_summary = json.loads((parent / "summary.json").read_text())
    assert lineage["parent_model_sha256"] == parent_summary["model_sha256"]
    assert entry["train_elapsed_s"] == 79990.5 + 250.0 and entry["budget_s"] == 80300.0
    assert entry["track"] == "ranked"  # 22.3 h in all: within the day
    assert validate_entries([entry_path]) == {str(entry_path): []}
    # With the run: everything but the data hash (the hand-made data dir has no shards) holds,
    # its config's budget being the stage's.
    problems = validate_entries([entry_path], run=run)[str(entry_path)]
    assert [p for p in problems if not p.startswith("hashes.data_sha256 ")] == []
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("budget_s: 300.0", "budget_s: 400.0"))
    problems = validate_entries([entry_path], run=run)[str(entry_path)]
    assert any(p.startswith("lineage.stage_budget_s is 300 but ") for p in problems), problems


@pytest.mark.parametrize("edit, reason", [
    (lambda e: e["lineage"].update(stage_train_elapsed_s=200.0),
     "train_elapsed_s 80240.5 is not lineage.parent_train_elapsed_s"),
    (lambda e: e.update(budget_s=80400.0), "budget_s 80400 is not lineage.parent_budget_s"),
    (lambda e: e["lineage"].update(stage_train_elapsed_s=350.0, parent_train_elapsed_s=79890.5),
     "lineage.stage_train_elapsed_s 350 is over lineage.stage_budget_s 300"),
])
def test_lineage_arithmetic_is_checked_without_the_run(derived, tmp_path, edit, reason):
    entry = copy.deepcopy(derived[3])
    edit(entry)
    assert any(p.startswith(reason) for p in _problems(entry, tmp_path)), reason


def test_ranked_budget_covers_pretraining_and_the_stage(tmp_path):
    from test_entries import make_run

    parent = make_run(tmp_path)  # 86390.5 s of 86400: the day is spent
    run = _derive(parent, tmp_path / "derived", stage_elapsed=500.0, stage_budget=600.0)
    entry = submit(run, "late", out=tmp_path / "late.json")
    assert entry["track"] == "open" and "budget 24.1667 h is over the ranked 24 h" in \
        entry["track_reason"]


@pytest.mark.parametrize("edit, reason", [
    (lambda e: e["lineage"].update(parent_model_sha256="0" * 64),
     "lineage.parent_model_sha256 000000000000... does not match"),
    (lambda e: e["lineage"].update(parent_summary_sha256="0" * 64),
     "lineage.parent_summary_sha256 000000000000... does not match"),
    (lambda e: e["lineage"].update(method="prune:0.9"), "lineage.method is 'prune:0.9' but "),
])
def test_lineage_tampering_caught_against_the_run(derived, tmp_path, edit, reason):
    _, run, _, entry = derived
    entry = copy.deepcopy(entry)
    edit(entry)
    problems = _problems(entry, tmp_path, run=run)
    assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_changed_parent_is_caught(derived, tmp_path):
    parent, run, entry_path, _ = derived
    (parent / "final" / "model.safetensors").write_bytes(b"retrained")
    problems = validate_entries([entry_path], run=run)[str(entry_path)]
    assert any(p.startswith("lineage.parent_model_sha256 ") for p in problems), problems
    shutil.rmtree(parent)
    problems = validate_entries([entry_path], run=run)[str(entry_path)]
    assert any(p.startswith(f"lineage.parent_run ../run not found (from {run} or from here)")
               for p in problems), problems


def test_read_parent_refuses_a_run_without_final_model(tmp_path):
    from test_entries import make_run

    parent = make_run(tmp_path)
    (parent / "final" / "model.safetensors").unlink()
    with pytest.raises(UserError, match="has no final model"):
        read_parent(parent)
    with pytest.raises(UserError, match="not found"):
        read_parent(tmp_path / "nowhere")


def test_site_names_the_parent_of_a_derived_entry(derived, tmp_path):
    from leaderboard import build_site

    _, _, entry_path, entry = derived
    page = build_site(entry_path.parent, tmp_path / "site").read_text()
    parent_hash = entry["lineage"]["parent_model_sha256"][:12]
    assert f"derived by compress prune:0.5 from model {parent_hash}" in page


def test_the_parent_is_found_from_any_working_directory(derived, tmp_path, monkeypatch):
    # The parent is named relative to the derived run: validating from elsewhere, or after
    # moving both runs together, still finds it.
    parent, run, entry_path, _ = derived
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(parent, moved / "run")
    shutil.move(run, moved / "derived")
    monkeypatch.chdir(tmp_path / "entries")
    problems = validate_entries([entry_path], run=moved / "derived")[str(entry_path)]
    assert not any(p.startswith("lineage.") for p in problems), problems
