"""An outside model: any `transformers` encoder, fine-tuned and scored with the same protocol.

`cram eval glue --model PATH` takes a folder that AutoModelForSequenceClassification and
AutoTokenizer load (BERT, a small BERT, ModernBERT, an exported crammed run), or a Hub model
name (downloaded into the Hugging Face cache). Every task starts from the model's pretrained
weights with a fresh classification head, seeded like the crammed runs' heads, and goes through
the same fine-tuning loop, rows, epochs and metrics.

What stays the model's own, because it is part of the model: its tokenizer and input format
(pairs as its tokenizer joins them, `[CLS] A [SEP] B [SEP]` for BERT-style models, with BERT's
segment ids where the model has a segment embedding), its pooling and head architecture, and
the dropout its config sets in the encoder (the head's dropout is set to the protocol's where
the config has `classifier_dropout`). Results are marked as an outside model: open track, never
ranked.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from crambench.errors import UserError
from glue_eval.model_folder import (
    WEIGHT_PATTERNS,
    folder_sha256,
    identity_files,
    listing_sha256,
    weight_files,
)

INSTALL_HINT = "pip install 'cramming-bench[hf]'"


@contextlib.contextmanager
def quiet_transformers():
    """No load reports or progress bars: a fresh head's "newly initialized" weights are the
    point here, and the CLI prints its own results."""
    from transformers.utils import logging as hf_logging

    from cramming.compress.quantize import quiet_torchao_logs

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with quiet_torchao_logs():  # transformers imports torchao as it loads a model
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class OutsideEncoder:
    """Builds fresh classifiers from a transformers model (the same interface as
    `glue_eval.encoder.Encoder`: `encode`, `classifier`, `pad_id`)."""

    pooling = "the model's own"  # its sequence-classification head's, as the results record

    def __init__(self, source, *, trust_remote_code: bool = False):
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise UserError(f"--model needs the transformers library: {INSTALL_HINT}") from None
        self.source = str(source)
        self.trust_remote_code = trust_remote_code
        path = Path(self.source)
        self.local = path.exists()
        if not self.local and (path.is_absolute() or self.source.startswith((".", "~"))
                               or self.source.count("/") > 1):
            raise UserError(f"--model {source} does not exist (a local folder, or a Hub model "
                            "name such as google-bert/bert-base-uncased)")
        if self.local:
            if not path.is_dir():
                raise UserError(f"--model {source} is a file, not a transformers model folder")
            if not (path / "config.json").is_file():
                raise UserError(f"--model {source} is not a transformers model folder (it has "
                                "no config.json)")
        with quiet_transformers():
            self.config = self._load("config", _auto("AutoConfig").from_pretrained)
            self.tokenizer = self._load("tokenizer", _auto("AutoTokenizer").from_pretrained)
            probe = self._classifier(num_labels=2)  # fails now, not after a task's data is read
        self.check_tokenizer()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            raise UserError(f"--model {source}: its tokenizer has no padding token")
        self.sep_id = self.tokenizer.sep_token_id
        # BERT's segment ids: 0 up to the first [SEP], 1 after it (only where the model has a
        # segment embedding to look them up in).
        self.segment_ids = ("token_type_ids" in self.tokenizer.model_input_names
                            and getattr(self.config, "type_vocab_size", 1) > 1
                            and self.sep_id is not None)
        self.params = sum(p.numel() for p in probe.base_model.parameters())
        self.folder = path if self.local else self._hub_folder()
        self.weights = weight_files(self.folder)
        self.files = identity_files(self.folder)
        if not self.weights:
            raise UserError(f"--model {source}: no weight files ({', '.join(WEIGHT_PATTERNS)}) "
                            f"in {self.folder}")

    def check_tokenizer(self) -> None:
        """transformers 5 builds an empty tokenizer of the model's type for a folder with no
        tokenizer files; ids past the embedding table would fail mid-fine-tuning."""
        size = len(self.tokenizer)
        if size <= len(set(self.tokenizer.all_special_tokens)):
            raise UserError(f"--model {self.source} has no tokenizer that AutoTokenizer loads "
                            f"(its vocabulary holds only {size} special tokens)")
        vocab = getattr(self.config, "vocab_size", None)
        if isinstance(vocab, int) and size > vocab:
            raise UserError(f"--model {self.source}: its tokenizer has {size} tokens, its model "
                            f"embeds {vocab}: not the model's tokenizer")

    def encode(self, text_a: list[str], text_b: list[str] | None, *,
               max_length: int) -> list[list[int]]:
        """Token id rows in the model's own input format, cut to `max_length` longest-first
        (as the benchmark's own rows). Raises UserError if the model has fewer positions."""
        positions = getattr(self.config, "max_position_embeddings", None)
        if isinstance(positions, int) and positions < max_length:
            raise UserError(f"--model {self.source} has {positions} positions; the protocol "
                            f"feeds rows of up to {max_length} tokens")
        # split_special_tokens: "[SEP]" written in a sentence is text, as on the harness's own
        # path; only the tokenizer's template adds special ids (the classifier finds the
        # segments by the [SEP] id, so a quoted one would also shift them).
        encoded = self.tokenizer(text_a, text_b, truncation="longest_first",
                                 max_length=max_length, split_special_tokens=True)
        return encoded["input_ids"]

    def classifier(self, num_labels: int, *, dropout: float, seed: int) -> nn.Module:
        """The pretrained encoder with a fresh head (seed torch first: the head's init draws
        from it), as a module `(input_ids, attention_mask) -> logits`."""
        torch.manual_seed(seed)
        with quiet_transformers():
            model = self._classifier(num_labels, dropout)
        return Logits(model, self.sep_id if self.segment_ids else None)

    def deploy(self, model: nn.Module, task: str) -> nn.Module:
        """An outside model is scored as it is: no run, so no compression to apply."""
        return model

    def deployment_record(self, path: Path) -> None:
        """None: the deployed size and latency are measured for a run's models only (the
        compact form and the timing know this project's architecture)."""
        return None

    def record(self) -> dict:
        """What the results file says about the model (`outside_model`); never ranked."""
        from cramming.rules import OUTSIDE_MODEL_REASON

        return {
            "track": "open", "track_reason": OUTSIDE_MODEL_REASON,
            "source": self.source,
            "location": "local" if self.local else "hub",
            "revision": None if self.local else getattr(self.config, "_commit_hash", None),
            "model_type": self.config.model_type,
            "architectures": list(getattr(self.config, "architectures", None) or []),
            "params": self.params,
            "tokenizer": type(self.tokenizer).__name__,
            "weights": self.weights,
            # The folder's identity (config, weights, tokenizer, shipped code), recomputed by
            # `cram submit --results` and `cram leaderboard validate --model`.
            "files": self.files,
            "folder_sha256": folder_sha256(self.files),
        }

    @property
    def model_sha256(self) -> str:
        """The weights file's sha256; for several files, the sha256 of their sorted listing
        [{"file", "sha256"}, ...] as canonical JSON."""
        return listing_sha256(self.weights)

    def _classifier(self, num_labels: int, dropout: float | None = None):
        extra = {}
        if dropout is not None and hasattr(self.config, "classifier_dropout"):
            extra["classifier_dropout"] = dropout
        return self._load("model", _auto("AutoModelForSequenceClassification").from_pretrained,
                          num_labels=num_labels, ignore_mismatched_sizes=True, **extra)

    def _load(self, what: str, from_pretrained, **kwargs):
        """`from_pretrained(source, ...)`, its errors turned into one line naming --model."""
        try:
            return from_pretrained(self.source, trust_remote_code=self.trust_remote_code,
                                   **kwargs)
        except (OSError, ValueError, KeyError, ImportError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            hint = (" (pass --trust-remote-code to run the code it ships)"
                    if "trust_remote_code" in str(err) else "")
            nothing = {"tokenizer": "has no tokenizer that AutoTokenizer loads",
                       "config": "is not a model transformers knows",
                       "model": "has no weights AutoModelForSequenceClassification loads"}[what]
            raise UserError(f"--model {self.source} {nothing}: {first}{hint}") from None

    def _hub_folder(self) -> Path:
        from transformers.utils import cached_file

        return Path(cached_file(self.source, "config.json")).parent


def _auto(name: str):
    import transformers  # optional: imported where an outside model is scored

    return getattr(transformers, name)


class Logits(nn.Module):
    """A transformers sequence classifier as `(input_ids, attention_mask) -> logits`, the call
    the fine-tuning loop makes; segment ids are derived from the ids where the model uses them."""

    def __init__(self, model: nn.Module, sep_id: int | None):
        super().__init__()
        self.model = model
        self.sep_id = sep_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.sep_id is not None:
            is_sep = (input_ids == self.sep_id).long()
            # 1 after the first [SEP] (the second segment and its [SEP]), 0 before and on it.
            extra["token_type_ids"] = ((is_sep.cumsum(1) - is_sep) > 0).long() * attention_mask
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

