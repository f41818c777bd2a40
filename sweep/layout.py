"""Where a sweep keeps its runs: DIR/runs/ARM/seed-S (each an ordinary run dir, cram-run/1)
and DIR/sweep.json, the spec it was started with (`cram-sweep-dir/1`).

The run dirs are the record: `cram sweep report DIR` reads them, wherever they were trained
(this machine, a SLURM array, separate torchrun jobs), once they sit at these paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crambench.contracts import read_contract
from crambench.errors import UserError
from crambench.files import write_json_atomic
from sweep.spec import Arm, EvalSpec, SweepSpec, load_spec

DIR_FORMAT = "cram-sweep-dir/1"
RECORD = "sweep.json"


def run_dir(out, arm: str, seed: int) -> Path:
    """DIR/runs/ARM/seed-S."""
    return Path(out) / "runs" / arm / f"seed-{seed}"


def save_spec(out, spec: SweepSpec) -> None:
    """Record the spec in DIR, or refuse a spec whose runs differ from the recorded one's
    (a changed spec would mix runs of two sweeps); metric and alpha may change."""
    path = Path(out) / RECORD
    if path.exists():
        recorded = read_spec(out)
        if recorded.runs_sha256() != spec.runs_sha256():
            raise UserError(f"{out} holds a sweep of another spec ({changed(recorded, spec)} "
                            "differ): use another --out, or the spec it was started with")
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"format": DIR_FORMAT, "runs_sha256": spec.runs_sha256(),
                             "spec": dataclasses.asdict(spec)})


def changed(a: SweepSpec, b: SweepSpec) -> str:
    """The top-level spec fields in which a and b differ, for the refusal."""
    left, right = dataclasses.asdict(a), dataclasses.asdict(b)
    keys = [key for key in left if left[key] != right[key] and key not in ("metric", "alpha")]
    return ", ".join(keys) or "their hashes"


def read_spec(out) -> SweepSpec:
    """The spec recorded in DIR/sweep.json."""
    path = Path(out) / RECORD
    if not path.is_file():
        raise UserError(f"{path} not found: not a sweep dir (give --spec SPEC for run dirs "
                        "collected by hand under DIR/runs/ARM/seed-S)")
    raw = read_contract(path, DIR_FORMAT)["spec"]
    try:
        arms = tuple(Arm(**{**arm, "overrides": tuple(arm["overrides"])}) for arm in raw["arms"])
        evaluation = EvalSpec(**{**raw["eval"], "tasks": tuple(raw["eval"]["tasks"]),
                                 "seeds": tuple(raw["eval"]["seeds"])})
        return SweepSpec(**{**raw, "arms": arms, "eval": evaluation,
                            "seeds": tuple(raw["seeds"])})
    except (KeyError, TypeError) as err:
        raise UserError(f"{path}: spec is damaged ({err})") from None


def sweep_spec(out, spec_path=None) -> SweepSpec:
    """The spec of DIR: the file given, else the one recorded in DIR."""
    return load_spec(spec_path) if spec_path else read_spec(out)
