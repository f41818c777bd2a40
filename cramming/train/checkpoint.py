"""Resumable training state in RUN/checkpoint/, written as a whole directory or not at all.

    model.safetensors   weights (the uncompiled module's state dict)
    state.pt            optimizer, grad scaler and RNG states (torch.save, tensors only)
    train_state.json    step, elapsed_s, tokens, data position, config and data hashes
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from data_prep import UserError
from data_prep.files import atomic_dir, write_json_atomic

CHECKPOINT_FORMAT = "cram-checkpoint/1"
# What a resume reads from train_state.json (the rest is carried into the summary as is).
TRAIN_STATE_KEYS = ("step", "elapsed_s", "tokens", "rows", "config_sha256", "data_sha256")


def save_checkpoint(run_dir, *, model, optimizer, scaler, train_state: dict) -> None:
    """Build the new checkpoint beside the old one and swap it in, so a crash mid-write keeps
    the previous checkpoint intact."""
    with atomic_dir(Path(run_dir) / "checkpoint", force=True) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / "model.safetensors")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng}
        torch.save(state, tmp / "state.pt")
        write_json_atomic(tmp / "train_state.json", {"format": CHECKPOINT_FORMAT, **train_state})


def read_train_state(run_dir) -> dict:
    path = Path(run_dir) / "checkpoint" / "train_state.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no checkpoint to resume ({path} is missing)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise UserError(f"{path}: format {found!r}, expected {CHECKPOINT_FORMAT!r}")
    missing = [key for key in TRAIN_STATE_KEYS if key not in state]
    if missing:
        raise UserError(f"{path} is corrupt: {', '.join(missing)} missing")
    return state


def load_checkpoint(run_dir, *, model, optimizer, scaler, restore_rng: bool = True) -> dict:
    """Load weights, optimizer and scaler state in place; returns train_state.json's dict."""
    folder = Path(run_dir) / "checkpoint"
    train_state = read_train_state(run_dir)
    try:
        weights = load_file(folder / "model.safetensors")
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, SafetensorError,
            pickle.UnpicklingError) as err:  # a damaged or foreign file, each its own type
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if isinstance(err, pickle.UnpicklingError):  # its text suggests unsafe loading
            first = "state.pt is damaged or not a cram checkpoint"
        raise UserError(f"cannot load checkpoint {folder}: {first}") from None
    if restore_rng:
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return train_state
