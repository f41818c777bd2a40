"""A trained model on disk: `final/model.safetensors` + `final/model_config.json` (contract 2).

The model file (`cramming.model`) is pure torch; reading and writing its weights lives here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save

from crambench.contracts import read_contract
from crambench.errors import UserError
from crambench.files import write_bytes_atomic, write_json_atomic
from cramming.compress.storage import load_compact, save_compact
from cramming.config import ModelConfig, validate_model, with_legacy
from cramming.model import CrammedBert, CrammedBertForSequenceClassification, count_parameters

MODEL_FORMAT = "cram-model/1"


def save_pretrained(model: CrammedBert, final_dir, *, masks=None, plugin=None) -> None:
    """Write `model.safetensors` + `model_config.json` into an existing directory (atomically).

    `masks` (weight name -> bool keep-mask) stores those weights sparsely, in the compact form
    of `cramming.compress.storage` (a pruned run); the model's weights must already be zero
    where a mask is False. `plugin`: {"sha256", "options"} of the run's plug-in when its
    build_model hook built the model (the run's code/plugin.py builds it again to load it)."""
    final_dir = Path(final_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if masks:
        save_compact(final_dir / "model.safetensors", state, masks=masks)
    else:
        write_bytes_atomic(final_dir / "model.safetensors", save(state, metadata={"format": "pt"}))
    meta = {"format": MODEL_FORMAT, **dataclasses.asdict(model.cfg),
            "params": count_parameters(model), **({"plugin": plugin} if plugin else {})}
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
    cfg, state, masks, _ = _read_final(final_dir)
    return cfg, state, masks


def _read_final(final_dir):
    """(ModelConfig, state_dict, masks, builder): the checked weights of `final_dir`, and the
    `model_builder` of a model a plug-in built (None for the harness's own)."""
    final_dir = _final_dir(final_dir)
    weights, meta_path = final_dir / "model.safetensors", final_dir / "model_config.json"
    for path in (weights, meta_path):
        if not path.is_file():
            raise UserError(f"pretrained model incomplete: {path} is missing")
    meta = read_contract(meta_path, MODEL_FORMAT)
    cfg = model_config_from(meta, meta_path)
    build = model_builder(final_dir, meta)
    try:
        state, masks, _ = load_compact(weights)
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise UserError(f"cannot load {weights}: {err}") from None
    check_weights(cfg, state, config_path=meta_path, weights_path=weights, build=build)
    return cfg, state, masks, (build if meta.get("plugin") else None)


def model_builder(final_dir: Path, meta: dict):
    """(ModelConfig, dropout) -> the model of these weights: CrammedBert, or the run's
    plug-in's build_model (its copy in the run dir, checked against the recorded hash)."""
    record = meta.get("plugin")
    if not record:
        return lambda cfg, dropout=0.0: CrammedBert(cfg, dropout=dropout)
    from crambench.plugin import RUN_COPY, load_plugin
    from cramming.plugins import build_model

    copy = final_dir.parent / RUN_COPY
    if not copy.is_file():
        raise UserError(f"{final_dir}/model_config.json says a plug-in built this model, but "
                        f"{copy} is missing (the run dir's code/ must travel with it)")
    plugin = load_plugin(copy, expected_sha256=record.get("sha256"))
    options = record.get("options") or {}
    return lambda cfg, dropout=0.0: build_model(cfg, plugin, options, dropout)


def built_by_plugin(final_dir) -> bool:
    """Whether a plug-in's build_model built the model in `final_dir` (or RUN/final)."""
    path = _final_dir(final_dir) / "model_config.json"
    return bool(path.is_file() and read_contract(path, MODEL_FORMAT).get("plugin"))


def model_config_from(meta: dict, path) -> ModelConfig:
    """The ModelConfig a `model_config.json` describes (one written before the components had
    names reads as what it was trained with: config.LEGACY); a field of the wrong type, an
    unknown component or an impossible shape is a UserError naming the file (not a traceback
    from building it)."""
    meta = with_legacy("model", meta)
    values = {}
    for name, spec in ModelConfig.__dataclass_fields__.items():
        if name not in meta:
            continue
        value, kind = meta[name], FIELD_KINDS[str(spec.type)]
        if not kind[0](value):
            raise UserError(f"{path}: {name} is {value!r}, expected {kind[1]}")
        values[name] = value
    cfg = ModelConfig(**values)
    try:
        validate_model(cfg)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    return cfg


# ModelConfig's field types as JSON holds them: (check, what the message expects).
FIELD_KINDS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a name"),
}


def check_weights(cfg: ModelConfig, state: dict[str, torch.Tensor], *, config_path,
                  weights_path, build=None) -> None:
    """The weights must be exactly the tensors, of exactly the shapes, of the model the config
    describes: the first difference is one line naming both files (built on the meta device,
    so checking costs no memory)."""
    build = build or (lambda cfg: CrammedBert(cfg))
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build(cfg).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    where = f"{config_path} does not match {weights_path}"
    wrong = [k for k in expected if k in got and got[k] != expected[k]]
    if wrong:
        more = f" (and {len(wrong) - 1} more tensors)" if len(wrong) > 1 else ""
        raise UserError(f"{where}: {wrong[0]} is {list(got[wrong[0]])} in the weights but "
                        f"{list(expected[wrong[0]])} by the config{more}")
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    what = []
    if missing:
        what.append(f"{len(missing)} of the config's tensors are missing (first {missing[0]})")
    if unexpected:
        what.append(f"{len(unexpected)} tensors have no place in the config's model (first "
                    f"{unexpected[0]})")
    if what:
        raise UserError(f"{where}: {'; '.join(what)}")


def load_classifier(final_dir, num_labels: int, dropout: float = 0.1):
    """A fine-tuning model whose encoder holds a pretraining run's `final/` weights; the head
    starts fresh (seed torch before calling). UserError when the weights do not fit the config."""
    cfg, state, _, plugin_build = _read_final(final_dir)
    model = CrammedBertForSequenceClassification(cfg, num_labels, dropout)
    if plugin_build:  # the plug-in's encoder (with the fine-tuning dropout), fresh head
        model.encoder = plugin_build(cfg, dropout).encoder
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
