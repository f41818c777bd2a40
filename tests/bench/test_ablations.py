"""bench/ablations.py: its sweep spec parses, and every ablation is a recipe the config tree
takes, differing from the baseline in what it names."""

import dataclasses
import sys
from pathlib import Path

from cramming.config import load_config
from sweep.spec import parse_spec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ablations import ABLATIONS, spec  # noqa: E402


def test_every_ablation_is_a_recipe_that_differs_from_the_baseline(tmp_path):
    parsed = parse_spec(spec(tmp_path / "data", "2m", [0, 1, 2]))
    assert [arm.name for arm in parsed.variants] == list(ABLATIONS)
    assert parsed.seeds == (0, 1, 2) and parsed.metric == "val_loss"
    baseline = load_config("tiny")
    for arm in parsed.variants:
        config = load_config(arm.preset, arm.overrides)
        changed = {f"{section}.{key}" for section in ("model", "optim", "train")
                   for key, value in dataclasses.asdict(getattr(config, section)).items()
                   if value != dataclasses.asdict(getattr(baseline, section))[key]}
        assert changed == {o.split("=")[0] for o in arm.overrides}, arm.name
