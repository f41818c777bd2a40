"""An extracted entry's search table, judged without the run: it must agree with the entry's
lineage and model, and its W values, front and ranks must recompute (torch-free, fast)."""

from __future__ import annotations

import copy
import json

import pytest

from crambench.contracts import sha256_file
from crambench.errors import UserError
from cramming.extract.ranking import rank_candidates
from leaderboard.extraction import extraction_run_problems, extraction_violations
from leaderboard.records import read_extraction

TEACHER = {"name": "L2-A2-H128-F512", "layers": 2, "heads": 2, "hidden": 128, "ffn": 512,
           "params": 1402753, "params_no_embedding": 353664, "latency_b1_ms": 2.6,
           "latency_b64_ms": 150.0, "val_loss": 7.2, "val_distill_loss": 0.0,
           "run": "runs/tiny", "model_sha256": "a" * 64}


def _row(layers, heads, hidden, ffn, params, b1, b64, loss, train_s):
    return {"name": f"L{layers}-A{heads}-H{hidden}-F{ffn}", "layers": layers, "heads": heads,
            "hidden": hidden, "ffn": ffn, "params": params, "params_no_embedding": params // 4,
            "latency_b1_ms": b1, "latency_b64_ms": b64, "val_loss": loss,
            "val_distill_loss": 0.1, "layers_kept": [1], "steps": 5, "tokens": 640,
            "train_loss": 7.0, "train_s": train_s, "stopped_by": "budget"}


def make_entry() -> dict:
    rows = [_row(1, 2, 128, 256, 1189249, 1.0, 60.0, 7.21, 20.0),
            _row(2, 2, 128, 256, 1304449, 1.9, 110.0, 7.20, 21.0),
            _row(1, 1, 64, 256, 578241, 0.9, 30.0, 7.50, 19.5)]
    ranked = rank_candidates(rows, TEACHER, 0.1)
    # Three shares of 22 s, each 21.5 s of training and the rest for scoring.
    search = {"teacher": TEACHER, "candidates": ranked, "chosen": ranked[0]["name"],
              "budget": {"stage_budget_s": 120.0, "search_budget_s": 66.0, "slot_s": 22.0,
                         "train_window_s": 21.5, "search_elapsed_s": 70.0},
              "ranking": {"tradeoff": 0.1,
                          "front_axes": ["params", "latency_b1_ms", "val_loss"]}}
    chosen = ranked[0]
    return {
        "model": {"shape": {"layers": chosen["layers"], "heads": chosen["heads"],
                            "hidden": chosen["hidden"], "ffn_hidden": chosen["ffn"]}},
        "lineage": {"stage": "extract", "parent_model_sha256": "a" * 64,
                    "stage_budget_s": 120.0, "stage_train_elapsed_s": 119.0},
        "extraction": {"search_file": "search.json", "search_sha256": "b" * 64,
                       "search": search},
    }


def test_a_consistent_table_passes():
    assert extraction_violations(make_entry()) == []


def _search(entry):
    return entry["extraction"]["search"]


@pytest.mark.parametrize("change, reason", [
    (lambda e: _search(e)["candidates"][1].update(val_loss=6.0), "candidate L2-A2-H128-F256: W"),
    (lambda e: _search(e)["candidates"][0].update(pareto=False), "candidate "),
    (lambda e: _search(e).update(chosen=_search(e)["candidates"][1]["name"]),
     "extraction.search.chosen is "),
    (lambda e: _search(e).update(chosen="L9-A9-H9-F9"), "extraction.search.chosen 'L9"),
    (lambda e: e["model"]["shape"].update(hidden=64), "the chosen candidate "),
    (lambda e: _search(e)["teacher"].update(model_sha256="c" * 64),
     "extraction.search.teacher.model_sha256 is not lineage.parent_model_sha256"),
    (lambda e: _search(e)["candidates"][2].update(train_s=30.0), "candidate L1-A1-H64-F256 "
                                                                 "trained longer"),
    (lambda e: _search(e)["budget"].update(stage_budget_s=240.0),
     "extraction.search.budget.stage_budget_s 240"),
    (lambda e: _search(e)["budget"].update(search_elapsed_s=130.0), "the search took 130s"),
    (lambda e: _search(e)["budget"].update(train_window_s=30.0),
     "extraction.search.budget: the candidates' shares add up"),
    (lambda e: e["lineage"].update(stage="compress"), "extraction is only for a run derived"),
    (lambda e: e.pop("extraction"), "lineage.stage is 'extract' but the entry has no "),
])
def test_inconsistent_tables_are_rejected(change, reason):
    entry = copy.deepcopy(make_entry())
    change(entry)
    problems = extraction_violations(entry)
    assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_entries_without_extraction_are_not_concerned():
    assert extraction_violations({"model": {"shape": {}}}) == []
    assert extraction_violations({"model": {"shape": {}}, "lineage": {"stage": "compress"}}) == []


def test_a_search_table_linked_from_outside_the_run_is_refused(tmp_path):
    # validate --run hashes the run's search.json: a symbolic link must not make it read (and
    # vouch for) a file elsewhere on the machine.
    entry = make_entry()
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(_search(entry)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "search.json").symlink_to(outside)
    digest = sha256_file(outside)
    entry["extraction"]["search_sha256"] = digest
    summary = {"extracted_from": {"search_file": "search.json", "search_sha256": digest}}
    problems = extraction_run_problems(entry, run, summary)
    assert len(problems) == 1 and "leads outside" in problems[0], problems
    with pytest.raises(UserError, match="leads outside"):
        read_extraction(run, summary)
