"""The typed config tree of a pretraining run: presets (YAML) merged over dataclass defaults.

`model`, `optim`, `train` and `seed` decide what the run computes; `impl` decides only how fast
(device, precision, compile, micro-batch, intervals) and `data.path` only where the rows come
from. `config_sha256` hashes the first group alone, so two runs with the same hash follow the
same recipe on any hardware.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from crambench.contracts import canonical_json
from crambench.errors import UserError
from crambench.options import SEED_MAX, SEED_RANGE

PRESET_DIR = Path(__file__).parent / "presets"
# Sizes and whole recipes, then the component groups of the cramming paper's resets, which
# layer over a size: `--preset tiny+original-arch`.
PRESETS = ("crammed-bert", "tiny", "mini", "small", "bert-original", "original-arch",
           "original-train")


@dataclass
class ModelConfig:
    """The encoder: its shape, then its components by name. Defaults are the reference
    `crammed-bert`, the cramming paper's final recipe (its `arch/crammed-bert.yaml`)."""

    vocab_size: int = 32768  # tokens; must equal the data dir's vocabulary
    seq_len: int = 128  # tokens per row; must equal the data dir's rows
    hidden: int = 768  # width of the residual stream
    layers: int = 16  # transformer blocks
    heads: int = 12  # attention heads; hidden must divide evenly
    ffn_hidden: int = 3072  # feed-forward inner width (glu: half is the gate, half goes out)
    norm_eps: float = 1e-12  # norm epsilon (cramming paper, as original BERT)
    head_hidden: int = 1024  # width of the fine-tuning head's dense layer (docs/eval.md)
    init_std: float = 0.02  # std of normal weight init (BERT initializer_range)
    # Components (cramming.model's tables; the paper's ablation axes, section 4.2):
    norm_scheme: str = "pre"  # pre | post: norms inside the residual branches, or after them
    norm: str = "layernorm"  # layernorm | rmsnorm
    qkv_bias: bool = False  # biases in the attention's query, key and value projections
    linear_bias: bool = False  # biases in every other linear layer of the blocks
    ffn: str = "glu"  # glu | mlp
    activation: str = "gelu"  # gelu | relu | silu (glu + silu is SwiGLU)
    pos_embedding: str = "scaled-sinusoidal"  # scaled-sinusoidal|sinusoidal|learned|rotary|none
    embedding_norm: bool = True  # a norm after the token + position embedding
    final_norm: bool = True  # a norm after the last block (pre-LN needs it)
    head_transform: bool = False  # MLM head: dense -> GELU -> norm before the decoder (BERT)
    decoder_bias: bool = False  # MLM head: a bias over the vocabulary
    sparse_prediction: bool = True  # MLM head on the masked positions only
    tie_weights: bool = True  # the MLM decoder is the token embedding
    pooler: str = "mean"  # fine-tuning head's input: first (token) | mean (of the tokens)


@dataclass
class OptimConfig:
    """The optimizer, by name (torch's own). Defaults: AdamW as in the cramming paper."""

    name: str = "adamw"  # adamw | adam | adafactor | sgd | radam
    lr: float = 1e-3  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)  # adamw, adam, radam
    eps: float = 1e-12  # adamw, adam, radam
    momentum: float = 0.9  # sgd (Nesterov off)
    weight_decay: float = 0.01  # not applied to norms, biases, embeddings
    grad_clip: float = 0.5  # max global gradient L2 norm; 0 disables


@dataclass
class TrainConfig:
    """The recipe over time. Schedules are functions of f = elapsed / budget, never of steps."""

    budget_s: float = 86400.0  # wall-clock training budget, seconds (set by --budget)
    # Learning-rate factor of f (cramming.train.schedules): one-cycle | cosine | linear |
    # inverse-sqrt | constant
    schedule: str = "one-cycle"
    lr_start_factor: float = 0.25  # one-cycle: lr factor at f = 0
    lr_peak_at: float = 0.75  # one-cycle: f where lr reaches its peak; 0 at f = 1
    warmup_fraction: float = 0.0  # the other schedules: linear warm-up from 0 over [0, this)
    batch_ramp: bool = True  # ramp the batch from batch_start to batch_size (else batch_size)
    batch_size: int = 8192  # sequences per optimizer step once the ramp is done
    batch_start: int = 128  # sequences per optimizer step at f = 0
    batch_ramp_until: float = 0.6  # f at which batch_size is reached (linear ramp)
    dropout: float = 0.0  # in the encoder while pretraining (cramming: none)
    mask_prob: float = 0.25  # share of maskable tokens selected (cramming paper)
    mask_token_prob: float = 0.8  # of selected: replaced by [MASK]
    random_token_prob: float = 0.1  # of selected: replaced by a random token; rest unchanged
    max_steps: int | None = None  # optional cap on optimizer steps (tests, smoke runs)
    val_rows: int = 1024  # rows of the val split scored at the end (cap keeps it quick)


# The named components: each field picks one entry of a table in cramming.model,
# cramming.train.optimizers or cramming.train.schedules (a test checks the names agree).
CHOICES = {
    "model.norm_scheme": ("pre", "post"),
    "model.norm": ("layernorm", "rmsnorm"),
    "model.ffn": ("glu", "mlp"),
    "model.activation": ("gelu", "relu", "silu"),
    "model.pos_embedding": ("scaled-sinusoidal", "sinusoidal", "learned", "rotary", "none"),
    "model.pooler": ("first", "mean"),
    "optim.name": ("adamw", "adam", "adafactor", "sgd", "radam"),
    "train.schedule": ("one-cycle", "cosine", "linear", "inverse-sqrt", "constant"),
}

# What runs written before the components had names were trained and fine-tuned with. A
# saved config.yaml or model_config.json that lacks one of these fields reads as this value,
# and `recipe_dict` leaves a field out while it holds this value, so those runs keep their
# config_sha256. (The reference differs in three: no head transform, no decoder bias, mean
# pooling, the paper's final recipe.)
LEGACY = {
    "model": {"norm_scheme": "pre", "norm": "layernorm", "qkv_bias": False,
              "linear_bias": False, "ffn": "glu", "activation": "gelu",
              "pos_embedding": "scaled-sinusoidal", "embedding_norm": True, "final_norm": True,
              "head_transform": True, "decoder_bias": True, "sparse_prediction": True,
              "tie_weights": True, "pooler": "first"},
    "optim": {"name": "adamw", "momentum": 0.9},
    "train": {"schedule": "one-cycle", "warmup_fraction": 0.0, "batch_ramp": True,
              "dropout": 0.0},
}


COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")  # torch.compile's modes
AUTO = "auto"  # impl.micro_batch chosen by a probe at the start of the run


@dataclass
class ImplConfig:
    """How fast, not what: none of these may change the math of an optimizer step."""

    device: str = "auto"  # auto | cuda | cpu
    precision: str = "auto"  # auto | bf16 | fp16 | fp32 (auto: bf16 if supported, fp32 on CPU)
    compile: bool = False  # torch.compile the model
    compile_mode: str = "default"  # torch.compile mode: default | max-autotune | reduce-overhead
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    # Sequences per forward/backward; steps accumulate micro-batches. "auto": on a GPU the
    # fastest power of two from 128 that fits with headroom, probed at the start (on the
    # clock; cramming.train.micro_batch), on a CPU 128.
    micro_batch: int | str = 128
    log_every: int = 10  # optimizer steps between metrics.jsonl lines
    # Optimizer steps traced by torch.profiler into RUN/profile/ (after one warm-up step); 0:
    # none. Profiling slows the run, so a profiled run is open track.
    profile_steps: int = 0
    checkpoint_every_min: float = 30.0  # minutes between resumable checkpoints


@dataclass
class DataConfig:
    path: str = ""  # prepared data dir (contract cram-data/1)


@dataclass
class PluginConfig:
    """The run's own code (crambench.plugin): set by `cram pretrain --plugin FILE`, options by
    `plugin.options.K=V`. Its hash and options are part of the recipe."""

    file: str = ""  # the run's copy, relative to the run dir (code/plugin.py); "": none
    sha256: str = ""  # of that copy
    options: dict[str, Any] = field(default_factory=dict)  # passed to every hook


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)
    data: DataConfig = field(default_factory=DataConfig)
    plugin: PluginConfig = field(default_factory=PluginConfig)
    seed: int = 0  # initialization, data order, masking


def preset_path(preset: str | Path) -> Path:
    """A preset name (`tiny`) or a YAML file path, resolved to an existing file."""
    text = str(preset)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise UserError(f"preset file not found: {path}")
        return path
    if text not in PRESETS:
        raise UserError(f"unknown preset {text!r}; choose one of {', '.join(PRESETS)} or a .yaml")
    return PRESET_DIR / f"{text}.yaml"


def preset_paths(preset: str | Path) -> list[Path]:
    """`tiny+original-arch`: presets layered left to right (a later one sets what it names
    over the earlier ones), each a name or a YAML file."""
    if Path(str(preset)).is_file():  # a file whose name holds a "+"
        return [Path(str(preset))]
    return [preset_path(part) for part in str(preset).split("+")]


def load_config(preset: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
                saved: bool = False) -> PretrainConfig:
    """Defaults <- preset YAML(s) <- `key=value` overrides, in struct mode (a typo is an
    error). `saved`: the YAML is a run's config.yaml, whose missing component fields are
    LEGACY's."""
    base = _structured()
    merged = OmegaConf.merge(base, LEGACY) if saved else base
    for path in preset_paths(preset):
        try:
            merged = OmegaConf.merge(merged, _read_yaml(path))
        except OmegaConfBaseException as err:
            raise UserError(f"bad preset {path}: {_one_line(err)}") from None
    OmegaConf.set_struct(merged.plugin.options, False)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value (e.g. optim.lr=5e-4)")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise UserError(f"bad override {item!r}: {_one_line(err)}") from None
    cfg = OmegaConf.to_object(merged)
    validate(cfg)
    return cfg


def _structured() -> DictConfig:
    """The config tree's defaults in struct mode (an unknown key is an error), except
    plugin.options: the plug-in's own keys, any names."""
    base = OmegaConf.structured(PretrainConfig)
    OmegaConf.set_struct(base, True)
    OmegaConf.set_struct(base.plugin.options, False)
    return base


def load_saved_config(path: str | Path, overrides=()) -> PretrainConfig:
    """A run's saved config.yaml, then `key=value` overrides. It was written with every field
    of the tree but those that came later (LEGACY's, which read as what the run was trained
    with), so another missing field means the file was cut short or edited: a UserError, not
    a recipe with defaults filled in."""
    saved, expected = _read_yaml(Path(path)), OmegaConf.structured(PretrainConfig)
    later = {f"{section}.{key}" for section, fields in LEGACY.items() for key in fields}
    later |= {"plugin.file", "plugin.sha256"}  # no plug-in: what older runs had
    missing = [key for key in _leaf_keys(expected) if OmegaConf.select(saved, key) is None
               and OmegaConf.select(expected, key) is not None and key not in later]
    if missing:
        more = " ..." if len(missing) > 3 else ""
        raise UserError(f"{path} is incomplete (cut short?): {', '.join(missing[:3])}{more} "
                        "missing")
    return load_config(path, overrides, saved=True)


def check_derived_overrides(overrides, stage: str) -> None:
    """A stage that trains on from a parent's model (`cram compress`, `cram extract`) keeps
    that model and its data: only optim.*, train.* and impl.* overrides apply."""
    for item in overrides:
        key = str(item).split("=", 1)[0]
        if not key.startswith(("optim.", "train.", "impl.")):
            raise UserError(f"{stage}: override {item!r} would change the parent's "
                            f"{key.split('.')[0]}; only optim.*, train.* and impl.* apply")


def with_legacy(section: str, values: dict) -> dict:
    """A saved section (e.g. a model_config.json's fields) with LEGACY's filled in where the
    file predates them."""
    return {**LEGACY.get(section, {}), **values}


def _leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node:
        name = f"{prefix}{key}"
        value = node[key]
        keys += _leaf_keys(value, name + ".") if isinstance(value, DictConfig) else [name]
    return keys


def validate_model(m: ModelConfig) -> None:
    """A shape the model can be built with, else a UserError naming the field."""
    sizes = ("vocab_size", "seq_len", "hidden", "layers", "heads", "ffn_hidden", "head_hidden")
    if min(getattr(m, name) for name in sizes) < 1:
        raise UserError(f"model.{{{','.join(sizes)}}} must all be at least 1")
    if m.hidden % m.heads:
        raise UserError(f"model.hidden={m.hidden} is not divisible by model.heads={m.heads}")
    check_choices({"model": dataclasses.asdict(m)}, "model")
    if m.ffn == "glu" and m.ffn_hidden % 2:
        raise UserError(f"model.ffn_hidden={m.ffn_hidden} must be even (model.ffn=glu halves it)")
    if m.pos_embedding == "rotary" and m.hidden // m.heads % 2:
        raise UserError(f"model.pos_embedding=rotary needs an even head width; model.hidden/"
                        f"model.heads is {m.hidden // m.heads}")


def check_choices(tree: dict, *sections: str) -> None:
    """Each named component of `sections` in `tree` is one CHOICES allows, else a UserError
    naming the field and the choices."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        if section in sections and tree[section][name] not in allowed:
            raise UserError(f"{key}={tree[section][name]!r}: choose {', '.join(allowed)}")


def validate(cfg: PretrainConfig) -> None:
    o, t, i = cfg.optim, cfg.train, cfg.impl
    validate_model(cfg.model)
    if not 0 < t.mask_prob < 1:
        raise UserError(f"train.mask_prob={t.mask_prob} must lie in (0, 1)")
    if not (0 <= t.mask_token_prob and 0 <= t.random_token_prob
            and t.mask_token_prob + t.random_token_prob <= 1):
        raise UserError(f"train.mask_token_prob={t.mask_token_prob} and "
                        f"train.random_token_prob={t.random_token_prob} must be at least 0 and "
                        "sum to at most 1")
    if not 0 < t.lr_peak_at < 1 or not 0 < t.batch_ramp_until <= 1:
        raise UserError("train.lr_peak_at and train.batch_ramp_until must lie in (0, 1]")
    check_choices({"optim": dataclasses.asdict(o), "train": dataclasses.asdict(t)},
                  "optim", "train")
    for name in ("warmup_fraction", "dropout"):
        if not 0 <= getattr(t, name) < 1:
            raise UserError(f"train.{name}={getattr(t, name)} must lie in [0, 1)")
    if t.schedule == "one-cycle" and t.warmup_fraction:
        raise UserError("train.warmup_fraction is for the other schedules; train.schedule="
                        "one-cycle rises from train.lr_start_factor to its peak at "
                        "train.lr_peak_at")
    if t.schedule == "inverse-sqrt" and not t.warmup_fraction:
        raise UserError("train.schedule=inverse-sqrt needs train.warmup_fraction > 0 (it "
                        "decays as sqrt(warmup_fraction / f) after the warm-up)")
    if not 0 <= o.momentum < 1:
        raise UserError(f"optim.momentum={o.momentum} must lie in [0, 1)")
    if not 0 <= t.lr_start_factor <= 1:
        raise UserError(f"train.lr_start_factor={t.lr_start_factor} must lie in [0, 1]")
    if t.max_steps is not None and t.max_steps < 1 or i.log_every < 1:
        raise UserError("train.max_steps (when set) and impl.log_every must be at least 1")
    if isinstance(i.micro_batch, str) and i.micro_batch != AUTO:
        raise UserError(f"impl.micro_batch={i.micro_batch!r}: a number of sequences or auto")
    micro = 1 if i.micro_batch == AUTO else i.micro_batch
    if min(t.batch_start, t.batch_size, micro) < 1 or t.batch_start > t.batch_size:
        raise UserError("need 1 <= train.batch_start <= train.batch_size and impl.micro_batch >= 1")
    if not (o.lr > 0 and o.eps > 0 and o.weight_decay >= 0 and o.grad_clip >= 0
            and all(0 <= beta < 1 for beta in o.betas)):
        raise UserError("optim: need lr > 0, eps > 0, weight_decay >= 0, grad_clip >= 0 and "
                        "betas in [0, 1)")
    if i.profile_steps < 0:
        raise UserError(f"impl.profile_steps={i.profile_steps} must be at least 0 (0: none)")
    if i.threads < 0:
        raise UserError(f"impl.threads={i.threads} must be at least 0 (0: torch's default)")
    if not 0 <= cfg.seed <= SEED_MAX:
        raise UserError(f"seed {cfg.seed} is out of range: {SEED_RANGE}")
    if i.device not in ("auto", "cuda", "cpu"):
        raise UserError(f"impl.device={i.device!r}: choose auto, cuda or cpu")
    if i.precision not in ("auto", "bf16", "fp16", "fp32"):
        raise UserError(f"impl.precision={i.precision!r}: choose auto, bf16, fp16 or fp32")
    if i.compile_mode not in COMPILE_MODES:
        raise UserError(f"impl.compile_mode={i.compile_mode!r}: choose {', '.join(COMPILE_MODES)}")


def to_yaml(cfg: PretrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_from_yaml(path: str | Path) -> PretrainConfig:
    """Read a saved RUN/config.yaml back into the typed tree (unknown keys are an error;
    missing component fields are LEGACY's: the file predates them)."""
    try:
        merged = OmegaConf.merge(_structured(), LEGACY, _read_yaml(path))
    except OmegaConfBaseException as err:
        raise UserError(f"cannot read config {path}: {_one_line(err)}") from None
    return OmegaConf.to_object(merged)


def _read_yaml(path: Path) -> DictConfig:
    """A YAML file of config sections; unreadable, malformed or not a mapping is a UserError."""
    try:
        loaded = OmegaConf.load(path)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or _one_line(err)
        raise UserError(f"{path} is not valid YAML: {problem}{where}") from None
    if not isinstance(loaded, DictConfig):
        raise UserError(f"{path} is not a YAML mapping of config sections (model:, train:, ...)")
    return loaded


def recipe_dict(cfg: PretrainConfig) -> dict:
    """What changes the result: everything but `impl` and paths. A component field that holds
    its LEGACY value is left out, so a run from before it existed hashes as it did then."""
    recipe = {"model": dataclasses.asdict(cfg.model), "optim": dataclasses.asdict(cfg.optim),
              "train": dataclasses.asdict(cfg.train), "seed": cfg.seed}
    for section, fields in LEGACY.items():
        for key, value in fields.items():
            if recipe[section][key] == value:
                del recipe[section][key]
    if cfg.plugin.file:  # the code itself, by its hash, and what it was told
        recipe["plugin"] = {"sha256": cfg.plugin.sha256, "options": dict(cfg.plugin.options)}
    return recipe


def config_sha256(cfg_or_yaml_path: PretrainConfig | str | Path) -> str:
    cfg = cfg_or_yaml_path
    if not isinstance(cfg, PretrainConfig):
        cfg = config_from_yaml(cfg)
    recipe = recipe_dict(cfg)
    recipe["optim"]["betas"] = list(recipe["optim"]["betas"])  # tuple and list hash alike
    return hashlib.sha256(canonical_json(recipe)).hexdigest()


def _one_line(err: Exception) -> str:
    """The message's first line: OmegaConf appends full_key / reference_type detail lines."""
    lines = str(err).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(err).__name__
