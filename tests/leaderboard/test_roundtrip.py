"""Round trip through the real stages: prepare -> pretrain -> eval glue -> submit -> validate.

A small slice of the demo corpus, a 10-second `tiny` run, and one GLUE task (RTE) from the shared
data under the quick protocol, made once for the module. Then the tamper suite: every field of
the entry, edited one at a time (and an unknown field added to every object), must make
`validate --run --glue-dir` fail; and edits of the run dir's own records (a relabelled budget,
a tokenizer or model swapped in) must be caught with their own reasons.
"""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

from crambench.errors import UserError
from crambench.shell.cli import main
from glue_eval import compute_averages, evaluate_glue
from leaderboard import submit, validate_entries
from leaderboard.tracks import decide_track

pytestmark = pytest.mark.slow  # about 60 s on two cores


@pytest.fixture(scope="module")
def one_thread():
    # Two cores shared with other work: a second torch thread only adds contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scored(scored_tiny_run, tmp_path_factory, one_thread):
    """(run dir, entry path, GLUE dir) of the session's real, scored tiny run."""
    run, glue = scored_tiny_run
    entry = tmp_path_factory.mktemp("roundtrip") / "entries" / "tiny.json"
    submit(run, "tiny", out=entry)
    return run, entry, glue


@pytest.fixture
def copy_of(scored, tmp_path):
    """A private copy of the run dir (and its data dir) that a test may damage."""
    run, entry, glue = scored
    shutil.copytree(run.parent / "data", tmp_path / "data")
    shutil.copytree(run, tmp_path / "run")
    _edit_json(tmp_path / "run" / "summary.json", data_path=str(tmp_path / "data"))
    return tmp_path / "run", entry, glue


def _edit_json(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))
    return record


def _problems(entry_path, run=None, glue=None):
    return validate_entries([entry_path], run=run, glue_dir=glue)[str(entry_path)]


def _problems_of(entry, tmp_path, run=None, glue=None):
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    return _problems(path, run, glue)


def _has(problems, *starts):
    for start in starts:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_real_run_validates_with_run_and_glue_dir(scored, capsys):
    run, entry_path, glue = scored
    assert _problems(entry_path, run, glue) == []
    entry = json.loads(entry_path.read_text())
    assert entry["track"] == "open" and entry["results"]["suite"] == "glue"
    assert "protocol 'quick' is not the ranked 'cramming' protocol" in entry["track_reason"]
    assert set(entry["results"]["tasks"]) == {"rte"}
    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run.parent / "data" / "manifest.json").read_text())
    assert entry["hashes"]["tokenizer_sha256"] == summary["tokenizer_sha256"] \
        == manifest["tokenizer_sha256"] == entry["results"]["tokenizer_sha256"]
    assert main(["leaderboard", "validate", str(entry_path), "--run", str(run),
                 "--glue-dir", str(glue)]) == 0
    assert capsys.readouterr().out == "valid\n"


# --- the tamper suite ------------------------------------------------------------------------

# Plausible replacements for fields whose values come from a small set; any other string is
# edited by appending a character, a number by a small change, a hash by one hex digit.
ALTERNATIVES = {
    "track": "ranked", "suite": "probe", "stopped_by": "steps", "device": "cuda",
    "format": "cram-entry/2", "source": "hub:nyu-mll/glue", "split": "dev_matched",
    "name": "cramming", "schedule": "linear", "pooling": "mean",
}
# The one field an edit may change freely: the submitter's label for the entry, not a claim
# about the run (the schema checks its spelling; the site its uniqueness).
LABELS = {("name",)}


def _edited(value, key):
    """One or two plausible wrong values for a leaf."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, float):
        return [value + max(abs(value) * 0.01, 0.01)]
    if value is None:
        return [1, "x"]
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return [("1" if value[0] != "1" else "2") + value[1:]]
    if key in ALTERNATIVES and ALTERNATIVES[key] != value:
        return [ALTERNATIVES[key], value + "x"]
    if len(value) >= 10 and value[:4].isdigit() and value[4] == "-":  # a date or timestamp
        return [str(int(value[:4]) - 1) + value[4:]]
    return [value + "x"]


def tamper_edits(value, path=()):
    """(path, edit, new value) for every field of `value`: "set" a leaf to a wrong value,
    "add" an unknown field to an object, "drop" the last item of a list. Long lists (the loss
    curve) are edited at their first, middle and last item."""
    if isinstance(value, dict):
        yield path, "add", "unknown_field"
        for key, item in value.items():
            yield from tamper_edits(item, (*path, key))
    elif isinstance(value, list):
        if value:
            yield path, "drop", None
        picked = {0, len(value) // 2, len(value) - 1} if len(value) > 3 else range(len(value))
        for index in sorted(picked):
            yield from tamper_edits(value[index], (*path, index))
    else:
        key = next((p for p in reversed(path) if isinstance(p, str)), None)
        for new in _edited(value, key):
            yield path, "set", new


def _apply(entry, path, edit, new):
    entry = copy.deepcopy(entry)
    target = entry
    for part in path if edit != "set" else path[:-1]:
        target = target[part]
    if edit == "add":
        target[new] = 1
    elif edit == "drop":
        target.pop()
    else:
        target[path[-1]] = new
    return entry


def test_tamper_suite_every_field_edited_alone_is_rejected(scored, tmp_path):
    run, entry_path, glue = scored
    entry = json.loads(entry_path.read_text())
    edits = [(path, edit, new) for path, edit, new in tamper_edits(entry)
             if not (edit == "set" and path in LABELS)]
    assert len(edits) > 150  # every field: top level, hardware, hashes, results, curve, ...
    accepted = []
    target = tmp_path / "edited.json"
    for path, edit, new in edits:
        edited = _apply(entry, path, edit, new)
        assert edited != entry, (path, edit, new)
        target.write_text(json.dumps(edited))
        if not _problems(target, run, glue):
            accepted.append(f"{'.'.join(map(str, path)) or 'entry'}: {edit} {new!r}")
    assert accepted == []


def test_name_is_a_label_checked_for_its_spelling(scored, tmp_path):
    run, entry_path, glue = scored
    entry = json.loads(entry_path.read_text())
    for name, valid in (("tiny-renamed", True), ("../escape", False), ("", False)):
        path = tmp_path / "named.json"
        path.write_text(json.dumps({**entry, "name": name}))
        assert (_problems(path, run, glue) == []) is valid, name


# --- time claims (issue: a 30 s run relabelled as 20 s) ----------------------------------------

def _relabel_time(entry_or_summary, budget_s, elapsed_s):
    entry_or_summary.update(budget_s=budget_s, train_elapsed_s=elapsed_s)


def test_relabelled_budget_is_caught_with_and_without_the_run(copy_of, tmp_path):
    run, entry_path, glue = copy_of
    entry = json.loads(entry_path.read_text())
    last_logged = entry["loss_curve"]["points"][-1][0]
    assert last_logged > 9  # a 10 s run
    # Relabelled consistently in the summary and the entry: a 10 s run claims 7 s with 6.9.
    summary = json.loads((run / "summary.json").read_text())
    _relabel_time(summary, 7.0, 6.9)
    (run / "summary.json").write_text(json.dumps(summary))
    _relabel_time(entry, 7.0, 6.9)
    relabelled = tmp_path / "relabelled.json"
    relabelled.write_text(json.dumps(entry))
    # The entry alone: its own loss curve ends past the elapsed time it claims.
    assert _problems(relabelled) == [
        f"train_elapsed_s 6.9 is less than the loss curve's last time {last_logged:g} s: the "
        "run trained longer than it claims"]
    problems = _problems(relabelled, run, glue)
    _has(problems, "budget_s is 7 but ", "train_elapsed_s is 6.9 but ",
         "train_elapsed_s 6.9 is less than the ")
    assert any("config.yaml (hashed as config_sha256) trained with train.budget_s 10"
               in p for p in problems), problems
    assert any("checkpoint/train_state.json says elapsed_s" in p for p in problems), problems
    assert any("metrics.jsonl logged at step" in p for p in problems), problems


def test_loss_curve_running_backwards_is_rejected_from_the_entry_alone(scored, tmp_path):
    _, entry_path, _ = scored
    entry = json.loads(entry_path.read_text())
    points = entry["loss_curve"]["points"]
    points[1][0] = points[0][0] / 2  # earlier than the first point, still not negative
    path = tmp_path / "backwards.json"
    path.write_text(json.dumps(entry))
    assert _problems(path) == [f"loss_curve.points[1] elapsed time {points[1][0]:g} s is "
                               f"before the previous point's {points[0][0]:g} s"]
    points[1][0] = -1.0
    path.write_text(json.dumps(entry))
    _has(_problems(path), "loss_curve.points.1.0: -1.0 is less than the minimum of 0")


@pytest.mark.parametrize("line, reason", [
    ({"elapsed_s": -100.0}, "elapsed_s -100.0 is not a number >= 0"),
    ({"step": 0}, "step 0 is not an integer >= 1"),
    ({"step": "7"}, "step '7' is not an integer >= 1"),
    ({"elapsed_s": 0.0, "step": 10**6}, "elapsed_s 0.0 at step 1000000 is less than "),
])
def test_metrics_with_negative_or_backward_time_are_rejected(copy_of, line, reason):
    run, entry_path, glue = copy_of
    path = run / "metrics.jsonl"
    records = [json.loads(text) for text in path.read_text().splitlines()]
    records.append({**records[-1], **line})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    problems = _problems(entry_path, run, glue)
    assert any(p.startswith("metrics cannot be checked: ") and reason in p
               for p in problems), problems
    with pytest.raises(UserError, match="metrics.jsonl line"):
        submit(run, "again", out=run.parent / "again.json")


def test_checkpoint_train_state_is_a_time_record(copy_of):
    run, entry_path, glue = copy_of
    _edit_json(run / "checkpoint" / "train_state.json", elapsed_s=-100.0)
    problems = _problems(entry_path, run, glue)
    assert any("checkpoint/train_state.json says elapsed_s -100" in p for p in problems)
    (run / "checkpoint" / "train_state.json").unlink()
    problems = _problems(entry_path, run, glue)
    assert any(p.startswith("train_elapsed_s cannot be checked: ") and "is missing" in p
               for p in problems), problems


# --- the hash chain: tokenizer and weights ------------------------------------------------------

def _flip_tokenizer(path):
    # A vocabulary entry renamed: still a valid tokenizer file, a different tokenizer.
    text = path.read_text()
    path.write_text(text.replace('"the":', '"thee":', 1))
    assert path.read_text() != text


def test_edited_final_tokenizer_is_refused_by_eval_submit_and_validate(copy_of, tmp_path):
    run, entry_path, glue = copy_of
    _flip_tokenizer(run / "final" / "tokenizer.json")
    problems = _problems(entry_path, run, glue)
    assert any(p.startswith("hashes.tokenizer_sha256 ") and "does not match the recomputed"
               in p for p in problems), problems
    with pytest.raises(UserError, match="final/tokenizer.json does not match the "
                                        "tokenizer_sha256 in .*summary.json"):
        evaluate_glue(run, tasks="rte", glue_dir=glue, protocol="quick", force=True,
                      quiet=True, device="cpu")
    with pytest.raises(UserError, match="final/tokenizer.json does not match the "
                                        "tokenizer_sha256"):
        submit(run, "edited", out=tmp_path / "edited.json")


def test_edited_final_weights_are_refused_by_eval(copy_of):
    run, _, glue = copy_of
    weights = run / "final" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of the last weight
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="final/model.safetensors does not match the "
                                        "model_sha256 in .*summary.json"):
        evaluate_glue(run, tasks="rte", glue_dir=glue, protocol="quick", force=True,
                      quiet=True, device="cpu")


def test_final_model_config_must_match_the_hashed_config(copy_of):
    run, entry_path, glue = copy_of
    _edit_json(run / "final" / "model_config.json", norm_eps=1e-5)
    assert any(p.endswith("final/model_config.json differs from config.yaml (hashed as "
                          "config_sha256) at norm_eps") for p in _problems(entry_path, run, glue))


# --- fields the run dir vouches for (issue: gpu_count 0 shown as "8x cpu") ---------------------

@pytest.mark.parametrize("field, value, reason", [
    (("hardware", "gpu_count"), 8, "hardware.gpu_count is 8 but "),
    (("hardware", "gpu_memory_gb"), 24.0, "hardware.gpu_memory_gb is 24.0 but "),
    (("training", "val_loss"), 1.5, "training.val_loss is 1.5 but "),
    (("training", "train_loss"), 1.5, "training.train_loss is 1.5 but "),
    (("date",), "2020-01-01", "date is '2020-01-01' but "),
    (("software", "torch"), "2.0.0", "software.torch is '2.0.0' but "),
    (("code_version",), "0.0.1", "code_version is '0.0.1' but "),
    (("model", "shape", "unknown_field"), 1, "model.shape: Additional properties are not "),
])
def test_fields_the_run_dir_vouches_for(scored, tmp_path, field, value, reason):
    run, entry_path, glue = scored
    entry = json.loads(entry_path.read_text())
    target = entry
    for part in field[:-1]:
        target = target[part]
    target[field[-1]] = value
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    _has(_problems(path, run, glue), reason)


def test_consistent_score_edit_is_caught_by_the_run_and_the_predictions(scored, tmp_path):
    run, entry_path, glue = scored
    entry = json.loads(entry_path.read_text())
    results = entry["results"]
    rte = results["tasks"]["rte"]
    rte["metrics"]["accuracy"] += 7.0
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(entry))
    # The task score alone: its seed's run still says otherwise.
    _has(_problems(path), "results.tasks.rte.metrics.accuracy is ")
    # The seed's run, its spread, the task score and the averages, all edited consistently.
    rte["seeds"][0]["metrics"]["accuracy"] += 7.0
    for key in ("mean", "min", "max"):
        rte["spread"]["accuracy"][key] += 7.0
    results.update(compute_averages({t: s["metrics"] for t, s in results["tasks"].items()}))
    path.write_text(json.dumps(entry))
    assert _problems(path) == []  # nothing in the entry alone contradicts it
    _has(_problems(path, run, glue), "results differ from ",
         "results.tasks.rte.seeds[0].metrics.accuracy is ")


# --- paths stay inside the run dir --------------------------------------------------------------

def test_recorded_paths_stay_inside_the_run_dir(copy_of, tmp_path):
    run, entry_path, glue = copy_of
    entry = json.loads(entry_path.read_text())
    entry["results_file"] = "../../../../../../etc/passwd"
    path = tmp_path / "escape.json"
    path.write_text(json.dumps(entry))
    assert _problems(path, run, glue) == [
        "results_file: '../../../../../../etc/passwd' does not match "
        "'^eval/[A-Za-z0-9_-][A-Za-z0-9._-]*\\\\.json$'"]
    # A symbolic link in the run dir leads no further than a recorded path.
    predictions = run / "eval" / "glue-predictions" / "rte-dev-seed0.tsv"
    outside = tmp_path / "outside.tsv"
    shutil.copyfile(predictions, outside)
    predictions.unlink()
    predictions.symlink_to(outside)
    problems = _problems(entry_path, run, glue)
    assert any("leads outside" in p and "rte-dev-seed0.tsv" in p for p in problems), problems


def test_run_dir_tampering_caught(copy_of):
    run, entry_path, glue = copy_of
    assert _problems(entry_path, run, glue) == []
    predictions = run / "eval" / "glue-predictions" / "rte-dev-seed0.tsv"
    lines = predictions.read_text().splitlines()
    index, value = lines[1].split("\t")
    lines[1] = f"{index}\t{1 - int(value)}"
    predictions.write_text("\n".join(lines) + "\n")
    (run / "final" / "model.safetensors").write_bytes(b"not the trained weights")
    shard = sorted((run.parent / "data" / "shards").glob("train-*.bin"))[0]
    shard.write_bytes(b"\0" * 256 + shard.read_bytes()[256:])
    problems = _problems(entry_path, run, glue)
    _has(problems, "rte dev predictions ", "results.tasks.rte.seeds[0].metrics.accuracy is ",
         "hashes.model_sha256 ", "hashes.data_sha256 cannot be recomputed: ")


# --- the site ranks only what its run dir and predictions confirm ---------------------------

def test_build_ranks_the_real_entry_and_rejects_a_forged_one(scored, tmp_path, capsys):
    run, entry_path, glue = scored
    entries = tmp_path / "entries"
    entries.mkdir()
    shutil.copy(entry_path, entries / "tiny.json")
    # A forgery that passes every record-free check: a ranked GPU, the ranked track, the
    # cramming protocol's name. Only the run dir can tell.
    forged = json.loads(entry_path.read_text())
    forged["name"] = "forged"
    forged["hardware"].update(device="cuda", gpu_name="NVIDIA RTX A6000", gpu_count=1,
                              gpu_memory_gb=47.5)
    forged["track"], forged["track_reason"] = decide_track(forged)
    assert _problems_of(forged, tmp_path) == []
    (entries / "forged.json").write_text(json.dumps(forged))
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("tiny", "forged"):
        (runs / name).symlink_to(run)
    site = tmp_path / "site"
    assert main(["leaderboard", "build", "--entries", str(entries), "--out", str(site),
                 "--runs", str(runs), "--glue-dir", str(glue), "--strict"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("forged.json: rejected: hardware.")
    page = (site / "index.html").read_text()
    open_ = page.split("<h2>Open track</h2>")[1].split("</section>")[0]
    # The real entry is verified: ranked first in its track (its one-task average is partial,
    # so it is listed without a rank number but in the verified table, not the unverified one).
    assert "<strong>tiny</strong>" in open_ and "Unverified entries" not in page
    assert "forged" not in page.split("Entries not shown")[0]
    assert "<code>forged.json</code>: hardware." in page


def test_an_unreadable_config_is_a_problem_not_a_crash(copy_of):
    run, entry_path, glue = copy_of
    (run / "config.yaml").write_text("train: [unclosed\n")
    problems = _problems(entry_path, run, glue)
    assert any(p.startswith("config.yaml cannot be read: ") for p in problems), problems


def test_results_with_glue_server_files_submit_and_validate(copy_of, tmp_path):
    # `cram eval glue --predict-test` writes the server's files beside the results; the entry
    # carries their record, and validate --run checks each file against its sha256.
    run, _, glue = copy_of
    with_test = tmp_path / "glue"
    shutil.copytree(glue / "RTE", with_test / "RTE")
    dev = (with_test / "RTE" / "dev.tsv").read_text().splitlines()
    # As GLUE ships test.tsv: index and the two sentences, no label.
    (with_test / "RTE" / "test.tsv").write_text("".join(
        "\t".join(line.split("\t")[:3]) + "\n" for line in dev[:21]))
    evaluate_glue(run, tasks="rte", glue_dir=with_test, protocol="quick", predict_test=True,
                  force=True, quiet=True, device="cpu")
    entry = tmp_path / "entries" / "with-test.json"
    submit(run, "with-test", out=entry)
    recorded = json.loads(entry.read_text())["results"]["test_predictions"]
    assert [f["file"] for f in recorded["files"]] == ["glue-test/RTE.tsv"]
    assert recorded["files"][0]["rows"] == 20
    assert _problems(entry, run=run, glue=with_test) == []
    served = run / "eval" / "glue-test" / "RTE.tsv"
    served.write_text(served.read_text().replace("not_entailment", "entailment"))
    _has(_problems(entry, run=run), f"test_predictions: {served} does not match its sha256")


# --- claims the run dir cross-checks ---------------------------------------------------------

def test_the_entry_says_which_claims_were_cross_checked(scored):
    _, entry_path, _ = scored
    claims = {item["claim"]: item for item in json.loads(entry_path.read_text())["claims"]}
    assert claims["hardware"] == {
        "claim": "hardware", "cross_checked": True,
        "detail": "the devices agree with checkpoint/train_state.json and metrics.jsonl"}
    assert claims["throughput"] == {"claim": "throughput", "cross_checked": False,
                                    "detail": "no speed figures for a CPU"}
    assert claims["code"]["cross_checked"] and claims["final_model"]["cross_checked"]


def _relabel_as_a6000(hardware):
    names = ["NVIDIA RTX A6000"]
    hardware.update(device="cuda", gpu_name=names[0], gpu_count=1, gpu_memory_gb=47.53,
                    device_names=names)
    if "track" in hardware:  # the summary's record labels its track; an entry's does not
        hardware.update(track="ranked", track_reason=None)
    for part in hardware["segments"]:
        part.update(device="cuda", gpu_name=names[0], gpu_count=1, device_names=names)


def test_a_cpu_run_relabelled_as_a_ranked_gpu_is_caught(copy_of, tmp_path):
    run, entry_path, glue = copy_of
    summary = json.loads((run / "summary.json").read_text())
    _relabel_as_a6000(summary["hardware"])
    (run / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match="hardware.segments differ from the segments in .*"
                                        "checkpoint/train_state.json"):
        submit(run, "relabelled", out=tmp_path / "relabelled.json")
    entry = json.loads(entry_path.read_text())
    _relabel_as_a6000(entry["hardware"])
    entry["hardware"]["segments"] = [{k: part[k] for k in ("world_size", "device_names",
                                                          "started_step", "started_elapsed_s")}
                                     for part in entry["hardware"]["segments"]]
    entry["track_reason"] = decide_track(entry)[1]
    problems = _problems_of(entry, tmp_path, run, glue)
    _has(problems, f"hardware.segments differ from the segments in {run}/checkpoint/",
         f"{run}/metrics.jsonl step 1 was logged on ['cpu (")


def test_an_edited_code_version_contradicts_the_code_hash(copy_of, tmp_path):
    run, _, _ = copy_of
    _edit_json(run / "summary.json", code_version="0.0.1")
    with pytest.raises(UserError, match="code_version is '0.0.1' but code_sha256 is the hash "
                                        "of the package files of "):
        submit(run, "relabelled", out=tmp_path / "relabelled.json")


def test_the_checkpoint_must_be_of_this_config_and_final_of_its_weights(copy_of, tmp_path):
    """A forgery that rewrites every hash it knows of: another model in final/ (its sha256
    rewritten in the summary) and a checkpoint of another config."""
    from safetensors.torch import load_file, save_file

    from crambench.contracts import sha256_file

    run, entry_path, glue = copy_of
    weights = load_file(run / "final" / "model.safetensors")
    first = sorted(weights)[0]
    weights[first] = weights[first] + 0.01
    save_file(weights, run / "final" / "model.safetensors", metadata={"format": "pt"})
    _edit_json(run / "summary.json", model_sha256=sha256_file(run / "final" / "model.safetensors"))
    _edit_json(run / "checkpoint" / "train_state.json", config_sha256="0" * 64)
    problems = _problems(entry_path, run, glue)
    _has(problems, f"{run}/final/model.safetensors does not hold the weights training ended "
                   "with: its tensors differ from tensors_sha256 in ",
         f"{run}/checkpoint/train_state.json: config_sha256 000000000000... is not the hash of "
         f"{run}/config.yaml")


def test_validate_refuses_other_dev_labels_in_one_line(scored, tmp_path):
    run, entry_path, glue = scored
    copy = tmp_path / "glue"
    (copy / "RTE").mkdir(parents=True)
    lines = (glue / "RTE" / "dev.tsv").read_text(encoding="utf-8-sig").split("\n")
    head, label = lines[1].rsplit("\t", 1)
    lines[1] = head + "\t" + ("entailment" if label == "not_entailment" else "not_entailment")
    (copy / "RTE" / "dev.tsv").write_text("\n".join(lines), encoding="utf-8")
    assert _problems(entry_path, run, copy) == [
        f"results.tasks.rte.dev_labels_sha256: the rte dev labels in {copy} are not those the "
        "results were scored against; validate with the GLUE files they were scored with"]
