"""Resumable training state in RUN/checkpoint/, written as a whole directory or not at all.

    model.safetensors   weights (the uncompiled module's state dict)
    state.pt            optimizer, grad scaler and RNG states (torch.save, tensors only)
    train_state.json    step, elapsed_s, tokens, data position, how training ended
                        (stopped_by: null while it runs), config and data hashes, the
                        training segments so far (cramming.train.segments), the sha256 of
                        the two files above and `tensors_sha256` of the weights (what final/
                        of a finished run must hold: crambench.tensor_hash)

Nothing in train_state.json is trusted as written: `check_train_state` checks every field's
type and range (and its consistency with the config) before a resume uses it, and the weights
and optimizer state must match their recorded hashes.

RUN/ended.json (`cram-ended/1`) records that training ended, written before the post-loop
checkpoint and removed once that checkpoint is in place: how it ended (stopped_by, step,
elapsed_s, counts, train loss) and what a resume needs to redo the steps applied since the
checkpoint on disk (a StepJournal), if the process dies while the end state is being saved.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from crambench.contracts import read_contract, sha256_file
from crambench.errors import UserError
from crambench.files import atomic_dir, atomic_file, write_bytes_atomic, write_json_atomic
from crambench.tensor_hash import tensors_sha256_of_bytes
from crambench.units import format_bytes
from cramming.train.segments import segments_problem

CHECKPOINT_FORMAT = "cram-checkpoint/2"
STOPPED_BY = (None, "budget", "steps", "interrupt")  # null: saved while training ran
END_FORMAT = "cram-ended/1"
END_RECORD = "ended.json"
# The train state that ended.json records: how training ended and where.
END_KEYS = ("stopped_by", "step", "elapsed_s", "tokens", "rows", "nonfinite_skips", "train_loss")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def save_checkpoint(run_dir, *, model, optimizer, scaler, train_state: dict) -> str:
    """Build the new checkpoint beside the old one and swap it in, so a crash mid-write keeps
    the previous checkpoint intact. Returns the weights' tensors_sha256."""
    with atomic_dir(Path(run_dir) / "checkpoint", force=True) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        data = save(weights)
        model_sha256 = write_bytes_atomic(tmp / "model.safetensors", data)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng}
        with atomic_file(tmp / "state.pt") as handle:  # streamed: optimizer state is 2x the model
            torch.save(state, handle)
        tensors = tensors_sha256_of_bytes(data, "checkpoint weights")
        write_json_atomic(tmp / "train_state.json", {
            "format": CHECKPOINT_FORMAT, **train_state, "model_sha256": model_sha256,
            "tensors_sha256": tensors, "state_sha256": handle.sha256()})
    return tensors


def read_train_state(run_dir) -> dict:
    """train_state.json, its fields checked for type and range; UserError naming the field."""
    path = Path(run_dir) / "checkpoint" / "train_state.json"
    if not path.exists():
        raise UserError(f"{run_dir} has no checkpoint to resume ({path} is missing)")
    state = read_contract(path, CHECKPOINT_FORMAT)
    counts = ("step", "tokens", "rows", "nonfinite_skips")
    for key in counts:
        _check(path, state, key, _is_count(state.get(key)), "a whole number >= 0")
    _check(path, state, "elapsed_s", _is_number(state.get("elapsed_s"))
           and state["elapsed_s"] >= 0, "a finite number of seconds >= 0")
    _check(path, state, "train_loss", state.get("train_loss") is None
           or _is_number(state["train_loss"]), "null or a finite number")
    _check(path, state, "stopped_by", state.get("stopped_by", "") in STOPPED_BY,
           f"one of {', '.join(map(str, STOPPED_BY))}")
    for key in ("config_sha256", "data_sha256", "model_sha256", "state_sha256"):
        _check(path, state, key, isinstance(state.get(key), str)
               and _SHA256.fullmatch(state[key]) is not None, "a sha256 hex digest")
    for key in ("started_utc", "preset"):
        _check(path, state, key, isinstance(state.get(key), str), "a string")
    if "segments" in state:  # absent in checkpoints written before segments were recorded
        problem = segments_problem(state["segments"])
        _check(path, state, "segments", problem is None, f"a list of training segments "
               f"(segments{problem})")
    return state


def check_train_state(state: dict, cfg, run_dir) -> None:
    """The counts must be ones this config can produce: a step takes at most
    train.batch_size rows, tokens are seq_len per row of an applied step."""
    path = Path(run_dir) / "checkpoint" / "train_state.json"
    t, seq_len = cfg.train, cfg.model.seq_len
    most_rows = (state["step"] + state["nonfinite_skips"]) * t.batch_size
    _check(path, state, "rows", state["rows"] <= most_rows,
           f"at most {most_rows} ((step + nonfinite_skips) x train.batch_size)")
    _check(path, state, "tokens", state["tokens"] % seq_len == 0
           and state["tokens"] <= state["rows"] * seq_len,
           f"a multiple of seq_len {seq_len}, at most rows x seq_len")
    if t.max_steps is not None:
        _check(path, state, "step", state["step"] <= t.max_steps,
               f"at most train.max_steps {t.max_steps}")


def load_checkpoint(run_dir, *, model, optimizer, scaler, restore_rng: bool = True) -> dict:
    """Load weights, optimizer and scaler state in place; returns train_state.json's dict.
    Each file must match the sha256 recorded beside it: a damaged checkpoint never loads."""
    return apply_checkpoint(read_checkpoint(run_dir), model=model, optimizer=optimizer,
                            scaler=scaler, restore_rng=restore_rng)


def read_checkpoint(run_dir) -> dict:
    """RUN/checkpoint/ checked against its recorded hashes and read as CPU tensors:
    {"train_state", "weights", "state", "folder"}. Under DDP rank 0 reads it and broadcasts it,
    so the other ranks need no access to the run dir."""
    folder = Path(run_dir) / "checkpoint"
    train_state = read_train_state(run_dir)
    for name, key in (("model.safetensors", "model_sha256"), ("state.pt", "state_sha256")):
        path = folder / name
        try:
            size, sha256 = path.stat().st_size, sha256_file(path)
        except OSError as err:
            raise UserError(f"cannot load checkpoint: {path}: {err.strerror or err}") from None
        if sha256 != train_state[key]:
            raise UserError(f"{path} is damaged ({format_bytes(size)}): its sha256 does not "
                            f"match {key} in {folder / 'train_state.json'}")
    try:
        weights = load_file(folder / "model.safetensors")
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, SafetensorError,
            pickle.UnpicklingError) as err:  # a foreign file whose hash was recorded with it
        raise _foreign(folder, err) from None
    return {"train_state": train_state, "weights": weights, "state": state, "folder": folder}


def apply_checkpoint(checkpoint: dict, *, model, optimizer, scaler,
                     restore_rng: bool = True) -> dict:
    """Load what `read_checkpoint` read into the model, optimizer and scaler, in place; returns
    the train state."""
    state = checkpoint["state"]
    try:
        model.load_state_dict(checkpoint["weights"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:  # another model's state
        raise _foreign(checkpoint["folder"], err) from None
    if restore_rng:
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return checkpoint["train_state"]


class StepJournal:
    """The optimizer steps applied since the weights were last saved or reloaded: where they
    began (step, rows, tokens) and the budget fraction each read its schedules at. That is all
    it takes to redo them: masks are seeded by step, rows by stream position, and the batch
    size and learning rate follow from the fraction (on `world_size` ranks)."""

    def __init__(self, world_size: int = 1):
        self.world_size = world_size
        self.start: dict = {}
        self.fractions: list[float] = []

    def restart(self, state: dict) -> None:
        """The weights were saved or reloaded: nothing before this needs redoing."""
        self.start = {key: state[key] for key in ("step", "rows", "tokens")}
        self.fractions = []

    def add(self, fraction: float) -> None:
        self.fractions.append(fraction)


def write_end_record(run_dir, state: dict, journal: StepJournal) -> None:
    """RUN/ended.json: training ended (state's END_KEYS), and the steps since the checkpoint on
    disk; written whole or not at all, before the end state is saved."""
    write_json_atomic(Path(run_dir) / END_RECORD, {
        "format": END_FORMAT, **{key: state[key] for key in END_KEYS},
        "replay": {**journal.start, "world_size": journal.world_size,
                   "fractions": journal.fractions}})


def clear_end_record(run_dir) -> None:
    """The end state is in the checkpoint: the record has nothing left to say."""
    (Path(run_dir) / END_RECORD).unlink(missing_ok=True)


def read_end_record(run_dir, checkpoint: dict, cfg) -> dict | None:
    """RUN/ended.json when training ended after `checkpoint` (train_state.json, checked) was
    saved and before the end state was; None without one, or when the checkpoint already holds
    how training ended. Every field is checked, and against the checkpoint it continues from;
    UserError naming the field."""
    path = Path(run_dir) / END_RECORD
    if not path.exists() or checkpoint["stopped_by"] is not None:
        return None
    ended = read_contract(path, END_FORMAT)
    _check(path, ended, "stopped_by", ended.get("stopped_by") in ("budget", "steps"),
           "budget or steps")
    for key in ("step", "tokens", "rows", "nonfinite_skips"):
        _check(path, ended, key, _is_count(ended.get(key)), "a whole number >= 0")
    _check(path, ended, "elapsed_s", _is_number(ended.get("elapsed_s"))
           and ended["elapsed_s"] + 0.001 >= checkpoint["elapsed_s"],  # ms: it is rounded
           f"a number of seconds >= the checkpoint's elapsed_s {checkpoint['elapsed_s']}")
    _check(path, ended, "train_loss", ended.get("train_loss") is None
           or _is_number(ended["train_loss"]), "null or a finite number")
    if cfg.train.max_steps is not None:
        _check(path, ended, "step", ended["step"] <= cfg.train.max_steps,
               f"at most train.max_steps {cfg.train.max_steps}")
    _check(path, ended, "replay", isinstance(ended.get("replay"), dict), "an object")
    replay = {f"replay.{key}": value for key, value in ended["replay"].items()}  # as named
    for key in ("step", "rows", "tokens"):
        _check(path, replay, f"replay.{key}", _is_count(replay.get(f"replay.{key}")),
               "a whole number >= 0")
    ranks = replay.get("replay.world_size")
    _check(path, replay, "replay.world_size", _is_count(ranks) and ranks >= 1,
           "a whole number >= 1")
    # A step reads the clock before it ends: no fraction is past the recorded end.
    last = min(1.0, (ended["elapsed_s"] + 0.001) / cfg.train.budget_s)
    fractions = replay.get("replay.fractions")
    _check(path, replay, "replay.fractions", isinstance(fractions, list), "a list")
    for number, fraction in enumerate(fractions):  # one at a time: the line names one
        key, earlier = f"replay.fractions[{number}]", fractions[number - 1] if number else 0.0
        _check(path, {key: fraction}, key, _is_number(fraction) and earlier <= fraction <= last,
               f"a budget fraction in [{earlier:g}, {last:g}]")
    replay = ended["replay"]
    # It continues the checkpoint on disk: from it, or from a reload of it after a non-finite
    # loss (one at most: a second stops the run), and it ends where its steps lead.
    skips = ended["nonfinite_skips"] - checkpoint["nonfinite_skips"]
    start = [replay[key] for key in ("step", "rows", "tokens")]
    saved = [checkpoint[key] for key in ("step", "rows", "tokens")]
    from_checkpoint = skips == 0 and start == saved
    after_reload = skips == 1 and all(a >= b for a, b in zip(start, saved, strict=True))
    if not (from_checkpoint or after_reload) or replay["step"] + len(fractions) != ended["step"]:
        raise UserError(f"{path} does not continue {path.parent / 'checkpoint'} (step "
                        f"{checkpoint['step']}); remove it to resume from that checkpoint")
    return ended


def _foreign(folder: Path, err: Exception) -> UserError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if isinstance(err, pickle.UnpicklingError):  # its text suggests unsafe loading
        first = "state.pt is not a cram checkpoint"
    return UserError(f"cannot load checkpoint {folder}: {first}")


def _check(path, state: dict, key: str, ok: bool, expected: str) -> None:
    if not ok:
        found = f"is {state[key]!r}" if key in state else "is missing"
        raise UserError(f"{path} is damaged: {key} {found}, expected {expected}")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
