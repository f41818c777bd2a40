"""The crammed BERT as a Hugging Face `transformers` model (written by `cram export`).

The architecture is `cramming_model.py` beside this file: cramming-bench's `cramming/model.py`,
copied at export time with only its config import pointed at `configuration_crammed_bert`. This
file adapts it to the transformers API and adds nothing to the computation:

    CrammedBertModel                      AutoModel: last_hidden_state (B, T, H)
    CrammedBertForMaskedLM                AutoModelForMaskedLM: logits (B, T, V)
    CrammedBertForSequenceClassification  AutoModelForSequenceClassification: logits (B, labels)

The crammed BERT has no segment (token type) embedding: `token_type_ids` is accepted, so that
BERT-style callers work, and not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
)

from .configuration_crammed_bert import CrammedBertConfig
from .cramming_model import (
    ClassificationHead,
    Encoder,
    MLMHead,
    RotaryPositions,
    ScaledSinusoidal,
    init_weights,
)


class CrammedBertPreTrainedModel(PreTrainedModel):
    config_class = CrammedBertConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"

    def _init_weights(self, module: nn.Module) -> None:
        # transformers builds the model on the meta device and initialises what the weights
        # file does not hold: the fixed position tables (never saved) and any new head.
        if isinstance(module, ScaledSinusoidal | RotaryPositions):
            module.reset_parameters()
        else:
            init_weights(module, self.config.init_std)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embedding.word

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embedding.word = value

    def resize_token_embeddings(self, new_num_tokens: int | None = None,
                                pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """transformers' resize, then every head parameter sized by the vocabulary (the MLM
        head's bias, and the rows of an untied decoder if a head has one) follows the new
        embedding, as transformers resizes its own models' LM heads: rows kept, new rows the
        mean of the old ones (`mean_resizing`) or zeros. The resized model runs, saves and
        loads back (config.vocab_size is the new size)."""
        old = self.get_input_embeddings().weight.shape[0]
        embedding = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of,
                                                    mean_resizing)
        new = embedding.weight.shape[0]
        if new != old:
            for name, module in self.named_children():
                if name != "encoder":  # the embedding itself is resized already
                    _resize_rows(module, old, new, mean_resizing)
        return embedding


def _resize_rows(module: nn.Module, old: int, new: int, mean_resizing: bool) -> None:
    """Every parameter of `module` whose first dimension is the old vocabulary `old`, to `new`
    rows (the first min(old, new) kept)."""
    for child in module.modules():
        for name, param in list(child.named_parameters(recurse=False)):
            if param.dim() == 0 or param.shape[0] != old:
                continue
            with torch.no_grad():
                fill = param.mean(0) if mean_resizing else torch.zeros_like(param[0])
                data = fill.expand(new, *param.shape[1:]).clone()
                kept = min(old, new)
                data[:kept] = param[:kept]
            setattr(child, name, nn.Parameter(data, requires_grad=param.requires_grad))


class CrammedBertModel(CrammedBertPreTrainedModel):
    """The encoder: embedding, blocks, final norm (as `config` names them)."""

    def __init__(self, config: CrammedBertConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, return_dict: bool | None = None):
        output = BaseModelOutput(last_hidden_state=self.encoder(input_ids, attention_mask))
        return output if return_dict is not False else output.to_tuple()


class CrammedBertForMaskedLM(CrammedBertPreTrainedModel):
    """Encoder and the MLM head, whose decoder is the token embedding (tied by construction)
    unless `config.tie_weights` is false. It scores every position (no sparse prediction)."""

    def __init__(self, config: CrammedBertConfig):
        super().__init__(config)
        self.encoder = Encoder(config)
        self.mlm_head = MLMHead(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                return_dict: bool | None = None):
        """`labels`: token ids where a loss is wanted, -100 elsewhere (the transformers
        convention); the loss is the mean cross-entropy over those positions."""
        h = self.encoder(input_ids, attention_mask)  # (B, T, H)
        logits = self.mlm_head(h, self.encoder.embedding.word.weight)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
        output = MaskedLMOutput(loss=loss, logits=logits)
        return output if return_dict is not False else output.to_tuple()


class CrammedBertForSequenceClassification(CrammedBertPreTrainedModel):
    """Encoder (with `config.dropout` inside, as in BERT fine-tuning) and the pooled head
    (`config.pooler`);
    `num_labels` 1 is regression (MSE), otherwise cross-entropy or, for multi-label problems,
    binary cross-entropy (the transformers `problem_type` convention)."""

    def __init__(self, config: CrammedBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = Encoder(config, config.dropout)
        self.head = ClassificationHead(config, config.num_labels, config.dropout)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                return_dict: bool | None = None):
        h = self.encoder(input_ids, attention_mask)  # (B, T, H)
        logits = self.head(h, attention_mask)  # (B, num_labels)
        loss = None if labels is None else self._loss(logits, labels)
        output = SequenceClassifierOutput(loss=loss, logits=logits)
        return output if return_dict is not False else output.to_tuple()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1).float(), labels.float().reshape(-1))
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.float(), labels.reshape(-1))
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
