"""Post-training weight quantization (torchao): logits stay within the stated bound of the fp32
model's on real text, the deployed file holds exactly the model's codes, and a width the
library cannot run here is a one-line error naming the alternative."""

import copy

import pytest
import torch

from crambench.errors import UserError
from cramming import CrammedBert, load_pretrained
from cramming.compress import deploy, deployment_record, load_compact
from cramming.compress import quantize as quantize_module
from cramming.compress.quantize import check_supported, quantize_model
from cramming.compress.storage import read_header
from data_prep import load_tokenizer
from glue_eval.finetune import encode_texts

# The bound this project states (docs/compress.md): the largest change of any MLM logit,
# relative to the largest fp32 logit, on GLUE SST-2 dev sentences. int8 per-channel: 2.5%;
# int4 per-group: 25%.
# (Each weight moves by at most half a step, max|group| / 254 in int8, / 14 in int4; the errors
# of the embedding, every encoder linear and the tied decoder add up to about 1.2% and 17% on
# the tiny run, whose rows of 32 features make each int4 group a whole row.)
BOUND = {8: 0.025, 4: 0.25}


@pytest.fixture(scope="module")
def real_text_batch(shared_data, tiny_run):
    tokenizer = load_tokenizer(tiny_run / "final")
    lines = (shared_data / "glue" / "SST-2" / "dev.tsv").read_text().splitlines()[1:33]
    rows = encode_texts(tokenizer, [line.split("\t")[0] for line in lines], None,
                        cls_id=tokenizer.token_to_id("[CLS]"),
                        sep_id=tokenizer.token_to_id("[SEP]"), max_length=64)
    width = max(len(row) for row in rows)
    return torch.tensor([row + [0] * (width - len(row)) for row in rows])


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_logits_stay_within_the_bound(tiny_run, real_text_batch, bits,
                                                one_torch_thread):
    cfg, state = load_pretrained(tiny_run / "final")
    model = CrammedBert(cfg).eval()
    model.load_state_dict(state)
    quantized = copy.deepcopy(model)
    codes = quantize_model(quantized, bits)
    # Every linear and embedding weight is quantized: the token embedding (also the decoder),
    # the encoder's linears and the MLM head's dense layer where the model has one.
    assert len(codes) == 1 + 4 * cfg.layers + cfg.head_transform
    # Codes are signed `bits`-bit integers held in int8 (compared as int32: 128 wraps in int8).
    assert all(q.dtype == torch.int8 and -(2 ** (bits - 1)) <= int(q.min())
               and int(q.max()) <= 2 ** (bits - 1) - 1 for q, _, _ in codes.values())
    with torch.no_grad():
        reference = model(real_text_batch)[1]
        logits = quantized(real_text_batch)[1]
    error = (logits - reference).abs().max() / reference.abs().max()
    assert 0 < error <= BOUND[bits]


@pytest.mark.parametrize("bits", [8, 4])
def test_deployed_file_holds_the_models_codes(tiny_run, tmp_path, bits, one_torch_thread):
    from cramming import load_classifier

    classifier = load_classifier(tiny_run / "final", num_labels=3)
    spec = {"method": f"int{bits}", "bits": bits, "quantization": {"bits": bits}}
    deployed = deploy(classifier, spec)
    record = deployment_record(deployed, tmp_path / "model.safetensors", task="mnli",
                               results_dir=tmp_path)
    path = tmp_path / "model.safetensors"
    assert record["stored_bytes"] == path.stat().st_size and record["bits"] == bits
    assert record["latency"]["batch_1_ms"] > 0 and record["latency"]["seq_len"] == 128
    state, masks, _ = load_compact(path)
    assert masks == {}
    for name, module in classifier.named_modules():
        weight = getattr(module, "weight", None)
        if weight is not None and hasattr(weight, "qdata"):
            assert torch.equal(state[f"{name}.weight"], weight.dequantize()), name
    # The data section holds exactly the codes (bits each, packed), fp32 scales, and every other
    # tensor in fp32: no weight is also stored at full width.
    _, start = read_header(path)
    quantized = sum((q.numel() * width + 7) // 8 + 4 * scale.numel()
                    for q, scale, width in deployed.codes.values())
    rest = sum(4 * t.numel() for name, t in classifier.state_dict().items()
               if name not in deployed.codes)
    assert len(deployed.codes) == 1 + 4 * classifier.cfg.layers + 2  # embedding, linears, head
    assert path.stat().st_size - start == quantized + rest


def test_a_width_the_library_cannot_run_names_the_alternative(monkeypatch):
    def fails(model, bits):
        raise NotImplementedError("no int4 kernel for this device\nsecond line")

    monkeypatch.setattr(quantize_module, "quantize_model", fails)
    check_supported.cache_clear()
    try:
        with pytest.raises(UserError) as caught:
            check_supported(4)
    finally:
        check_supported.cache_clear()
    message = str(caught.value)
    assert message.startswith("int4 weight-only quantization does not run on cpu with torchao")
    assert "no int4 kernel for this device" in message and "use int8" in message
    assert "\n" not in message
