"""Results files land as a pair (JSON + predictions folder): a kill at any point leaves the old
pair or the new one, never a mix; leftovers are repaired on the next start; a full disk keeps
the earlier results and says how much space was needed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from glue_eval import results
from glue_eval.results import check_out_path, predictions_dir, recover, write_results


def _record(score: float) -> dict:
    return {"format": results.FORMAT, "tasks": {"rte": {"metrics": {"accuracy": score},
                                                        "seeds": [{"seed": 0}]}}}


def _predictions(value: int) -> dict:
    return {("rte", "dev", 0): (np.arange(4), np.full(4, value))}


def _pair(out):
    """The complete pair at `out` as (score, prediction values), checking every hash."""
    record = json.loads(out.read_text())
    [item] = record["tasks"]["rte"]["seeds"][0]["predictions"]
    path = out.parent / item["file"]
    assert sha256_file(path) == item["sha256"]  # the JSON names exactly the files beside it
    return record["tasks"]["rte"]["metrics"]["accuracy"], path.read_text().split()[-1]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("renames_done, lands", [(0, "old"), (1, "old"), (2, "old"),
                                                 (3, "new")])
def test_a_kill_between_the_renames_leaves_one_whole_pair(tmp_path, monkeypatch, renames_done,
                                                           lands):
    out = tmp_path / "glue.json"
    write_results(out, _record(50.0), _predictions(0), force=False)
    assert _pair(out) == (50.0, "0")
    _write_killed_after(out, monkeypatch, renames_done, force=True)
    recover(out)  # what the next `cram eval` does first
    assert _pair(out) == ((50.0, "0") if lands == "old" else (75.0, "1"))
    assert _leftovers(tmp_path) == []
    write_results(out, _record(60.0), _predictions(0), force=True)  # and the next write works
    assert _pair(out) == (60.0, "0")


def _write_killed_after(out, monkeypatch, renames_done, *, force):
    """write_results of (75.0, predictions "1") killed after `renames_done` renames of the
    landing."""
    real_replace, landing = os.replace, []

    def replace(src, dst):
        if not str(src).endswith(".tmp"):  # not a file written whole into the staging folder
            if len(landing) == renames_done:
                raise KeyboardInterrupt
            landing.append(src)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_results(out, _record(75.0), _predictions(1), force=force)
    monkeypatch.setattr(os, "replace", real_replace)


def _killed_after_first_rename(out, monkeypatch):
    """A first eval killed once its predictions folder landed, before its results file."""
    _write_killed_after(out, monkeypatch, 1, force=False)
    assert not out.exists()


def test_a_reader_recovers_an_eval_killed_between_its_renames(tmp_path, monkeypatch):
    """`cram submit` (or compare) finds the results the eval completed, not "no results"."""
    out = tmp_path / "eval" / "glue.json"
    _killed_after_first_rename(out, monkeypatch)
    assert results.recover_for_reading(out, lock=tmp_path)
    assert _pair(out) == (75.0, "1")
    assert _leftovers(out.parent) == []
    assert not results.recover_for_reading(out, lock=tmp_path)  # nothing more to do


def test_the_rerun_says_it_completed_the_interrupted_results(tmp_path, monkeypatch):
    out = tmp_path / "glue.json"
    _killed_after_first_rename(out, monkeypatch)
    with pytest.raises(UserError, match=r"glue.json exists \(completed now from what an eval "
                                        r"interrupted while writing it left\); pass --force"):
        check_out_path(out, force=False)
    assert _pair(out) == (75.0, "1")


def _deploy(content: bytes, *, killed: bool = False):
    """A stand-in for the encoder's deployment_record: writes the model file, returns its
    record (or is killed once the file is written, e.g. while timing the model)."""
    def deploy(path):
        path.write_bytes(content)
        if killed:
            raise KeyboardInterrupt
        return {"file": path.name, "sha256": hashlib.sha256(content).hexdigest()}
    return deploy


def test_the_deployed_model_lands_with_its_results(tmp_path):
    out, model = tmp_path / "glue.json", tmp_path / "glue-model.safetensors"
    write_results(out, _record(50.0), _predictions(0), force=False, deploy=_deploy(b"first"))
    deployment = json.loads(out.read_text())["deployment"]
    assert deployment == {"file": "glue-model.safetensors",
                          "sha256": hashlib.sha256(b"first").hexdigest()}
    assert model.read_bytes() == b"first"
    # Killed while the new model was being measured: the old set stays whole.
    with pytest.raises(KeyboardInterrupt):
        write_results(out, _record(75.0), _predictions(1), force=True,
                      deploy=_deploy(b"second", killed=True))
    assert _pair(out) == (50.0, "0") and model.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []
    # New results without a deployed model (an outside model): the old model goes with them.
    write_results(out, _record(60.0), _predictions(1), force=True)
    assert _pair(out) == (60.0, "1") and not model.exists() and _leftovers(tmp_path) == []
    # A deployed model without its results file (a killed eval) does not block a rerun.
    out.unlink()
    model.write_bytes(b"orphan")
    write_results(out, _record(65.0), _predictions(0), force=False, deploy=_deploy(b"third"))
    assert model.read_bytes() == b"third"


def test_a_predictions_folder_without_its_results_does_not_block_a_rerun(tmp_path):
    """An eval killed after writing its predictions folder but before its results file: no
    complete result exists, so a plain rerun (no --force) replaces the folder."""
    out = tmp_path / "glue.json"
    orphan = predictions_dir(out)
    orphan.mkdir()
    (orphan / "rte-dev.tsv").write_text("index\tprediction\n0\t1\n")
    (tmp_path / ".glue.json.k3j2l1m0.tmp").write_text("{half")  # a temporary JSON left behind
    (tmp_path / ".glue-predictions.a1b2c3d4.partial").mkdir()  # an unfinished staging folder
    check_out_path(out, force=False)
    assert _leftovers(tmp_path) == []
    write_results(out, _record(55.0), _predictions(1), force=False)
    assert _pair(out) == (55.0, "1") and sorted(os.listdir(orphan)) == ["rte-dev-seed0.tsv"]
    with pytest.raises(UserError, match="glue.json exists; pass --force"):
        check_out_path(out, force=False)


@pytest.fixture
def small_disk(tmp_path):
    """A real tmpfs of 1 MB under tmp_path (needs root; skipped elsewhere): room for two sets
    of results with their deployed model."""
    point = tmp_path / "disk"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.train
def test_a_full_disk_keeps_the_old_results_and_prints_the_new_scores(tiny_run, small_disk,
                                                                     tmp_path, capsys):
    from test_evaluate import write_glue_dir

    glue_dir = write_glue_dir(tmp_path / "glue", n_train=16, n_dev=60)
    out = small_disk / "glue.json"
    argv = ["eval", "glue", "--run", str(tiny_run), "--glue-dir", str(glue_dir), "--tasks",
            "stsb", "--protocol", "quick", "--out", str(out), "--threads", "1", "--quiet"]
    assert main(argv) == 0
    before = (out.read_bytes(), _leftovers(small_disk))
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave about 1 KB free
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(b"\0" * max(0, free - 1024))
    capsys.readouterr()
    assert main([*argv, "--force", "--seeds", "0,1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"cram eval: error: no space left on device writing {out}: "
                                   "it needs ") and captured.err.count("\n") == 1
    assert f"not saved (disk full), the scores for {out}:\nstsb: pearson " in captured.out
    assert (out.read_bytes(), _leftovers(small_disk)) == before  # the old results, untouched
    filler.unlink()
    assert main([*argv, "--force", "--seeds", "0,1"]) == 0  # space freed: the same command works
    assert json.loads(out.read_text())["protocol"]["seeds"] == [0, 1]

