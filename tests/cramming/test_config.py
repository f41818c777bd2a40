"""Every preset parses into the config tree; overrides are strict; the recipe hash ignores impl."""

import pytest

from crambench.errors import UserError
from cramming.config import (
    PRESETS,
    PretrainConfig,
    config_from_yaml,
    config_sha256,
    load_config,
    to_yaml,
)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_parses(preset):
    cfg = load_config(preset)
    assert isinstance(cfg, PretrainConfig)
    assert cfg.model.hidden % cfg.model.heads == 0
    assert cfg.train.batch_start <= cfg.train.batch_size


def test_reference_recipe_values():
    cfg = load_config("crammed-bert")
    m, o, t = cfg.model, cfg.optim, cfg.train
    assert (m.layers, m.hidden, m.heads, m.ffn_hidden, m.vocab_size, m.seq_len) == (
        16, 768, 12, 3072, 32768, 128)
    assert (o.lr, tuple(o.betas), o.eps, o.weight_decay, o.grad_clip) == (
        1e-3, (0.9, 0.98), 1e-12, 0.01, 0.5)
    assert (t.batch_size, t.batch_ramp_until, t.mask_prob) == (8192, 0.6, 0.25)


def test_overrides_and_typos():
    cfg = load_config("tiny", ["optim.lr=5e-4", "impl.compile=true", "train.max_steps=3"])
    assert cfg.optim.lr == 5e-4 and cfg.impl.compile and cfg.train.max_steps == 3
    with pytest.raises(UserError, match="optim.lrr"):
        load_config("tiny", ["optim.lrr=1"])
    with pytest.raises(UserError, match="not key=value"):
        load_config("tiny", ["optim.lr"])
    with pytest.raises(UserError, match="unknown preset"):
        load_config("huge")
    with pytest.raises(UserError, match="divisible"):
        load_config("tiny", ["model.heads=3"])


def test_preset_file_and_saved_config_round_trip(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  hidden: 96\n  heads: 3\n")
    cfg = load_config(path)
    assert cfg.model.hidden == 96 and cfg.model.layers == 16
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg))
    assert config_from_yaml(saved) == cfg
    assert config_sha256(saved) == config_sha256(cfg)


def test_recipe_hash_covers_results_not_speed():
    base = config_sha256(load_config("tiny"))
    speed_only = load_config("tiny", ["impl.micro_batch=8", "impl.compile=true",
                                      "impl.precision=fp32", "impl.log_every=1",
                                      "data.path=/elsewhere"])
    assert config_sha256(speed_only) == base
    for change in ("optim.lr=5e-4", "seed=1", "train.budget_s=60", "model.layers=3"):
        assert config_sha256(load_config("tiny", [change])) != base, change


@pytest.mark.parametrize("text, message", [
    ("model:\n  hidden: [1, 2\n", "not valid YAML: .* at line 3"),
    ("- model\n- train\n", "not a YAML mapping"),
])
def test_broken_preset_or_saved_config_is_one_line_user_error(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    for read in (load_config, config_from_yaml):
        with pytest.raises(UserError, match=message):
            read(path)


def test_override_errors_name_the_key_without_omegaconf_detail():
    with pytest.raises(UserError) as err:
        load_config("tiny", ["model.foo=1"])
    assert str(err.value) == "bad override 'model.foo=1': Key 'foo' not in 'ModelConfig'"
    with pytest.raises(UserError, match="impl.log_every"):
        load_config("tiny", ["impl.log_every=0"])


@pytest.mark.parametrize("override, message", [
    ("model.heads=0", "must all be at least 1"),
    ("model.hidden=0", "must all be at least 1"),
    ("optim.lr=-1", "lr > 0"),
    ("optim.betas=[0.9,1.5]", r"betas in \[0, 1\)"),
    ("optim.weight_decay=-0.1", "weight_decay >= 0"),
    ("impl.threads=-1", "impl.threads=-1"),
    ("seed=-1", "seed -1"),
    ("train.lr_start_factor=-0.5", "lr_start_factor"),
])
def test_values_torch_would_reject_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        load_config("tiny", [override])
