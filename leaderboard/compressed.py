"""The claims of a compressed entry (cram compress), checked without torch.

A compressed entry carries `compression` (what was done to the parent: method, bits, sparsity
reached, stored size of final/, recovery training) and its results carry `deployment` (the
first task model as deployed: size on disk, kept parameters, CPU latency). Without the run,
the two must agree with each other, with the method string and with the lineage; with the
run, every size, count and sparsity is recomputed from the stored files themselves
(`cramming.compress.stored_stats` reads their safetensors headers and masks with numpy).
"""

from __future__ import annotations

from pathlib import Path

from crambench.contracts import sha256_file
from crambench.errors import UserError
from cramming.compress import parse_method


def consistency_problems(entry: dict) -> list[str]:
    """What the entry's own compression fields contradict (no run dir needed)."""
    record, lineage = entry.get("compression"), entry.get("lineage")
    deployment = entry["results"].get("deployment")
    if record is None:
        if deployment is not None and deployment["method"] != "none":
            return [f"results.deployment.method is {deployment['method']!r} but the entry has "
                    "no compression record"]
        return []
    problems = _method_problems(record)
    if lineage is None or lineage["stage"] != "compress":
        problems.append("compression needs a lineage record of stage 'compress' (the "
                        "uncompressed parent's hashes)")
    else:
        problems += _time_problems(record, lineage)
    if deployment is not None:
        for key in ("method", "bits", "sparsity", "quantization"):
            if deployment[key] != record[key]:
                problems.append(f"results.deployment.{key} is {deployment[key]!r} but "
                                f"compression.{key} is {record[key]!r}")
    return problems


def _method_problems(record: dict) -> list[str]:
    try:
        method = parse_method(record["method"])
    except UserError as err:
        return [f"compression.method: {err}"]
    problems = []
    if record["bits"] != method.stored_bits:
        problems.append(f"compression.bits is {record['bits']} but method {method} stores "
                        f"{method.stored_bits}-bit weights")
    quantized_bits = (record["quantization"] or {}).get("bits")
    if quantized_bits != method.bits:
        problems.append(f"compression.quantization is for {quantized_bits} bits but method "
                        f"{method} quantizes to {method.bits}")
    if record["sparsity_target"] != (method.sparsity or 0.0):
        problems.append(f"compression.sparsity_target {record['sparsity_target']} is not the "
                        f"method's {method.sparsity or 0.0}")
    # The documented rule: exactly round(target * N) of the N prunable weights are pruned.
    prunable = record["prunable_params"]
    pruned = round(record["sparsity_target"] * prunable)
    if prunable and abs(record["sparsity"] * prunable - pruned) >= 0.5:
        problems.append(f"compression.sparsity {record['sparsity']} is not "
                        f"{pruned}/{prunable} pruned weights, what prune:"
                        f"{record['sparsity_target']:g} reaches")
    if record["nonzero_params"] != record["params"] - round(record["sparsity"] * prunable):
        problems.append(f"compression.nonzero_params {record['nonzero_params']} is not params "
                        f"{record['params']} less the pruned weights")
    return problems


def _time_problems(record: dict, lineage: dict) -> list[str]:
    problems = []
    for key, lineage_key in (("train_elapsed_s", "stage_train_elapsed_s"),
                             ("budget_s", "stage_budget_s")):
        if record[key] != lineage[lineage_key]:
            problems.append(f"compression.{key} {record[key]:g} is not lineage.{lineage_key} "
                            f"{lineage[lineage_key]:g}")
    try:
        stage = parse_method(lineage["method"])
    except UserError as err:
        return [*problems, f"lineage.method: {err}"]
    if not stage.trains and (lineage["stage_budget_s"] or lineage["stage_train_elapsed_s"]):
        problems.append(f"lineage.method {stage} trains nothing (post-training quantization): "
                        "its stage budget and time must be 0")
    return problems


def run_problems(entry: dict, run: Path) -> list[str]:
    """Sizes, kept parameters, sparsity and bits recomputed from the run's stored files: the
    compressed final/ model and the deployed model beside the results. final/ holds the weights
    fine-tuning starts from, quantized only after it, so its bits are checked on the deployed
    model alone."""
    problems = []
    record = entry.get("compression")
    if record is not None:
        problems += _stats_problems("compression", record, run / "final" / "model.safetensors",
                                    keys=STORED_KEYS[:-1])
    deployment = entry["results"].get("deployment")
    if deployment is not None:
        path = (run / entry["results_file"]).parent / deployment["file"]
        problems += _stats_problems("results.deployment", deployment, path)
        if path.is_file() and sha256_file(path) != deployment["sha256"]:
            problems.append(f"results.deployment.sha256 does not match {path}")
    return problems


# (claim, stored_stats key) pairs, recomputed from a stored file
STORED_KEYS = (("stored_bytes", "stored_bytes"), ("params", "params"),
               ("nonzero_params", "kept_params"), ("sparsity", "sparsity"), ("bits", "bits"))


def _stats_problems(where: str, claims: dict, path: Path, keys=STORED_KEYS) -> list[str]:
    # numpy, imported only when a run is checked: `cram leaderboard` loads no heavy library
    from cramming.compress import stored_stats

    try:
        stats = stored_stats(path)
    except (OSError, ValueError, KeyError) as err:
        return [f"{where} cannot be recomputed from {path}: {err}"]
    problems = []
    for key, stat in keys:
        if claims[key] != stats[stat]:
            problems.append(f"{where}.{key} is {claims[key]!r} but {path} holds "
                            f"{stats[stat]!r}")
    return problems
