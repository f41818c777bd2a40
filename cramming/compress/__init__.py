"""`cram compress`: train large, then compress (Li et al. 2020, arXiv:2002.11794).

    method.py     the METHOD strings (prune:S, int8, int4, joined by +); torch-free
    prune.py      iterative global magnitude pruning of the encoder's linear weights
    recovery.py   pruning rounds with recovery training by the trainer's own loop
    quantize.py   post-training weight quantization of a task model (torchao)
    storage.py    the compact safetensors form: sparse and quantized weights as stored
    deployment.py a task model as deployed: masks folded, quantized, written, timed on CPU
    job.py        the job: a run in, a compressed run (with `compression` and `lineage`) out
    command.py    the `cram compress` arguments

Names resolve lazily (PEP 562): `parse_method` and `stored_stats` load no torch, so the
leaderboard validator can use them.
"""

from __future__ import annotations

from crambench.lazy import lazy_exports

_EXPORTS = {
    "compress": "cramming.compress.job",
    "Method": "cramming.compress.method",
    "parse_method": "cramming.compress.method",
    "stored_stats": "cramming.compress.storage",
    "load_compact": "cramming.compress.storage",
    "deploy": "cramming.compress.deployment",
    "deployment_record": "cramming.compress.deployment",
    "read_spec": "cramming.compress.deployment",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
