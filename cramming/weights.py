"""A trained model on disk: `final/model.safetensors` + `final/model_config.json` (contract 2).

The model file (`cramming.model`) is pure torch; reading and writing its weights lives here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save

from cramming.compress.storage import load_compact, save_compact
from cramming.config import ModelConfig
from cramming.model import CrammedBert, CrammedBertForSequenceClassification, count_parameters
from data_prep import UserError
from data_prep.files import read_contract, write_bytes_atomic, write_json_atomic

MODEL_FORMAT = "cram-model/1"


def save_pretrained(model: CrammedBert, final_dir, *, masks=None) -> None:
    """Write `model.safetensors` + `model_config.json` into an existing directory (atomically).

    `masks` (weight name -> bool keep-mask) stores those weights sparsely, in the compact form
    of `cramming.compress.storage` (a pruned run); the model's weights must already be zero
    where a mask is False."""
    final_dir = Path(final_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if masks:
        save_compact(final_dir / "model.safetensors", state, masks=masks)
    else:
        write_bytes_atomic(final_dir / "model.safetensors", save(state, metadata={"format": "pt"}))
    meta = {"format": MODEL_FORMAT, **dataclasses.asdict(model.cfg),
            "params": count_parameters(model)}
    write_json_atomic(final_dir / "model_config.json", meta)


def load_pretrained(final_dir) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(ModelConfig, state_dict) from `final/model.safetensors` + `final/model_config.json`.

    `final_dir` may also be the run dir that holds `final/`. A pruned run's sparse weights come
    back dense (zeros where pruned). Raises UserError when a file is missing or unreadable."""
    cfg, state, _ = load_pretrained_with_masks(final_dir)
    return cfg, state


def load_pretrained_with_masks(final_dir):
    """(ModelConfig, state_dict, masks): `load_pretrained` plus the pruning masks (weight name
    -> bool keep-mask) a pruned run stores; {} for a run that was not pruned."""
    final_dir = _final_dir(final_dir)
    weights, meta_path = final_dir / "model.safetensors", final_dir / "model_config.json"
    for path in (weights, meta_path):
        if not path.is_file():
            raise UserError(f"pretrained model incomplete: {path} is missing")
    meta = read_contract(meta_path, MODEL_FORMAT)
    fields = {f for f in ModelConfig.__dataclass_fields__}
    try:
        cfg = ModelConfig(**{k: v for k, v in meta.items() if k in fields})
        state, masks, _ = load_compact(weights)
    except (TypeError, SafetensorError, OSError, KeyError, ValueError) as err:
        raise UserError(f"cannot load {final_dir}: {err}") from None
    return cfg, state, masks


def load_classifier(final_dir, num_labels: int, dropout: float = 0.1):
    """A fine-tuning model whose encoder holds a pretraining run's `final/` weights; the head
    starts fresh (seed torch before calling). UserError when the weights do not fit the config."""
    cfg, state = load_pretrained(final_dir)
    model = CrammedBertForSequenceClassification(cfg, num_labels, dropout)
    prefix = "encoder."
    encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = model.encoder.load_state_dict(encoder_state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"{final_dir}: weights do not match the model config "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model


def _final_dir(path) -> Path:
    path = Path(path)
    if not (path / "model.safetensors").exists() and (path / "final").is_dir():
        path = path / "final"  # a run dir was given
    return path
