"""A run's plug-in (crambench.plugin) where the model, the optimizer and the schedules are
made: each function below is the hook when the plug-in defines it, the built-in otherwise.

`check_hooks` calls every hook the plug-in defines once on a tiny model and batch, before the
run writes anything or starts its clock, so a hook that raises, returns the wrong type or keeps
state a checkpoint cannot hold is one line naming the file and the hook.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
from pathlib import Path

import torch

from crambench.errors import UserError
from crambench.plugin import HOOKS, Plugin, load_plugin, loaded_plugin
from cramming.config import ModelConfig, OptimConfig, PretrainConfig, TrainConfig
from cramming.model import IGNORE_INDEX, CrammedBert
from cramming.train.objective import mask_tokens, step_generator
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
                        "not an int >= 1")
    if max_rows is not None and rows > max_rows:
        raise UserError(f"{plugin.path}: hook batch_size returned {rows:,} at f={f:.4g}, more "
                        f"than the data dir's {max_rows:,} train rows")
    return rows


def rank_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator a mask_tokens hook draws from on `rank` at `step`: the built-in masking's
    on rank 0 (so one process hands a hook what it would draw itself), an independent one on
    each other rank. A hook sees only its rank's rows, so its masks depend on the world size."""
    if rank == 0:
        return step_generator(seed, step)
    # CPU generators keep 32 bits of a seed: mix all three numbers into those.
    digest = hashlib.sha256(f"cram-mask {seed} {step} {rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:4], "little"))


def mask_rows(rows, index, n_rows: int, *, cfg: PretrainConfig, special_ids: dict,
              step: int, rank: int = 0, world_size: int = 1, position: int = 0):
    """(inputs, labels) for this rank's `rows` (B, T) of a global batch of `n_rows` (`index`:
    where each row sits in it), masked with the step's seed: by the run's mask_tokens hook, or
    built in. When one process holds every rank's rows of a step trained on `world_size` ranks
    (a redo of lost steps), each rank's share is masked as that rank masked it (`position`:
    the stream position of the batch's first row)."""
    t, rows = cfg.train, torch.as_tensor(rows)
    plugin = loaded_plugin(cfg.plugin.sha256)
    if plugin is None or plugin.hook("mask_tokens") is None:
        return mask_tokens(rows, special_ids=special_ids, vocab_size=cfg.model.vocab_size,
                           generator=step_generator(cfg.seed, step), mask_prob=t.mask_prob,
                           mask_token_prob=t.mask_token_prob,
                           random_token_prob=t.random_token_prob, batch_rows=n_rows,
                           row_index=index)
    if world_size == 1 or len(rows) < n_rows:  # this rank's share
        return hook_masks(plugin, rows, cfg, special_ids, rank_generator(cfg.seed, step, rank))
    inputs, labels = torch.empty_like(rows), torch.empty_like(rows)
    for r in range(world_size):  # rank r held global rows (r - position) % world_size + k n
        share = torch.arange((r - position) % world_size, n_rows, world_size)
        inputs[share], labels[share] = hook_masks(plugin, rows[share], cfg, special_ids,
                                                  rank_generator(cfg.seed, step, r))
    return inputs, labels


def hook_masks(plugin: Plugin, rows: torch.Tensor, cfg: PretrainConfig, special_ids: dict,
               generator: torch.Generator):
    """The mask_tokens hook on (B, T) rows, its answer checked: two (B, T) integer tensors,
    inputs in the vocabulary, labels -100 or in the vocabulary."""
    vocab = cfg.model.vocab_size
    returned = plugin.call("mask_tokens", rows.clone(), dict(special_ids), vocab, generator,
                           cfg.train, dict(cfg.plugin.options))
    where = f"{plugin.path}: hook mask_tokens returned"
    if not (isinstance(returned, tuple) and len(returned) == 2
            and all(isinstance(x, torch.Tensor) for x in returned)):
        raise UserError(f"{where} {type(returned).__name__}, not a tuple (inputs, labels) "
                        "of two tensors")
    for name, x in zip(("inputs", "labels"), returned, strict=True):
        if x.shape != rows.shape or x.dtype.is_floating_point or x.dtype == torch.bool:
            raise UserError(f"{where} {name} of {x.dtype} {tuple(x.shape)}, not integer ids "
                            f"of the rows' shape {tuple(rows.shape)}")
    inputs, labels = (x.to("cpu", torch.int64) for x in returned)
    if inputs.numel() and (inputs.min() < 0 or inputs.max() >= vocab):
        raise UserError(f"{where} inputs outside the vocabulary 0..{vocab - 1}")
    targets = labels[labels != IGNORE_INDEX]
    if targets.numel() == 0:
        raise UserError(f"{where} labels that mask no position of its {len(rows)} rows: "
                        "a step needs at least one masked token to learn from")
    if targets.min() < 0 or targets.max() >= vocab:
        raise UserError(f"{where} labels that are neither {IGNORE_INDEX} nor ids in the "
                        f"vocabulary 0..{vocab - 1}")
    return inputs, labels


def objective_of(cfg: PretrainConfig):
    """The run's objective hook as train_loop takes it, `(model, inputs, labels) -> (loss,
    mlm_loss)` with its answer checked; None: the built-in MLM loss."""
    plugin = loaded_plugin(cfg.plugin.sha256)
    if plugin is None or plugin.hook("objective") is None:
        return None
    options = dict(cfg.plugin.options)

    def hooked(model, inputs, labels):
        returned = plugin.call("objective", model, inputs, labels, options)
        if not (isinstance(returned, tuple) and len(returned) == 2
                and all(isinstance(x, torch.Tensor) and x.dim() == 0 for x in returned)):
            raise UserError(f"{plugin.path}: hook objective returned "
                            f"{_shapes(returned)}, not a tuple (loss, mlm_loss) of two 0-d "
                            "tensors")
        if not returned[0].requires_grad:
            raise UserError(f"{plugin.path}: hook objective returned a loss with no gradient "
                            "(compute it from the model's outputs, without torch.no_grad)")
        return returned

    return hooked


def _shapes(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_shapes(x) for x in value) + ")"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_hooks(plugin: Plugin, cfg: PretrainConfig, train_rows: int | None = None) -> None:
    """Call every hook the plug-in defines once: on a 1-layer model of the run's components
    at width 2 x heads x 4, a batch of 2 rows of 8 tokens, and f in {0, 0.5, 1}. The
    optimizer takes a step and must come back from its state_dict. A file of cram prepare's
    hook alone is refused: it would change nothing here."""
    if not any(plugin.hook(name) is not None for name in HOOKS if name not in PREPARE_HOOKS):
        raise UserError(f"{plugin.path} defines only {', '.join(PREPARE_HOOKS)}, which cram "
                        "prepare runs; pass it to cram prepare --plugin")
    if plugin.hook("objective") is not None and cfg.impl.compile:
        # The built-in loss hands a compiled model a fixed MLM head size; a hook's forward sees
        # a masked count that changes every step, and each new shape would compile again.
        raise UserError(f"{plugin.path}: hook objective with impl.compile=true: its forward "
                        "takes a different number of masked positions each step, which "
                        "recompiles the model; set impl.compile=false")
    options = cfg.plugin.options
    heads = cfg.model.heads
    tiny = dataclasses.replace(cfg.model, hidden=heads * 8, layers=1, ffn_hidden=heads * 16,
                               seq_len=8, head_hidden=8)
    torch.manual_seed(0)
    model = build_model(tiny, plugin, options, cfg.train.dropout)
    ids = torch.randint(5, tiny.vocab_size, (2, tiny.seq_len))
    labels = torch.where(torch.arange(tiny.seq_len) % 4 == 0, ids, -100)
    if plugin.hook("mask_tokens") is not None:
        ids, labels = check_masking(plugin, ids, cfg)
    try:
        loss, logits = model(ids, labels)
    except Exception as err:
        raise UserError(f"{plugin.path}: the model from hook build_model failed on a batch of "
                        f"2 x 8 tokens: {type(err).__name__}: {err}") from err
    if not (isinstance(loss, torch.Tensor) and loss.dim() == 0 and torch.isfinite(loss)):
        raise UserError(f"{plugin.path}: the model from hook build_model returned a loss that "
                        "is not a finite scalar tensor")
    if plugin.hook("build_model") is not None:
        check_mlm_loss(plugin, loss, logits, labels)
    hooked = objective_of(cfg)
    if hooked is not None:
        model.zero_grad()
        loss, logged = hooked(model, ids, labels)
        if not (torch.isfinite(loss) and torch.isfinite(logged)):
            raise UserError(f"{plugin.path}: hook objective returned a non-finite loss on a "
                            "batch of 2 x 8 tokens")
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


def check_mlm_loss(plugin: Plugin, loss: torch.Tensor, logits, labels: torch.Tensor) -> None:
    """A plug-in's model must return the MLM loss, the mean cross-entropy of its logits at the
    masked positions: the val loss of every run reads it, so it must measure the same thing.
    Another loss to train on is the objective hook's (an open-track run)."""
    targets = labels.reshape(-1)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise UserError(f"{plugin.path}: the model from hook build_model returned logits that "
                        "are not (positions, vocabulary), as CrammedBert's forward gives them")
    if logits.shape[0] != targets.numel():  # sparse prediction: the masked positions only
        targets = targets[targets != IGNORE_INDEX]
    try:
        expected = torch.nn.functional.cross_entropy(logits.float(), targets)
    except (RuntimeError, IndexError, ValueError) as err:
        raise UserError(f"{plugin.path}: the model from hook build_model returned logits that "
                        f"do not match the masked positions ({type(err).__name__})") from err
    if not torch.allclose(loss.float(), expected, rtol=1e-4, atol=1e-5):
        raise UserError(f"{plugin.path}: the model from hook build_model returned a loss of "
                        f"{loss.item():.6g}, not the MLM cross-entropy of its logits "
                        f"({expected.item():.6g}); every run's val loss must measure the same "
                        "thing: change the training loss with an objective hook instead")


def check_masking(plugin: Plugin, ids: torch.Tensor, cfg: PretrainConfig):
    """The mask_tokens hook twice on the same rows with equally seeded generators: the same
    masks (so a resume redraws them), and no draw from torch's, numpy's or Python's global
    random state (which a checkpoint restores only in part). -> (inputs, labels)."""
    import random

    import numpy as np

    from data_prep.manifest import SPECIAL_IDS as special
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    first = hook_masks(plugin, ids, cfg, special, step_generator(0, 0))
    after = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    if not (torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])
            and before[2] == after[2]):
        raise UserError(f"{plugin.path}: hook mask_tokens draws from a global random state; "
                        "draw only from the generator it is given (torch.rand(..., "
                        "generator=generator)), so that a resumed run draws the same masks")
    again = hook_masks(plugin, ids, cfg, special, step_generator(0, 0))
    if not all(torch.equal(a, b) for a, b in zip(first, again, strict=True)):
        raise UserError(f"{plugin.path}: hook mask_tokens gave other masks for the same rows "
                        "and an equally seeded generator; its draws must come from that "
                        "generator alone")
    return first
