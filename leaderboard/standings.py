"""Where an entry stands on the site: the table it is listed in, whether it can be ranked,
its place in the order, and the size an outside model is plotted at.

The site's building (which rows the bootstrap compares) and its page (the tables) order rows by
the same keys, so both read them from here.
"""

from __future__ import annotations

from cramming.rules import MULTI_GPU_CATEGORY


def table_of(entry: dict) -> str:
    """The page's table an entry is listed in: compressed, multi (several GPUs) or its track."""
    if "compression" in entry:
        return "compressed"
    return "multi" if entry.get("category") == MULTI_GPU_CATEGORY else entry["track"]


def has_glue_score(entry: dict) -> bool:
    results = entry["results"]
    return results["suite"] == "glue" and results["avg_cramming"]["value"] is not None


def rank_group(entry: dict) -> int:
    """0: a complete GLUE average (ranked); 1: a partial one (not comparable: unranked);
    2: no GLUE score."""
    if not has_glue_score(entry):
        return 2
    return 0 if entry["results"]["avg_cramming"]["complete"] else 1


def rank_key(entry: dict):
    # Complete GLUE averages first, best first; ties go to the shorter run.
    avg = entry["results"]["avg_cramming"]["value"] if has_glue_score(entry) else None
    return (rank_group(entry), -(avg or 0.0), entry["train_elapsed_s"], entry["name"])


def baseline_key(entry: dict):
    # Complete GLUE averages first, best first, then partial ones, then probe-only results.
    avg = entry["results"]["avg_cramming"]["value"] if has_glue_score(entry) else None
    return (rank_group(entry), -(avg or 0.0), entry["name"])


def weights_bytes(entry: dict) -> int:
    """The stored size of an outside model's weights: the sum of its weight files' sizes."""
    sizes = {f["file"]: f["bytes"] for f in entry["outside_model"]["files"]}
    return sum(sizes.get(w["file"], 0) for w in entry["outside_model"]["weights"])
