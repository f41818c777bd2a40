"""Sweeps (`cram sweep`): a baseline recipe against its variants under one budget, over several
pretraining seeds, each run an ordinary run dir, with a verdict and its uncertainty.

    spec       the sweep spec (cram-sweep/1) as typed dataclasses
    layout     DIR/runs/ARM/seed-S and DIR/sweep.json
    job        run every (arm, seed): seed-major, rerunnable
    outcomes   what each run dir came to
    guards     what may not be compared, and warnings
    stats      Welch's t, Holm's correction, the verdict
    report     cram sweep report: the record and its tables
    command    the `cram sweep` arguments

It sits above every stage it drives (it pretrains, scores and reads results), below the shell.
"""

from crambench.lazy import lazy_exports

_EXPORTS = {
    "load_spec": "sweep.spec",
    "parse_spec": "sweep.spec",
    "SweepSpec": "sweep.spec",
    "run_sweep": "sweep.job",
    "sweep_report": "sweep.report",
    "format_report": "sweep.report",
    "read_report": "sweep.report",
    "site_view": "sweep.report",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
