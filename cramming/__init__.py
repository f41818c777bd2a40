"""The crammed BERT: its model, config, and the jobs that train, plan and score it.

    cramming.model      the encoder and its heads (pure torch)
    cramming.weights    a trained model on disk (final/: safetensors + model_config.json)
    cramming.config     the typed config tree and presets
    cramming.rules      Rules v1 (torch-free; the validator reads it too)
    cramming.train      `cram pretrain`: a BERT trained to a wall-clock budget (contract 2)
    cramming.plan       `cram plan`: size a model to a budget and a GPU
    cramming.compress, .extract, .export   `cram compress`, `cram extract`, `cram export`

Names resolve lazily (PEP 562) so that `cram --help`, which imports this package, does not pay
for importing torch.
"""

from __future__ import annotations

from crambench.lazy import lazy_exports

_EXPORTS = {
    "ModelConfig": "cramming.config",
    "PretrainConfig": "cramming.config",
    "load_config": "cramming.config",
    "config_from_yaml": "cramming.config",
    "config_sha256": "cramming.config",
    "PRESETS": "cramming.config",
    "CrammedBert": "cramming.model",
    "CrammedBertForSequenceClassification": "cramming.model",
    "count_parameters": "cramming.model",
    "IGNORE_INDEX": "cramming.model",
    "load_pretrained": "cramming.weights",
    "load_classifier": "cramming.weights",
    "save_pretrained": "cramming.weights",
    "pretrain": "cramming.train.pretrain",
    "parse_budget": "cramming.train.budget",
    "Budget": "cramming.train.budget",
    "detect_hardware": "cramming.train.hardware",
    "RANKED_GPUS": "cramming.rules",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
