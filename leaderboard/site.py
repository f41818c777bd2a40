"""`cram leaderboard build`: a static results site from a folder of entries.

The site is one `index.html` with its stylesheet and its SVG figures beside it (and a page
per sweep under `sweeps/`, `leaderboard.sweeps`); it needs no
server (open the file) and no JavaScript. This module builds it: it judges every entry
(`leaderboard.admission`), chooses the rows of each table and figure, marks ranked rows not
significantly above the next, draws the figures (`leaderboard.plots`) and writes the folder
whole, replacing an earlier build atomically. The page itself is rendered from templates
(`leaderboard.page`). Entries that fail the schema, the rules or the arithmetic are left out
and listed at the bottom of the page with their first problem.

Loss curves come from the entries themselves: `cram submit` embeds a thinned copy of the
run's metrics.jsonl (`loss_curve`), so the site never needs the run dirs to draw them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from crambench.errors import UserError
from crambench.files import atomic_dir
from crambench.locks import dir_lock
from leaderboard import admission, plots
from leaderboard.admission import REJECTED, VERIFIED
from leaderboard.page import (
    GENERATOR,
    GLUE_PLOT,
    LOSS_PLOT,
    SIZE_PLOT,
    extraction_plot,
    render_page,
)
from leaderboard.records import run_file
from leaderboard.schema import is_outside
from leaderboard.standings import has_glue_score, rank_group, rank_key, table_of, weights_bytes
from leaderboard.sweeps import name_sweeps, summary, write_sweeps


def build_site(entries_dir, out, *, runs=None, glue_dir=None, outside=None, sweeps=(),
               log=None) -> Path:
    """Write the site into `out` (replaced whole if it is an earlier build); return index.html.

    `runs`: a folder holding the run dir RUNS/NAME of each entry NAME.json (or a mapping
    NAME -> run dir); `glue_dir`: the GLUE folder to rescore the saved dev predictions. Only
    entries verified against both are ranked (`leaderboard.admission`). `outside`: a folder
    holding OUTSIDE/NAME/, the results folder of each outside model entry NAME.json; outside
    models are shown as baselines in a table of their own, never ranked. `sweeps`: what
    `sweep.report.site_view` read of each sweep dir (`cram sweep`), each shown on a page of
    its own and listed on the index (`leaderboard.sweeps`).
    `log(line)` receives one line per entry rejected or unverified, with its reason.
    """
    entries_dir, out = Path(entries_dir), Path(out)
    if not entries_dir.is_dir():
        raise UserError(f"entries folder {entries_dir} not found")
    if out.exists() and not (out / "index.html").is_file() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not a site built by `cram leaderboard build`; "
                        "choose another --out")
    if (out / "index.html").is_file() and GENERATOR not in (out / "index.html").read_text():
        raise UserError(f"{out}/index.html was not built by `cram leaderboard build`; "
                        "choose another --out")
    shown_sweeps = name_sweeps(list(sweeps))
    judged = admission.judge_entries(entries_dir, runs=runs, glue_dir=glue_dir, outside=outside)
    for item in judged:
        if item.status != VERIFIED and log is not None:
            log(f"{item.path.name}: {item.status}: {item.reasons[0]}")
    # Outside models are baselines: a table and figure points of their own, never ranked.
    baselines = [(j.entry, j.reasons[0] if j.reasons else None) for j in judged
                 if j.status != REJECTED and is_outside(j.entry)]
    judged = [j for j in judged if not is_outside(j.entry) or j.status == REJECTED]
    verified = [j for j in judged if j.status == VERIFIED]
    unverified = [j.entry for j in judged if j.status not in (VERIFIED, REJECTED)]
    skipped = [(j.path.name, j.reasons[0]) for j in judged if j.status == REJECTED]
    marks = significance_marks(verified, glue_dir) if glue_dir is not None else {}
    entries = [j.entry for j in verified] + unverified
    reported = json.loads(_asset("reported.json"))
    with dir_lock(out, owner="cram leaderboard build"), atomic_dir(out, force=True) as tmp:
        (tmp / "style.css").write_text(_asset("style.css"))
        draw_figures(tmp, entries, unverified, [entry for entry, _ in baselines], reported)
        page = render_page([j.entry for j in verified], skipped, reported,
                           unverified=[(j.entry, j.reasons[0]) for j in judged
                                       if j.status not in (VERIFIED, REJECTED)],
                           marks=marks, baselines=baselines,
                           sweeps=[summary(sweep) for sweep in shown_sweeps])
        (tmp / "index.html").write_text(page)
        write_sweeps(tmp, shown_sweeps)
    return out / "index.html"


def draw_figures(folder: Path, entries: list[dict], unverified: list[dict],
                 baselines: list[dict], reported: dict) -> None:
    """The site's SVG figures, into `folder`: GLUE score against budget and against size, the
    loss curves, and each extracted entry's search. `entries` are every shown entry, of which
    `unverified` are labelled so; `baselines` are outside models' entries."""
    # A partial average (a subset of the tasks) is not comparable; its label says so.
    shown = [(e, "") for e in entries if e not in unverified]
    shown += [(e, " (unverified)") for e in unverified]
    glue_rows = [{"name": e["name"] + tag + ("" if e["results"]["avg_cramming"]["complete"]
                                             else " (partial average)"),
                  "track": e["track"], "budget_s": e["budget_s"],
                  "avg": e["results"]["avg_cramming"]["value"]}
                 for e, tag in shown if has_glue_score(e)]
    unscored = [{"name": e["name"] + tag, "budget_s": e["budget_s"]}
                for e, tag in shown if not has_glue_score(e)]
    plots.score_vs_budget(glue_rows, reported["rows"], folder / GLUE_PLOT, unscored)
    curves = [{"name": e["name"] + tag, "points": e["loss_curve"]["points"]}
              for e, tag in shown if e["loss_curve"]]
    plots.loss_curves(curves, folder / LOSS_PLOT)
    for entry in entries:
        if entry.get("extraction"):
            plots.extraction_scatter(entry["extraction"]["search"],
                                     folder / extraction_plot(entry))
    scored, unscored = size_rows(entries, baselines)
    plots.score_vs_size(scored, folder / SIZE_PLOT, unscored)


def significance_marks(verified: list, glue_dir) -> dict[str, float]:
    """Entry name -> p-value, for each ranked row whose GLUE average is not significantly above
    the next row's in its table (paired bootstrap of `cram leaderboard compare`, p >= 0.05)."""
    from leaderboard.compare import compare_results  # numpy: only when a GLUE dir is given

    marks = {}
    for table in ("ranked", "open", "multi"):
        rows = sorted((j for j in verified if table_of(j.entry) == table
                       and rank_group(j.entry) == 0), key=lambda j: rank_key(j.entry))
        for upper, lower in zip(rows, rows[1:], strict=False):
            record = compare_results(
                run_file(lower.run, lower.entry["results_file"], "results_file"),
                run_file(upper.run, upper.entry["results_file"], "results_file"),
                glue_dir=glue_dir)
            if record["avg_cramming"]["interval"][0] <= 0:  # B (upper) does not beat A
                marks[upper.entry["name"]] = record["avg_cramming"]["p"]
    return marks


def size_rows(entries: list[dict], baselines: list[dict] = ()) -> tuple[list[dict], list[dict]]:
    """(scored, unscored) points of the size figure: every entry whose results report the
    deployed model's size; a compressed variant names the entry it was compressed from.
    `baselines` (outside models' entries) are points at the size of their weight files."""
    by_model = {e["hashes"]["model_sha256"]: e["name"] for e in entries}
    scored, unscored = [], []
    for entry in baselines:
        point = {"name": entry["name"], "bytes": weights_bytes(entry)}
        if has_glue_score(entry):
            scored.append({**point, "score": entry["results"]["avg_cramming"]["value"],
                           "compressed": False, "baseline": True})
        else:
            unscored.append(point)
    for entry in entries:
        deployment = entry["results"].get("deployment")
        if deployment is None:
            continue
        point = {"name": entry["name"], "bytes": deployment["stored_bytes"]}
        if not has_glue_score(entry):
            unscored.append(point)
            continue
        lineage = entry.get("lineage") or {}
        scored.append({**point, "score": entry["results"]["avg_cramming"]["value"],
                       "compressed": "compression" in entry,
                       "parent": by_model.get(lineage.get("parent_model_sha256"))})
    return scored, unscored


def _asset(name: str) -> str:
    """A file shipped in `leaderboard/assets/` (the stylesheet, the reported results)."""
    return resources.files("leaderboard").joinpath("assets", name).read_text()
