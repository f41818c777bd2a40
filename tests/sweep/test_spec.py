"""The sweep spec: what it reads, and one line naming the key for each mistake."""

from pathlib import Path

import pytest

from crambench.errors import UserError
from sweep.spec import load_spec, parse_spec


def spec(**changes):
    raw = {"format": "cram-sweep/1", "data": "data/demo", "budget": "60s", "seeds": [0, 1],
           "baseline": {"preset": "tiny", "overrides": ["train.batch_size=16"]},
           "variants": [{"name": "mlp", "overrides": ["model.ffn=mlp"]},
                        {"name": "orig", "preset": "tiny+original-arch", "data": "other"}],
           "eval": {"suite": "probe", "seeds": [0, 1]}, "metric": "val_loss", "alpha": 0.05}
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_spec_reads_into_arms_seed_major(tmp_path):
    parsed = parse_spec(spec(), root=tmp_path)
    assert parsed.budget_s == 60 and parsed.seeds == (0, 1) and parsed.alpha == 0.05
    assert [a.name for a in parsed.arms] == ["baseline", "mlp", "orig"]
    mlp, orig = parsed.variants
    # a variant is the baseline changed by what it names
    assert mlp.preset == "tiny" and mlp.overrides == ("train.batch_size=16", "model.ffn=mlp")
    assert orig.preset == "tiny+original-arch" and orig.overrides == ("train.batch_size=16",)
    assert mlp.data == str(tmp_path / "data/demo") and orig.data == str(tmp_path / "other")
    assert [(a.name, s) for a, s in parsed.cells()][:4] == [
        ("baseline", 0), ("mlp", 0), ("orig", 0), ("baseline", 1)]
    assert parsed.eval.suite == "probe" and parsed.eval.seeds == (0, 1)
    assert parsed.lower_is_better


def test_the_runs_hash_ignores_metric_and_alpha(tmp_path):
    base = parse_spec(spec(), root=tmp_path).runs_sha256()
    assert parse_spec(spec(alpha=0.01), root=tmp_path).runs_sha256() == base
    assert parse_spec(spec(seeds=[0, 1, 2]), root=tmp_path).runs_sha256() != base


@pytest.mark.parametrize("changes, message", [
    ({"format": "cram-sweep/9"}, r"spec: format: 'cram-sweep/9' is not a sweep spec format"),
    ({"budget": "soon"}, r"spec: budget: bad budget 'soon'"),
    ({"budget": None}, r"spec: budget: missing"),
    ({"seeds": [0, 0]}, r"spec: seeds: \[0, 0\] repeats a seed"),
    ({"seeds": [-1]}, r"spec: seeds: \[-1\]: give a list of whole numbers"),
    ({"budgte": "1m"}, r"spec: budgte: unknown key"),
    ({"alpha": 1.5}, r"spec: alpha: 1.5 must be a number in \(0, 1\)"),
    ({"metric": "bleu"}, r"spec: metric: 'bleu': choose val_loss"),
    ({"metric": "avg_cramming"}, r"spec: metric: 'avg_cramming' needs eval.suite glue"),
    ({"metric": "rte.f1", "eval": {"suite": "glue", "tasks": ["rte"]}},
     r"spec: metric: 'rte.f1': rte has accuracy"),
    ({"metric": "sst2.accuracy", "eval": {"suite": "glue", "tasks": ["rte"]}},
     r"sst2 is not among eval.tasks"),
    ({"eval": {"suite": "probe", "tasks": ["rte"]}}, r"spec: eval: tasks, protocol and glue_dir"),
    ({"eval": {"suite": "glue", "protocol": "fast"}}, r"spec: eval.protocol: 'fast'"),
    ({"eval": {"suite": "glue", "tasks": ["wsc"]}}, r"spec: eval.tasks: unknown GLUE task 'wsc'"),
    ({"variants": [{"overrides": ["model.ffn=mlp"]}]}, r"spec: variants\[0\].name: missing"),
    ({"variants": [{"name": "Big Arm", "overrides": ["a=b"]}]},
     r"spec: variants\[0\].name: 'Big Arm'"),
    ({"variants": [{"name": "baseline", "overrides": ["a=b"]}]},
     r"spec: variants\[0\].name: 'baseline' is taken"),
    ({"variants": [{"name": "same"}]}, r"spec: variants\[0\]: changes nothing"),
    ({"variants": [{"name": "x", "overrides": ["model.ffn"]}]},
     r"spec: variants\[0\].overrides: \['model.ffn'\]: give a list of key=value"),
    ({"baseline": {"overrides": []}}, r"spec: baseline.preset: missing"),
    ({"data": None, "variants": []}, r"spec: data: no data dir"),
    ({"device": "tpu"}, r"spec: device: 'tpu'"),
])
def test_each_mistake_is_one_line_naming_the_key(changes, message, tmp_path):
    with pytest.raises(UserError, match=message) as err:
        parse_spec(spec(**changes), root=tmp_path)
    assert "\n" not in str(err.value)


def test_a_spec_file_that_is_not_yaml_is_one_line(tmp_path):

    path = tmp_path / "s.yaml"
    path.write_text("format: [\n")
    with pytest.raises(UserError, match=r"s.yaml is not valid YAML"):
        load_spec(path)
    with pytest.raises(UserError, match=r"cannot read sweep spec"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "examples" / "sweeps")
                                        .glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_spec_loads_and_names_a_preset_of_the_harness(path):
    from cramming.config import load_config

    spec = load_spec(path)
    assert spec.seeds and spec.budget_s > 0 and len(spec.arms) >= 2
    for arm in spec.arms:
        load_config(arm.preset, list(arm.overrides))  # every arm is a valid recipe
