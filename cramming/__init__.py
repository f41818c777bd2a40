"""Pretrain a crammed BERT within a wall-clock budget (contract 2: the run dir).

Names resolve lazily (PEP 562) so that `cram --help`, which imports this package, does not pay
for importing torch.
"""

from __future__ import annotations

from data_prep.lazy import lazy_exports

_EXPORTS = {
    "ModelConfig": "cramming.config",
    "PretrainConfig": "cramming.config",
    "load_config": "cramming.config",
    "config_from_yaml": "cramming.config",
    "config_sha256": "cramming.config",
    "PRESETS": "cramming.config",
    "CrammedBert": "cramming.model",
    "CrammedBertForSequenceClassification": "cramming.model",
    "load_pretrained": "cramming.model",
    "save_pretrained": "cramming.model",
    "count_parameters": "cramming.model",
    "IGNORE_INDEX": "cramming.model",
    "pretrain": "cramming.train",
    "parse_budget": "cramming.budget",
    "Budget": "cramming.budget",
    "detect_hardware": "cramming.hardware",
    "RANKED_GPUS": "cramming.hardware",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
