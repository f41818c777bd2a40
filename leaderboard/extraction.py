"""An extracted entry's search table (`cram extract`), carried in the entry and checked.

The entry's `extraction` is {"search_file": "search.json", "search_sha256", "search": the run's
search.json}: every candidate with its scores, the teacher's scores, the budget split and the
ranking settings. Without the run, the table must agree with the entry (its teacher is the
lineage's parent, its budget the lineage's stage budget, the chosen candidate the entry's model
and the top of a ranking that recomputes, every candidate within its share of the search);
with the run, it must be the run's search.json, byte for byte. `cram submit` reads the table
into the entry with `records.read_extraction`.
"""

from __future__ import annotations

from pathlib import Path

from crambench.contracts import hash_pair
from crambench.errors import UserError
from leaderboard.records import read_search_table
from leaderboard.values import close

TOLERANCE = 1e-6  # W values are stored rounded to 6 digits
CLOCK_TOLERANCE_S = 1e-3  # times are stored rounded to the millisecond
SHAPE_FIELDS = {"layers": "layers", "heads": "heads", "hidden": "hidden", "ffn": "ffn_hidden"}
RANKING_FIELDS = ("w", "pareto", "rank")


def extraction_violations(entry: dict) -> list[str]:
    """What makes an entry's extraction record inconsistent with itself or the entry."""
    lineage, record = entry.get("lineage"), entry.get("extraction")
    if record is None:
        if lineage and lineage["stage"] == "extract":
            return ["lineage.stage is 'extract' but the entry has no extraction record "
                    "(the search table): resubmit the run with `cram submit`"]
        return []
    if not lineage or lineage["stage"] != "extract":
        return ["extraction is only for a run derived by `cram extract` (lineage.stage "
                "'extract')"]
    search = record["search"]
    problems = []
    if search["teacher"]["model_sha256"] != lineage["parent_model_sha256"]:
        problems.append("extraction.search.teacher.model_sha256 is not "
                        "lineage.parent_model_sha256: the table is another teacher's")
    problems += _budget_problems(search, lineage)
    problems += _chosen_problems(search, entry["model"]["shape"])
    return problems + _ranking_problems(search)


def _budget_problems(search: dict, lineage: dict) -> list[str]:
    budget, problems = search["budget"], []
    if budget["stage_budget_s"] != lineage["stage_budget_s"]:
        problems.append(f"extraction.search.budget.stage_budget_s {budget['stage_budget_s']:g} "
                        f"is not lineage.stage_budget_s {lineage['stage_budget_s']:g}")
    if budget["search_budget_s"] >= budget["stage_budget_s"]:
        problems.append("extraction.search.budget.search_budget_s leaves nothing of the stage "
                        "budget for the chosen candidate")
    if budget["search_elapsed_s"] > lineage["stage_train_elapsed_s"] + CLOCK_TOLERANCE_S:
        problems.append(f"the search took {budget['search_elapsed_s']:g}s, more than the "
                        f"{lineage['stage_train_elapsed_s']:g}s the whole extraction claims "
                        "(lineage.stage_train_elapsed_s)")
    over = [row["name"] for row in search["candidates"]
            if row["train_s"] > budget["train_window_s"] + CLOCK_TOLERANCE_S]
    if over:
        problems.append(f"candidate {over[0]} trained longer than its "
                        f"{budget['train_window_s']:g}s share of the search")
    if budget["train_window_s"] * len(search["candidates"]) > \
            budget["search_budget_s"] + CLOCK_TOLERANCE_S:
        problems.append("extraction.search.budget: the candidates' shares add up to more than "
                        "the search budget")
    return problems


def _chosen_problems(search: dict, model_shape: dict) -> list[str]:
    chosen = [row for row in search["candidates"] if row["name"] == search["chosen"]]
    if not chosen:
        return [f"extraction.search.chosen {search['chosen']!r} is not one of its candidates"]
    differs = [field for field, key in SHAPE_FIELDS.items()
               if chosen[0][field] != model_shape.get(key)]
    if differs:
        return [f"the chosen candidate {search['chosen']} is not the entry's model "
                f"(model.shape differs in {', '.join(differs)})"]
    return []


def _ranking_problems(search: dict) -> list[str]:
    """The W values, the Pareto front and the ranks must recompute from the scores."""
    from cramming.extract.ranking import rank_candidates

    rows = [{k: v for k, v in row.items() if k not in RANKING_FIELDS}
            for row in search["candidates"]]
    try:
        ranked = rank_candidates(rows, search["teacher"], search["ranking"]["tradeoff"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
        return [f"extraction.search ranking cannot be recomputed: {err!r}"]
    stated = {row["name"]: row for row in search["candidates"]}
    problems = []
    for row in ranked:
        claim = stated[row["name"]]
        if not close(claim["w"], row["w"], TOLERANCE) or claim["pareto"] != row["pareto"] \
                or claim["rank"] != row["rank"]:
            problems.append(f"candidate {row['name']}: W {claim['w']}, front "
                            f"{claim['pareto']}, rank {claim['rank']} do not recompute from its "
                            f"scores (W {row['w']}, front {row['pareto']}, rank {row['rank']})")
    if ranked and ranked[0]["name"] != search["chosen"]:
        problems.append(f"extraction.search.chosen is {search['chosen']} but the highest W is "
                        f"{ranked[0]['name']}'s")
    return problems


def extraction_run_problems(entry: dict, run: Path, summary: dict) -> list[str]:
    """The entry's table must be the run's search.json, the one its summary names."""
    record = entry.get("extraction")
    recorded = summary.get("extracted_from")
    if record is None:
        return ["the run was extracted (summary.json has extracted_from) but the entry has no "
                "extraction record"] if recorded else []
    if not recorded:
        return [f"extraction: {run}/summary.json has no extracted_from record"]
    try:
        path, actual, on_disk = read_search_table(run, record["search_file"],
                                                  "extraction.search_file")
    except UserError as err:
        return [str(err)]
    problems = []
    if actual != record["search_sha256"]:
        shown = hash_pair(record["search_sha256"], actual)
        problems.append(f"extraction.search_sha256 {shown[0]} does not match {path} "
                        f"({shown[1]})")
    if recorded.get("search_sha256") != actual:
        problems.append(f"{run}/summary.json extracted_from.search_sha256 does not match {path}")
    if on_disk != record["search"]:
        problems.append(f"extraction.search differs from {path}")
    return problems
