"""A BPE and a Unigram data dir (`cram prepare --tokenizer-model`) through every later stage:
pretraining (a few fake-clock seconds), the offline probes, GLUE (a slice of RTE), the
transformers export, and a leaderboard entry that validates against the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TickingClock, make_grammar_data

from cramming.train.pretrain import pretrain
from data_prep import load_tokenizer, open_data_dir
from glue_eval import evaluate_glue, evaluate_probes
from leaderboard import submit, validate_entries

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SMALL = ["model.hidden=32", "model.heads=2", "model.layers=1", "model.ffn_hidden=64",
         "model.head_hidden=32", "impl.threads=1"]
TEXT = ["The old farmer sees a red ball, near the river!", "Naïve café — 3.14 (quoted) ~"]


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def probed(request, tmp_path_factory) -> tuple[str, Path]:
    """(model name, run dir): a 1-layer run pretrained for 6 fake seconds on the grammar corpus
    prepared with that tokenizer model, scored on the probes."""
    import torch

    name = request.param
    root = tmp_path_factory.mktemp(name)
    data = make_grammar_data(root, val_fraction=0.3, tokenizer_model=name)
    vocab = open_data_dir(data).vocab_size
    threads = torch.get_num_threads()
    try:
        pretrain(data, root / "run", budget_s=6, preset="tiny", quiet=True,
                 overrides=[*SMALL, f"model.vocab_size={vocab}"], clock=TickingClock(0.05))
        evaluate_probes(root / "run", quiet=True, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return name, root / "run"


def test_the_run_trained_and_probed_with_the_data_dirs_tokenizer(probed):
    name, run = probed
    manifest = json.loads((run.parent / "data" / "manifest.json").read_text())
    assert manifest["pipeline"]["settings"]["tokenizer_model"] == name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data_sha256"] == manifest["data_sha256"] and summary["steps"] > 0
    assert (run / "final" / "tokenizer.json").read_text() == \
        (run.parent / "data" / "tokenizer.json").read_text()
    probe = json.loads((run / "eval" / "probe.json").read_text())
    assert set(probe["tasks"]) == {"continuation", "word_order"}
    assert probe["data_sha256"] == manifest["data_sha256"]


def test_the_export_loads_back_with_the_runs_tokenizer(probed, tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from cramming.export import export_run

    _, run = probed
    result = export_run(run, tmp_path / "export")  # loads it back and compares the logits
    assert result["max_abs_diff"] <= 1e-5
    exported = AutoTokenizer.from_pretrained(tmp_path / "export")
    ours = load_tokenizer(run / "final")
    assert exported(*TEXT)["input_ids"] == ours.encode(*TEXT).ids
    assert exported.mask_token_id == 4 and exported.pad_token_id == 0


def test_glue_scores_and_the_entry_validates(probed, shared_data, tmp_path):
    _, run = probed
    glue = tmp_path / "glue" / "RTE"
    glue.mkdir(parents=True)
    for split, n in (("train", 48), ("dev", 24)):  # a slice of the real RTE files
        lines = (shared_data / "glue" / "RTE" / f"{split}.tsv").read_text().splitlines()
        (glue / f"{split}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")
    evaluate_glue(run, tasks="rte", glue_dir=glue.parent, protocol="quick", quiet=True,
                  device="cpu", force=True)
    entry = tmp_path / "entry.json"
    submit(run, "tokenizer-model", out=entry)
    assert validate_entries([entry], run=run, glue_dir=glue.parent)[str(entry)] == []
    recorded = json.loads(entry.read_text())
    assert recorded["data"]["data_sha256"] == open_data_dir(run.parent / "data").data_sha256
