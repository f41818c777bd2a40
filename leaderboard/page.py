"""The site's page: `index.html` rendered from the templates in `leaderboard/templates/`.

`page.html` holds the page and its prose (the rules, the notes above each table, the figure
captions); `tables.html` lays out the tables. This module only turns entries into the rows those
templates show, every value already formatted as a string: places, clock times, sizes, scores.
Jinja2 escapes every value (autoescaping on), so an entry's text never becomes markup.
"""

from __future__ import annotations

import datetime as dt
import functools
import math

from crambench.units import format_bytes, format_duration
from cramming.rules import (
    MULTI_GPU_CATEGORY,
    MULTI_GPU_REFERENCE_BUDGET_S,
    MULTI_GPU_REFERENCE_GPUS,
    RANKED_GPUS,
    RULES_VERSION,
)
from leaderboard.standings import baseline_key, rank_group, rank_key, weights_bytes

GENERATOR = "cramming-bench leaderboard"  # marks a folder as a site the build may replace
GLUE_PLOT, LOSS_PLOT = "glue_vs_budget.svg", "loss_curves.svg"
SIZE_PLOT = "glue_vs_size.svg"
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
TASK_HEAD = [(task, metrics) for _, _, task, metrics in TASK_COLUMNS]
BOARD_HEAD = [("#", ""), ("Entry", "date · preset"), ("GPU", "params"),
              ("Time", "h:mm:ss of budget"), ("avg", "cram"), ("avg", "GLUE"), *TASK_HEAD]
BASELINE_HEAD = [("Entry", "date · model type"), ("Model", "source · params"),
                 ("Protocol", "fine-tuning · seed"), ("Weights", "stored · folder sha256"),
                 ("avg", "cram"), ("avg", "GLUE"), *TASK_HEAD]
COMPRESSED_HEAD = [("#", ""), ("Entry", "date · preset"), ("Method", "bits · sparsity"),
                   ("Size", "stored · kept params"), ("Latency", "ms/example b1 · b64"),
                   ("Time", "train + compress of budget"), ("avg", "cram"), ("avg", "GLUE"),
                   ("Track", "")]
SEARCH_HEAD = ("rank", "candidate", "params", "w/o embedding", "ms, batch 1", "ms, batch 64",
               "val loss", "distill loss", "W", "front")


def extraction_plot(entry: dict) -> str:
    """The file name of an extracted entry's search figure."""
    return f"extraction-{entry['name']}.svg"  # entry names are [A-Za-z0-9._-]


def render_page(entries: list[dict], skipped: list[tuple[str, str]], reported: dict, *,
                unverified: list[tuple[dict, str]] = (), marks: dict[str, float] | None = None,
                baselines: list[tuple[dict, str | None]] = (), sweeps: list[dict] = ()) -> str:
    """The page: `entries` are the verified ones (ranked in their track's table);
    `unverified` (entry, reason) are shown apart; `marks` name -> p of rows not significantly
    above the next; `baselines` (entry, None when verified or why not) are outside models,
    listed in their own table, never ranked; `sweeps` are the lines of the sweeps' section,
    each linking its page (leaderboard.sweeps.summary)."""
    marks = marks or {}
    # Compressed variants have a table of their own: a score there is paid for in size.
    compressed = sorted((e for e in entries if "compression" in e), key=rank_key)
    trained = [e for e in entries if "compression" not in e]
    ranked = sorted((e for e in trained if e["track"] == "ranked"), key=rank_key)
    # Runs on several GPUs have their own table: never ranked against one-GPU runs.
    multi = sorted((e for e in trained if e.get("category") == MULTI_GPU_CATEGORY),
                   key=rank_key)
    open_ = sorted((e for e in trained if e["track"] == "open"
                    and e.get("category") != MULTI_GPU_CATEGORY), key=rank_key)
    unverified_entries = sorted((entry for entry, _ in unverified), key=rank_key)
    *others, last = RANKED_GPUS
    shown = len(entries) + len(unverified) + len(baselines)
    return template("page.html").render(
        generator=GENERATOR, rules_version=RULES_VERSION,
        gpus=f"{', '.join(others)} or {last}" if others else last,
        multi_gpu_category=MULTI_GPU_CATEGORY, reference_gpus=MULTI_GPU_REFERENCE_GPUS,
        reference_hours=MULTI_GPU_REFERENCE_BUDGET_S // 3600,
        ranked=_board(ranked, "ranked", marks), open=_board(open_, "open", marks),
        multi=_board(multi, "multi", marks),
        compressed=[_compressed_row(rank, e) for rank, e in enumerate(compressed, 1)],
        compressed_columns=len(COMPRESSED_HEAD), compressed_head=COMPRESSED_HEAD,
        baselines=[_baseline_row(entry, why) for entry, why in
                   sorted(baselines, key=lambda item: baseline_key(item[0]))],
        baseline_head=BASELINE_HEAD,
        unverified=_board(unverified_entries, "unverified", {},
                          {entry["name"]: why for entry, why in unverified}),
        glue_plot=GLUE_PLOT, size_plot=SIZE_PLOT, loss_plot=LOSS_PLOT,
        extractions=[_extraction(e) for e in [*ranked, *open_, *multi,
                                              *(entry for entry, _ in unverified)]
                     if e.get("extraction")],
        reported=_reported(reported), skipped=skipped, sweeps=list(sweeps),
        count=f"{shown} {'entry' if shown == 1 else 'entries'}",
        built=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


@functools.cache
def _environment():
    import jinja2  # imported here: keeps `cram --help` fast

    return jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"),
                              autoescape=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


def template(name: str):
    """A template of `leaderboard/templates/` (the index, a sweep's page)."""
    return _environment().get_template(name)


def _board(entries: list[dict], track: str, marks: dict[str, float],
           unverified: dict[str, str] | None = None) -> dict:
    """A board's rows; rows with a complete GLUE average are numbered (unless `unverified`,
    name -> reason, is given), the rest carry no rank."""
    rows, rank = [], 0
    for entry in entries:
        hardware = entry["hardware"]
        gpu = (hardware["gpu_name"] or hardware["device"]).removeprefix("NVIDIA ")
        ranks = max(hardware["gpu_count"], hardware["world_size"])
        if ranks > 1:
            gpu = f"{ranks}x {gpu}"
        place, tie = "–", None
        if unverified is None and rank_group(entry) == 0:
            rank += 1
            place = str(rank)
            if entry["name"] in marks:
                tie = f"{marks[entry['name']]:.2f}"
        gpu_hours = None
        if track == "multi" and hardware["gpu_count"]:
            gpu_hours = f"{hardware['gpu_count'] * entry['train_elapsed_s'] / 3600:.3g}"
        why = []
        if entry.get("lineage"):
            why.append(_lineage_text(entry["lineage"]))
        if entry["track_reason"]:  # a row of its own: long reasons would squeeze the table
            why.append(f"open track: {entry['track_reason']}")
        if rank_group(entry) == 1:
            why.append(f"not ranked: {entry['results']['avg_cramming']['label']}")
        if unverified:
            why.append(f"unverified: {unverified[entry['name']]}")
        if entry.get("claims"):
            why.append(_claims_text(entry["claims"]))
        rows.append({
            "place": place, "tie": tie, "name": entry["name"], "date": entry["date"],
            "preset": entry["model"]["preset"], "gpu": gpu,
            "params": _params(entry["model"]["params"]),
            # One unit for the whole column; elapsed rounds down, so it never reads over budget.
            "elapsed": _clock(entry["train_elapsed_s"], math.floor),
            "budget": _clock(entry["budget_s"], round), "gpu_hours": gpu_hours,
            "scores": _scores(entry), "why": why})
    return {"track": track, "head": BOARD_HEAD, "columns": len(BOARD_HEAD), "rows": rows}


def _claims_text(claims: list[dict]) -> str:
    """Which claims the run dir cross-checked and which are the submitter's word, and why."""
    names = {"final_model": "final model"}
    checked = [names.get(c["claim"], c["claim"]) for c in claims if c["cross_checked"]]
    word = [f"{names.get(c['claim'], c['claim'])} ({c['detail']})" for c in claims
            if not c["cross_checked"]]
    parts = ([f"cross-checked: {', '.join(checked)}"] if checked else []) + (
        [f"submitter's word: {'; '.join(word)}"] if word else [])
    return "; ".join(parts)


def _compressed_row(rank: int, entry: dict) -> dict:
    record, lineage = entry["compression"], entry["lineage"]
    deployment = entry["results"].get("deployment") or {}
    latency = deployment.get("latency")
    why = _lineage_text(lineage)
    if entry["track_reason"]:
        why += f"; open track: {entry['track_reason']}"
    return {
        "rank": rank, "name": entry["name"], "date": entry["date"],
        "preset": entry["model"]["preset"], "method": record["method"],
        "bits": record["bits"], "sparsity": f"{record['sparsity']:.3f}",
        "size": format_bytes(deployment["stored_bytes"]) if deployment else None,
        "kept": _params(deployment["nonzero_params"]) if deployment else None,
        "speed": (f"{latency['batch_1_ms']:.3g} · {latency['batch_64_ms']:.3g}"
                  if latency else "–"),
        "parent_time": format_duration(lineage["parent_train_elapsed_s"]),
        "stage_time": format_duration(lineage["stage_train_elapsed_s"]),
        "budget": format_duration(entry["budget_s"]),
        "scores": _scores(entry), "track": entry["track"], "why": why}


def _baseline_row(entry: dict, why: str | None) -> dict:
    model, protocol = entry["outside_model"], entry["results"]["protocol"]
    seeds = protocol.get("seeds") or [protocol.get("seed")]
    state = f"unverified: {why}" if why else "scores recomputed from its saved predictions"
    return {"name": entry["name"], "date": entry["date"], "model_type": model["model_type"],
            "source": model["source"], "params": _params(model["params"]),
            "protocol": protocol["name"], "seeds": ", ".join(map(str, seeds)),
            "weights": format_bytes(weights_bytes(entry)),
            "folder_sha256": model["folder_sha256"][:12], "scores": _scores(entry),
            "why": f"{entry['track_reason']}; {state}"}


def _lineage_text(lineage: dict) -> str:
    """"derived by compress prune:0.5 from model 1a2b3c4d5e6f: 23.9 h + 20 min of 24 h"."""
    return (f"derived by {lineage['stage']} {lineage['method']} from model "
            f"{lineage['parent_model_sha256'][:12]}: training "
            f"{format_duration(lineage['parent_train_elapsed_s'])} + "
            f"{format_duration(lineage['stage_train_elapsed_s'])} ({lineage['stage']})")


def _scores(entry: dict) -> dict:
    """The score cells: both averages (marked when partial) and each task's metrics, or for
    probe results the probe tasks' scores in one cell."""
    results = entry["results"]
    if results["suite"] != "glue":
        probes = ", ".join(
            f"{task} {metric} {value:.1f}"
            for task, spec in results["tasks"].items() for metric, value in spec["metrics"].items())
        return {"glue": False, "suite": results["suite"], "probes": probes,
                "columns": len(TASK_COLUMNS)}
    averages = [(_score(results[key]["value"]), results[key]["complete"])
                for key in ("avg_cramming", "avg_glue")]
    tasks = []
    for task, metrics, _, _ in TASK_COLUMNS:
        found = results["tasks"].get(task, {}).get("metrics", {})
        values = [found.get(metric) for metric in metrics]
        tasks.append("/".join(_score(v) for v in values) if any(v is not None for v in values)
                     else "–")
    return {"glue": True, "averages": averages, "tasks": tasks}


def _extraction(entry: dict) -> dict:
    """An extracted entry's figure caption and its search table (candidates, then teacher)."""
    search, lineage = entry["extraction"]["search"], entry["lineage"]
    teacher = {**search["teacher"], "rank": "–", "w": 1.0, "pareto": False,
               "name": f"teacher {search['teacher']['name']}"}
    rows = [{"chosen": row["name"] == search["chosen"],
             "cells": [row["rank"], row["name"], f"{row['params']:,}",
                       f"{row['params_no_embedding']:,}", f"{row['latency_b1_ms']:.2f}",
                       f"{row['latency_b64_ms']:.1f}", _loss(row["val_loss"]),
                       _loss(row["val_distill_loss"]),
                       "–" if row["w"] is None else f"{row['w']:.4f}",
                       "●" if row["pareto"] else ""]}
            for row in [*search["candidates"], teacher]]
    return {"name": entry["name"], "chosen": search["chosen"],
            "teacher": search["teacher"]["name"], "plot": extraction_plot(entry),
            "candidates": len(search["candidates"]), "device": search["device"],
            "window": format_duration(search["budget"]["train_window_s"]),
            "stage_time": format_duration(lineage["stage_train_elapsed_s"]),
            "stage_budget": format_duration(lineage["stage_budget_s"]),
            "parent_time": format_duration(lineage["parent_train_elapsed_s"]),
            "tradeoff": f"{search['ranking']['tradeoff']:g}", "head": SEARCH_HEAD,
            "rows": rows}


def _reported(reported: dict) -> dict:
    rows = [{"name": row["name"], "hardware": row["hardware"],
             "budget": format_duration(row["budget_s"]) if row["budget_s"] else "–",
             "avg": f"{row['avg_cramming']:.1f}", "url": row["url"], "source": row["source"]}
            for row in reported["rows"]]
    return {"note": reported["note"], "rows": rows}


def _clock(seconds: float, rounding) -> str:
    """h:mm:ss, e.g. 0:00:14 or 23:59:10, with seconds rounded by `rounding`."""
    total = int(rounding(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _params(n: int) -> str:
    return f"{n / 1e6:.1f} M params" if n >= 1e5 else f"{n / 1e3:.0f} k params"


def _score(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _loss(value) -> str:
    return "–" if value is None else f"{value:.4f}"
