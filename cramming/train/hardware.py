"""Which device a run uses, which track it belongs to (Rules v1, rule 1), and its precision."""

from __future__ import annotations

import platform
import sys
from contextlib import nullcontext

import torch

from crambench.errors import UserError
from cramming.rules import (
    MULTI_GPU_CATEGORY,
    RANKED_BUDGET_S,
    RANKED_GPUS,
    is_ranked_gpu,
    multi_gpu_reason,
)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but torch sees no CUDA GPU")
    if device not in ("cuda", "cpu"):
        raise UserError(f"unknown device {device!r}: choose auto, cuda or cpu")
    return torch.device(device)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def detect_hardware(device: str | torch.device) -> dict:
    """{device, gpu_name, gpu_count, gpu_memory_gb, cpu_name, track, track_reason} of this
    process (gpu_count: the GPUs it trains on, 1 or 0); `job_hardware` makes it the job's."""
    device = resolve_device(device) if isinstance(device, str) else device
    if device.type != "cuda":
        return {
            "device": "cpu",
            "gpu_name": None,
            "gpu_count": 0,
            "gpu_memory_gb": None,
            "cpu_name": cpu_name(),
            "track": "open",
            "track_reason": f"CPU run ({cpu_name()}): the ranked track needs one of the GPUs "
            f"{', '.join(RANKED_GPUS)}",
        }
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    ranked = is_ranked_gpu(props.name)
    reason = (
        f"{props.name} is a ranked-track GPU"
        if ranked
        else f"open track: {props.name} is not one of {', '.join(RANKED_GPUS)}"
    )
    return {
        "device": "cuda",
        "gpu_name": props.name,
        "gpu_count": 1,  # the one this process trains on, however many the machine has
        "gpu_memory_gb": round(props.total_memory / 2**30, 2),
        "cpu_name": cpu_name(),
        "track": "ranked" if ranked else "open",
        "track_reason": reason,
    }


def job_hardware(hardware: dict, dist) -> dict:
    """The job's hardware for the summary: rank 0's record plus world_size, every rank's device
    name (device_names, by rank) and gpu_count (GPUs the job trains on). Several ranks make an
    open-track run of the multi-GPU category (cramming.rules)."""
    names = dist.all_gather_object(hardware["gpu_name"] or f"cpu ({hardware['cpu_name']})")
    job = {**hardware, "gpu_count": len(names) if hardware["device"] == "cuda" else 0,
           "world_size": len(names), "device_names": names}
    if len(names) > 1:
        reasons = [multi_gpu_reason(len(names), hardware["device"])]
        if hardware["track"] == "open":  # the device itself is not a ranked one either
            reasons.append(hardware["track_reason"])
        job.update(track="open", track_reason="; ".join(reasons))
    return job


def check_track(hardware: dict, gpu_check: str, budget_s: float | None = None) -> None:
    """`ranked` refuses any device outside the ranked list (and budgets over 24 h); `open`
    accepts all, labelled with the device's name."""
    if gpu_check not in ("ranked", "open"):
        raise UserError(f"unknown --gpu-check {gpu_check!r}: choose ranked or open")
    if gpu_check == "ranked" and budget_s is not None and budget_s > RANKED_BUDGET_S:
        raise UserError(f"--gpu-check ranked: budget {budget_s:g}s is over the ranked track's "
                        f"{RANKED_BUDGET_S}s (24h)")
    if gpu_check == "ranked" and hardware.get("world_size", 1) > 1:
        raise UserError(f"--gpu-check ranked: {hardware['world_size']} ranks, but the ranked "
                        "track is one GPU; multi-GPU runs are the open track's "
                        f"{MULTI_GPU_CATEGORY} category (use --gpu-check open)")
    if gpu_check == "ranked" and hardware["track"] != "ranked":
        name = hardware["gpu_name"] or f"CPU ({hardware['cpu_name']})"
        raise UserError(
            f"--gpu-check ranked: {name} is not a ranked-track GPU "
            f"({', '.join(RANKED_GPUS)}); use --gpu-check open to train in the open track"
        )


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 where the GPU supports it, fp16 (grad scaler) on older GPUs, fp32 on CPU."""
    if precision != "auto":
        if precision in ("bf16", "fp16") and device.type == "cuda":
            if precision == "bf16" and not torch.cuda.is_bf16_supported():
                raise UserError("impl.precision=bf16 but this GPU does not support bf16")
        elif precision == "fp16" and device.type == "cpu":
            raise UserError("impl.precision=fp16 needs a CUDA GPU (use bf16 or fp32 on CPU)")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def software_info() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": sys.platform,
    }


def autocast(device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
