"""Post-training weight quantization of a fine-tuned task model, with torchao.

Scheme (torchao `IntxWeightOnlyConfig`, symmetric, weights only; activations stay fp32):
- int8: one scale per output channel (row) of each weight;
- int4: one scale per group of 32 consecutive input features of each row (per-channel int4
  loses too much on small matrices; 32 is torchao's smallest standard group size).
Applied to every `nn.Linear` and `nn.Embedding` weight of the task model (token embedding,
every encoder linear, the head); norms, biases and the position scale stay fp32. The embedding
is included because in the small presets it holds most of the parameters.

Why this library and config: torchao is PyTorch's own quantization library (torch's eager
`torch.ao.quantization` is deprecated in its favour); `IntxWeightOnlyConfig` gives int8 and
int4 through one code path that runs on CPU and CUDA alike (weights held as int8 codes and
dequantized in the matmul), and exposes its codes and scales, which `storage` writes to disk
as they are.
"""

from __future__ import annotations

import contextlib
import logging
from functools import cache

import torch
from torch import nn

from crambench.errors import UserError

INT4_GROUP_SIZE = 32
ALTERNATIVE = {4: "int8 (per-channel int8 runs wherever torchao does)",
               8: "prune:SPARSITY alone (no quantization)"}


@contextlib.contextmanager
def quiet_torchao_logs():
    """On a CPU build of torch, torchao's import logs that its CUDA-only kernels (mxfp8, sm90
    cutlass) do not load, and torch logs a deprecation of a call torchao makes: neither
    concerns weight-only quantization (nor a transformers model loading, which imports
    torchao by itself), so they are kept out of the command's output."""
    quiet = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _torchao():
    with quiet_torchao_logs():
        try:
            import torchao
            from torchao.quantization import IntxWeightOnlyConfig, quantize_
            from torchao.quantization.granularity import PerAxis, PerGroup
            from torchao.quantization.quant_primitives import MappingType
        except ImportError as err:  # an install without the pinned torchao
            raise UserError(f"quantization needs torchao ({err}); reinstall the project "
                            "(pip install -e .) to get the pinned version") from None
    return torchao, IntxWeightOnlyConfig, quantize_, PerAxis, PerGroup, MappingType


def scheme(bits: int) -> dict:
    """The quantization as recorded in a compressed run and its results."""
    torchao = _torchao()[0]
    return {"library": f"torchao {torchao.__version__}", "config": "IntxWeightOnlyConfig",
            "bits": bits, "mapping": "symmetric",
            "granularity": "per-channel" if bits == 8 else f"per-group {INT4_GROUP_SIZE}",
            "applies_to": "every nn.Linear and nn.Embedding weight of the task model, after "
                          "fine-tuning"}


def _config(bits: int):
    _, IntxWeightOnlyConfig, _, PerAxis, PerGroup, MappingType = _torchao()
    granularity = PerAxis(0) if bits == 8 else PerGroup(INT4_GROUP_SIZE)
    return IntxWeightOnlyConfig(weight_dtype=torch.int8 if bits == 8 else torch.int4,
                                granularity=granularity, mapping_type=MappingType.SYMMETRIC)


def _quantizable(module: nn.Module, fqn: str = "") -> bool:
    return isinstance(module, nn.Linear | nn.Embedding)


def quantize_model(model: nn.Module, bits: int) -> dict:
    """Quantize `model`'s weights in place; returns weight name -> (codes int8 tensor of the
    weight's shape, scales (out, groups), bits), the form `storage` writes."""
    _, _, quantize_, *_ = _torchao()
    check_widths(model, bits)
    quantize_(model, _config(bits), filter_fn=_quantizable)
    codes = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None) if _quantizable(module) else None
        if weight is not None and hasattr(weight, "qdata"):
            codes[f"{name}.weight"] = (weight.qdata.detach(), weight.scale.detach(), bits)
    return codes


def check_widths(model: nn.Module, bits: int, *, where: str = "") -> None:
    """UserError naming the first weight `bits`-bit quantization cannot group: int4 needs
    every quantized weight's input features (columns) to be a multiple of INT4_GROUP_SIZE.
    `model` may live on the meta device (shapes only); `where` prefixes the message."""
    if bits != 4:
        return  # int8 is per output channel: any width
    for name, module in model.named_modules():
        width = module.weight.shape[1] if _quantizable(module) else 0
        if width % INT4_GROUP_SIZE:
            raise UserError(f"{where}int4 groups {INT4_GROUP_SIZE} input features, but {name} "
                            f"has {width}; use {ALTERNATIVE[4]}")


def check_model_config(cfg, bits: int, *, where: str = "") -> None:
    """Would a run of shape `cfg` (a ModelConfig) quantize to `bits`? Checked on the models
    quantization meets, built on the meta device (no memory, no time): the task model that
    evaluation deploys (encoder and classification head) and the encoder that an export
    dequantizes. UserError as `check_widths`."""
    from cramming.model import CrammedBertForSequenceClassification

    with torch.device("meta"):
        task_model = CrammedBertForSequenceClassification(cfg, num_labels=3)
    check_widths(task_model, bits, where=where)


@cache
def check_supported(bits: int, device: str = "cpu") -> None:
    """Quantize and run a small model on `device`; a one-line UserError naming the
    alternative when torchao cannot run this width here."""
    torchao = _torchao()[0]
    probe = nn.Sequential(nn.Embedding(16, 64), nn.Linear(64, 64)).to(device)
    try:
        quantize_model(probe, bits)
        with torch.no_grad():
            probe(torch.arange(4, device=device)[None])
    except UserError:
        raise
    except Exception as err:  # the library's own error, whatever its type
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"int{bits} weight-only quantization does not run on {device} with "
                        f"torchao {torchao.__version__} ({first}); use {ALTERNATIVE[bits]}") \
            from None
