"""The pretrained side of an evaluation: a run's final model, its tokenizer, its hash.

Reads only contract 2 (`RUN/final/`) through the `cramming` and `data_prep` public APIs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data_prep import UserError
from data_prep.files import sha256_file

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]")


def final_dir(run) -> Path:
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run dir {run} {'is not a folder' if run.exists() else 'does not exist'}")
    final = run / "final"
    for name in ("model.safetensors", "model_config.json", "tokenizer.json"):
        if not (final / name).is_file():
            raise UserError(f"run dir {run} has no final/{name} (is pretraining finished?)")
    return final


def model_sha256(final: Path) -> str:
    return sha256_file(final / "model.safetensors")


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Encoder:
    """Builds fresh classifiers from one run: pretrained, or (`from_scratch`) randomly
    initialised with the same architecture, the control that shows what pretraining bought."""

    def __init__(self, final: Path, *, from_scratch: bool = False):
        from cramming import load_pretrained
        from data_prep import load_tokenizer

        self.final = final
        self.from_scratch = from_scratch
        self.config, _ = load_pretrained(final)
        self.tokenizer = load_tokenizer(final)
        ids = {tok: self.tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
        missing = [tok for tok, i in ids.items() if i is None]
        if missing:
            raise UserError(f"{final}/tokenizer.json lacks {', '.join(missing)}")
        self.pad_id, self.cls_id, self.sep_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]

    def encode(self, text_a: list[str], text_b: list[str] | None, *,
               max_length: int) -> list[list[int]]:
        """Token id rows `[CLS] a [SEP] (b [SEP])`, at most `max_length` long."""
        from glue_eval.finetune import encode_texts

        return encode_texts(self.tokenizer, text_a, text_b, cls_id=self.cls_id,
                            sep_id=self.sep_id, max_length=max_length)

    def classifier(self, num_labels: int, *, dropout: float, seed: int) -> torch.nn.Module:
        from cramming import CrammedBertForSequenceClassification, load_classifier

        torch.manual_seed(seed)  # the new head (and, from scratch, every weight) is seeded
        if self.from_scratch:
            return CrammedBertForSequenceClassification(self.config, num_labels, dropout=dropout)
        return load_classifier(self.final, num_labels, dropout=dropout)
