"""`cram export` of compressed runs: a pruned run (stored as compact sparse weights) and a
quantized one export as dense safetensors that transformers loads, with the pruned zeros in
place and the quantized weights dequantized, the model card saying so; the logits are the run
model's (as deployed, when quantized)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from conftest import TickingClock, pretrain_small_run  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForMaskedLM  # noqa: E402

from crambench.contracts import sha256_file  # noqa: E402
from crambench.shell.cli import main  # noqa: E402
from cramming import CrammedBert  # noqa: E402
from cramming.compress import compress  # noqa: E402
from cramming.compress.quantize import quantize_model  # noqa: E402
from cramming.weights import load_pretrained_with_masks  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.train]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    # With the MLM head transform (bert-original's head): its dense layer, which no task model
    # has, must stay fp32 in a quantized export.
    return pretrain_small_run(tmp_path_factory.mktemp("export-compressed"),
                              overrides=["model.head_transform=true"])


@pytest.fixture(scope="module")
def pruned(parent):
    out = parent.parent / "pruned"
    threads = torch.get_num_threads()
    compress(parent, "prune:0.5", out, budget="4s", quiet=True, clock=TickingClock(0.05))
    torch.set_num_threads(threads)
    return out


def _ids(vocab_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(5, vocab_size, (3, 32), generator=generator)


def _run_model(run):
    cfg, state, masks = load_pretrained_with_masks(run / "final")
    model = CrammedBert(cfg).eval()
    model.load_state_dict(state)
    return model, masks


def test_pruned_run_exports_dense_weights_with_its_zeros(pruned, tmp_path, capsys):
    out = tmp_path / "pruned-export"
    assert main(["export", "--run", str(pruned), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((pruned / "summary.json").read_text())
    record = summary["compression"]
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}  # plain safetensors, not cram-compact/1
    exported = load_file(out / "model.safetensors")
    ours, masks = _run_model(pruned)
    assert set(exported) == set(ours.state_dict()) and all("#" not in k for k in exported)
    assert all(exported[k].dtype == torch.float32 for k in exported)
    # The stated sparsity, counted in the exported tensors: exactly the pruned entries are 0.
    zeros = sum(int((exported[name] == 0).sum()) for name in masks)
    entries = sum(exported[name].numel() for name in masks)
    assert entries == record["prunable_params"] and zeros / entries == record["sparsity"]
    assert all(torch.equal(exported[name] == 0, ~mask) for name, mask in masks.items())
    assert f"{zeros:,} of {entries:,} pruned-weight entries zero (sparsity 0.5000)" in printed
    theirs = AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True).eval()
    ids = _ids(ours.cfg.vocab_size)
    with torch.no_grad():
        assert torch.allclose(theirs(input_ids=ids).logits, ours(ids)[1], atol=1e-5, rtol=0)
    card = (out / "README.md").read_text()
    assert "## Weights in this folder" in card and "`cram-compact/1`" in card
    assert f"{zeros:,} of the {entries:,} entries" in card and "sparsity 0.5000" in card
    assert f"| the run's weights (`final/model.safetensors`, `model_sha256`) | " \
           f"`{summary['model_sha256']}` |" in card
    assert f"`{sha256_file(out / 'model.safetensors')}`" in card
    assert "## Compression" in card and "| method | `prune:0.5` |" in card
    assert "## Lineage" in card


def test_quantized_run_exports_its_dequantized_weights(parent, pruned, tmp_path):
    int8 = tmp_path / "int8"
    compress(pruned, "int8", int8, quiet=True)  # a pruned run quantized: both at once
    out = tmp_path / "int8-export"
    assert main(["export", "--run", str(int8), "--out", str(out)]) == 0
    exported = load_file(out / "model.safetensors")
    ours, masks = _run_model(int8)
    quantized = CrammedBert(ours.cfg).eval()
    quantized.load_state_dict(ours.state_dict())
    quantize_model(quantized.encoder, 8)
    for name, module in quantized.encoder.named_modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Embedding):  # code x scale, in fp32
            assert torch.equal(exported[f"encoder.{name}.weight"], module.weight.dequantize())
    for name, mask in masks.items():  # still pruned
        assert torch.equal(exported[name] == 0, ~mask)
    assert torch.equal(exported["mlm_head.dense.weight"], ours.mlm_head.dense.weight)
    word = exported["encoder.embedding.word.weight"]
    assert not torch.equal(word, ours.encoder.embedding.word.weight)  # really quantized
    assert len(torch.unique(word[7])) <= 256  # one row: at most 256 int8 levels
    theirs = AutoModelForMaskedLM.from_pretrained(out, trust_remote_code=True).eval()
    ids = _ids(ours.cfg.vocab_size)
    with torch.no_grad():  # the deployed (torchao-quantized) encoder's logits
        assert torch.allclose(theirs(input_ids=ids).logits, quantized(ids)[1], atol=1e-5,
                              rtol=0)
    card = (out / "README.md").read_text()
    assert "dequantized to fp32" in card and "IntxWeightOnlyConfig" in card
    assert "| method | `prune:0.5+int8` |" in card
