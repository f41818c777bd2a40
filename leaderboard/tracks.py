"""Rules v1 applied to an entry: which track it is in, and what makes it invalid.

The rules themselves (ranked GPUs, budget, protocol, tasks, version) live in `cramming.rules`,
which the trainer reads too. `track_reasons` lists why an entry cannot be ranked (empty:
ranked); `rule_violations` lists what makes an entry invalid in either track.
"""

from __future__ import annotations

from crambench.plugin import OPEN_TRACK_HOOKS
from cramming.rules import (
    OUTSIDE_MODEL_REASON,
    RANKED_BUDGET_S,
    RANKED_GPU_COUNT,
    RANKED_GPUS,
    RANKED_PROTOCOL,
    RANKED_TASKS,
    RULES_VERSION,
    category,
    is_ranked_gpu,
    multi_gpu_reason,
)
from leaderboard.extraction import extraction_violations
from leaderboard.schema import CLAIMS

# Totals are sums of two times rounded to the millisecond; an edit moves them by far more.
SUM_TOLERANCE_S = 1e-3


def track_reasons(entry: dict) -> list[str]:
    """Why Rules v1 put this entry in the open track; an empty list means ranked."""
    if entry.get("outside_model") is not None:  # an outside model's entry: a baseline
        return [OUTSIDE_MODEL_REASON]
    reasons = []
    hardware = entry["hardware"]
    if world_size(entry) > 1:
        reasons.append(multi_gpu_reason(world_size(entry), hardware.get("device")))
    if not is_ranked_gpu(hardware.get("gpu_name")):
        device = hardware.get("gpu_name") or hardware.get("device")
        reasons.append(f"{device} is not a ranked GPU ({', '.join(RANKED_GPUS)})")
    elif hardware.get("gpu_count") != RANKED_GPU_COUNT and world_size(entry) == 1:
        reasons.append(f"{hardware.get('gpu_count')} GPUs (the ranked track is one GPU)")
    # A run resumed on other hardware: its largest segment names one device, not all.
    elsewhere = sorted({name for part in hardware.get("segments") or []
                        for name in part["device_names"] if not is_ranked_gpu(name)})
    if elsewhere and is_ranked_gpu(hardware.get("gpu_name")):
        reasons.append(f"part of the training ran on {', '.join(elsewhere)}, not a ranked GPU")
    changed = [hook for hook in (entry.get("code") or {}).get("plugin_hooks", [])
               if hook in OPEN_TRACK_HOOKS]
    if changed:
        reasons.append(f"the plug-in's {' and '.join(changed)} hook changes what is trained "
                       "for (the ranked track is masked-language-model pretraining)")
    recovery = (entry.get("compression") or {}).get("recovery_hardware")
    if recovery and not (is_ranked_gpu(recovery["gpu_name"])
                         and recovery["gpu_count"] == RANKED_GPU_COUNT):
        device = recovery["gpu_name"] or recovery["device"]
        reasons.append(f"pruning's recovery training ran on {device}, not one ranked GPU")
    if entry["budget_s"] > RANKED_BUDGET_S:
        reasons.append(f"budget {entry['budget_s'] / 3600:g} h is over the ranked 24 h")
    results = entry["results"]
    if results.get("outside_model") is not None:  # scored with `cram eval --model`
        reasons.append(OUTSIDE_MODEL_REASON)
    if results["suite"] != "glue":
        reasons.append(f"{results['suite']} suite: no GLUE score")
        return reasons  # protocol and task checks are about GLUE results
    protocol = results["protocol"]
    if protocol["name"] != RANKED_PROTOCOL:
        reasons.append(f"fine-tuning protocol {protocol['name']!r} is not the ranked "
                       f"{RANKED_PROTOCOL!r} protocol")
    elif changed := _recipe_changes(protocol):
        reasons.append(f"fine-tuning protocol {RANKED_PROTOCOL!r} with a changed recipe: "
                       f"{', '.join(changed)}")
    if results.get("from_scratch"):
        reasons.append("scored from random weights (the --from-scratch control), not the "
                       "pretrained model")
    missing = [task for task in RANKED_TASKS if task not in results["tasks"]]
    if missing:
        reasons.append(f"GLUE tasks missing: {', '.join(missing)}")
    if not reasons and not protocol["rankable"]:
        reasons.append("the results are marked not rankable")
    return reasons


def _recipe_changes(protocol: dict) -> list[str]:
    """Where a results file's recorded protocol departs from the ranked recipe (rule 4)."""
    from glue_eval import PROTOCOLS

    ranked = PROTOCOLS[RANKED_PROTOCOL].record(seeds=[0])
    # Seeds are free (rule 4): any number, each task scored by its median over them. Pooling
    # is the model's (model.pooler), an architecture choice like any other.
    return [f"{key} {protocol.get(key, 'missing')} (ranked: {value})"
            for key, value in ranked.items()
            if key not in ("name", "rankable", "seeds", "pooling")
            and protocol.get(key) != value]


def world_size(entry: dict) -> int:
    """Ranks the run trained on, at most (its largest training segment); the schema requires
    it of every run's entry."""
    return entry["hardware"]["world_size"]


def decide_category(entry: dict) -> str | None:
    """The open-track category: multi-gpu for a run on several ranks (cramming.rules)."""
    return category(world_size(entry))


def decide_track(entry: dict) -> tuple[str, str | None]:
    reasons = track_reasons(entry)
    return ("open", "; ".join(reasons)) if reasons else ("ranked", None)


def rule_violations(entry: dict) -> list[str]:
    """What makes a schema-valid entry invalid in any track."""
    problems = []
    if entry["rules_version"] != RULES_VERSION:
        problems.append(f"rules_version {entry['rules_version']} is unknown "
                        f"(this validator knows Rules v{RULES_VERSION})")
    if entry["train_elapsed_s"] > entry["budget_s"]:
        problems.append(f"train_elapsed_s {entry['train_elapsed_s']:g} is over budget_s "
                        f"{entry['budget_s']:g}")
    track, reason = decide_track(entry)
    if entry["track"] != track:
        why = f": {reason}" if reason else ""
        problems.append(f"track is {entry['track']!r} but Rules v{RULES_VERSION} give "
                        f"{track!r}{why}")
    elif entry["track_reason"] != reason:
        problems.append(f"track_reason {entry['track_reason']!r} does not match the rules' "
                        f"{reason!r}")
    if entry.get("category") != decide_category(entry):
        problems.append(f"category is {entry.get('category')!r} but Rules v{RULES_VERSION} give "
                        f"{decide_category(entry)!r} for world_size {world_size(entry)}")
    names = entry["hardware"]["device_names"]
    largest = max((part["world_size"] for part in entry["hardware"].get("segments") or []),
                  default=world_size(entry))
    segments = entry["hardware"].get("segments") or []
    if segments and max(segments, key=lambda part: part["world_size"])["device_names"] != names:
        problems.append("hardware.device_names are not those of its largest training segment "
                        "(hardware.segments)")
    if largest != world_size(entry):
        problems.append(f"hardware.world_size is {world_size(entry)} but its largest training "
                        f"segment ran on {largest} ranks (hardware.segments)")
    if len(names) != world_size(entry):
        problems.append(f"hardware.device_names has {len(names)} names for world_size "
                        f"{world_size(entry)}")
    if (entry["hardware"].get("device") == "cuda"
            and entry["hardware"].get("gpu_count") != world_size(entry)):
        problems.append(f"hardware.gpu_count {entry['hardware'].get('gpu_count')} differs from "
                        f"world_size {world_size(entry)} (one GPU per rank)")
    listed = [item["claim"] for item in entry["claims"]]
    if sorted(listed) != sorted(CLAIMS):
        problems.append(f"claims lists {', '.join(listed) or 'nothing'}; an entry lists each of "
                        f"{', '.join(CLAIMS)} once")
    problems += lineage_violations(entry) + extraction_violations(entry)
    hashes, results = entry["hashes"], entry["results"]
    if entry["data"]["data_sha256"] != hashes["data_sha256"]:
        problems.append("data.data_sha256 differs from hashes.data_sha256")
    for key, what in (("model_sha256", "model"), ("tokenizer_sha256", "tokenizer")):
        if results[key] != hashes[key]:
            problems.append(f"results.{key} differs from hashes.{key}: the scores are for "
                            f"another {what}")
    return problems


def lineage_violations(entry: dict) -> list[str]:
    """Rule 2 for a derived run: its budget and elapsed time are its parent's plus its stage's,
    and the stage kept within its own budget (0 for a stage that trains nothing)."""
    lineage = entry.get("lineage")
    if lineage is None:
        return []
    problems = []
    for total, part in (("train_elapsed_s", "train_elapsed_s"), ("budget_s", "budget_s")):
        parent, stage = lineage[f"parent_{part}"], lineage[f"stage_{part}"]
        if abs(entry[total] - (parent + stage)) > SUM_TOLERANCE_S:
            problems.append(f"{total} {entry[total]:g} is not lineage.parent_{part} {parent:g} "
                            f"+ lineage.stage_{part} {stage:g}")
    if lineage["stage_train_elapsed_s"] > lineage["stage_budget_s"]:
        problems.append(f"lineage.stage_train_elapsed_s {lineage['stage_train_elapsed_s']:g} is "
                        f"over lineage.stage_budget_s {lineage['stage_budget_s']:g}")
    if lineage["parent_train_elapsed_s"] > lineage["parent_budget_s"]:
        problems.append(f"lineage.parent_train_elapsed_s {lineage['parent_train_elapsed_s']:g} "
                        f"is over lineage.parent_budget_s {lineage['parent_budget_s']:g}")
    return problems
