"""A compressed run through the real stages: pretrain -> compress (prune:0.5+int8) -> eval
glue -> submit -> validate, and the site's size figure and compressed-track table. Tampering
with any compression claim (sparsity, bits, bytes, lineage hash, compression time), in the
entry or in the run dir, is caught.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from test_torch_free import _imported_by

from cramming.compress import compress
from glue_eval import evaluate_glue
from leaderboard import build_site, submit, validate_entries

pytestmark = pytest.mark.slow  # about 50 s on two cores


@pytest.fixture(scope="module")
def scored(tmp_path_factory, scored_tiny_run):
    """(parent run, compressed run, entries dir, GLUE dir), both runs scored on RTE."""
    parent, glue = scored_tiny_run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("compressed")
    compress(parent, "prune:0.5+int8", root / "p50-int8", budget="6s", quiet=True)
    evaluate_glue(root / "p50-int8", tasks="rte", glue_dir=glue, protocol="quick", quiet=True,
                  device="cpu")
    for name, run in (("tiny", parent), ("tiny-p50-int8", root / "p50-int8")):
        submit(run, name, out=root / "entries" / f"{name}.json")
    torch.set_num_threads(threads)
    return parent, root / "p50-int8", root / "entries", glue


def _problems(path, run, glue=None):
    return validate_entries([path], run=run, glue_dir=glue)[str(path)]


def test_compressed_entry_validates_and_says_what_was_done(scored):
    parent, run, entries, glue = scored
    path = entries / "tiny-p50-int8.json"
    assert _problems(path, run, glue) == []
    entry = json.loads(path.read_text())
    record, deployment = entry["compression"], entry["results"]["deployment"]
    assert record["method"] == "prune:0.5+int8" and record["bits"] == 8
    assert record["sparsity"] == round(0.5 * record["prunable_params"]) / \
        record["prunable_params"]
    assert entry["lineage"]["parent_model_sha256"] == \
        json.loads((parent / "summary.json").read_text())["model_sha256"]
    assert entry["train_elapsed_s"] <= entry["budget_s"] == 16.0
    assert (deployment["method"], deployment["bits"], deployment["sparsity"]) == \
        ("prune:0.5+int8", 8, record["sparsity"])
    stored = run / "eval" / deployment["file"]
    assert deployment["stored_bytes"] == stored.stat().st_size
    plain = json.loads((entries / "tiny.json").read_text())["results"]["deployment"]
    assert plain["bits"] == 32 and plain["sparsity"] == 0.0
    assert deployment["stored_bytes"] < 0.3 * plain["stored_bytes"]  # int8 and a 1-bit mask


def _edit(path, tmp_path, change):
    entry = copy.deepcopy(json.loads(path.read_text()))
    change(entry)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(entry))
    return edited


def _shift_time(entry):
    # Claim less compression time, consistently everywhere in the entry: only the run can tell.
    entry["compression"]["train_elapsed_s"] -= 1.0
    entry["lineage"]["stage_train_elapsed_s"] -= 1.0
    entry["train_elapsed_s"] = round(entry["train_elapsed_s"] - 1.0, 3)


@pytest.mark.parametrize("change, reasons", [
    (lambda e: e["compression"].update(sparsity=0.6),
     ["compression.sparsity 0.6 is not ", "compression.sparsity is 0.6 but "]),
    (lambda e: e["compression"].update(bits=4),
     ["compression.bits is 4 but method prune:0.5+int8 stores 8-bit weights",
      "results.deployment.bits is 8 but compression.bits is 4"]),
    (lambda e: e["results"]["deployment"].update(stored_bytes=1000),
     ["results differ from ", "results.deployment.stored_bytes is 1000 but "]),
    (lambda e: e["compression"].update(stored_bytes=1000),
     ["compression.stored_bytes is 1000 but "]),
    (lambda e: e["lineage"].update(parent_model_sha256="0" * 64),
     ["lineage.parent_model_sha256 is '000", "lineage.parent_model_sha256 000000000000... does "
                                               "not match"]),
    (lambda e: e["compression"].update(train_elapsed_s=0.5),
     ["compression.train_elapsed_s 0.5 is not lineage.stage_train_elapsed_s"]),
    (_shift_time, ["train_elapsed_s is ", "lineage.stage_train_elapsed_s is ",
                   "compression.train_elapsed_s is "]),
])
def test_tampering_with_a_compression_claim_is_caught(scored, tmp_path, change, reasons):
    _, run, entries, _ = scored
    problems = _problems(_edit(entries / "tiny-p50-int8.json", tmp_path, change), run)
    for reason in reasons:
        assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_run_dir_tampering_is_caught(scored, tmp_path):
    import shutil

    _, run, entries, _ = scored
    copy_run = tmp_path / "p50-int8"
    shutil.copytree(run, copy_run)
    deployed = copy_run / "eval" / "glue-model.safetensors"
    deployed.write_bytes(deployed.read_bytes() + b"\0" * 64)
    problems = _problems(entries / "tiny-p50-int8.json", copy_run)
    for reason in ["results.deployment.stored_bytes is ", "results.deployment.sha256 does not"]:
        assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_site_shows_size_figure_and_compressed_table(scored, tmp_path):
    parent, run, entries, glue = scored
    # Verified against their runs and predictions, so both are listed in their tables.
    index = build_site(entries, tmp_path / "site", glue_dir=glue,
                       runs={"tiny": parent, "tiny-p50-int8": run})
    page = index.read_text()
    assert "GLUE score against model size" in page and "glue_vs_size.svg" in page
    table = page.split("<h2>Compressed track</h2>")[1].split("</section>")[0]
    # The compressed variant is there; its uncompressed parent (preset tiny) is not.
    assert "<strong>tiny-p50-int8</strong>" in table and "prune:0.5+int8" in table
    assert "<strong>tiny</strong>" not in table and "<strong>tiny</strong>" in page
    figure = (tmp_path / "site" / "glue_vs_size.svg").read_text()
    assert "tiny-p50-int8" in figure and ">tiny<" in figure


def test_validate_of_a_compressed_entry_imports_no_torch(scored):
    _, run, entries, glue = scored
    assert _imported_by(["leaderboard", "validate", str(entries / "tiny-p50-int8.json"),
                         "--run", str(run), "--glue-dir", str(glue)]) == []
