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
        ffn_hidden: int = 3072,  # feed-forward inner width (glu: half gate, half value)
        norm_eps: float = 1e-12,  # norm epsilon
        head_hidden: int = 1024,  # width of the classification head's dense layer
        init_std: float = 0.02,  # std of the normal weight init
        dropout: float = 0.1,  # fine-tuning dropout (classification model only)
        # The components, by the names cramming-bench's ModelConfig gives them; defaults are
        # its reference, `crammed-bert` (the cramming paper's final recipe).
        norm_scheme: str = "pre",  # pre | post
        norm: str = "layernorm",  # layernorm | rmsnorm
        qkv_bias: bool = False,
        linear_bias: bool = False,
        ffn: str = "glu",  # glu | mlp
        activation: str = "gelu",  # gelu | relu | silu
        pos_embedding: str = "scaled-sinusoidal",  # or sinusoidal, learned, rotary, none
        embedding_norm: bool = True,
        final_norm: bool = True,
        head_transform: bool = False,  # MLM head: dense -> GELU -> norm before the decoder
        decoder_bias: bool = False,  # MLM head: a bias over the vocabulary
        sparse_prediction: bool = True,  # pretraining only; the exported MLM scores every token
        tie_weights: bool = True,  # the MLM decoder is the token embedding
        pooler: str = "mean",  # classification head's input: first | mean
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
        self.norm_scheme, self.norm, self.ffn, self.activation = norm_scheme, norm, ffn, activation
        self.qkv_bias, self.linear_bias = qkv_bias, linear_bias
        self.pos_embedding, self.pooler = pos_embedding, pooler
        self.embedding_norm, self.final_norm = embedding_norm, final_norm
        self.head_transform, self.decoder_bias = head_transform, decoder_bias
        self.sparse_prediction = sparse_prediction
        # Named apart from transformers' own `tie_word_embeddings`, which would re-tie an
        # untied decoder to the embedding on load; this model ties by construction.
        self.tie_weights = tie_weights
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
