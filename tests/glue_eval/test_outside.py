"""`cram eval glue --model`: an outside transformers encoder (a tiny randomly initialised BERT
saved here, with a WordPiece vocabulary trained on real GLUE text: no download) scored with
the benchmark's protocol on slices of the shared GLUE tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from conftest import glue_slice, save_tiny_bert  # noqa: E402

from crambench.contracts import sha256_file  # noqa: E402
from crambench.errors import UserError
from crambench.shell.cli import main  # noqa: E402
from cramming.rules import OUTSIDE_MODEL_REASON  # noqa: E402
from glue_eval import compute_metrics, evaluate_glue, read_predictions, read_split  # noqa: E402
from glue_eval.model_folder import folder_sha256  # noqa: E402
from glue_eval.outside_model import OutsideEncoder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_bert(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("outside")
    return save_tiny_bert(shared_data, root / "tiny-bert"), glue_slice(shared_data, root)


@pytest.mark.train
def test_model_scores_a_saved_tiny_bert_on_shared_tasks(tiny_bert, tmp_path, capsys):
    model, glue = tiny_bert
    out = tmp_path / "outside" / "glue.json"
    argv = ["eval", "glue", "--model", str(model), "--glue-dir", str(glue), "--tasks",
            "rte,stsb", "--protocol", "quick", "--out", str(out), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rte: accuracy" in printed and "stsb: pearson" in printed and f"wrote {out}" in printed
    result = json.loads(out.read_text())
    assert result["format"] == "cram-glue/2" and result["suite"] == "glue"
    outside = result["outside_model"]
    assert (outside["track"], outside["track_reason"]) == ("open", OUTSIDE_MODEL_REASON)
    assert outside["source"] == str(model) and outside["location"] == "local"
    assert outside["model_type"] == "bert" and outside["tokenizer"].startswith("Bert")
    assert outside["weights"] == [{"file": "model.safetensors",
                                   "sha256": sha256_file(model / "model.safetensors")}]
    assert result["model_sha256"] == sha256_file(model / "model.safetensors")
    # The folder's identity: its config, weight and tokenizer files, each hashed and sized.
    assert [f["file"] for f in outside["files"]] == sorted(
        p.name for p in model.iterdir() if p.name != "README.md")
    assert all(f["sha256"] == sha256_file(model / f["file"])
               and f["bytes"] == (model / f["file"]).stat().st_size for f in outside["files"])
    assert outside["folder_sha256"] == folder_sha256(outside["files"]) != result["model_sha256"]
    assert outside["params"] == sum(  # the encoder, without the MLM head
        p.numel() for p in OutsideEncoder(model).classifier(
            2, dropout=0.1, seed=0).model.base_model.parameters())
    assert result["protocol"]["rankable"] is False and result["from_scratch"] is False
    assert list(result["tasks"]) == ["stsb", "rte"]
    assert result["tasks"]["rte"]["n_train"] == 48 and result["tasks"]["rte"]["n_dev"] == 24
    # The saved predictions are the dev rows' and give back the metrics in the file.
    for task, entry in result["tasks"].items():
        (saved,) = entry["seeds"][0]["predictions"]
        indices, values = read_predictions(out.parent / saved["file"])
        labels = read_split(glue, task, "dev").labels
        assert list(indices) == list(range(24))
        assert compute_metrics(task, {"dev": labels}, {"dev": values}) == entry["metrics"]
    [stsb_run] = result["tasks"]["stsb"]["seeds"]
    stsb = read_predictions(out.parent / stsb_run["predictions"][0]["file"])[1]
    assert stsb.dtype == np.float64 and len(set(stsb.tolist())) > 1  # scores, not classes


def test_rows_and_segments_are_the_models_own_input_format(tiny_bert, shared_data):
    """Pairs as the model's tokenizer joins them, longest-first cut, and BERT's segment ids
    derived from the ids inside the classifier equal the tokenizer's token_type_ids."""
    from glue_eval.finetune import _batch

    model, glue = tiny_bert
    split = read_split(glue, "rte", "train")
    encoder = OutsideEncoder(model)
    rows = encoder.encode(split.text_a, split.text_b, max_length=40)
    expected = encoder.tokenizer(split.text_a, split.text_b, truncation="longest_first",
                                 max_length=40, padding=True, return_tensors="pt")
    assert max(len(r) for r in rows) == 40 and min(len(r) for r in rows) < 40
    assert all(r[0] == encoder.tokenizer.cls_token_id and r.count(encoder.sep_id) == 2
               for r in rows)
    ids, mask = _batch(rows, encoder.pad_id, "cpu")
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask,
                                                                    expected["attention_mask"])
    classifier = encoder.classifier(2, dropout=0.1, seed=0).eval()
    seen = {}
    classifier.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(kwargs), with_kwargs=True)
    with torch.no_grad():
        logits = classifier(ids, mask)
    assert torch.equal(seen["token_type_ids"], expected["token_type_ids"])
    assert seen["token_type_ids"].sum() > 0
    with torch.no_grad():  # the same logits as transformers' own call on the tokenizer output
        assert torch.allclose(logits, classifier.model(**expected).logits, atol=1e-6)


def test_special_token_strings_in_text_stay_text_for_an_outside_model(tiny_bert):
    """GLUE text quoting "[SEP]" or "[MASK]" encodes as the characters it spells with an
    outside tokenizer too: only its template adds [CLS] and the two [SEP]."""
    model, _ = tiny_bert
    encoder = OutsideEncoder(model)
    tokenizer = encoder.tokenizer
    [row] = encoder.encode(["the man [SEP] sleeps [MASK] [CLS]"], ["[PAD] a dog"],
                           max_length=64)
    assert row[0] == tokenizer.cls_token_id and row[-1] == encoder.sep_id
    assert row.count(encoder.sep_id) == 2
    inner = [i for i in row[1:-1] if i != encoder.sep_id]
    assert not set(tokenizer.all_special_ids) - {tokenizer.unk_token_id} & set(inner)


def test_the_head_is_seeded_and_the_encoder_pretrained(tiny_bert):
    from safetensors.torch import load_file

    model, _ = tiny_bert
    encoder = OutsideEncoder(model)
    first = encoder.classifier(3, dropout=0.1, seed=5).model
    again = encoder.classifier(3, dropout=0.1, seed=5).model
    other = encoder.classifier(3, dropout=0.1, seed=6).model
    assert torch.equal(first.classifier.weight, again.classifier.weight)
    assert not torch.equal(first.classifier.weight, other.classifier.weight)
    saved = load_file(model / "model.safetensors")
    word = next(k for k in saved if k.endswith("word_embeddings.weight"))
    assert torch.equal(first.bert.embeddings.word_embeddings.weight, saved[word])
    assert first.classifier.out_features == 3


def test_bad_model_folders_are_one_line_errors(tiny_bert, tmp_path, capsys):
    model, glue = tiny_bert
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((model / name).read_bytes())
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text('{"hidden_size": 32}')
    out = tmp_path / "o" / "glue.json"
    base = ["eval", "glue", "--glue-dir", str(glue), "--tasks", "rte", "--protocol", "quick"]
    cases = [
        (["--model", str(no_config), "--out", str(out)], "has no config.json"),
        (["--model", str(no_tokenizer), "--out", str(out)], "has no tokenizer"),
        (["--model", str(not_a_model), "--out", str(out)], "is not a model transformers knows"),
        (["--model", str(model / "config.json"), "--out", str(out)], "is a file"),
        (["--model", str(tmp_path / "missing"), "--out", str(out)], "does not exist"),
        (["--model", str(model)], "needs --out"),
        (["--model", str(model), "--out", str(out), "--from-scratch"], "does not apply"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("cram eval: error: ") and message in err, err
        assert len(err.splitlines()) == 1, err
    assert not out.parent.exists()  # nothing written
    # argparse: one of them, not both; one line too
    assert main([*base, "--model", str(model), "--run", str(tmp_path), "--out", str(out)]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(UserError, match="either a run"):
        evaluate_glue(None, glue_dir=glue, tasks="rte", out=out)


@pytest.mark.train
def test_probe_model_gets_the_runs_probe_examples_as_text(tiny_bert, tiny_run, tmp_path):
    from data_prep import load_tokenizer, open_data_dir
    from glue_eval import evaluate_probes
    from glue_eval.probes import PROBE_PROTOCOL, build_probes, reencode

    model, _ = tiny_bert
    data = open_data_dir(tiny_run.parent / "data")
    own = load_tokenizer(data.tokenizer_path)
    encoder = OutsideEncoder(model)
    a, b = "the cat sees a red ball.", "a dog likes the letter."
    row = [data.special_ids["cls"], *own.encode(a, add_special_tokens=False).ids,
           data.special_ids["sep"], *own.encode(b, add_special_tokens=False).ids,
           data.special_ids["sep"]]
    assert reencode(encoder, own, [row], data.special_ids["sep"], 128) == [
        encoder.tokenizer(a, b)["input_ids"]]
    assert reencode(encoder, own, [row[: row.index(data.special_ids["sep"]) + 1]],
                    data.special_ids["sep"], 128) == [encoder.tokenizer(a)["input_ids"]]

    out = tmp_path / "probe.json"
    result = evaluate_probes(model=model, data=data.path, out=out, quiet=True, device="cpu")
    assert result["suite"] == "probe" and result["outside_model"]["track"] == "open"
    assert result["model_sha256"] == sha256_file(model / "model.safetensors")
    probes = build_probes(data, own, seed=0, max_length=PROBE_PROTOCOL.max_length)
    for name, parts in probes.items():  # the examples the run itself is scored on
        entry = result["tasks"][name]
        assert (entry["n_train"], entry["n_dev"]) == (len(parts["train"][0]),
                                                      len(parts["dev"][0]))
        assert entry["dev_positive_fraction"] == 100.0 * float(parts["dev"][1].mean())
    with pytest.raises(UserError, match="needs --data"):
        evaluate_probes(model=model, out=tmp_path / "p2.json")
