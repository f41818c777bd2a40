"""Offline probes: documents recovered from packed rows, honest examples, disjoint splits,
and `cram eval probe` end to end without any download."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from crambench.errors import UserError
from crambench.shell.cli import main
from data_prep import load_tokenizer, open_data_dir
from glue_eval import evaluate_probes
from glue_eval.probes import (
    SEGMENT,
    build_probes,
    continuation_examples,
    documents,
    split_documents,
    word_order_examples,
)

CLS, SEP = 2, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_documents_are_recovered_from_packed_rows():
    rows = np.array([[5, 6, SEP, 7], [8, SEP, SEP, 9], [9, 10, 11, 12]])
    docs = documents(rows, SEP)
    assert [d.tolist() for d in docs] == [[5, 6], [7, 8], [], [9, 9, 10, 11, 12]]


def test_split_is_by_document_and_sized_by_tokens():
    rng = np.random.default_rng(0)
    docs = [np.full(n, i) for i, n in enumerate(rng.integers(40, 400, size=50))]
    parts = split_documents(docs, np.random.default_rng(0))
    dev_ids = {int(d[0]) for d in parts["dev"]}
    train_ids = {int(d[0]) for d in parts["train"]}
    assert dev_ids.isdisjoint(train_ids) and len(dev_ids | train_ids) == 50
    dev_share = sum(map(len, parts["dev"])) / sum(map(len, docs))
    assert 0.3 <= dev_share < 0.3 + 400 / sum(map(len, docs))


def test_continuation_pairs_are_true_or_from_another_document():
    docs = [np.arange(100 * i, 100 * i + 100) for i in range(1, 6)]  # doc of token id // 100
    rows, labels = continuation_examples(docs, np.random.default_rng(0), cls_id=CLS,
                                         sep_id=SEP, max_length=128)
    assert len(rows) == 5 * 2 and 0 < labels.sum() < len(labels)
    for row, label in zip(rows, labels, strict=True):
        assert row[0] == CLS and row[1 + SEGMENT] == SEP and row[-1] == SEP
        a, b = np.array(row[1: 1 + SEGMENT]), np.array(row[2 + SEGMENT: -1])
        assert len(a) == len(b) == SEGMENT  # same length either way: no length cue
        if label:
            assert b[0] == a[-1] + 1  # B starts where A ends
        else:
            assert b[0] // 100 != a[0] // 100  # B comes from another document


def test_word_order_shuffles_whole_words_only():
    # Tokens 10..19 start words, 20..29 are ## continuations.
    is_cont = np.zeros(30, dtype=bool)
    is_cont[20:] = True
    rng = np.random.default_rng(0)
    doc = np.array([v for _ in range(40) for v in (rng.integers(10, 20), rng.integers(20, 30))])
    rows, labels = word_order_examples([doc], np.random.default_rng(1), is_continuation=is_cont,
                                       cls_id=CLS, sep_id=SEP)
    assert 0 < labels.sum() < len(labels)
    text = doc.tolist()
    for row, label in zip(rows, labels, strict=True):
        body = row[1:-1]
        assert len(body) <= SEGMENT and not is_cont[body[0]]
        pairs = sorted(zip(body[::2], body[1::2], strict=True))
        assert all(not is_cont[w] and is_cont[c] for w, c in pairs)  # words kept whole
        in_order = any(text[i: i + len(body)] == body for i in range(0, len(text), 2))
        assert in_order == bool(label)


def test_probe_sets_come_from_disjoint_documents(tiny_run):
    data = open_data_dir(tiny_run.parent / "data")
    probes = build_probes(data, load_tokenizer(data.path), seed=0, max_length=128)
    for name, parts in probes.items():
        train = {tuple(r) for r in parts["train"][0]}
        dev = {tuple(r) for r in parts["dev"][0]}
        assert len(dev) >= 20 and not train & dev, name
        assert 0.25 < parts["dev"][1].mean() < 0.75  # both classes present, roughly balanced


@pytest.mark.train
def test_eval_probe_runs_offline_and_is_labelled_not_glue(tiny_run, capsys):
    result = evaluate_probes(tiny_run, quiet=True, device="cpu")
    written = json.loads((tiny_run / "eval" / "probe.json").read_text())
    assert written == result
    assert result["suite"] == "probe" and result["protocol"]["rankable"] is False
    assert result["protocol"]["name"] == "probe"
    assert set(result["tasks"]) == {"continuation", "word_order"}
    for entry in result["tasks"].values():
        assert 0.0 <= entry["metrics"]["accuracy"] <= 100.0
        assert (tiny_run / "eval" / entry["seeds"][0]["predictions"][0]["file"]).is_file()
    assert result["avg_glue"]["value"] is None and "not GLUE" in result["avg_glue"]["label"]

    assert main(["eval", "probe", "--run", str(tiny_run), "--quiet"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["eval", "probe", "--run", str(tiny_run), "--quiet", "--force"]) == 0
    again = json.loads((tiny_run / "eval" / "probe.json").read_text())
    assert again["tasks"]["word_order"]["seeds"][0]["predictions"] == \
        result["tasks"]["word_order"]["seeds"][0]["predictions"]  # seeded: same predictions


def test_probe_needs_a_data_dir(tiny_run, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "final").symlink_to(tiny_run / "final")
    shutil.copyfile(tiny_run / "summary.json", tmp_path / "run" / "summary.json")
    with pytest.raises(UserError, match="no config.yaml; pass --data"):
        evaluate_probes(tmp_path / "run", quiet=True)


@pytest.mark.parametrize("name, key", [("model.safetensors", "model_sha256"),
                                       ("tokenizer.json", "tokenizer_sha256")])
def test_probe_scores_only_the_final_model_the_summary_names(tiny_run, tmp_path, name, key):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    path = run / "final" / name
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(UserError, match=f"final/{name} does not match the {key} in "):
        evaluate_probes(run, quiet=True, device="cpu")
    (run / "summary.json").write_text(json.dumps({"format": "cram-run/1"}))
    with pytest.raises(UserError, match="summary.json records no model_sha256"):
        evaluate_probes(run, quiet=True, device="cpu")
