"""GLUE evaluation of a run (contract 3): task table, data, one fine-tuning recipe, metrics.

Public surface for the other stages (the leaderboard validator recomputes metrics from a
results file's prediction TSVs with `read_split`, `read_predictions`, `compute_metrics`,
`compute_averages`, and over fine-tuning seeds `seed_runs` and `median_over_seeds`). Names
load lazily, so `cram --help` does not import torch or sklearn.
"""

from __future__ import annotations

from crambench.lazy import lazy_exports

_EXPORTS = {
    "evaluate_glue": "glue_eval.evaluate",
    "evaluate_probes": "glue_eval.probes",
    "TASKS": "glue_eval.tasks",
    "PROTOCOLS": "glue_eval.tasks",
    "TaskSpec": "glue_eval.tasks",
    "compute_metrics": "glue_eval.metrics",
    "compute_averages": "glue_eval.metrics",
    "median_over_seeds": "glue_eval.metrics",
    "seed_spread": "glue_eval.metrics",
    "read_split": "glue_eval.data",
    "labels_sha256": "glue_eval.data",
    "read_predictions": "glue_eval.results",
    "read_results": "glue_eval.results",
    "seed_runs": "glue_eval.results",
    "labels_verdict": "glue_eval.results",
    "RESULTS_FORMAT": "glue_eval.results:FORMAT",
    "RESULTS_FORMATS": "glue_eval.results:READABLE_FORMATS",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
