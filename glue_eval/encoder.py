"""The pretrained side of an evaluation: a run's final model, its tokenizer, its hash.

Reads only contract 2 (`RUN/final/`) through the `cramming` and `data_prep` public APIs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from crambench.contracts import read_json_object, sha256_file
from crambench.errors import UserError

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]")
# model.pooler as the results' protocol records it ("first-token" since the first results).
POOLING_RECORDS = {"first": "first-token", "mean": "mean-of-tokens"}


# final/ files that summary.json names by hash: what is scored must be what was trained.
RECORDED_HASHES = (("model.safetensors", "model_sha256"), ("tokenizer.json", "tokenizer_sha256"))


def final_dir(run) -> Path:
    """RUN/final/, once its weights and tokenizer match the hashes in RUN/summary.json."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"run dir {run} {'is not a folder' if run.exists() else 'does not exist'}")
    final = run / "final"
    for name in ("model.safetensors", "model_config.json", "tokenizer.json"):
        if not (final / name).is_file():
            raise UserError(f"run dir {run} has no final/{name} (is pretraining finished?)")
    if not (run / "summary.json").is_file():
        raise UserError(f"run dir {run} has no summary.json (is pretraining finished?)")
    summary = read_json_object(run / "summary.json")
    for name, key in RECORDED_HASHES:
        recorded = summary.get(key)
        if not isinstance(recorded, str):
            raise UserError(f"{run}/summary.json records no {key}: the run cannot show that "
                            f"final/{name} is the one it trained (re-run `cram pretrain`)")
        if sha256_file(final / name) != recorded:
            raise UserError(f"{final / name} does not match the {key} in {run}/summary.json: "
                            "the run dir was changed after training")
    # A plug-in run's code is part of what is scored, whether or not it built the model.
    plugin = (summary.get("code") or {}).get("plugin_sha256") or summary.get("plugin_sha256")
    if plugin:
        from crambench.plugin import RUN_COPY

        copy = run / RUN_COPY
        if not copy.is_file():
            raise UserError(f"{copy} is missing: the run trained with a plug-in, and the run "
                            "dir keeps its code there")
        if sha256_file(copy) != plugin:
            raise UserError(f"{copy} does not match the plugin_sha256 in {run}/summary.json: "
                            "the run's code was changed after it trained")
    return final


def model_sha256(final: Path) -> str:
    return sha256_file(final / "model.safetensors")


def tokenizer_sha256(final: Path) -> str:
    return sha256_file(final / "tokenizer.json")


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Encoder:
    """Builds fresh classifiers from one run: pretrained, or (`from_scratch`) randomly
    initialised with the same architecture, the control that shows what pretraining bought."""

    def __init__(self, final: Path, *, from_scratch: bool = False):
        from cramming.compress import read_spec
        from cramming.compress.method import FULL_BITS
        from cramming.weights import load_pretrained_with_masks
        from data_prep import load_tokenizer

        self.final = final
        self.from_scratch = from_scratch
        # A compressed run (cram compress): pruning masks to hold fixed through fine-tuning,
        # and what to do to each task model before it predicts (quantize after fine-tuning).
        self.config, _, self.masks = load_pretrained_with_masks(final)
        self.spec = read_spec(final)
        if self.spec and self.spec["bits"] != FULL_BITS:  # refused now, not after fine-tuning
            from cramming.compress.quantize import check_model_config

            check_model_config(self.config, self.spec["bits"],
                               where=f"{final}/model_config.json: ")
        self.first_deployed = None  # (task, Deployed): the model whose size and speed count
        self.tokenizer = load_tokenizer(final)
        if self.tokenizer.get_vocab_size() > self.config.vocab_size:  # ids past the embedding
            raise UserError(f"{final}/tokenizer.json has {self.tokenizer.get_vocab_size()} "
                            f"tokens but {final}/model_config.json a vocabulary of "
                            f"{self.config.vocab_size}: not this model's tokenizer")
        ids = {tok: self.tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
        missing = [tok for tok, i in ids.items() if i is None]
        if missing:
            raise UserError(f"{final}/tokenizer.json lacks {', '.join(missing)}")
        self.pad_id, self.cls_id, self.sep_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]
        self.pooling = POOLING_RECORDS[self.config.pooler]

    def encode(self, text_a: list[str], text_b: list[str] | None, *,
               max_length: int) -> list[list[int]]:
        """Token id rows `[CLS] a [SEP] (b [SEP])`, at most `max_length` long. Raises
        UserError if a row is longer than the model has positions (a run trained with a
        shorter seq_len than the protocol's max_length)."""
        from glue_eval.finetune import encode_texts

        rows = encode_texts(self.tokenizer, text_a, text_b, cls_id=self.cls_id,
                            sep_id=self.sep_id, max_length=max_length)
        longest = max(map(len, rows), default=0)
        if longest > self.config.seq_len:
            raise UserError(f"{self.final}: the model has {self.config.seq_len} positions "
                            f"(model.seq_len); the protocol feeds rows of up to {max_length} "
                            f"tokens and this task has rows of {longest}")
        return rows

    def classifier(self, num_labels: int, *, dropout: float, seed: int) -> torch.nn.Module:
        from cramming import CrammedBertForSequenceClassification, load_classifier

        torch.manual_seed(seed)  # the new head (and, from scratch, every weight) is seeded
        if self.from_scratch:
            model = CrammedBertForSequenceClassification(self.config, num_labels,
                                                         dropout=dropout)
        else:
            model = load_classifier(self.final, num_labels, dropout=dropout)
        if self.masks:  # pruned weights stay zero while the task is learnt
            from cramming.compress.prune import apply_masks

            apply_masks(model, self.masks)
        return model

    def deploy(self, model: torch.nn.Module, task: str) -> torch.nn.Module:
        """The fine-tuned `model` as deployed (masks folded, quantized if the run says so);
        the first one is kept for `deployment_record`."""
        from cramming.compress import deploy

        deployed = deploy(model, self.spec)
        if self.first_deployed is None:
            self.first_deployed = (task, deployed)
        return deployed.model

    def deployment_record(self, path: Path) -> dict:
        """Write the first deployed task model to `path`; its stored size and CPU latency."""
        from cramming.compress import deployment_record

        task, deployed = self.first_deployed
        return deployment_record(deployed, path, task=task, results_dir=path.parent)
