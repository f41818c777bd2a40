"""Leaderboard entries: submit from a run dir, Rules v1 tracks, validation and its reasons.

The run dirs here are built by hand to the on-disk contracts (run dir, results JSON, data
manifest), with GLUE metrics computed by glue_eval from labels and predictions made here, so
these tests need no training. The round trip through real stages is in
test_roundtrip.py.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from crambench.errors import UserError
from crambench.shell.cli import main
from cramming import config_sha256, load_config
from glue_eval import PROTOCOLS, compute_averages, compute_metrics, median_over_seeds, seed_spread
from leaderboard import submit, validate_entries

A6000 = {"device": "cuda", "gpu_name": "NVIDIA RTX A6000", "gpu_count": 1,
         "gpu_memory_gb": 47.53, "track": "ranked", "track_reason": None, "world_size": 1,
         "device_names": ["NVIDIA RTX A6000"]}
CPU = {"device": "cpu", "gpu_name": None, "gpu_count": 0, "gpu_memory_gb": None,
       "track": "open", "track_reason": "CPU run", "world_size": 1,
       "device_names": ["cpu (a test CPU)"]}
# Tokens/s a hand-made run logs per rank: within what an RTX A6000 does for crammed-bert by
# the planner's speed law (leaderboard.cross_checks).
RATE_PER_RANK = 30_000
ALL_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _task_predictions(task: str, rng: np.random.Generator) -> dict[str, tuple]:
    """split -> (labels, predictions) of a model that is right about 80% of the time."""
    splits = ("dev_matched", "dev_mismatched") if task == "mnli" else ("dev",)
    out = {}
    for split in splits:
        if task == "stsb":
            labels = rng.uniform(0, 5, 60)
            out[split] = (labels, labels + rng.normal(0, 1.0, 60))
        else:
            classes = 3 if task == "mnli" else 2
            labels = rng.integers(0, classes, 60)
            wrong = rng.random(60) < 0.2
            out[split] = (labels, np.where(wrong, (labels + 1) % classes, labels))
    return out


def write_results(run, tasks=ALL_TASKS, *, suite="glue", protocol="cramming", model_sha256,
                  tokenizer_sha256, seeds=(0,)):
    """RUN/eval/{suite}.json and its prediction files, as glue_eval writes them (contract 3):
    each task fine-tuned once per seed, scored by the median over the seeds."""
    rng = np.random.default_rng(0)
    pred_dir = run / "eval" / f"{suite}-predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    record = {"format": "cram-glue/2", "suite": suite,
              "protocol": PROTOCOLS[protocol].record(seeds), "source": "dir",
              "from_scratch": False, "model_sha256": model_sha256,
              "tokenizer_sha256": tokenizer_sha256, "tasks": {}}
    if suite == "probe":
        record["protocol"]["name"] = "probe"
        record["data_sha256"] = _sha(b"shards of probe data")
    for task in tasks:
        runs = []
        for seed in seeds:
            metrics, predictions = {}, []
            if suite == "probe":  # probe tasks are not GLUE tasks: an accuracy, no GLUE labels
                path = pred_dir / f"{task}-dev-seed{seed}.tsv"
                path.write_text("index\tprediction\n0\t1\n")
                metrics["accuracy"] = float(rng.uniform(20, 60))
                predictions.append({"split": "dev", "file": f"{pred_dir.name}/{path.name}",
                                    "sha256": _sha(path.read_bytes())})
            for split, (labels, preds) in (_task_predictions(task, rng).items()
                                           if suite == "glue" else ()):
                metrics.update(compute_metrics(task, labels, preds, split=split))
                lines = ["index\tprediction"] + [
                    f"{i}\t{repr(float(p)) if task == 'stsb' else int(p)}"
                    for i, p in enumerate(preds)]
                path = pred_dir / f"{task}-{split}-seed{seed}.tsv"
                path.write_text("\n".join(lines) + "\n")
                predictions.append({"split": split, "file": f"{pred_dir.name}/{path.name}",
                                    "sha256": _sha(path.read_bytes())})
            runs.append({"seed": seed, "metrics": metrics, "seconds": 1.0,
                         "predictions": predictions})
        per_seed = [r["metrics"] for r in runs]
        splits = [item["split"] for item in runs[0]["predictions"]]
        record["tasks"][task] = {
            "metrics": median_over_seeds(per_seed), "spread": seed_spread(per_seed),
            "n_train": 100,
            "n_dev": {split: 60 for split in splits} if len(splits) > 1 else 60, "epochs": 5,
            "seconds": 1.0 * len(seeds),
            "malformed_rows": {"train": 0, **{split: 0 for split in splits}}, "seeds": runs}
        if suite == "probe":
            record["tasks"][task]["dev_positive_fraction"] = 50.0
    if suite == "probe":
        record.update({key: {"value": None, "label": "probe tasks are not GLUE",
                             "components": [], "complete": False}
                       for key in ("avg_cramming", "avg_glue")})
    else:
        record.update(compute_averages({t: s["metrics"] for t, s in record["tasks"].items()}))
    record.update({"software": {"python": "3.11.9", "torch": "2.13.0", "cuda": "12.8",
                                "scikit_learn": "1.6.1", "platform": "Linux-x86_64"},
                   "started_utc": "2026-11-23T10:00:00Z", "finished_utc": "2026-11-23T10:30:00Z"})
    (run / "eval" / f"{suite}.json").write_text(json.dumps(record, indent=2))
    return record


def make_run(tmp_path, *, hardware=A6000, budget_s=86400.0, elapsed_s=86390.5,
             tasks=ALL_TASKS, suite="glue", protocol="cramming", log_lines=500, name="run",
             seeds=(0,)):
    """A finished, scored run dir and its data dir, written to contracts 1-3: every record
    that carries a claim (summary, config, checkpoint train state, metrics, final model
    config, manifest, results) agrees with the others."""
    data = tmp_path / f"{name}-data"
    data.mkdir()
    data_sha = _sha(b"shards of " + name.encode())
    tokenizer = b'{"tokenizer of": "%s"}' % name.encode()
    (data / "tokenizer.json").write_bytes(tokenizer)
    (data / "manifest.json").write_text(json.dumps({
        "format": "cram-data/1", "data_sha256": data_sha, "tokenizer_sha256": _sha(tokenizer),
        "sources": [{"name": "demo:python-topics", "kind": "demo", "version": "python 3.11.9",
                     "bytes": 1234, "documents": 5, "sha256": _sha(b"x")}]}))
    run = tmp_path / name
    (run / "final").mkdir(parents=True)
    (run / "checkpoint").mkdir()
    cfg = load_config("crammed-bert", [f"data.path={data}", f"train.budget_s={budget_s}"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    model_bytes = b"weights of " + name.encode()
    (run / "final" / "model.safetensors").write_bytes(model_bytes)
    (run / "final" / "tokenizer.json").write_bytes(tokenizer)
    params = 119_589_889  # the crammed-bert preset
    (run / "final" / "model_config.json").write_text(json.dumps(
        {"format": "cram-model/1", **dataclasses.asdict(cfg.model), "params": params}))
    model_sha = _sha(model_bytes)
    per_line = int(RATE_PER_RANK * hardware.get("world_size", 1) * elapsed_s / log_lines)
    per_line -= per_line % cfg.model.seq_len
    steps, tokens = log_lines * 10, log_lines * per_line
    segments = ([{**{k: hardware.get(k) for k in ("device", "gpu_name", "gpu_count",
                                                   "world_size", "device_names")},
                  "started_step": 0, "started_elapsed_s": 0.0}]
                if "world_size" in hardware else None)
    with open(run / "metrics.jsonl", "w") as handle:
        for line in range(1, log_lines + 1):
            first = {"device_names": hardware["device_names"]} if line == 1 and segments else {}
            handle.write(json.dumps({
                "step": line * 10, "elapsed_s": round(elapsed_s * line / log_lines, 3),
                "tokens": line * per_line, "loss": round(10.0 / (1 + line / 50), 5), "lr": 1e-3,
                "batch_size": 64, "tokens_per_s": 1e5, **first}) + "\n")
    train_loss = round(10.0 / (1 + log_lines / 50), 5)
    (run / "checkpoint" / "train_state.json").write_text(json.dumps({
        "format": "cram-checkpoint/1", "step": steps, "tokens": tokens, "rows": steps * 64,
        "elapsed_s": elapsed_s, "config_sha256": config_sha256(cfg), "data_sha256": data_sha,
        **({"segments": segments} if segments else {})}))
    if segments:
        hardware = {**hardware, "segments": segments}
    summary = {
        "format": "cram-run/1", "budget_s": budget_s, "train_elapsed_s": elapsed_s,
        "stopped_by": "budget", "steps": steps, "tokens_seen": tokens,
        "train_loss": train_loss, "val_loss": 2.3, "params": params, "preset": "crammed-bert",
        "model": {key: getattr(cfg.model, key) for key in
                  ("layers", "hidden", "heads", "ffn_hidden", "vocab_size", "seq_len")},
        "hardware": hardware,
        "software": {"python": "3.11.9", "torch": "2.13.0", "cuda": "12.8", "platform": "linux"},
        "data_sha256": data_sha, "data_path": str(data), "tokenizer_sha256": _sha(tokenizer),
        "config_sha256": config_sha256(run / "config.yaml"),
        "model_sha256": model_sha, "code_version": "abc1234",
        "started_utc": "2026-11-22T09:00:00+00:00", "finished_utc": "2026-11-23T09:00:00+00:00"}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    if tasks:
        write_results(run, tasks, suite=suite, protocol=protocol, model_sha256=model_sha,
                      tokenizer_sha256=_sha(tokenizer), seeds=seeds)
    return run


def _write(path, entry) -> str:
    path.write_text(json.dumps(entry))
    return str(path)


@pytest.fixture
def ranked_entry(tmp_path):
    run = make_run(tmp_path)
    out = tmp_path / "entries" / "a6000.json"
    entry = submit(run, "a6000", out=out)
    return out, entry


def test_submit_ranked_entry_carries_contract_and_hash_chain(ranked_entry, tmp_path):
    out, entry = ranked_entry
    assert json.loads(out.read_text()) == entry
    assert entry["format"] == "cram-entry/2" and entry["rules_version"] == 1
    assert (entry["track"], entry["track_reason"]) == ("ranked", None)
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert entry["hashes"] == {
        "data_sha256": summary["data_sha256"], "config_sha256": summary["config_sha256"],
        "tokenizer_sha256": _sha((run / "final" / "tokenizer.json").read_bytes()),
        "model_sha256": _sha((run / "final" / "model.safetensors").read_bytes()),
        "eval_sha256": _sha((run / "eval" / "glue.json").read_bytes())}
    assert entry["results"] == json.loads((run / "eval" / "glue.json").read_text())
    assert entry["data"]["sources"][0]["name"] == "demo:python-topics"
    assert entry["date"] == "2026-11-23"
    points = entry["loss_curve"]["points"]
    assert len(points) == 200  # thinned from 500 log lines, first and last kept
    assert points[0][0] == pytest.approx(86390.5 / 500) and points[-1][0] == 86390.5
    assert validate_entries([out]) == {str(out): []}


def test_cpu_run_is_open_track_with_reason(tmp_path):
    entry = submit(make_run(tmp_path, hardware=CPU, budget_s=180, elapsed_s=179.0), "cpu",
                   out=tmp_path / "cpu.json")
    assert entry["track"] == "open"
    assert entry["track_reason"].startswith("cpu is not a ranked GPU (RTX 2080 Ti")


def test_probe_results_make_an_open_entry_without_glue_score(tmp_path):
    entry = submit(make_run(tmp_path, hardware=CPU, budget_s=180, elapsed_s=179.0,
                            tasks=("continuation", "word_order"), suite="probe", protocol="quick"),
                   "probe", out=tmp_path / "probe.json")
    assert entry["track"] == "open" and "probe suite: no GLUE score" in entry["track_reason"]
    assert validate_entries([tmp_path / "probe.json"]) == {str(tmp_path / "probe.json"): []}


def test_partial_glue_on_ranked_gpu_is_open_and_says_why(tmp_path):
    entry = submit(make_run(tmp_path, tasks=("cola", "sst2", "mrpc", "stsb", "rte"),
                            protocol="quick"), "quick", out=tmp_path / "quick.json")
    assert entry["track"] == "open"
    assert "protocol 'quick' is not the ranked 'cramming' protocol" in entry["track_reason"]
    assert "GLUE tasks missing: mnli, qqp, qnli" in entry["track_reason"]


def _tamper_score(entry):
    entry["results"]["tasks"]["cola"]["metrics"]["mcc"] += 5.0


def _tamper_budget_below_elapsed(entry):
    entry["budget_s"] = 3600.0


def _tamper_budget_over_a_day(entry):
    entry["budget_s"] = 2 * 86400.0


def _tamper_model_hash(entry):
    entry["hashes"]["model_sha256"] = "0" * 64


def _tamper_data_hash(entry):
    entry["data"]["data_sha256"] = "f" * 64


def _tamper_track(entry):
    entry["track"], entry["track_reason"] = "open", "modest"


def _tamper_gpu(entry):
    entry["hardware"]["gpu_name"] = "NVIDIA H100 80GB HBM3"


def _tamper_recipe(entry):
    entry["results"]["protocol"].update(lr=1e-4, epochs=10)


def _tamper_from_scratch(entry):
    entry["results"]["from_scratch"] = True


def _tamper_mnli_mm(entry):
    # Dropped along with a recomputed average, so the averages agree with the scores.
    results = entry["results"]
    del results["tasks"]["mnli"]["metrics"]["accuracy_mm"]
    results.update(compute_averages({t: s["metrics"] for t, s in results["tasks"].items()}))


@pytest.mark.parametrize("tamper, reason", [
    (_tamper_score, "results.avg_cramming.value is "),
    (_tamper_recipe, "track is 'ranked' but Rules v1 give 'open': fine-tuning protocol "
                     "'cramming' with a changed recipe: epochs 10 (ranked: 5), lr 0.0001 "
                     "(ranked: 4e-05)"),
    (_tamper_from_scratch, "track is 'ranked' but Rules v1 give 'open': scored from random "
                           "weights"),
    # Each task's metrics are exactly the task table's: the schema names them.
    (_tamper_mnli_mm, "results.tasks.mnli.metrics: 'accuracy_mm' is a required property"),
    (lambda e: e["results"]["protocol"].update(rankable=False),
     "track is 'ranked' but Rules v1 give 'open': the results are marked not rankable"),
    (lambda e: e["results"].update(outside_model={"source": "exports/tiny"}),
     "track is 'ranked' but Rules v1 give 'open': outside model, not trained by this harness"),
    (_tamper_budget_below_elapsed, "train_elapsed_s 86390.5 is over budget_s 3600"),
    (_tamper_budget_over_a_day, "track is 'ranked' but Rules v1 give 'open': budget 48 h is "
                                "over the ranked 24 h"),
    (_tamper_model_hash, "results.model_sha256 differs from hashes.model_sha256"),
    (_tamper_data_hash, "data.data_sha256 differs from hashes.data_sha256"),
    (_tamper_track, "track is 'open' but Rules v1 give 'ranked'"),
    (_tamper_gpu, "track is 'ranked' but Rules v1 give 'open': NVIDIA H100 80GB HBM3 is not a "
                  "ranked GPU"),
])
def test_tampered_entry_fails_with_the_specific_reason(ranked_entry, tmp_path, tamper, reason):
    _, entry = ranked_entry
    entry = copy.deepcopy(entry)
    tamper(entry)
    path = _write(tmp_path / "tampered.json", entry)
    problems = validate_entries([path])[path]
    assert any(p.startswith(reason) for p in problems), problems


def test_partial_average_cannot_claim_to_be_complete(tmp_path):
    entry = submit(make_run(tmp_path, tasks=("cola", "rte"), protocol="quick"), "partial",
                   out=tmp_path / "partial.json")
    entry["results"]["avg_glue"]["complete"] = True
    path = _write(tmp_path / "claims-complete.json", entry)
    assert validate_entries([path])[path] == [
        "results.avg_glue.complete is True but GLUE-style average: one score per task (mean of "
        "its metrics; MNLI mean of m/mm), WNLI excluded (partial: 2 of 8; missing sst2, mrpc, "
        "stsb, qqp, mnli, qnli)"]


def test_score_tamper_reports_both_averages(ranked_entry, tmp_path):
    _, entry = ranked_entry
    entry["results"]["tasks"]["rte"]["metrics"]["accuracy"] = 99.0
    path = _write(tmp_path / "t.json", entry)
    problems = validate_entries([path])[path]
    # The score is no longer the median of its seed's metrics, nor the averages' component.
    assert [p.split(" is ")[0] for p in problems] == ["results.tasks.rte.metrics.accuracy",
                                                      "results.avg_cramming.value",
                                                      "results.avg_glue.value"]


@pytest.mark.parametrize("edit, reason", [
    (lambda e: e.pop("name"), "entry: 'name' is a required property"),
    (lambda e: e.update(format="cram-entry/1"),
     "format 'cram-entry/1' is an earlier entry format that did not require the run's ranks "
     "(hardware.world_size, device_names), its category and which claims were cross-checked; "
     "submit the run again with `cram submit`"),
    (lambda e: e.update(format="cram-entry/9"),
     "unknown format 'cram-entry/9' (expected 'cram-entry/2')"),
    (lambda e: e["results"]["tasks"]["cola"]["metrics"].update(mcc="high"),
     "results.tasks.cola.metrics.mcc: 'high' is not of type 'number'"),
    (lambda e: e["hashes"].update(eval_sha256="not-a-hash"),
     "hashes.eval_sha256: 'not-a-hash' does not match"),
    (lambda e: e.update(budget_s="24h"), "budget_s: '24h' is not of type 'number'"),
])
def test_malformed_entry_reasons(ranked_entry, tmp_path, edit, reason):
    _, entry = ranked_entry
    edit(entry)
    path = _write(tmp_path / "bad.json", entry)
    problems = validate_entries([path])[path]
    assert any(p.startswith(reason) for p in problems), problems


def test_several_seeds_are_ranked_and_their_median_is_the_score(tmp_path):
    entry = submit(make_run(tmp_path, seeds=(0, 1, 2, 3, 4)), "seeds", out=tmp_path / "s.json")
    assert (entry["track"], entry["results"]["protocol"]["seeds"]) == ("ranked", [0, 1, 2, 3, 4])
    assert validate_entries([tmp_path / "s.json"]) == {str(tmp_path / "s.json"): []}


def _best_seed_reported(entry):
    # Cherry-picking: the best seed's accuracy instead of the median, averages made to agree.
    results = entry["results"]
    rte = results["tasks"]["rte"]
    rte["metrics"]["accuracy"] = max(r["metrics"]["accuracy"] for r in rte["seeds"]) + 1.0
    results.update(compute_averages({t: s["metrics"] for t, s in results["tasks"].items()}))


def _worst_seed_dropped(entry):
    rte = entry["results"]["tasks"]["rte"]
    rte["seeds"].remove(min(rte["seeds"], key=lambda r: r["metrics"]["accuracy"]))


@pytest.mark.parametrize("tamper, reason", [
    (_best_seed_reported, "results.tasks.rte.metrics.accuracy is "),
    (_worst_seed_dropped, "results.tasks.rte.seeds ran ["),
    (lambda e: e["results"]["protocol"].update(seeds=[0, 1]),
     "results.tasks.cola.seeds ran [0, 1, 2, 3, 4], the protocol lists [0, 1]"),
    (lambda e: e["results"]["protocol"].update(seeds=[0, 1, 1]),
     "results.protocol.seeds: [0, 1, 1] has non-unique elements"),
    (lambda e: e["results"]["tasks"]["cola"]["seeds"][4]["metrics"].update(mcc=-50.0),
     "results.tasks.cola.spread.mcc.mean is "),
    (lambda e: e["results"]["tasks"]["sst2"]["spread"]["accuracy"].update(std=0.1),
     "results.tasks.sst2.spread.accuracy.std is 0.1 but its seeds give "),
])
def test_seed_tampering_is_caught(tmp_path, tamper, reason):
    entry = submit(make_run(tmp_path, seeds=(0, 1, 2, 3, 4)), "seeds", out=tmp_path / "s.json")
    tamper(entry)
    path = _write(tmp_path / "tampered.json", entry)
    problems = validate_entries([path])[path]
    assert any(p.startswith(reason) for p in problems), problems


def test_one_seed_results_of_the_first_format_still_validate(tmp_path):
    """A cram-glue/1 file (one seed: `protocol.seed`, predictions on the task) as glue_eval
    wrote it before several seeds existed: it submits, validates and ranks unchanged."""
    run = make_run(tmp_path)
    path = run / "eval" / "glue.json"
    record = json.loads(path.read_text())
    record["format"] = "cram-glue/1"
    record["protocol"]["seed"] = record["protocol"].pop("seeds")[0]
    for task in record["tasks"].values():
        [seed_run] = task.pop("seeds")
        del task["spread"]
        task["predictions"] = seed_run["predictions"]
    path.write_text(json.dumps(record))
    entry = submit(run, "v1", out=tmp_path / "v1.json")
    assert entry["results"] == record and entry["track"] == "ranked"
    assert validate_entries([tmp_path / "v1.json"]) == {str(tmp_path / "v1.json"): []}
    from leaderboard.prediction_checks import prediction_problems

    assert prediction_problems(entry, run / "eval") == []
    (run / "eval" / record["tasks"]["rte"]["predictions"][0]["file"]).write_text("edited")
    assert prediction_problems(entry, run / "eval")[0].startswith("rte dev predictions ")


def test_validate_cli_prints_valid_or_every_reason(ranked_entry, tmp_path, capsys):
    out, entry = ranked_entry
    assert main(["leaderboard", "validate", str(out)]) == 0
    assert capsys.readouterr().out == "valid\n"
    entry["budget_s"] = 3600.0
    entry["results"]["tasks"]["sst2"]["metrics"]["accuracy"] = 100.0
    bad = _write(tmp_path / "bad.json", entry)
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["leaderboard", "validate", bad, str(tmp_path / "junk.json"),
                 str(tmp_path / "absent.json")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{bad}: train_elapsed_s 86390.5 is over budget_s 3600" in lines
    assert any(line.startswith(f"{bad}: results.avg_glue.value is ") for line in lines)
    assert any("junk.json is not valid JSON" in line for line in lines)
    assert any(line.endswith("absent.json not found") for line in lines)


def test_submit_refuses_run_without_results_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path, tasks=())
    status = main(["submit", "--run", str(run), "--name", "x", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert "has no eval results (eval/glue.json or eval/probe.json)" in err


def test_submit_user_errors(ranked_entry, tmp_path):
    out, _ = ranked_entry
    run = tmp_path / "run"
    with pytest.raises(UserError, match="already exists"):
        submit(run, "a6000", out=out)
    submit(run, "a6000", out=out, force=True)
    with pytest.raises(UserError, match="entry name"):
        submit(run, "../escape", out=tmp_path / "e.json")
    with pytest.raises(UserError, match="run dir .* not found"):
        submit(tmp_path / "nowhere", "x", out=tmp_path / "e.json")
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("lr: 0.001", "lr: 0.002"))
    with pytest.raises(UserError, match="config.yaml does not match the config_sha256 .*"
                                        "changed after training"):
        submit(run, "x", out=tmp_path / "e.json")
    (run / "config.yaml").write_text(config)
    (run / "final" / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(UserError, match="model.safetensors does not match .*changed after "
                                        "training"):
        submit(run, "x", out=tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(("edit", "reason"), [
    ({"status": "failed", "failure": "no optimizer step in 145.2s of the 10s budget"},
     r"failed \(no optimizer step in 145.2s of the 10s budget\): it cannot be submitted"),
    ({"stopped_by": "interrupt", "status": "interrupted"},
     r"is unfinished \(stopped by interrupt\): finish it with `cram pretrain --resume "),
    ({"steps": 0}, r"made no optimizer step"),
])
def test_submit_refuses_a_failed_or_unfinished_run(tmp_path, edit, reason):
    run = make_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, **edit}))
    with pytest.raises(UserError, match=reason):
        submit(run, "x", out=tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()


def test_glue_dir_needs_run(ranked_entry, tmp_path):
    out, _ = ranked_entry
    with pytest.raises(UserError, match="--glue-dir needs --run"):
        validate_entries([out], glue_dir=tmp_path)


def test_submit_cli_reports_score_and_track(tmp_path, capsys):
    run = make_run(tmp_path)
    out = tmp_path / "cli.json"
    assert main(["submit", "--run", str(run), "--name", "cli", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.fullmatch(rf"wrote {re.escape(str(out))}: GLUE avg \(cram\) \d+\.\d\d; "
                        r"track ranked\n", printed)


def test_validate_reports_broken_run_dir_without_traceback(ranked_entry, tmp_path):
    out, _ = ranked_entry
    run = tmp_path / "run"
    (run / "eval" / "glue.json").write_text("{half a file")
    (run / "metrics.jsonl").write_text("not json\n")
    problems = validate_entries([out], run=run)[str(out)]
    assert any(p.startswith("results_file ") and "cannot be read" in p for p in problems)
    assert any(p.startswith("loss_curve cannot be recomputed: ") for p in problems)
    assert validate_entries([out], run=tmp_path / "gone")[str(out)] == [
        f"run dir {tmp_path / 'gone'} not found"]


def _rte_dev(glue, n):
    """A GLUE folder whose RTE dev split has `n` rows; row i has label id i % 2."""
    (glue / "RTE").mkdir(parents=True)
    labels = np.arange(n) % 2
    names = ("entailment", "not_entailment")
    rows = [f"{i}\tpremise {i}\thypothesis {i}\t{names[y]}" for i, y in enumerate(labels)]
    (glue / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                          + "\n".join(rows) + "\n")


def _rte_entry(run, indices, predictions, *, protocol):
    path = run / "eval" / "glue-predictions" / "rte-dev.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("index\tprediction\n"
                    + "".join(f"{i}\t{p}\n" for i, p in zip(indices, predictions, strict=True)))
    return {"results_file": "eval/glue.json", "results": {
        "format": "cram-glue/1", "suite": "glue", "protocol": protocol,
        "tasks": {"rte": {"metrics": {"accuracy": 75.0}, "predictions": [
            {"split": "dev", "file": "glue-predictions/rte-dev.tsv", "sha256": "0" * 64}]}}}}


QUICK_4 = {"name": "quick", "rankable": False, "max_dev_rows": 4}


@pytest.mark.parametrize("protocol, indices, reason", [
    # The quick protocol scores a subset: its labels are the dev labels at those rows.
    (QUICK_4, [1, 4, 6, 9], None),
    (QUICK_4, [1, 4, 4, 9], "names a dev row more than once"),
    (QUICK_4, [1, 4, 6, 10], "names rows outside the 10-row dev split"),
    (QUICK_4, [-1, 4, 6, 9], "names rows outside the 10-row dev split"),
    (QUICK_4, [1, 4, 6], "has predictions for 3 of the 10 dev rows; the 'quick' protocol "
                         "scores 4"),
    ({"name": "cramming", "rankable": True, "max_dev_rows": None}, [1, 4, 6, 9],
     "has predictions for 4 of the 10 dev rows; the 'cramming' protocol scores 10"),
])
def test_glue_dir_recomputes_the_rows_actually_scored(tmp_path, protocol, indices, reason):
    from leaderboard.prediction_checks import metric_problems

    _rte_dev(tmp_path / "glue", 10)
    # Right on every scored row but the last (row i's label is i % 2): 75% on rows 1, 4, 6, 9,
    # but 25% if they were matched to the first four dev rows instead.
    predictions = [i % 2 for i in indices[:-1]] + [1 - indices[-1] % 2]
    entry = _rte_entry(tmp_path / "run", indices, predictions, protocol=protocol)
    problems = metric_problems(entry, tmp_path / "run", tmp_path / "glue")
    if reason is None:
        assert problems == []
        # A metric that no prediction file backs cannot be checked, so it is not accepted.
        entry["results"]["tasks"]["rte"]["metrics"]["f1"] = 50.0
        assert metric_problems(entry, tmp_path / "run", tmp_path / "glue") == [
            "results.tasks.rte.metrics.f1 has no saved predictions to recompute it from"]
    else:
        assert len(problems) == 1 and problems[0].startswith("rte dev: metrics cannot be "
                                                             "recomputed: "), problems
        assert reason in problems[0], problems


def test_validate_against_an_unscored_run_says_so_once(ranked_entry, tmp_path):
    out, _ = ranked_entry
    run = tmp_path / "run"
    (run / "eval" / "glue.json").unlink()
    (run / "final" / "model.safetensors").unlink()
    problems = validate_entries([out], run=run)[str(out)]
    about_results = [p for p in problems if "glue.json" in p]
    assert len(about_results) == 1, problems
    assert about_results[0].startswith(f"results_file {run / 'eval' / 'glue.json'} not found")
    assert any(p == f"hashes.model_sha256 cannot be recomputed: "
               f"{run / 'final' / 'model.safetensors'}: No such file or directory"
               for p in problems), problems


def test_validate_a_folder_says_to_name_its_files(tmp_path):
    assert validate_entries([tmp_path]) == {str(tmp_path): [
        f"entry {tmp_path} is a folder; name the entry files in it ({tmp_path}/*.json)"]}
