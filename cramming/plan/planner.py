"""Size a BERT to a budget and a GPU: rank shapes by the MLM loss they are expected to reach.

For each candidate shape (depth, width, heads, feed-forward size) the planner picks the largest
micro-batch whose memory estimate fits the device (`memory.py`), predicts its training speed
(`speed_law.py`: constants stored per GPU in `gpus.py`, or fitted to timings on this machine),
turns speed into tokens within the budget, and predicts the loss from the loss law fitted to
the project's own short runs (`scaling_law.py`). Two forces meet in that ranking: a bigger model
learns more per token ("Train Large, Then Compress"), but a smaller or shallower one sees more
tokens in the same hours (the cramming study's observation on one GPU in one day).

The candidate grid follows de Wynter & Perry's search space in spirit (depth, heads, width and
feed-forward size vary together) with the conventions of the reference model: head size 64
(BERT), GLU in-projection 4x width (crammed-bert: 3072 for 768), widths in multiples of 64
(the calculator notes such widths run faster on tensor cores).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from crambench.errors import UserError
from crambench.files import write_text_atomic
from crambench.progress import progress_line
from cramming.config import ModelConfig, load_config, to_yaml
from cramming.plan.gpus import GIB, GPUS, derived_law, find_gpu
from cramming.plan.memory import MICRO_BATCHES, largest_fitting_micro_batch, training_memory
from cramming.plan.scaling_law import load_loss_law
from cramming.plan.speed_law import SpeedLaw, fit_speed_law, param_counts, time_shape

PLAN_FORMAT = "cram-plan/1"
REFERENCE = "crammed-bert"
HEAD_DIM = 64  # BERT-base and crammed-bert: 768 / 12
FFN_RATIO = 4  # GLU in-projection per unit width (crammed-bert: 3072 / 768)
# Bounded by BERT-large (24 layers, width 1024): de Wynter & Perry search sub-architectures of
# BERT-large, so their space has the same bounds. The bound matters: the published speed law's
# achieved FLOP/s grows as width^1.66 without saturating, so per-token speed falls only as
# width^-0.34 and, unbounded, the planner would always go wider.
DEPTHS = (2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24)
WIDTHS = tuple(range(64, 1025, 64))
# Kaplan et al. (2020, section 3.1, fig. 5): at fixed non-embedding N the loss moves only a few
# percent across a wide range of width/depth ratios. The loss law ignores shape, so the grid
# keeps to a moderate range around the reference's 768 / 16 = 48.
ASPECT_RANGE = (8, 160)
MEMORY_HEADROOM = 0.9  # allocator fragmentation and what the estimate leaves out
CUDA_CONTEXT_GIB = 0.5  # memory the CUDA context and kernels take before any tensor
CPU_MEMORY_SHARE = 0.5  # on CPU, leave half the RAM to everything else
PROBE_SECONDS = 2.0  # timing per probe shape: enough steps to average out a noisy machine

# Probe shapes for --measure, (width, depth, micro-batch): width, depth and batch each vary
# while the others stay put, so all four constants of the speed law are identified.
PROBES = {
    "cpu": [(128, 2, 16), (128, 4, 16), (256, 2, 16), (256, 4, 8), (64, 2, 32), (192, 3, 32),
            (128, 8, 16), (128, 2, 4)],
    "cuda": [(256, 4, 32), (512, 4, 64), (512, 8, 64), (768, 12, 128), (768, 16, 32),
             (1024, 8, 128), (384, 16, 128), (768, 4, 8)],
}


@dataclasses.dataclass
class Target:
    """The device a plan is for: its memory, training precision and speed law."""

    name: str
    kind: str  # "cuda" | "cpu"
    memory_bytes: float
    precision: str
    law: SpeedLaw
    measured: list[dict] = dataclasses.field(default_factory=list)

    def usable_bytes(self) -> float:
        return usable_memory(self.kind, self.memory_bytes)


def usable_memory(kind: str, memory_bytes: float) -> float:
    """What training may use of a device's memory: headroom on a GPU, half the RAM on a CPU."""
    if kind == "cpu":
        return memory_bytes * CPU_MEMORY_SHARE
    return memory_bytes * MEMORY_HEADROOM - CUDA_CONTEXT_GIB * GIB


def shape(width: int, depth: int, *, vocab_size: int, seq_len: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, seq_len=seq_len, hidden=width, layers=depth,
                       heads=max(1, width // HEAD_DIM), ffn_hidden=FFN_RATIO * width)


def candidate_shapes(vocab_size: int, seq_len: int) -> list[ModelConfig]:
    return [
        shape(w, d, vocab_size=vocab_size, seq_len=seq_len)
        for d in DEPTHS
        for w in WIDTHS
        if ASPECT_RANGE[0] <= w / d <= ASPECT_RANGE[1]
    ]


def local_target(*, vocab_size: int, seq_len: int, seconds: float, quiet: bool,
                 device: str = "auto") -> Target:
    """Time the probe shapes on this machine's `device` (auto, cpu, cuda); fit the speed law."""
    import torch

    from cramming.train.hardware import detect_hardware, resolve_device, resolve_precision

    device = resolve_device(device)
    hardware = detect_hardware(device)
    precision = resolve_precision("auto", device)
    if device.type == "cuda":
        name, memory = hardware["gpu_name"], torch.cuda.get_device_properties(0).total_memory
    else:
        name = hardware["cpu_name"]
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    usable = usable_memory(device.type, memory)
    progress_line(f"cram plan: timing {len(PROBES[device.type])} probe shapes, {seconds:g} s "
                  f"each, on {name} to fit the speed law (a named --gpu uses stored constants "
                  "instead)", quiet=quiet)
    samples = []
    for width, depth, micro_batch in PROBES[device.type]:
        cfg = shape(width, depth, vocab_size=vocab_size, seq_len=seq_len)
        # A smaller card times a smaller micro-batch rather than running out of memory.
        micro_batch = largest_fitting_micro_batch(
            cfg, usable, precision=precision, candidates=[b for b in MICRO_BATCHES
                                                          if b <= micro_batch])
        if micro_batch is None:
            continue
        sample = time_shape(cfg, micro_batch, device=device.type, seconds=seconds,
                            precision=precision)
        samples.append(sample)
        progress_line(f"cram plan: timed {depth} x {width}, micro-batch {micro_batch}: "
                      f"{sample['tokens_per_s']:,.0f} tokens/s", quiet=quiet)
    if len(samples) < 5:
        raise UserError(f"only {len(samples)} probe shapes fit in {usable / GIB:.1f} GiB of "
                        f"{name}; the speed law needs 5 to fit")
    law = fit_speed_law(samples, provenance={
        "kind": "measured",
        "device": name,
        "torch_threads": torch.get_num_threads(),
        "precision": precision,
        "measured_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "method": f"forward+backward of CrammedBert, {seconds:g} s per probe shape, "
                  "SciPy curve_fit in log space",
    })
    return Target(name=name, kind=device.type, memory_bytes=memory, precision=precision,
                  law=law, measured=samples)


def resolve_target(gpu: str, *, measure: bool, vocab_size: int, seq_len: int,
                   probe_seconds: float, quiet: bool, device: str = "auto") -> Target:
    if gpu == "auto":
        return local_target(vocab_size=vocab_size, seq_len=seq_len, seconds=probe_seconds,
                            quiet=quiet, device=device)
    spec = find_gpu(gpu)
    if spec is None:
        raise UserError(f"unknown --gpu {gpu!r}: choose {', '.join(GPUS)} or auto")
    if measure:
        local = _local_gpu_name()
        if local is None or find_gpu(local) is not spec:
            raise UserError(f"--measure times this machine's device ({local or 'CPU'}), not a "
                            f"{spec.name}; use --gpu auto, or drop --measure for stored constants")
        return local_target(vocab_size=vocab_size, seq_len=seq_len, seconds=probe_seconds,
                            quiet=quiet)
    return Target(name=spec.name, kind="cuda", memory_bytes=spec.memory_gib * GIB,
                  precision=spec.precision, law=derived_law(spec))


def evaluate(cfg: ModelConfig, target: Target, budget_s: float, loss_law) -> dict | None:
    """One table row, or None when not even the smallest micro-batch fits."""
    micro_batch = largest_fitting_micro_batch(cfg, target.usable_bytes(),
                                              precision=target.precision)
    if micro_batch is None:
        return None
    memory = training_memory(cfg, micro_batch, precision=target.precision)["total"]
    counts = param_counts(cfg)
    tokens_per_s = target.law.tokens_per_s(cfg, micro_batch)
    tokens = tokens_per_s * budget_s
    extrapolation = loss_law.extrapolation(counts["blocks"], tokens)
    return {
        "layers": cfg.layers,
        "hidden": cfg.hidden,
        "heads": cfg.heads,
        "ffn_hidden": cfg.ffn_hidden,
        "micro_batch": micro_batch,
        "params": counts["total"],
        "block_params": counts["blocks"],
        "tokens_per_s": tokens_per_s,
        "tokens": tokens,
        "predicted_loss": float(loss_law.loss(counts["blocks"], tokens)),
        "memory_gib": memory / GIB,
        "extrapolation": extrapolation,
    }


def plan(budget_s: float, gpu: str, *, data=None, measure: bool = False, top: int = 5,
         probe_seconds: float | None = None, quiet: bool = False, device: str = "auto") -> dict:
    """Rank candidate shapes for `budget_s` seconds on `gpu` (a key of GPUS, or auto).

    `device` (auto, cpu, cuda) picks what `gpu="auto"` times on this machine."""
    probe_seconds = PROBE_SECONDS if probe_seconds is None else probe_seconds
    if not budget_s > 0:
        raise UserError(f"budget must be positive, got {budget_s}")
    if top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    vocab_size, seq_len, data_path, assumed = _data_shape(data, gpu, device)
    target = resolve_target(gpu, measure=measure, vocab_size=vocab_size, seq_len=seq_len,
                            probe_seconds=probe_seconds, quiet=quiet, device=device)
    loss_law = load_loss_law()
    rows = [row for cfg in candidate_shapes(vocab_size, seq_len)
            if (row := evaluate(cfg, target, budget_s, loss_law)) is not None]
    if not rows:
        raise UserError(f"no candidate shape fits in {target.usable_bytes() / GIB:.1f} GiB")
    preset_model = load_config(REFERENCE).model
    reference_cfg = dataclasses.replace(preset_model, vocab_size=vocab_size, seq_len=seq_len)
    reference = evaluate(reference_cfg, target, budget_s, loss_law)
    if reference is not None:
        reference["reference"] = REFERENCE
        # The reference shape is ranked at the plan's vocabulary (the same data for every
        # row); the preset itself, at its own vocabulary, has more embedding parameters.
        reference["preset_vocab_size"] = preset_model.vocab_size
        reference["preset_params"] = param_counts(preset_model)["total"]
        rows = [r for r in rows if _key(r) != _key(reference)] + [reference]
    rows.sort(key=lambda r: r["predicted_loss"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    best = rows[0]
    return {
        "format": PLAN_FORMAT,
        "budget_s": budget_s,
        "device": {"name": target.name, "kind": target.kind, "precision": target.precision,
                   "memory_gib": round(target.memory_bytes / GIB, 2),
                   "usable_gib": round(target.usable_bytes() / GIB, 2)},
        "data": {"path": data_path, "vocab_size": vocab_size, "seq_len": seq_len,
                 "assumed": assumed},
        "speed_law": target.law.to_dict(),
        "measured": target.measured,
        "loss_law": loss_law.to_dict(),
        "candidates": len(rows),
        "top": rows[:top],
        "reference": reference,
        "frontier": {
            "loss_law_size_exponent": loss_law.optimal_size_exponent(),
            "calculator_size_exponent": math.log10(7.4),  # 10x compute -> 7.4x model size
        },
        "extrapolated": best["extrapolation"]["n_factor"] > 1
        or best["extrapolation"]["d_factor"] > 1,
        "base_preset": _base_preset(target.kind, budget_s),
    }


def format_table(result: dict) -> str:
    """The plan as text: header, ranked rows (reference marked), and what to trust."""
    dev, law, loss = result["device"], result["speed_law"], result["loss_law"]
    fit = loss["fit"]
    lines = [
        f"cram plan: {_duration(result['budget_s'])} on {dev['name']} ({dev['precision']}, "
        f"{dev['memory_gib']:g} GiB, {dev['usable_gib']:g} GiB usable)",
        f"speed law ({law['provenance'].get('kind')}): tokens/s = {law['k']:.3g} * w^{law['a']:.2f}"
        f" * d/(d+{law['b']:.2f}) * ln(micro_batch)^{law['c']:.2f} / FLOPs per token",
        f"  {law['provenance'].get('method') or law['provenance'].get('source')}",
        f"loss law: L = {loss['E']:.3f} + {loss['A']:.3g}/N^{loss['alpha']:.3f} + "
        f"{loss['B']:.3g}/D^{loss['beta']:.3f}  (N block params {_si(fit['n_range'][0])}.."
        f"{_si(fit['n_range'][1])}, D tokens {_si(fit['d_range'][0])}..{_si(fit['d_range'][1])},"
        f" {fit['runs']} CPU runs, rms residual {fit['rms_residual']:.3f})",
        "",
        _data_line(result["data"]),
        "",
        f"{'rank':>4}  {'shape (L x H)':<14}{'heads':>5}{'ffn':>6}{'params':>9}{'micro':>6}"
        f"{'tokens/s':>10}{'tokens':>9}{'loss':>8}{'memory':>9}",
    ]
    rows = list(result["top"])
    reference = result["reference"]
    if reference and reference not in rows:
        rows.append(reference)
    for row in rows:
        mark = f"  <- reference {row['reference']}" if row.get("reference") else ""
        if row.get("reference") and row["preset_vocab_size"] != result["data"]["vocab_size"]:
            mark += (f" shape at vocab {result['data']['vocab_size']} (the preset, vocab "
                     f"{row['preset_vocab_size']}: {_si(row['preset_params'])})")
        lines.append(
            f"{row['rank']:>4}  {row['layers']:>2} x {row['hidden']:<9}{row['heads']:>5}"
            f"{row['ffn_hidden']:>6}{_si(row['params']):>9}{row['micro_batch']:>6}"
            f"{row['tokens_per_s']:>10,.0f}{_si(row['tokens']):>9}{row['predicted_loss']:>8.4f}"
            f"{row['memory_gib']:>7.1f} GiB{mark}")
    best = result["top"][0]
    extra = best["extrapolation"]
    frontier = result["frontier"]
    lines += [
        "",
        f"{result['candidates']} shapes ranked by predicted MLM loss, on the scale of the law's "
        "own runs (their vocabulary and corpus): compare rows, do not read it as a target.",
        f"The law's residual on its own runs is {fit['rms_residual']:.2f} nats; gaps between the "
        "top rows are far smaller: read them as a shortlist, not a strict order.",
    ]
    if result["extrapolated"]:
        beyond = [f"{extra[key]:.3g}x beyond the fitted {what}"
                  for key, what in (("n_factor", "model sizes"), ("d_factor", "token counts"))
                  if extra[key] > 1]
        lines.append(f"EXTRAPOLATED: the top row lies {' and '.join(beyond)}.")
    if best["hidden"] == max(WIDTHS) or best["layers"] == max(DEPTHS):
        lines.append(f"The top row sits on the edge of the search space (width <= {max(WIDTHS)}, "
                     f"depth <= {max(DEPTHS)}: BERT-large's bounds).")
    lines.append(
        f"Compute-optimal size grows as C^{frontier['loss_law_size_exponent']:.2f} under this "
        f"loss law; the calculator's frontier grows it as C^"
        f"{frontier['calculator_size_exponent']:.2f} (10x compute -> 7.4x size).")
    if result.get("preset_written"):
        lines.append(f"Wrote rank 1 as {result['preset_written']} "
                     f"(recipe of the {result['base_preset']} preset).")
    return "\n".join(lines)


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _duration(seconds: float) -> str:
    for unit, scale in (("h", 3600), ("m", 60)):
        if seconds >= scale and seconds % scale == 0:
            return f"{seconds / scale:g}{unit}"
    return f"{seconds:g}s"


def write_preset(result: dict, path, *, rank: int = 1) -> Path:
    """The shape ranked `rank` as a preset YAML for `cram pretrain --preset PATH`.

    The recipe (optimizer, schedules, batch) is the base preset's: crammed-bert on a GPU, a CPU
    preset on a CPU; only the shape, the micro-batch and the budget come from the plan.
    """
    rows = result["top"] + ([result["reference"]] if result["reference"] else [])
    row = next((r for r in rows if r["rank"] == rank), None)
    if row is None:
        raise UserError(f"rank {rank} is not in the plan's table")
    cfg = load_config(result["base_preset"])
    cfg.model = dataclasses.replace(
        cfg.model, vocab_size=result["data"]["vocab_size"], seq_len=result["data"]["seq_len"],
        hidden=row["hidden"], layers=row["layers"], heads=row["heads"],
        ffn_hidden=row["ffn_hidden"],
        head_hidden=cfg.model.head_hidden if result["device"]["kind"] == "cuda" else row["hidden"])
    cfg.train.budget_s = result["budget_s"]
    cfg.impl.micro_batch = row["micro_batch"]  # impl: changes speed and memory, not the math
    extra = row["extrapolation"]
    header = (
        f"# Written by `cram plan` ({datetime.now(UTC).date()}): rank {rank} of "
        f"{result['candidates']} shapes for {result['budget_s']:g} s on "
        f"{result['device']['name']}.\n"
        f"# {row['params'] / 1e6:.1f}M parameters, {row['tokens_per_s']:,.0f} tokens/s predicted "
        f"({result['speed_law']['provenance'].get('kind')} speed law), predicted MLM loss "
        f"{row['predicted_loss']:.3f} (loss law extrapolated {extra['n_factor']:.3g}x in N, "
        f"{extra['d_factor']:.3g}x in tokens; 1x = inside its fitted range).\n"
        f"# Recipe from the {result['base_preset']} preset.\n"
    )
    path = Path(path)
    try:
        write_text_atomic(path, header + to_yaml(cfg))
    except OSError as err:  # a folder of that name, no permission
        raise UserError(f"cannot write preset {path}: {err.strerror or err}") from None
    load_config(path)  # what we wrote must load
    return path


def preset_for_budget(budget_s: float, *, data=None, device: str = "auto",
                      quiet: bool = False) -> Path:
    """`cram pretrain --preset auto`: a preset YAML sized for `budget_s` on `device`.

    device: auto, cpu or cuda time that device here and fit its speed law (as `--gpu auto`);
    a GPUS key (a6000, ...) uses the stored constants instead. Says what it does and what it
    chose in progress lines (crambench.progress), unless `quiet`.
    """
    local = device in ("auto", "cpu", "cuda")
    progress_line("cram pretrain: --preset auto: planning the model for the budget (cram plan; "
                  "before the budget's clock starts)", quiet=quiet)
    result = plan(budget_s, "auto" if local else device, data=data, top=1, quiet=quiet,
                  device=device if local else "auto")
    best = result["top"][0]
    heads = f"{best['heads']} head{'s' if best['heads'] > 1 else ''}"
    progress_line(f"cram pretrain: --preset auto chose {best['layers']} x {best['hidden']}, "
                  f"{heads}, {_si(best['params'])} parameters, micro-batch "
                  f"{best['micro_batch']} (rank 1 of {result['candidates']} shapes; recipe of the "
                  f"{result['base_preset']} preset)", quiet=quiet)
    folder = Path(tempfile.mkdtemp(prefix="cram-plan-"))
    return write_preset(result, folder / "planned.yaml")


def _data_shape(data, gpu: str, device: str) -> tuple[int, int, str | None, str | None]:
    """(vocab size, row length, data dir or None, what was assumed without one or None)."""
    if data is not None:
        from data_prep import open_data_dir

        data_dir = open_data_dir(data)
        return data_dir.vocab_size, data_dir.seq_len, str(data_dir.path), None
    on_gpu = gpu != "auto" or (device != "cpu" and _has_cuda())
    preset = REFERENCE if on_gpu else "tiny"
    base = load_config(preset).model
    why = "planning for a GPU" if on_gpu else "planning for this CPU"
    return base.vocab_size, base.seq_len, None, f"the {preset} preset's ({why})"


def _data_line(data: dict) -> str:
    shape = f"vocab {data['vocab_size']}, rows of {data['seq_len']} tokens"
    if data.get("assumed"):
        return (f"data: no --data given, so {shape} assumed: {data['assumed']}; pass --data "
                "DATA to plan for a prepared data dir")
    return f"data: {data['path']} ({shape})"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _local_gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _base_preset(kind: str, budget_s: float) -> str:
    if kind == "cuda":
        return REFERENCE
    return "tiny" if budget_s < 600 else "mini"


def _key(row: dict) -> tuple:
    return (row["layers"], row["hidden"], row["heads"], row["ffn_hidden"])
