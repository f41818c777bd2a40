"""The crammed BERT's configuration for Hugging Face `transformers` (written by `cram export`).

The fields are cramming-bench's `ModelConfig` (the model code reads them by these names), with
the usual transformers names as aliases (`hidden_size` is `hidden`, and so on). `dropout` is
the fine-tuning dropout of the classification model (encoder and head); the masked-language
model and the bare encoder run without dropout, as in pretraining.
"""

from transformers import PretrainedConfig


class CrammedBertConfig(PretrainedConfig):
    model_type = "crammed_bert"
    attribute_map = {
        "hidden_size": "hidden",
        "num_hidden_layers": "layers",
        "num_attention_heads": "heads",
        "intermediate_size": "ffn_hidden",
        "max_position_embeddings": "seq_len",
        "layer_norm_eps": "norm_eps",
        "initializer_range": "init_std",
    }

    def __init__(
        self,
        vocab_size: int = 32768,  # tokens
        seq_len: int = 128,  # longest input, tokens
        hidden: int = 768,  # width of the residual stream
        layers: int = 16,  # transformer blocks
        heads: int = 12,  # attention heads
        ffn_hidden: int = 3072,  # gated-GELU in-projection width (half gate, half value)
        norm_eps: float = 1e-12,  # LayerNorm epsilon
        head_hidden: int = 1024,  # width of the classification head's dense layer
        init_std: float = 0.02,  # std of the normal weight init
        dropout: float = 0.1,  # fine-tuning dropout (classification model only)
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.ffn_hidden = ffn_hidden
        self.norm_eps = norm_eps
        self.head_hidden = head_hidden
        self.init_std = init_std
        self.dropout = dropout
        super().__init__(**kwargs)
