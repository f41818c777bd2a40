"""Round trip through the real stages: prepare -> pretrain -> eval glue -> submit -> validate.

A small slice of the demo corpus, a 10-second `tiny` run, and one GLUE task (RTE) from the shared
data under the quick protocol; then every kind of tampering, in the entry or in the run dir,
must make `validate --run --glue-dir` fail with its own reason.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import edited_entry

from cramming import pretrain
from cramming.cli import main
from data_prep import prepare
from glue_eval import compute_averages, evaluate_glue
from leaderboard import submit, validate_entries

pytestmark = pytest.mark.slow  # about 45 s on two cores


@pytest.fixture(scope="module")
def one_thread():
    # Two cores shared with other work: a second torch thread only adds contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, shared_data, one_thread):
    """(run dir, entry path, GLUE dir) of a real, scored tiny run."""
    root = tmp_path_factory.mktemp("roundtrip")
    manifest = prepare(["demo"], root / "data", vocab_size=8192, max_docs=100,
                       val_fraction=0.1, quiet=True)
    # 100 documents fill fewer than 8192 WordPiece tokens; the model takes the real size.
    pretrain(root / "data", root / "run", budget="10s", preset="tiny", device="cpu",
             overrides=[f"model.vocab_size={manifest['vocab_size']}"], quiet=True)
    glue = shared_data / "glue"
    evaluate_glue(root / "run", tasks="rte", glue_dir=glue, protocol="quick", quiet=True,
                  device="cpu")
    entry = root / "entries" / "tiny.json"
    submit(root / "run", "tiny", out=entry)
    return root / "run", entry, glue


@pytest.fixture
def copy_of(scored, tmp_path):
    """A private copy of the run dir (and its data dir) that a test may damage."""
    run, entry, glue = scored
    shutil.copytree(run.parent / "data", tmp_path / "data")
    shutil.copytree(run, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    summary["data_path"] = str(tmp_path / "data")
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    return tmp_path / "run", entry, glue


def _problems(entry_path, run, glue):
    return validate_entries([entry_path], run=run, glue_dir=glue)[str(entry_path)]


def test_real_run_validates_with_run_and_glue_dir(scored, capsys):
    run, entry_path, glue = scored
    assert _problems(entry_path, run, glue) == []
    entry = json.loads(entry_path.read_text())
    assert entry["track"] == "open" and entry["results"]["suite"] == "glue"
    assert "protocol 'quick' is not the ranked 'cramming' protocol" in entry["track_reason"]
    assert set(entry["results"]["tasks"]) == {"rte"}
    assert main(["leaderboard", "validate", str(entry_path), "--run", str(run),
                 "--glue-dir", str(glue)]) == 0
    assert capsys.readouterr().out == "valid\n"


def _consistent_score_edit(entry):
    # Raise RTE and recompute both averages, so only the run and the predictions can tell.
    results = entry["results"]
    results["tasks"]["rte"]["metrics"]["accuracy"] += 7.0
    results.update(compute_averages({t: s["metrics"] for t, s in results["tasks"].items()}))


@pytest.mark.parametrize("change, reasons", [
    (_consistent_score_edit, ["results differ from ",
                              "results.tasks.rte.metrics.accuracy is "]),
    (lambda e: e.update(budget_s=20.0), ["budget_s is 20.0 but "]),
    (lambda e: e["hashes"].update(config_sha256="a" * 64),
     ["hashes.config_sha256 is ", "hashes.config_sha256 aaaaaaaaaaaa... does not match"]),
    (lambda e: e.update(track="ranked", track_reason=None), ["track is 'ranked' but Rules v1"]),
    (lambda e: e["loss_curve"]["points"].pop(), ["loss_curve does not match"]),
    (lambda e: e["data"]["sources"].pop(), ["data.sources differ from"]),
])
def test_entry_tampering_caught_against_the_run(scored, tmp_path, change, reasons):
    run, entry_path, glue = scored
    problems = _problems(edited_entry(entry_path, tmp_path, change), run, glue)
    for reason in reasons:
        assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_run_dir_tampering_caught(copy_of):
    run, entry_path, glue = copy_of
    assert _problems(entry_path, run, glue) == []
    predictions = run / "eval" / "glue-predictions" / "rte-dev.tsv"
    lines = predictions.read_text().splitlines()
    index, value = lines[1].split("\t")
    lines[1] = f"{index}\t{1 - int(value)}"
    predictions.write_text("\n".join(lines) + "\n")
    (run / "final" / "model.safetensors").write_bytes(b"not the trained weights")
    shard = sorted((run.parent / "data" / "shards").glob("train-*.bin"))[0]
    shard.write_bytes(b"\0" * 256 + shard.read_bytes()[256:])
    problems = _problems(entry_path, run, glue)
    for reason in ["rte dev predictions ", "results.tasks.rte.metrics.accuracy is ",
                   "hashes.model_sha256 ", "hashes.data_sha256 cannot be recomputed: "]:
        assert any(p.startswith(reason) for p in problems), (reason, problems)
