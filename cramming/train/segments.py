"""A run's training segments: one per `cram pretrain` process group that trained it.

A run started on 2 ranks, killed and resumed on 1 has two segments. Each records the job's
hardware as `job_hardware` gave it (world size, every rank's device) and where it began (step,
elapsed seconds). The list travels in every checkpoint's train state, so a resume appends to
it, and ends in summary.json, where the run's hardware is that of its largest segment (most
ranks): a run that trained on several GPUs at any time is a multi-GPU run, whatever the
process that finished it had.

Torch-free: the trainer writes the records, the validator reads them the same way.
"""

from __future__ import annotations

# What a segment keeps of the job's hardware.
HARDWARE_KEYS = ("device", "gpu_name", "gpu_count", "gpu_memory_gb", "cpu_name", "world_size",
                 "device_names", "track", "track_reason")


def segment(hardware: dict, *, step: int, elapsed_s: float) -> dict:
    """The segment a process group starts at `step`, `elapsed_s` on the run's clock."""
    return {**{key: hardware.get(key) for key in HARDWARE_KEYS}, "started_step": step,
            "started_elapsed_s": round(float(elapsed_s), 3)}


def continue_segments(recorded: list[dict], started: dict) -> list[dict]:
    """The segments after `started` begins: those the checkpoint recorded, less any that began
    at the same step (killed before a later checkpoint, they trained nothing the run keeps:
    their steps and their time were lost with them), then `started`."""
    return [*(s for s in recorded if s["started_step"] < started["started_step"]), started]


def largest(segments: list[dict]) -> dict:
    """The segment with the most ranks; of equals, the first (the run's own start)."""
    return max(segments, key=lambda s: s["world_size"])


def run_hardware(current: dict, segments: list[dict] | None) -> dict:
    """summary.json's hardware: the largest segment's hardware with every segment listed;
    `current` (this process's `job_hardware`) is the whole record of a run with no segments
    recorded (a stage that trained in one process)."""
    if "world_size" not in current:  # detect_hardware's record: a stage run in one process
        name = current.get("gpu_name") or f"cpu ({current.get('cpu_name')})"
        current = {**current, "world_size": 1, "device_names": [name]}
    if not segments:
        return {**current, "segments": [segment(current, step=0, elapsed_s=0.0)]}
    big = largest(segments)
    hardware = {**current, **{key: big.get(key) for key in HARDWARE_KEYS}, "segments": segments}
    unranked = next((s for s in segments if s.get("track") == "open"), None)
    if unranked is not None and hardware["track"] != "open":  # part of it trained elsewhere
        hardware.update(track="open", track_reason=unranked["track_reason"])
    return hardware


def segments_problem(segments) -> str | None:
    """What makes a recorded segments list unusable (None when it is fine)."""
    if not isinstance(segments, list) or not segments:
        return "is not a non-empty list"
    for number, item in enumerate(segments):
        if not isinstance(item, dict):
            return f"[{number}] is not an object"
        size, names = item.get("world_size"), item.get("device_names")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            return f"[{number}].world_size {size!r} is not a whole number >= 1"
        if (not isinstance(names, list) or len(names) != size
                or not all(isinstance(n, str) for n in names)):
            return f"[{number}].device_names is not {size} device names"
    return None
