"""Rules v1 of the benchmark, in one place: what the trainer labels and the validator judges.

1. One GPU; the ranked track is RTX 2080 Ti, RTX A4000 or RTX A6000. Anything else is the
   open track, labelled with its device. Runs on several GPUs (DDP ranks) are the open track's
   multi-GPU category: a table of their own, never ranked against one GPU.
2. Training wall-clock time <= budget; the ranked budget is at most 24 h. The budget covers all
   training: a run derived from another (`cram compress`, `cram extract`) carries a lineage
   record, and its budget and elapsed time are its parent's plus its own stage's (pruning's
   recovery training, extraction's distillation). A stage that trains nothing (post-training
   quantization) has a stage budget of 0 and costs no budget.
3. From scratch (enforced by the trainer, recorded by its hashes).
4. GLUE dev, all tasks but WNLI with all their metrics, with the `cramming` fine-tuning
   protocol exactly as glue_eval records it, on the pretrained model (not the
   `--from-scratch` control). Any number of distinct fine-tuning seeds: every task runs
   every seed, each task's score is the per-metric median over them, and every seed's
   predictions are kept (the median is what ELECTRA and MosaicBERT report; one seed is the
   median of one).
5. Reproducible: the entry carries the hashes of its data, config, model and results.

Outside models (any `transformers` encoder scored with the same protocol, `cram eval glue
--model`) are shown for reference in the open track, never ranked.

This module imports nothing: the trainer (`cramming.train.hardware`, at train time) and the
validator (`leaderboard.tracks`, with no torch in reach) both read it.
"""

from __future__ import annotations

RULES_VERSION = 1
# Rule 1: the cramming paper's consumer/workstation GPUs, as CUDA names them without the vendor
# words ("NVIDIA GeForce RTX 2080 Ti", "NVIDIA RTX A4000", "NVIDIA RTX A6000").
RANKED_GPUS = ("RTX 2080 Ti", "RTX A4000", "RTX A6000")
RANKED_GPU_COUNT = 1
RANKED_BUDGET_S = 24 * 3600  # rule 2: one day
RANKED_PROTOCOL = "cramming"  # rule 4
# Rule 4: GLUE without WNLI, in the order of the cramming paper's table.
RANKED_TASKS = ("mnli", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte")
# Rule 2 for derived runs: the stages that may follow pretraining, each recorded in `lineage`.
DERIVED_STAGES = ("compress", "extract")
# The open-track reason of results for a model this harness did not train.
OUTSIDE_MODEL_REASON = "outside model, not trained by this harness"


# The open track's category for runs on several devices (world_size > 1, DDP). Its reference
# point is the cramming paper's 16x budget: 8 GPUs for 48 hours, the same recipe.
MULTI_GPU_CATEGORY = "multi-gpu"
MULTI_GPU_REFERENCE_GPUS = 8
MULTI_GPU_REFERENCE_BUDGET_S = 48 * 3600


def category(world_size: int) -> str | None:
    """The open-track category of a run on `world_size` ranks: multi-gpu above one, else none."""
    return MULTI_GPU_CATEGORY if world_size > 1 else None


def multi_gpu_reason(world_size: int, device: str) -> str:
    """Why a run on several ranks is not ranked (its track_reason part)."""
    what = "GPUs" if device == "cuda" else f"{device} processes"
    return (f"{world_size} {what} (the ranked track is one GPU; "
            f"{MULTI_GPU_CATEGORY} category)")


def is_ranked_gpu(gpu_name: str | None) -> bool:
    """Whether a device name (as CUDA reports it) is one of the ranked GPUs (rule 1)."""
    if not gpu_name:
        return False
    return _normalize(gpu_name) in {_normalize(ranked) for ranked in RANKED_GPUS}


def _normalize(gpu_name: str) -> str:
    # "NVIDIA GeForce RTX 2080 Ti" and "RTX 2080 Ti" name the same card.
    return " ".join(gpu_name.lower().replace("nvidia", "").replace("geforce", "").split())
