"""A run's `final/` read whole and checked before a stage that derives from it starts.

`cram compress` and `cram extract` read a parent run's model; a broken `final/` (weights that do
not fit `model_config.json`, a missing or unreadable tokenizer, one with ids past the model's
vocabulary) must stop them in one line before their clock starts and before anything is
written, not after a recovery budget is spent or as a derived run that evaluation refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crambench.errors import UserError


@dataclass
class FinalModel:
    """What `open_final` read: the model config, its weights (dense), pruning masks (weight
    name -> keep-mask; {} for an unpruned run) and the tokenizer's vocabulary size."""

    cfg: object  # cramming.config.ModelConfig
    state: dict
    masks: dict
    vocab_size: int


def open_final(final, stage: str) -> FinalModel:
    """Read and check the `final/` folder `final`: model_config.json against
    model.safetensors (every tensor and shape, `cramming.weights`), tokenizer.json present and
    loadable with its special tokens, and no token id past the model's vocabulary. UserError
    naming the file otherwise, and for a run that trained with a plug-in (`stage`, e.g.
    "cram compress", derives only from runs of the harness's own code)."""
    from crambench.plugin import RUN_COPY
    from cramming.weights import built_by_plugin, load_pretrained_with_masks
    from data_prep import load_tokenizer

    final = Path(final)
    if built_by_plugin(final) or (final.parent / RUN_COPY).exists():
        # A derived run trains with its parent's recipe, and would need the parent's code.
        raise UserError(f"{final.parent} trained with a plug-in ({RUN_COPY}); {stage} derives "
                        "only from runs of the harness's own code")
    cfg, state, masks = load_pretrained_with_masks(final)
    tokenizer_path = final / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise UserError(f"{tokenizer_path} is missing: every later stage (eval, export) "
                        "tokenizes with the run's own tokenizer")
    vocab = load_tokenizer(tokenizer_path).get_vocab_size()
    if vocab > cfg.vocab_size:
        raise UserError(f"{tokenizer_path} has {vocab} tokens but {final}/model_config.json a "
                        f"vocabulary of {cfg.vocab_size}: not this model's tokenizer")
    return FinalModel(cfg, state, masks, vocab)
