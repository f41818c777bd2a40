"""A run's plug-in (crambench.plugin) where the model, the optimizer and the schedules are
made: each function below is the hook when the plug-in defines it, the built-in otherwise.

`check_hooks` calls every hook the plug-in defines once on a tiny model and batch, before the
run writes anything or starts its clock, so a hook that raises, returns the wrong type or keeps
state a checkpoint cannot hold is one line naming the file and the hook.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from pathlib import Path

import torch

from crambench.errors import UserError
from crambench.plugin import HOOKS, Plugin, load_plugin, loaded_plugin
from cramming.config import ModelConfig, OptimConfig, PretrainConfig, TrainConfig
from cramming.model import CrammedBert
from cramming.train.optimizers import build_optimizer as builtin_optimizer
from cramming.train.schedules import batch_size_at, lr_factor_at

PREPARE_HOOKS = ("keep_document",)  # cram prepare's hooks (data_prep.keep_document): not run here


def run_plugin(run, cfg: PretrainConfig) -> Plugin | None:
    """The plug-in `run` trained with (its copy, checked against config.yaml's hash)."""
    if not cfg.plugin.file:
        return None
    return load_plugin(Path(run) / cfg.plugin.file, expected_sha256=cfg.plugin.sha256)


def lr_at(f: float, cfg: PretrainConfig) -> float:
    """optim.lr times the schedule's factor at f (the run's plug-in, loaded, or built in)."""
    plugin = loaded_plugin(cfg.plugin.sha256)
    return cfg.optim.lr * lr_factor(f, cfg.train, plugin, cfg.plugin.options)


def rows_at(f: float, cfg: PretrainConfig, max_rows: int | None = None) -> int:
    """Sequences in the step at f, all ranks together, before rounding to the world size;
    a plug-in's count past `max_rows` (the train split) is refused."""
    return batch_size(f, cfg.train, loaded_plugin(cfg.plugin.sha256), cfg.plugin.options,
                      max_rows)


def model_record(cfg: PretrainConfig) -> dict | None:
    """What final/model_config.json records when the run's plug-in built the model: its hash
    and options (None when the model is the harness's own)."""
    plugin = loaded_plugin(cfg.plugin.sha256)
    if plugin is None or plugin.hook("build_model") is None:
        return None
    return {"sha256": plugin.sha256, "options": dict(cfg.plugin.options)}


def build_model(cfg: ModelConfig, plugin: Plugin | None, options: dict,
                dropout: float = 0.0) -> CrammedBert:
    if plugin is None or plugin.hook("build_model") is None:
        return CrammedBert(cfg, dropout=dropout)
    model = plugin.call("build_model", cfg, dict(options), dropout)
    if not isinstance(model, CrammedBert):
        raise UserError(f"{plugin.path}: hook build_model returned {type(model).__name__}, "
                        "not a cramming.model.CrammedBert (subclass it, or build one from "
                        "your modules)")
    return model


def build_optimizer(model, o: OptimConfig, plugin: Plugin | None, options: dict, device):
    if plugin is None or plugin.hook("build_optimizer") is None:
        return builtin_optimizer(model, o, device)
    optimizer = plugin.call("build_optimizer", model, o, dict(options))
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise UserError(f"{plugin.path}: hook build_optimizer returned "
                        f"{type(optimizer).__name__}, not a torch.optim.Optimizer")
    return optimizer


def lr_factor(f: float, t: TrainConfig, plugin: Plugin | None, options: dict) -> float:
    if plugin is None or plugin.hook("lr_factor") is None:
        return lr_factor_at(f, t)
    factor = _number(plugin.call("lr_factor", f, t, dict(options)), numbers.Real)
    if factor is None or not math.isfinite(factor) or factor < 0:
        raise UserError(f"{plugin.path}: hook lr_factor returned {factor!r} at f={f:.4g}, "
                        "not a finite number >= 0")
    return float(factor)


def _number(value, kind):
    """A Python, numpy or one-element torch number of `kind` (numbers.Integral or Real) as a
    Python number; None for anything else (bools included)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, kind):
        return None
    return int(value) if kind is numbers.Integral else float(value)


def batch_size(f: float, t: TrainConfig, plugin: Plugin | None, options: dict,
               max_rows: int | None = None) -> int:
    if plugin is None or plugin.hook("batch_size") is None:
        if not t.batch_ramp:
            return t.batch_size
        return batch_size_at(f, t.batch_start, t.batch_size, t.batch_ramp_until)
    returned = plugin.call("batch_size", f, t, dict(options))
    rows = _number(returned, numbers.Integral)
    if rows is None or rows < 1:
        raise UserError(f"{plugin.path}: hook batch_size returned {returned!r} at f={f:.4g}, "
                        "not a whole number >= 1")
    if max_rows is not None and rows > max_rows:
        raise UserError(f"{plugin.path}: hook batch_size returned {rows:,} at f={f:.4g}, more "
                        f"than the data dir's {max_rows:,} train rows")
    return rows


def check_hooks(plugin: Plugin, cfg: PretrainConfig, train_rows: int | None = None) -> None:
    """Call every hook the plug-in defines once: on a 1-layer model of the run's components
    at width 2 x heads x 4, a batch of 2 rows of 8 tokens, and f in {0, 0.5, 1}. The
    optimizer takes a step and must come back from its state_dict. A file of cram prepare's
    hook alone is refused: it would change nothing here."""
    if not any(plugin.hook(name) is not None for name in HOOKS if name not in PREPARE_HOOKS):
        raise UserError(f"{plugin.path} defines only {', '.join(PREPARE_HOOKS)}, which cram "
                        "prepare runs; pass it to cram prepare --plugin")
    options = cfg.plugin.options
    heads = cfg.model.heads
    tiny = dataclasses.replace(cfg.model, hidden=heads * 8, layers=1, ffn_hidden=heads * 16,
                               seq_len=8, head_hidden=8)
    torch.manual_seed(0)
    model = build_model(tiny, plugin, options, cfg.train.dropout)
    ids = torch.randint(5, tiny.vocab_size, (2, tiny.seq_len))
    labels = torch.where(torch.arange(tiny.seq_len) % 4 == 0, ids, -100)
    try:
        loss, _ = model(ids, labels)
    except Exception as err:
        raise UserError(f"{plugin.path}: the model from hook build_model failed on a batch of "
                        f"2 x 8 tokens: {type(err).__name__}: {err}") from err
    if not (isinstance(loss, torch.Tensor) and loss.dim() == 0 and torch.isfinite(loss)):
        raise UserError(f"{plugin.path}: the model from hook build_model returned a loss that "
                        "is not a finite scalar tensor")
    loss.backward()
    optimizer = build_optimizer(model, cfg.optim, plugin, options, torch.device("cpu"))
    optimizer.step()
    try:
        again = build_optimizer(model, cfg.optim, plugin, options, torch.device("cpu"))
        again.load_state_dict(optimizer.state_dict())
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"{plugin.path}: the optimizer from hook build_optimizer does not come "
                        f"back from its state_dict ({type(err).__name__}: {err}); a "
                        "checkpoint could not resume it") from err
    for f in (0.0, 0.5, 1.0):
        lr_factor(f, cfg.train, plugin, options)
        batch_size(f, cfg.train, plugin, options, train_rows)

