"""`cram leaderboard build`: a static results site from a folder of entries.

The site is one `index.html` with its stylesheet and three SVG figures beside it; it needs no
server (open the file) and no JavaScript. Entries that fail the schema, the rules or the
arithmetic are left out and listed at the bottom of the page with their first problem.

Loss curves come from the entries themselves: `cram submit` embeds a thinned copy of the
run's metrics.jsonl (`loss_curve`), so the site never needs the run dirs.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from importlib import resources
from pathlib import Path

from crambench.errors import UserError
from crambench.files import atomic_dir
from crambench.locks import dir_lock
from crambench.units import format_bytes, format_duration
from cramming.rules import (
    MULTI_GPU_CATEGORY,
    MULTI_GPU_REFERENCE_BUDGET_S,
    MULTI_GPU_REFERENCE_GPUS,
    RANKED_GPUS,
    RULES_VERSION,
)
from leaderboard import plots

GENERATOR = "cramming-bench leaderboard"  # marks a folder as a site this module may replace
# Column order of the cramming paper's table: (task, metric keys, header, metric names).
TASK_COLUMNS = (
    ("mnli", ("accuracy_m", "accuracy_mm"), "MNLI", "m/mm"),
    ("qqp", ("f1", "accuracy"), "QQP", "F1/acc"),
    ("qnli", ("accuracy",), "QNLI", "acc"),
    ("sst2", ("accuracy",), "SST-2", "acc"),
    ("cola", ("mcc",), "CoLA", "MCC"),
    ("stsb", ("pearson", "spearman"), "STS-B", "P/S"),
    ("mrpc", ("f1", "accuracy"), "MRPC", "F1/acc"),
    ("rte", ("accuracy",), "RTE", "acc"),
)
GLUE_PLOT, LOSS_PLOT = "glue_vs_budget.svg", "loss_curves.svg"
SIZE_PLOT = "glue_vs_size.svg"


def build_site(entries_dir, out, *, runs=None, glue_dir=None, outside=None, log=None) -> Path:
    """Write the site into `out` (replaced whole if it is an earlier build); return index.html.

    `runs`: a folder holding the run dir RUNS/NAME of each entry NAME.json (or a mapping
    NAME -> run dir); `glue_dir`: the GLUE folder to rescore the saved dev predictions. Only
    entries verified against both are ranked (`leaderboard.admission`). `outside`: a folder
    holding OUTSIDE/NAME/, the results folder of each outside model entry NAME.json; outside
    models are shown as baselines in a table of their own, never ranked. `log(line)` receives
    one line per entry rejected or unverified, with its reason.
    """
    from leaderboard.admission import REJECTED, VERIFIED, judge_entries
    from leaderboard.schema import is_outside

    entries_dir, out = Path(entries_dir), Path(out)
    if not entries_dir.is_dir():
        raise UserError(f"entries folder {entries_dir} not found")
    if out.exists() and not (out / "index.html").is_file() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not a site built by `cram leaderboard build`; "
                        "choose another --out")
    if (out / "index.html").is_file() and GENERATOR not in (out / "index.html").read_text():
        raise UserError(f"{out}/index.html was not built by `cram leaderboard build`; "
                        "choose another --out")
    judged = judge_entries(entries_dir, runs=runs, glue_dir=glue_dir, outside=outside)
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
        # A partial average (a subset of the tasks) is not comparable; its label says so.
        shown = [(e, "") for e in entries if e not in unverified]
        shown += [(e, " (unverified)") for e in unverified]
        glue_rows = [{"name": e["name"] + tag + ("" if e["results"]["avg_cramming"]["complete"]
                                                 else " (partial average)"),
                      "track": e["track"], "budget_s": e["budget_s"],
                      "avg": e["results"]["avg_cramming"]["value"]}
                     for e, tag in shown if _has_glue_score(e)]
        unscored = [{"name": e["name"] + tag, "budget_s": e["budget_s"]}
                    for e, tag in shown if not _has_glue_score(e)]
        plots.score_vs_budget(glue_rows, reported["rows"], tmp / GLUE_PLOT, unscored)
        curves = [{"name": e["name"] + tag, "points": e["loss_curve"]["points"]}
                  for e, tag in shown if e["loss_curve"]]
        plots.loss_curves(curves, tmp / LOSS_PLOT)
        for entry in entries:
            if entry.get("extraction"):
                plots.extraction_scatter(entry["extraction"]["search"],
                                         tmp / _extraction_plot(entry))
        scored, unscored = size_rows(entries, [entry for entry, _ in baselines])
        plots.score_vs_size(scored, tmp / SIZE_PLOT, unscored)
        page = render_page([j.entry for j in verified], skipped, reported,
                           unverified=[(j.entry, j.reasons[0]) for j in judged
                                       if j.status not in (VERIFIED, REJECTED)],
                           marks=marks, baselines=baselines)
        (tmp / "index.html").write_text(page)
    return out / "index.html"


def significance_marks(verified: list, glue_dir) -> dict[str, float]:
    """Entry name -> p-value, for each ranked row whose GLUE average is not significantly above
    the next row's in its table (paired bootstrap of `cram leaderboard compare`, p >= 0.05)."""
    from leaderboard.compare import compare_results
    from leaderboard.records import run_file

    marks = {}
    for table in ("ranked", "open", "multi"):
        rows = sorted((j for j in verified if _table_of(j.entry) == table
                       and _rank_group(j.entry) == 0), key=lambda j: _rank_key(j.entry))
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
        if _has_glue_score(entry):
            scored.append({**point, "score": entry["results"]["avg_cramming"]["value"],
                           "compressed": False, "baseline": True})
        else:
            unscored.append(point)
    for entry in entries:
        deployment = entry["results"].get("deployment")
        if deployment is None:
            continue
        point = {"name": entry["name"], "bytes": deployment["stored_bytes"]}
        if not _has_glue_score(entry):
            unscored.append(point)
            continue
        lineage = entry.get("lineage") or {}
        scored.append({**point, "score": entry["results"]["avg_cramming"]["value"],
                       "compressed": "compression" in entry,
                       "parent": by_model.get(lineage.get("parent_model_sha256"))})
    return scored, unscored


def weights_bytes(entry: dict) -> int:
    """The stored size of an outside model's weights: the sum of its weight files' sizes."""
    sizes = {f["file"]: f["bytes"] for f in entry["outside_model"]["files"]}
    return sum(sizes.get(w["file"], 0) for w in entry["outside_model"]["weights"])


def _table_of(entry: dict) -> str:
    """The page's table an entry is listed in: compressed, multi (several GPUs) or its track."""
    if "compression" in entry:
        return "compressed"
    return "multi" if entry.get("category") == MULTI_GPU_CATEGORY else entry["track"]


def _has_glue_score(entry: dict) -> bool:
    results = entry["results"]
    return results["suite"] == "glue" and results["avg_cramming"]["value"] is not None


def _rank_group(entry: dict) -> int:
    """0: a complete GLUE average (ranked); 1: a partial one (not comparable: unranked);
    2: no GLUE score."""
    if not _has_glue_score(entry):
        return 2
    return 0 if entry["results"]["avg_cramming"]["complete"] else 1


def _rank_key(entry: dict):
    # Complete GLUE averages first, best first; ties go to the shorter run.
    avg = entry["results"]["avg_cramming"]["value"] if _has_glue_score(entry) else None
    return (_rank_group(entry), -(avg or 0.0), entry["train_elapsed_s"], entry["name"])


def render_page(entries: list[dict], skipped: list[tuple[str, str]], reported: dict, *,
                unverified: list[tuple[dict, str]] = (), marks: dict[str, float] | None = None,
                baselines: list[tuple[dict, str | None]] = ()) -> str:
    """The page: `entries` are the verified ones (ranked in their track's table);
    `unverified` (entry, reason) are shown apart; `marks` name -> p of rows not significantly
    above the next; `baselines` (entry, None when verified or why not) are outside models,
    listed in their own table, never ranked."""
    marks = marks or {}
    # Compressed variants have a table of their own: a score there is paid for in size.
    compressed = sorted((e for e in entries if "compression" in e), key=_rank_key)
    trained = [e for e in entries if "compression" not in e]
    ranked = sorted((e for e in trained if e["track"] == "ranked"), key=_rank_key)
    # Runs on several GPUs have their own table: never ranked against one-GPU runs.
    multi = sorted((e for e in trained if e.get("category") == MULTI_GPU_CATEGORY),
                   key=_rank_key)
    open_ = sorted((e for e in trained if e["track"] == "open"
                    and e.get("category") != MULTI_GPU_CATEGORY), key=_rank_key)
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    *others, last = RANKED_GPUS
    gpus = f"{', '.join(others)} or {last}" if others else last
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{GENERATOR}">',
        "<title>cramming-bench leaderboard</title>",
        '<link rel="stylesheet" href="style.css"></head><body><main>',
        "<header><h1>cramming-bench</h1>",
        "<p class=lede>How good a BERT can one GPU pretrain in one day? Every row below was "
        "trained from scratch under a wall-clock budget the trainer enforces, then fine-tuned "
        "on GLUE with one fixed protocol.</p>",
        f"<p class=rules><strong>Rules v{RULES_VERSION}.</strong> Ranked track: one "
        f"{_e(gpus)}; budget at most 24 h; GLUE dev, all tasks but WNLI, the "
        "<code>cramming</code> protocol (5 epochs, batch 16, lr 4e-5). Anything else runs in "
        "the open track, which says why; runs on several GPUs have a table of their own. "
        "Scores are dev-set percent points; "
        "<em>avg (cram)</em> is the cramming paper's average, <em>avg (GLUE)</em> one score "
        "per task; a * marks an average over only some of the tasks, which is not ranked "
        "(averages over different tasks do not compare). Only entries verified against their "
        "run dir and saved predictions are ranked; ≈ marks a score not significantly above the "
        "next row's (paired bootstrap over the dev examples, p ≥ 0.05, as "
        "<code>cram leaderboard compare</code> computes it).</p></header>",
        "<section><h2>Ranked track</h2>",
        _table(ranked, "ranked", marks) if ranked else
        "<p class=empty>No verified ranked entries yet.</p>",
        "</section><section><h2>Open track</h2>",
        _table(open_, "open", marks) if open_ else
        "<p class=empty>No verified open-track entries yet.</p>",
        "</section><section><h2>Multi-GPU</h2>",
        f"<p class=note>Open track, category <code>{MULTI_GPU_CATEGORY}</code>: runs on "
        "several GPUs (DistributedDataParallel), compared only with each other. The cramming "
        f"paper's 16x budget is {MULTI_GPU_REFERENCE_GPUS} GPUs for "
        f"{MULTI_GPU_REFERENCE_BUDGET_S // 3600} h; the time column also gives GPU-hours.</p>",
        _table(multi, "multi", marks) if multi else
        "<p class=empty>No verified multi-GPU entries yet.</p>",
        "</section><section><h2>Compressed track</h2>",
        "<p class=rules>Runs compressed with <code>cram compress</code> after training: pruned "
        "(with recovery training, which counts against the same one-day budget) and/or "
        "quantized after fine-tuning (which costs no budget). Size is the deployed model as "
        "stored on disk; latency is per example on one CPU thread, sequence length 128.</p>",
        _compressed_table(compressed) if compressed else
        "<p class=empty>No compressed entries yet.</p>",
        "</section>",
        _baselines(baselines),
        _unverified(unverified),
        '<section class=figures><figure><h2>GLUE score against budget</h2>',
        f'<img src="{GLUE_PLOT}" alt="GLUE dev average against training budget in hours">',
        "<figcaption>GLUE-scored entries by track; the star and dashed line are the reported "
        "results below; ticks on the axis are entries without a GLUE score.</figcaption>"
        "</figure>",
        '<figure><h2>GLUE score against model size</h2>',
        f'<img src="{SIZE_PLOT}" alt="GLUE dev average against the stored model size in bytes">',
        "<figcaption>One point per entry at the stored size of its deployed model (log "
        "scale); a line joins each compressed variant to the entry it came from; diamonds are "
        "outside models (baselines) at the size of their weight files; ticks on the axis are "
        "entries without a GLUE score.</figcaption></figure>",
        '<figure><h2>Pretraining loss</h2>',
        f'<img src="{LOSS_PLOT}" alt="training loss against elapsed time, one line per entry">',
        "<figcaption>MLM training loss against wall-clock time, from each entry's run "
        "log.</figcaption></figure></section>",
        _extractions([e for e in [*ranked, *open_, *multi, *(u for u, _ in unverified)]
                      if e.get("extraction")]),
        _reported(reported),
    ]
    if skipped:
        parts.append("<section class=skipped><h2>Entries not shown</h2><ul>")
        parts += [f"<li><code>{_e(name)}</code>: {_e(why)}</li>" for name, why in skipped]
        parts.append("</ul></section>")
    shown = len(entries) + len(unverified) + len(baselines)
    count = f"{shown} {'entry' if shown == 1 else 'entries'}"
    parts.append(f"<footer>{count} · built {built} · validate any entry with "
                 "<code>cram leaderboard validate ENTRY --run RUN</code></footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _baselines(baselines: list[tuple[dict, str | None]]) -> str:
    """Outside models scored with the same protocol (`cram eval --model`): for reference beside
    the crammed runs, never ranked; each row says whether its scores were recomputed."""
    if not baselines:
        return ""
    head = [("Entry", "date · model type"), ("Model", "source · params"),
            ("Protocol", "fine-tuning · seed"), ("Weights", "stored · folder sha256"),
            ("avg", "cram"), ("avg", "GLUE")]
    head += [(task, metrics) for _, _, task, metrics in TASK_COLUMNS]
    rows = ['<section class=baselines><h2>Baselines (outside models)</h2>',
            "<p class=note>Models this harness did not train (any <code>transformers</code> "
            "encoder, e.g. BERT or a <code>cram export</code> folder), fine-tuned and scored with "
            "the same protocol by <code>cram eval glue --model</code>. They made no budget or "
            "training claim and are never ranked; each is named by the sha256 of its folder's "
            "config, weight, tokenizer and code files (<code>cram leaderboard validate ENTRY "
            "--model PATH</code> rehashes them).</p>",
            '<div class=scroll><table class="board baselines"><thead><tr>']
    rows += [f"<th>{_e(h)}<span class=sub>{_e(sub)}</span></th>" for h, sub in head]
    rows.append("</tr></thead><tbody>")
    for entry, why in sorted(baselines, key=lambda item: _baseline_key(item[0])):
        model, protocol = entry["outside_model"], entry["results"]["protocol"]
        seeds = protocol.get("seeds") or [protocol.get("seed")]
        cells = [
            f"<td class=name><strong>{_e(entry['name'])}</strong><span class=sub>"
            f"{_e(entry['date'])} · {_e(model['model_type'])}</span></td>",
            f"<td>{_e(model['source'])}<span class=sub>{_params(model['params'])}</span></td>",
            f"<td>{_e(protocol['name'])}<span class=sub>seed "
            f"{_e(', '.join(map(str, seeds)))}</span></td>",
            f"<td class=num>{format_bytes(weights_bytes(entry))}<span class=sub>"
            f"{_e(model['folder_sha256'][:12])}</span></td>",
            *_score_cells(entry),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        state = f"unverified: {why}" if why else "scores recomputed from its saved predictions"
        rows.append(f"<tr class=why><td colspan={len(head)}>baseline, not ranked: "
                    f"{_e(entry['track_reason'])}; {_e(state)}</td></tr>")
    rows.append("</tbody></table></div></section>")
    return "".join(rows)


def _baseline_key(entry: dict):
    # Complete GLUE averages first, best first, then partial ones, then probe-only results.
    avg = entry["results"]["avg_cramming"]["value"] if _has_glue_score(entry) else None
    return (_rank_group(entry), -(avg or 0.0), entry["name"])


def _unverified(unverified: list[tuple[dict, str]]) -> str:
    if not unverified:
        return ""
    entries = sorted((entry for entry, _ in unverified), key=_rank_key)
    reasons = {entry["name"]: why for entry, why in unverified}
    return ("<section class=unverified><h2>Unverified entries (not ranked)</h2>"
            "<p>These pass every check an entry can pass on its own, but were not checked "
            "against their run dir and saved predictions (<code>cram leaderboard build --runs "
            "DIR --glue-dir DIR</code>), so their claims are the submitter's word.</p>"
            + _table(entries, "unverified", {}, reasons) + "</section>")


def _table(entries: list[dict], track: str, marks: dict[str, float],
           unverified: dict[str, str] | None = None) -> str:
    """A board; rows with a complete GLUE average are numbered (unless `unverified`, name ->
    reason, is given), the rest carry no rank."""
    head = [("#", ""), ("Entry", "date · preset"), ("GPU", "params"), ("Time", "h:mm:ss of budget"),
            ("avg", "cram"), ("avg", "GLUE")]
    head += [(task, metrics) for _, _, task, metrics in TASK_COLUMNS]
    rows = [f'<div class=scroll><table class="board {track}"><thead><tr>']
    rows += [f"<th>{_e(h)}<span class=sub>{_e(sub)}</span></th>" for h, sub in head]
    rows.append("</tr></thead><tbody>")
    rank = 0
    for entry in entries:
        hardware = entry["hardware"]
        gpu = (hardware["gpu_name"] or hardware["device"]).removeprefix("NVIDIA ")
        ranks = max(hardware["gpu_count"], hardware.get("world_size") or 1)
        if ranks > 1:
            gpu = f"{ranks}x {gpu}"
        name = f"<strong>{_e(entry['name'])}</strong><span class=sub>{_e(entry['date'])} · "
        name += f"{_e(entry['model']['preset'])}</span>"
        gpu = f"{_e(gpu)}<span class=sub>{_params(entry['model']['params'])}</span>"
        # One unit for the whole column; elapsed rounds down, so it never reads over budget.
        time = f"{_clock(entry['train_elapsed_s'], math.floor)}<span class=sub>of "
        time += f"{_clock(entry['budget_s'], round)}"
        if track == "multi" and hardware["gpu_count"]:
            time += f" · {hardware['gpu_count'] * entry['train_elapsed_s'] / 3600:.3g} GPU-h"
        time += "</span>"
        place = "–"
        if unverified is None and _rank_group(entry) == 0:
            rank += 1
            place = str(rank)
            if entry["name"] in marks:
                p = marks[entry["name"]]
                place += (f' <span class=tie title="not significantly above the next row '
                          f'(p = {p:.2f})">≈</span>')
        cells = [f"<td class=num>{place}</td>", f"<td class=name>{name}</td>",
                 f"<td class=gpu>{gpu}</td>", f"<td class=num>{time}</td>"]
        cells += _score_cells(entry)
        rows.append("<tr>" + "".join(cells) + "</tr>")
        if entry.get("lineage"):
            rows.append(f"<tr class=why><td></td><td colspan={len(head) - 1}>"
                        f"{_e(_lineage_text(entry['lineage']))}</td></tr>")
        if entry["track_reason"]:  # a row of its own: long reasons would squeeze the table
            rows.append(f"<tr class=why><td></td><td colspan={len(head) - 1}>open track: "
                        f"{_e(entry['track_reason'])}</td></tr>")
        if _rank_group(entry) == 1:
            rows.append(f"<tr class=why><td></td><td colspan={len(head) - 1}>not ranked: "
                        f"{_e(entry['results']['avg_cramming']['label'])}</td></tr>")
        if unverified:
            rows.append(f"<tr class=why><td></td><td colspan={len(head) - 1}>unverified: "
                        f"{_e(unverified[entry['name']])}</td></tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _compressed_table(entries: list[dict]) -> str:
    head = [("#", ""), ("Entry", "date · preset"), ("Method", "bits · sparsity"),
            ("Size", "stored · kept params"), ("Latency", "ms/example b1 · b64"),
            ("Time", "train + compress of budget"), ("avg", "cram"), ("avg", "GLUE"),
            ("Track", "")]
    rows = ['<div class=scroll><table class="board compressed"><thead><tr>']
    rows += [f"<th>{_e(h)}<span class=sub>{_e(sub)}</span></th>" for h, sub in head]
    rows.append("</tr></thead><tbody>")
    for rank, entry in enumerate(entries, 1):
        record, lineage = entry["compression"], entry["lineage"]
        deployment = entry["results"].get("deployment") or {}
        latency = deployment.get("latency")
        size = (f"{format_bytes(deployment['stored_bytes'])}<span class=sub>"
                f"{_params(deployment['nonzero_params'])}</span>" if deployment else "–")
        speed = (f"{latency['batch_1_ms']:.3g} · {latency['batch_64_ms']:.3g}"
                 if latency else "–")
        time = (f"{format_duration(lineage['parent_train_elapsed_s'])} + "
                f"{format_duration(lineage['stage_train_elapsed_s'])}<span class=sub>of "
                f"{format_duration(entry['budget_s'])}</span>")
        cells = [
            f"<td class=num>{rank}</td>",
            f"<td class=name><strong>{_e(entry['name'])}</strong><span class=sub>"
            f"{_e(entry['date'])} · {_e(entry['model']['preset'])}</span></td>",
            f"<td>{_e(record['method'])}<span class=sub>{record['bits']}-bit · sparsity "
            f"{record['sparsity']:.3f}</span></td>",
            f"<td class=num>{size}</td>", f"<td class=num>{speed}</td>",
            f"<td class=num>{time}</td>",
            *_score_cells(entry)[:2],
            f"<td>{_e(entry['track'])}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        rows.append(f"<tr class=why><td></td><td colspan={len(head) - 1}>"
                    f"{_e(_lineage_text(lineage))}"
                    + (f"; open track: {_e(entry['track_reason'])}" if entry["track_reason"]
                       else "") + "</td></tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _lineage_text(lineage: dict) -> str:
    """"derived by compress prune:0.5 from model 1a2b3c4d5e6f: 23.9 h + 20 min of 24 h"."""
    return (f"derived by {lineage['stage']} {lineage['method']} from model "
            f"{lineage['parent_model_sha256'][:12]}: training "
            f"{format_duration(lineage['parent_train_elapsed_s'])} + "
            f"{format_duration(lineage['stage_train_elapsed_s'])} ({lineage['stage']})")


def _score_cells(entry: dict) -> list[str]:
    results = entry["results"]
    if results["suite"] != "glue":
        probes = ", ".join(
            f"{task} {metric} {value:.1f}"
            for task, spec in results["tasks"].items() for metric, value in spec["metrics"].items())
        return ["<td class=num>–</td>", "<td class=num>–</td>",
                f'<td colspan={len(TASK_COLUMNS)} class=probe>no GLUE score · '
                f"{_e(results['suite'])} tasks: {_e(probes)}</td>"]
    cells = []
    for key in ("avg_cramming", "avg_glue"):
        avg = results[key]
        mark = "" if avg["complete"] else '<span class=partial title="partial average">*</span>'
        cells.append(f"<td class='num avg'>{_score(avg['value'])}{mark}</td>")
    for task, metrics, _, _ in TASK_COLUMNS:
        found = results["tasks"].get(task, {}).get("metrics", {})
        values = [found.get(metric) for metric in metrics]
        text = "/".join(_score(v) for v in values) if any(v is not None for v in values) \
            else "–"
        cells.append(f"<td class=num>{text}</td>")
    return cells


def _extraction_plot(entry: dict) -> str:
    return f"extraction-{entry['name']}.svg"  # entry names are [A-Za-z0-9._-]


def _extractions(entries: list[dict]) -> str:
    """Per extracted entry: the search's params-vs-loss scatter and its table."""
    if not entries:
        return ""
    parts = ["<section class=extractions><h2>Extracted models</h2>",
             "<p>Each of these was extracted from a trained teacher (<code>cram extract</code>):"
             " sub-shapes of it, started from its weights, each distilled for an equal share of"
             " a search budget, then scored. The highest W-coefficient (error against size and "
             "latency, relative to the teacher) was trained on; the Pareto front on parameters, "
             "latency and loss is the choice a user may prefer. Its time is the teacher's plus "
             "the extraction's.</p>"]
    for entry in entries:
        search = entry["extraction"]["search"]
        lineage = entry["lineage"]
        parts.append(
            f"<figure><h3>{_e(entry['name'])}: {_e(search['chosen'])} from "
            f"{_e(search['teacher']['name'])}</h3>"
            f'<img src="{_e(_extraction_plot(entry))}" alt="candidates of the extraction: '
            f'parameters against val loss, Pareto front filled">'
            f"<figcaption>{len(search['candidates'])} candidates on {_e(search['device'])}, "
            f"{format_duration(search['budget']['train_window_s'])} of training each; extraction "
            f"{format_duration(lineage['stage_train_elapsed_s'])} of "
            f"{format_duration(lineage['stage_budget_s'])} after "
            f"{format_duration(lineage['parent_train_elapsed_s'])} of teacher training; "
            "W trade-off "
            f"{search['ranking']['tradeoff']:g} nats per e-fold of size and latency."
            "</figcaption></figure>")
        parts.append(_search_table(search))
    parts.append("</section>")
    return "".join(parts)


def _search_table(search: dict) -> str:
    head = ("rank", "candidate", "params", "w/o embedding", "ms, batch 1", "ms, batch 64",
            "val loss", "distill loss", "W", "front")
    rows = ['<div class=scroll><table class=search><thead><tr>']
    rows += [f"<th>{_e(h)}</th>" for h in head]
    rows.append("</tr></thead><tbody>")
    teacher = {**search["teacher"], "rank": "–", "w": 1.0, "pareto": False,
               "name": f"teacher {search['teacher']['name']}"}
    for row in [*search["candidates"], teacher]:
        chosen = " class=chosen" if row["name"] == search["chosen"] else ""
        cells = [row["rank"], row["name"], f"{row['params']:,}",
                 f"{row['params_no_embedding']:,}", f"{row['latency_b1_ms']:.2f}",
                 f"{row['latency_b64_ms']:.1f}", _loss(row["val_loss"]),
                 _loss(row["val_distill_loss"]), "–" if row["w"] is None else f"{row['w']:.4f}",
                 "●" if row["pareto"] else ""]
        rows.append(f"<tr{chosen}>" + "".join(
            f"<td{'' if i == 1 else ' class=num'}>{_e(c)}</td>" for i, c in enumerate(cells))
            + "</tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


def _loss(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _reported(reported: dict) -> str:
    rows = ["<section class=reported><h2>Reported, not reproduced</h2>",
            f"<p>{_e(reported['note'])}</p>",
            "<table><thead><tr><th>Model</th><th>Hardware</th><th>Budget</th>"
            "<th>avg (cram)</th><th>Source</th></tr></thead><tbody>"]
    for row in reported["rows"]:
        budget = format_duration(row["budget_s"]) if row["budget_s"] else "–"
        rows.append(f"<tr><td>{_e(row['name'])}</td><td>{_e(row['hardware'])}</td>"
                    f"<td class=num>{budget}</td><td class=num>{row['avg_cramming']:.1f}</td>"
                    f'<td><a href="{_e(row["url"])}">{_e(row["source"])}</a></td></tr>')
    rows.append("</tbody></table></section>")
    return "".join(rows)


def _clock(seconds: float, rounding) -> str:
    """h:mm:ss, e.g. 0:00:14 or 23:59:10, with seconds rounded by `rounding`."""
    total = int(rounding(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _params(n: int) -> str:
    return f"{n / 1e6:.1f} M params" if n >= 1e5 else f"{n / 1e3:.0f} k params"


def _score(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _asset(name: str) -> str:
    return resources.files("leaderboard").joinpath("assets", name).read_text()
