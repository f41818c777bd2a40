"""The weights an export holds, in a form `transformers` reads: plain safetensors tensors.

- A run trained as is: its `final/model.safetensors`, byte for byte.
- A pruned run (`cram compress --method prune:S`) stores its encoder sparsely in the compact
  form `cram-compact/1` (masks and kept values), which transformers cannot read: the export
  holds the same weights dense, in their dtype (fp32), with the pruned entries as zeros.
- A quantized run (`int8`, `int4`, also after pruning) keeps fp32 weights in `final/` and
  quantizes each task model after fine-tuning. The export holds the weights as that
  quantization leaves them: every nn.Linear and nn.Embedding weight of the encoder quantized
  with the run's scheme (torchao, `cramming.compress.quantize`) and dequantized to fp32
  (code x scale, the values the quantized model computes with). The MLM head's own dense
  layer is no part of a task model and stays fp32.

Each case names the model whose MLM logits the exported folder must reproduce: the run's model
itself, or, when quantized, the run's model with its encoder quantized by torchao.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from crambench.errors import UserError

AS_TRAINED, DENSE, DEQUANTIZED = "as trained", "dense", "dequantized"


@dataclass
class ExportedWeights:
    """`state` (None: copy the run's file as it is) and what the model card says of it."""

    kind: str
    cfg: object  # cramming.config.ModelConfig
    model: object  # CrammedBert holding exactly the exported weights
    reference: object  # the model whose logits the export must reproduce
    state: dict | None = None
    spec: dict | None = None  # final/compression.json of a compressed run
    sparsity: dict = field(default_factory=dict)  # zeros, entries of the pruned weights


def exported_weights(final: Path) -> ExportedWeights:
    """The weights to export for the run's `final/` (see the module docstring). UserError
    when the weights do not fit the model config."""
    from cramming.compress.deployment import read_spec
    from cramming.compress.method import FULL_BITS
    from cramming.compress.storage import is_compact, read_header
    from cramming.model import CrammedBert
    from cramming.weights import load_pretrained_with_masks

    cfg, state, masks = load_pretrained_with_masks(final)
    model = CrammedBert(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{final}/model.safetensors does not fit {final}/model_config.json "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]}); cannot export")
    model.eval()
    spec = read_spec(final)
    bits = spec["bits"] if spec else FULL_BITS
    compact = is_compact(read_header(final / "model.safetensors")[0].get("__metadata__"))
    if bits == FULL_BITS and not compact:
        return ExportedWeights(AS_TRAINED, cfg, model, model, spec=spec)
    reference = model
    if bits != FULL_BITS:
        reference, codes = quantized_reference(model, bits)
        model.load_state_dict(dequantized_state(model, codes, masks))
    state = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    zeros = sum(int((state[name] == 0).sum()) for name in masks)
    entries = sum(state[name].numel() for name in masks)
    return ExportedWeights(DEQUANTIZED if bits != FULL_BITS else DENSE, cfg, model, reference,
                           state=state, spec=spec,
                           sparsity={"zeros": zeros, "entries": entries} if masks else {})


def quantized_reference(model, bits: int):
    """(a copy of `model` whose encoder is quantized as the run's task models are deployed,
    weight name -> (codes, scales, bits) of its quantized weights)."""
    from cramming.compress.quantize import quantize_model

    reference = copy.deepcopy(model)
    codes = quantize_model(reference.encoder, bits)
    return reference.eval(), {f"encoder.{name}": code for name, code in codes.items()}


def dequantized_state(model, codes: dict, masks: dict) -> dict:
    """`model`'s state with each quantized weight replaced by its dequantized values (code x
    scale, through the same decoding as the compact files), pruned entries kept at zero."""
    from cramming.compress.storage import decode, encode

    state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    dense, _ = decode(*encode(state, masks=masks, quantized=codes))
    return dense
