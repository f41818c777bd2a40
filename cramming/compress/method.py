"""Compression methods as the command line names them: `prune:0.5`, `int8`, `int4`, composed
with `+` (`prune:0.5+int8`). Torch-free: the validator parses the same strings.

Order is the order of work: pruning (with its recovery training) shapes the weights that are
fine-tuned; quantization is applied last, to the task model after fine-tuning. So a method
names at most one pruning step, then at most one quantization step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crambench.errors import UserError

SPEC_FORMAT = "cram-compression/1"
SPEC_FILE = "compression.json"  # in a compressed run's final/: what evaluation does to a model
QUANT_BITS = {"int8": 8, "int4": 4}
FULL_BITS = 32  # an unquantized model stores fp32 weights
_PRUNE = re.compile(r"prune:(?P<sparsity>[-+]?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)")
USAGE = "use prune:SPARSITY (0 < SPARSITY < 1), int8 or int4, joined by '+', e.g. prune:0.5+int8"


@dataclass(frozen=True)
class Method:
    """What a compressed model has had done to it: pruned to `sparsity` (None: not pruned) and
    quantized to `bits` after fine-tuning (None: fp32)."""

    sparsity: float | None = None
    bits: int | None = None

    def __str__(self) -> str:
        steps = []
        if self.sparsity is not None:
            steps.append(f"prune:{self.sparsity:g}")
        if self.bits is not None:
            steps.append(f"int{self.bits}")
        return "+".join(steps) or "none"

    @property
    def trains(self) -> bool:
        """Pruning trains (recovery on the MLM objective); quantization trains nothing."""
        return self.sparsity is not None

    @property
    def stored_bits(self) -> int:
        return self.bits or FULL_BITS


def parse_method(text: str) -> Method:
    """`prune:0.5+int8` -> Method(0.5, 8). UserError naming the string for anything else."""
    steps = [step.strip().lower() for step in str(text).split("+")]
    sparsity, bits = None, None
    for step in steps:
        prune = _PRUNE.fullmatch(step)
        if prune:
            value = float(prune["sparsity"])
            if not 0 < value < 1:
                raise UserError(f"--method {text!r}: sparsity {value:g} must lie strictly "
                                "between 0 and 1 (a fraction of the weights to remove)")
            if sparsity is not None:
                raise UserError(f"--method {text!r}: prune is given twice")
            if bits is not None:
                raise UserError(f"--method {text!r}: pruning must come before quantization "
                                "(quantization is applied last, after fine-tuning)")
            sparsity = value
        elif step in QUANT_BITS:
            if bits is not None:
                raise UserError(f"--method {text!r}: quantization is given twice")
            bits = QUANT_BITS[step]
        elif step.startswith("prune"):
            raise UserError(f"--method {text!r}: malformed pruning step {step!r}; "
                            "write prune:SPARSITY, e.g. prune:0.5")
        else:
            raise UserError(f"--method {text!r}: unknown step {step or '(empty)'!r}; {USAGE}")
    return Method(sparsity, bits)


def compose(parent: Method | None, stage: Method, parent_run) -> Method:
    """The method of a run compressed by `stage` from a parent already compressed by `parent`.

    Supported: pruning further (to a higher sparsity), and quantizing a pruned run. Not
    supported: anything after quantization, which is the last step by construction."""
    if parent is None:
        return stage
    if parent.bits is not None:
        raise UserError(f"run {parent_run} is already compressed with {parent}: quantization is "
                        f"the last step (applied after fine-tuning); compress its parent instead")
    sparsity = parent.sparsity
    if stage.sparsity is not None:
        if sparsity is not None and stage.sparsity <= sparsity:
            raise UserError(f"run {parent_run} is already pruned to {sparsity:g}: prune:"
                            f"{stage.sparsity:g} would remove nothing; ask for more than "
                            f"{sparsity:g}")
        sparsity = stage.sparsity
    return Method(sparsity, stage.bits)
