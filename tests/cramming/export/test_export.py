"""`cram export` end to end: a real (short) pretraining run on Wikipedia text from the shared
data, scored on a slice of RTE, exported, and loaded back with transformers' Auto classes, its
fast tokenizer, the fill-mask pipeline and the Trainer; plus the refusals."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

from crambench.contracts import sha256_file  # noqa: E402
from crambench.errors import UserError
from crambench.shell.cli import main  # noqa: E402
from cramming import CrammedBert, ModelConfig, load_classifier, load_pretrained  # noqa: E402
from cramming.export import export_run  # noqa: E402
from cramming.lineage import lineage_record  # noqa: E402
from data_prep import load_tokenizer, prepare
from glue_eval import evaluate_glue, read_split  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.train]


def rte_slice(shared_data: Path, root: Path, n_train: int = 48, n_dev: int = 24) -> Path:
    """A GLUE folder holding the first rows of the real RTE train and dev files."""
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = (shared_data / "glue" / "RTE" / f"{split}.tsv").read_text().splitlines()
        (root / "glue" / "RTE").mkdir(parents=True, exist_ok=True)
        (root / "glue" / "RTE" / f"{split}.tsv").write_text("\n".join(lines[: n + 1]) + "\n")
    return root / "glue"


@pytest.fixture(scope="module")
def scored_run(shared_data, tmp_path_factory):
    """A tiny-preset run pretrained for 6 steps on real Wikipedia text and scored on RTE."""
    import cramming.train.pretrain as pretrain_module

    root = tmp_path_factory.mktemp("export")
    prepare([str(shared_data / "corpus" / "wiki" / "AA" / "wiki_00")], root / "data",
            vocab_size=2048, val_fraction=0.2, max_docs=300, quiet=True)
    pretrain_module.pretrain(root / "data", root / "run", budget_s=60, preset="tiny",
                             overrides=["model.vocab_size=2048", "train.max_steps=6"],
                             quiet=True)
    glue = rte_slice(shared_data, root)
    evaluate_glue(root / "run", tasks="rte", glue_dir=glue, protocol="quick", quiet=True)
    return root / "run", glue


@pytest.fixture(scope="module")
def exported(scored_run, tmp_path_factory):
    run, _ = scored_run
    out = tmp_path_factory.mktemp("exported") / "tiny-export"
    report = export_run(run, out)
    assert report["max_abs_diff"] <= 1e-5
    return out


def real_sentences(glue: Path, n: int = 12) -> tuple[list[str], list[str]]:
    dev = read_split(glue, "rte", "dev")
    return dev.text_a[:n], dev.text_b[:n]


def test_folder_loads_with_every_auto_class(scored_run, exported):
    run, _ = scored_run
    cfg, _ = load_pretrained(run / "final")
    config = AutoConfig.from_pretrained(exported, trust_remote_code=True)
    assert config.model_type == "crammed_bert"
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == \
        (cfg.hidden, cfg.layers, cfg.vocab_size)
    base, info = AutoModel.from_pretrained(exported, trust_remote_code=True,
                                           output_loading_info=True)
    assert not info["missing_keys"] and type(base).__name__ == "CrammedBertModel"
    mlm, info = AutoModelForMaskedLM.from_pretrained(exported, trust_remote_code=True,
                                                     output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    clf, info = AutoModelForSequenceClassification.from_pretrained(
        exported, num_labels=3, trust_remote_code=True, output_loading_info=True)
    assert set(info["missing_keys"]) == {"head.dense.weight", "head.dense.bias",
                                         "head.classifier.weight", "head.classifier.bias"}
    assert torch.equal(clf.encoder.embedding.word.weight, mlm.encoder.embedding.word.weight)
    tokenizer = AutoTokenizer.from_pretrained(exported)
    assert tokenizer.is_fast and tokenizer.mask_token == "[MASK]"
    assert [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id,
            tokenizer.sep_token_id, tokenizer.mask_token_id] == [0, 1, 2, 3, 4]
    # The weights are the run's final model, byte for byte.
    assert sha256_file(exported / "model.safetensors") == \
        json.loads((run / "summary.json").read_text())["model_sha256"]


def test_mlm_logits_match_the_run_model_on_real_text(scored_run, exported):
    run, glue = scored_run
    cfg, state = load_pretrained(run / "final")
    ours = CrammedBert(cfg).eval()
    ours.load_state_dict(state)
    theirs = AutoModelForMaskedLM.from_pretrained(exported, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(exported)
    sentences, _ = real_sentences(glue)
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hf_logits = theirs(**batch).logits  # (B, T, V), padded rows masked
        for row, length in enumerate(batch["attention_mask"].sum(1).tolist()):
            ids = batch["input_ids"][row: row + 1, :length]
            _, our_logits = ours(ids)  # (1, T, V), no padding
            assert torch.allclose(hf_logits[row, :length], our_logits[0], atol=1e-5, rtol=0)
    assert hf_logits.shape[-1] == cfg.vocab_size


def test_classifier_logits_match_the_benchmark_classifier(scored_run, exported):
    run, glue = scored_run
    ours = load_classifier(run / "final", num_labels=2).eval()
    theirs = AutoModelForSequenceClassification.from_pretrained(
        exported, num_labels=2, trust_remote_code=True).eval()
    assert set(theirs.state_dict()) == set(ours.state_dict())  # same modules, same names
    theirs.head.load_state_dict(ours.head.state_dict())  # the same (fresh) head in both
    tokenizer = AutoTokenizer.from_pretrained(exported)
    text_a, text_b = real_sentences(glue)
    batch = tokenizer(text_a, text_b, padding=True, truncation=True, max_length=128,
                      return_tensors="pt")
    with torch.no_grad():
        ours_out = ours(batch["input_ids"], batch["attention_mask"])
        theirs_out = theirs(**batch).logits
    assert torch.allclose(ours_out, theirs_out, atol=1e-5, rtol=0)
    assert not torch.allclose(ours_out[0], ours_out[1])  # real inputs, distinct outputs


def test_auto_tokenizer_gives_the_run_tokenizer_ids(scored_run, exported, shared_data):
    run, glue = scored_run
    ours = load_tokenizer(run / "final")
    theirs = AutoTokenizer.from_pretrained(exported)
    text_a, text_b = real_sentences(glue, n=40)
    cola = [line.split("\t")[3] for line in
            (shared_data / "glue" / "CoLA" / "dev.tsv").read_text().splitlines()[:40]]
    for text in [*text_a, *cola, "Ünïcödé “quotes” — and dashes…"]:
        assert theirs(text)["input_ids"] == ours.encode(text).ids
    for a, b in zip(text_a, text_b, strict=True):
        assert theirs(a, b)["input_ids"] == ours.encode(a, b).ids
    assert "token_type_ids" not in theirs(text_a[0])  # the model has no segment embedding


def test_fill_mask_pipeline_ranks_as_the_run_model(scored_run, exported):
    run, _ = scored_run
    fill = pipeline("fill-mask", model=str(exported), trust_remote_code=True)
    text = "the city is the [MASK] of the county."
    answers = fill(text, top_k=5)
    assert len(answers) == 5 and all("[MASK]" not in a["sequence"] for a in answers)
    cfg, state = load_pretrained(run / "final")
    ours = CrammedBert(cfg).eval()
    ours.load_state_dict(state)
    # "[MASK]" typed in text is text to the harness's tokenizer: the mask id goes in by hand.
    tokenizer = load_tokenizer(run / "final")
    left, right = (tokenizer.encode(part, add_special_tokens=False).ids
                   for part in text.split("[MASK]"))
    ids = torch.tensor([[2, *left, 4, *right, 3]])  # [CLS] ... [MASK] ... [SEP]
    position = len(left) + 1
    with torch.no_grad():
        probs = ours(ids)[1][0, position].softmax(-1)
    top = probs.topk(5)
    assert [a["token"] for a in answers] == top.indices.tolist()
    assert [a["score"] for a in answers] == pytest.approx(top.values.tolist(), abs=1e-5)


def test_trainer_fine_tunes_the_exported_model(scored_run, exported, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    _, glue = scored_run
    train = read_split(glue, "rte", "train")
    tokenizer = AutoTokenizer.from_pretrained(exported)
    rows = tokenizer(train.text_a[:16], train.text_b[:16], truncation=True, max_length=128)
    dataset = Dataset.from_dict({**rows, "labels": train.labels[:16].tolist()})
    model = AutoModelForSequenceClassification.from_pretrained(exported, num_labels=2,
                                                               trust_remote_code=True)
    before = model.encoder.blocks[0].attn.qkv.weight.detach().clone()
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=3,
                             per_device_train_batch_size=4, learning_rate=1e-3, use_cpu=True,
                             report_to=[], save_strategy="no", logging_steps=1,
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert trainer.state.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(before, model.encoder.blocks[0].attn.qkv.weight)


def test_resize_token_embeddings_resizes_the_mlm_head_and_reloads(scored_run, exported,
                                                                  tmp_path):
    """A token added and the embedding resized, as transformers users do: the MLM head's
    vocabulary-sized parameters (a decoder bias, an untied decoder) follow the embedding's
    size, the model runs, saves and loads back the same."""
    import dataclasses

    from safetensors.torch import save_file

    from cramming.export.job import write_config, write_remote_code

    # The run's folder, as a variant whose head has both (the reference has neither).
    folder = tmp_path / "variant"
    shutil.copytree(exported, folder)
    cfg = dataclasses.replace(load_pretrained(scored_run[0] / "final")[0], decoder_bias=True,
                              tie_weights=False)
    torch.manual_seed(0)
    variant = CrammedBert(cfg)
    with torch.no_grad():
        variant.mlm_head.bias.normal_()
    save_file({k: v.contiguous() for k, v in variant.state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})
    write_remote_code(folder)
    write_config(folder, cfg)
    model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    old = model.get_input_embeddings().weight.shape[0]
    bias = model.mlm_head.bias.detach().clone()
    decoder = model.mlm_head.decoder.detach().clone()
    assert tokenizer.add_tokens(["[NEWTOKEN]"]) == 1
    model.resize_token_embeddings(len(tokenizer))
    new = len(tokenizer)
    assert new == old + 1
    assert model.get_input_embeddings().weight.shape[0] == new == model.config.vocab_size
    assert model.mlm_head.bias.shape == (new,) and model.mlm_head.decoder.shape[0] == new
    assert torch.equal(model.mlm_head.bias[:old], bias)
    assert torch.equal(model.mlm_head.decoder[:old], decoder)
    inputs = tokenizer(["the river [NEWTOKEN] flows"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == new
    model.save_pretrained(tmp_path / "resized")
    tokenizer.save_pretrained(tmp_path / "resized")
    again = AutoModelForMaskedLM.from_pretrained(tmp_path / "resized", trust_remote_code=True)
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, logits)
    smaller = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)
    smaller.resize_token_embeddings(old - 8)
    assert smaller.mlm_head.bias.shape == (old - 8,)
    # The reference's head holds nothing vocabulary-sized: the resize is the embedding's.
    reference = AutoModelForMaskedLM.from_pretrained(exported, trust_remote_code=True)
    reference.resize_token_embeddings(old + 3)
    assert reference.mlm_head.bias is None and reference.mlm_head.decoder is None
    with torch.no_grad():
        assert reference(**inputs).logits.shape[-1] == old + 3


def test_model_card_states_budget_hardware_hashes_and_results(scored_run, exported):
    run, _ = scored_run
    summary = json.loads((run / "summary.json").read_text())
    glue = json.loads((run / "eval" / "glue.json").read_text())
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: fill-mask\n")
    assert "| budget | 1 min |" in card and "| stopped by | steps |" in card
    assert summary["hardware"]["cpu_name"] in card
    for key in ("data_sha256", "config_sha256", "model_sha256"):
        assert f"`{summary[key]}`" in card
    assert f"`{sha256_file(run / 'final' / 'tokenizer.json')}`" in card
    accuracy = glue["tasks"]["rte"]["metrics"]["accuracy"]
    assert f"| RTE | accuracy | {accuracy:.1f} |" in card
    assert "`quick` protocol" in card
    recorded = json.loads((exported / "cram_run.json").read_text())
    assert recorded["summary"] == summary and recorded["results"]["eval/glue.json"] == glue


def test_shipped_architecture_is_model_py(exported):
    import cramming.model

    source = Path(inspect.getsourcefile(cramming.model)).read_text()
    shipped = (exported / "cramming_model.py").read_text()
    header, body = shipped.split("\n", 2)[:2], shipped.split("\n", 2)[2]
    assert all(line.startswith("# ") for line in header)
    assert body == source.replace(
        "from cramming.config import ModelConfig\n",
        "from .configuration_crammed_bert import CrammedBertConfig as ModelConfig\n")


def test_config_defaults_are_the_model_config_defaults(exported):
    import dataclasses

    defaults = type(AutoConfig.from_pretrained(exported, trust_remote_code=True))()
    for field in dataclasses.fields(ModelConfig):
        assert getattr(defaults, field.name) == field.default, field.name


def test_a_derived_run_exports_with_its_lineage(scored_run, tmp_path):
    run, _ = scored_run
    derived = tmp_path / "derived"
    shutil.copytree(run, derived)
    summary = json.loads((derived / "summary.json").read_text())
    summary["lineage"] = lineage_record(run, out=derived, stage="compress", method="quantize-int8",
                                        stage_train_elapsed_s=0.0, stage_budget_s=0.0)
    (derived / "summary.json").write_text(json.dumps(summary))
    export_run(derived, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Lineage" in card and "`compress` stage" in card
    assert f"| parent model sha256 | `{summary['model_sha256']}` |" in card
    assert "| method | quantize-int8 |" in card


def test_refusals_are_one_line_and_leave_nothing(scored_run, tmp_path, capsys):
    run, _ = scored_run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished, ignore=shutil.ignore_patterns("final"))
    out = tmp_path / "out"
    assert main(["export", "--run", str(unfinished), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no final model" in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))

    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["export", "--run", str(run), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", "--run", str(run), "--out", str(out), "--force"]) == 2
    assert "not a folder written by `cram export`" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    with pytest.raises(UserError, match="does not exist"):
        export_run(tmp_path / "nowhere", tmp_path / "out2")
