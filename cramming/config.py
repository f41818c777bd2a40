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

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from crambench.contracts import canonical_json
from crambench.errors import UserError
from crambench.options import SEED_MAX, SEED_RANGE

PRESET_DIR = Path(__file__).parent / "presets"
PRESETS = ("crammed-bert", "tiny", "mini", "small")


@dataclass
class ModelConfig:
    """Shape of the encoder. Defaults are the reference `crammed-bert` (cramming paper)."""

    vocab_size: int = 32768  # tokens; must equal the data dir's vocabulary
    seq_len: int = 128  # tokens per row; must equal the data dir's rows
    hidden: int = 768  # width of the residual stream
    layers: int = 16  # transformer blocks
    heads: int = 12  # attention heads; hidden must divide evenly
    ffn_hidden: int = 3072  # GLU in-projection width; half is the gate, half goes out
    norm_eps: float = 1e-12  # LayerNorm epsilon (cramming paper, as original BERT)
    head_hidden: int = 1024  # width of the fine-tuning head's dense layer (docs/eval.md)
    init_std: float = 0.02  # std of normal weight init (BERT initializer_range)


@dataclass
class OptimConfig:
    """AdamW as in the cramming paper."""

    lr: float = 1e-3  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-12
    weight_decay: float = 0.01  # not applied to norms, biases, embeddings
    grad_clip: float = 0.5  # max global gradient L2 norm; 0 disables


@dataclass
class TrainConfig:
    """The recipe over time. Schedules are functions of f = elapsed / budget, never of steps."""

    budget_s: float = 86400.0  # wall-clock training budget, seconds (set by --budget)
    lr_start_factor: float = 0.25  # one-cycle: lr factor at f = 0
    lr_peak_at: float = 0.75  # one-cycle: f where lr reaches its peak; 0 at f = 1
    batch_size: int = 8192  # sequences per optimizer step once the ramp is done
    batch_start: int = 128  # sequences per optimizer step at f = 0
    batch_ramp_until: float = 0.6  # f at which batch_size is reached (linear ramp)
    mask_prob: float = 0.25  # share of maskable tokens selected (cramming paper)
    mask_token_prob: float = 0.8  # of selected: replaced by [MASK]
    random_token_prob: float = 0.1  # of selected: replaced by a random token; rest unchanged
    max_steps: int | None = None  # optional cap on optimizer steps (tests, smoke runs)
    val_rows: int = 1024  # rows of the val split scored at the end (cap keeps it quick)


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
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)
    data: DataConfig = field(default_factory=DataConfig)
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


def load_config(preset: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PretrainConfig:
    """Defaults <- preset YAML <- `key=value` overrides, in struct mode (a typo is an error)."""
    path = preset_path(preset)
    base = OmegaConf.structured(PretrainConfig)
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, _read_yaml(path))
    except OmegaConfBaseException as err:
        raise UserError(f"bad preset {path}: {_one_line(err)}") from None
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


def load_saved_config(path: str | Path, overrides=()) -> PretrainConfig:
    """A run's saved config.yaml, then `key=value` overrides. It was written with every field
    of the tree, so a missing field means the file was cut short or edited: a UserError, not a
    recipe with defaults filled in."""
    saved, expected = _read_yaml(Path(path)), OmegaConf.structured(PretrainConfig)
    missing = [key for key in _leaf_keys(expected) if OmegaConf.select(saved, key) is None
               and OmegaConf.select(expected, key) is not None]
    if missing:
        more = " ..." if len(missing) > 3 else ""
        raise UserError(f"{path} is incomplete (cut short?): {', '.join(missing[:3])}{more} "
                        "missing")
    return load_config(path, overrides)


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
    if m.ffn_hidden % 2:
        raise UserError(f"model.ffn_hidden={m.ffn_hidden} must be even (GLU halves)")


def validate(cfg: PretrainConfig) -> None:
    o, t, i = cfg.optim, cfg.train, cfg.impl
    validate_model(cfg.model)
    if not 0 < t.mask_prob < 1 or t.mask_token_prob + t.random_token_prob > 1:
        raise UserError("train.mask_* probabilities must lie in (0, 1) and sum to at most 1")
    if not 0 < t.lr_peak_at < 1 or not 0 < t.batch_ramp_until <= 1:
        raise UserError("train.lr_peak_at and train.batch_ramp_until must lie in (0, 1]")
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
    """Read a saved RUN/config.yaml back into the typed tree (unknown keys are an error)."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PretrainConfig), _read_yaml(path))
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
    """What changes the result: everything but `impl` and paths."""
    return {
        "model": dataclasses.asdict(cfg.model),
        "optim": dataclasses.asdict(cfg.optim),
        "train": dataclasses.asdict(cfg.train),
        "seed": cfg.seed,
    }


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
