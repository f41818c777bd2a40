"""Claims a run dir can only corroborate: which device trained it, how fast, with which code,
and whether final/ holds the weights training ended with.

A run dir is its submitter's own, so none of this proves anything; each check makes a lie cost
more files (and more consistent numbers) to forge. `cross_check` returns the entry's `claims`
record, one item per claim saying whether it was cross-checked and against what, and one line
per contradiction found:

    hardware     summary.json's training segments against the checkpoint's train state
                 (written at every checkpoint) and the metrics lines that name their devices
                 (the first line each segment logged)
    throughput   the tokens/s metrics.jsonl logs against what the claimed device can do: the
                 planner's speed law for the shape (cramming.plan), a run on that device is
                 not THROUGHPUT_BAND times slower, nor faster than its tensor peak allows
    code         code_sha256 against the package files of this validator's own code: the same
                 files must carry the same code_version (other versions: the submitter's word)
    final_model  final/model.safetensors holds the tensors of the post-loop checkpoint, whose
                 hash (tensors_sha256) its train state records

A claim none of these reaches is recorded as the submitter's word, with why; the site shows
both. `validate --run` computes the record again and compares it with the entry's
(`claim_problems`).
"""

from __future__ import annotations

from pathlib import Path

from crambench.code import code_sha256, code_version
from crambench.errors import UserError
from crambench.tensor_hash import tensors_sha256
from leaderboard.records import read_metrics, read_train_state, run_file
from leaderboard.schema import CLAIMS

# The speed law is a fit with wide errors (no GPU measured its constants here; small shapes are
# overhead-bound): a run on the claimed device is taken to reach at least 1/THROUGHPUT_BAND of
# what it predicts. A CPU trains a full-size BERT 100x or more slower than a ranked GPU.
THROUGHPUT_BAND = 20
# The Kaplan-style FLOP count leaves small terms out: room above the tensor-core peak before a
# rate is called impossible.
PEAK_MARGIN = 1.5


def cross_check(entry: dict, run: Path, config) -> tuple[list[dict], list[str]]:
    """(the entry's `claims` record, contradictions found) for a trained run's entry whose
    summary fields were copied into it; `config`: config.yaml as `records.read_config` reads
    it, or None when it cannot be read."""
    record, problems = [], []
    checks = {"hardware": _hardware, "throughput": _throughput, "code": _code,
              "final_model": _final_model}
    for claim in CLAIMS:
        check = checks[claim]
        try:
            checked, detail, found = check(entry, run, config)
        except UserError as err:
            checked, detail, found = False, f"cannot be checked: {err}", []
        record.append({"claim": claim, "cross_checked": checked and not found, "detail": detail})
        problems += found
    return record, problems


def claim_problems(entry: dict, computed: list[dict]) -> list[str]:
    """The entry's `claims` against the record the run dir gives now: the same, item for item.
    The code claim depends on the validator's own files too: checked by other code than the
    run's, only an entry calling it cross-checked when this code cannot is wrong."""
    found = {item["claim"]: item for item in computed}
    problems = []
    for item in entry["claims"]:
        now = found.get(item["claim"])
        if now is None or item == now:
            continue
        if (item["claim"] == "code" and not (item["cross_checked"] and not now["cross_checked"])
                and entry["code_version"] != code_version()):
            continue
        problems.append(f"claims: {item['claim']} is recorded as "
                        f"{_said(item)} but the run dir gives {_said(now)}")
    return problems


def _said(item: dict) -> str:
    verdict = "cross-checked" if item["cross_checked"] else "the submitter's word"
    return f"{verdict} ({item['detail']!r})"


def _active(segments: list[dict], step: int) -> dict:
    """The segment that logged `step`: the last one started before it."""
    earlier = [s for s in segments if s["started_step"] < step]
    return earlier[-1] if earlier else segments[0]


def _hardware(entry: dict, run: Path, config) -> tuple[bool, str, list[str]]:
    segments = entry["hardware"].get("segments")
    if not segments:
        return False, "summary.json records no training segments", []
    problems, sources = [], []
    if entry.get("lineage") is None:  # a derived run keeps no checkpoint
        state = read_train_state(run)
        if "segments" in state:
            sources.append("checkpoint/train_state.json")
            mine = [(s.get("world_size"), s.get("device_names"), s.get("started_step"))
                    for s in state["segments"]] if isinstance(state["segments"], list) else None
            if mine != [(s["world_size"], s["device_names"], s["started_step"])
                        for s in segments]:
                problems.append(f"hardware.segments differ from the segments in "
                                f"{run}/checkpoint/train_state.json (written at every "
                                "checkpoint): the hardware was changed after training")
    logged = [r for r in read_metrics(run) or [] if "device_names" in r]
    if logged:
        sources.append("metrics.jsonl")
    for record in logged:
        expected = _active(segments, record["step"])["device_names"]
        if record["device_names"] != expected:
            problems.append(f"{run}/metrics.jsonl step {record['step']} was logged on "
                            f"{record['device_names']} but hardware.segments say "
                            f"{expected}: the hardware was changed after training")
            break
    if not sources:
        return False, "only summary.json records the devices", problems
    return True, f"the devices agree with {' and '.join(sources)}", problems


def _throughput(entry: dict, run: Path, config) -> tuple[bool, str, list[str]]:
    hardware = entry["hardware"]
    if entry.get("lineage") is not None:
        return False, "a derived run's log continues its parent's", []
    if hardware["device"] != "cuda" or config is None:
        return False, "no speed figures for a CPU", []
    from cramming.plan.gpus import derived_law, find_gpu  # numpy only, no torch
    from cramming.plan.speed_law import flops_per_token

    spec = find_gpu(hardware["gpu_name"] or "")
    if spec is None:
        return False, f"no speed figures for {hardware['gpu_name']}", []
    micro_batch = config.impl.micro_batch
    records = read_metrics(run) or []
    rates = [(b["tokens"] - a["tokens"]) / (b["elapsed_s"] - a["elapsed_s"])
             for a, b in zip(records, records[1:], strict=False) if b["elapsed_s"] > a["elapsed_s"]]
    if not isinstance(micro_batch, int) or micro_batch < 2 or not rates:
        return False, "too few metrics records (or no micro-batch) to compare", []
    ranks, name = hardware["world_size"], f"{hardware['world_size']} x {spec.name}"
    best, average = max(rates), records[-1]["tokens"] / max(records[-1]["elapsed_s"], 1e-9)
    expected = derived_law(spec).tokens_per_s(config.model, micro_batch) * ranks
    peak = spec.tensor_tflops * 1e12 * ranks / flops_per_token(config.model)
    problems = []
    if best < expected / THROUGHPUT_BAND:
        problems.append(f"{run}/metrics.jsonl logs at most {best:,.0f} tokens/s, under "
                        f"1/{THROUGHPUT_BAND} of the {expected:,.0f} the speed law gives {name} "
                        "for this shape: the run did not train on that hardware")
    if average > peak * PEAK_MARGIN:
        problems.append(f"{run}/metrics.jsonl logs {average:,.0f} tokens/s on average, more "
                        f"than {name} can do at its tensor-core peak ({peak:,.0f} for this "
                        "shape): the run did not train on that hardware, or its times were "
                        "changed")
    detail = (f"{best:,.0f} tokens/s at best, {average:,.0f} on average; {name}: "
              f"{expected / THROUGHPUT_BAND:,.0f} (1/{THROUGHPUT_BAND} of the speed law) to "
              f"{peak * PEAK_MARGIN:,.0f} (tensor peak)")
    return True, detail, problems


def _code(entry: dict, run: Path, config) -> tuple[bool, str, list[str]]:
    stated, version = entry.get("code_sha256"), entry["code_version"]
    if stated is None:
        return False, "the run recorded no code_sha256", []
    own, own_version = code_sha256(), code_version()
    if stated == own:
        if version != own_version:
            return False, "code_version and code_sha256 disagree", [
                f"code_version is {version!r} but code_sha256 is the hash of the package "
                f"files of {own_version!r}"]
        return True, f"code_sha256 is the hash of the package files of {own_version}", []
    if version == own_version:
        return False, (f"code_sha256 is not the hash of {own_version}'s package files (a "
                       "modified checkout)"), []
    return False, f"trained with {version}, not this validator's {own_version}", []


def _final_model(entry: dict, run: Path, config) -> tuple[bool, str, list[str]]:
    if entry.get("lineage") is not None:
        return False, "a derived run's final/ is written by its stage, with no checkpoint", []
    recorded = read_train_state(run).get("tensors_sha256")
    if recorded is None:
        return False, "the checkpoint records no tensors_sha256", []
    actual = tensors_sha256(run_file(run, "final/model.safetensors"))
    if actual != recorded:
        return False, "final/ differs from the post-loop checkpoint", [
            f"{run}/final/model.safetensors does not hold the weights training ended with: "
            f"its tensors differ from tensors_sha256 in {run}/checkpoint/train_state.json"]
    return True, "final/ holds the tensors of the post-loop checkpoint", []
