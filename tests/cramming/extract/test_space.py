"""The candidate space: default grids, user values, and every malformed space as one line."""

import pytest

from crambench.errors import UserError
from cramming.config import ModelConfig
from cramming.extract.space import Shape, candidate_space, parse_space

REFERENCE = ModelConfig()  # crammed-bert: 16 layers, 12 heads, hidden 768, ffn 3072
TINY = ModelConfig(vocab_size=256, hidden=128, layers=2, heads=2, ffn_hidden=512)


def test_default_grid_of_the_reference_keeps_head_size_and_ffn_ratio():
    shapes = candidate_space(REFERENCE)
    assert len(shapes) == 3 * 2 * 2 - 1  # depth x width x ffn, minus the teacher's own shape
    assert Shape(16, 12, 768, 3072) not in shapes
    assert {s.layers for s in shapes} == {4, 8, 16}
    assert {(s.hidden, s.heads) for s in shapes} == {(384, 6), (768, 12)}  # head size 64
    assert {s.ffn for s in shapes if s.hidden == 384} == {768, 1536}
    assert all(s.hidden % s.heads == 0 for s in shapes)


def test_user_values_replace_the_default_of_their_dimension_only():
    shapes = candidate_space(REFERENCE, ["layers=2,4,8", "heads=4,8", "hidden=256,512"])
    assert {s.layers for s in shapes} == {2, 4, 8}
    assert {s.heads for s in shapes} == {4, 8}
    assert {s.ffn for s in shapes if s.hidden == 256} == {512, 1024}  # default: ratio kept
    assert len(shapes) == 3 * 2 * 2 * 2


def test_the_teachers_shape_is_a_candidate_only_when_asked_for_in_full():
    assert Shape(2, 2, 128, 512) not in candidate_space(TINY, ["layers=1,2"])
    full = candidate_space(TINY, ["layers=2", "heads=2", "hidden=128", "ffn=512"])
    assert full == [Shape(2, 2, 128, 512)]
    assert Shape(2, 2, 128, 512).name == "L2-A2-H128-F512"
    assert Shape(2, 2, 128, 512).model_config(TINY) == TINY


def test_parse_space():
    assert parse_space(["layers=4, 2,4", "ffn=64"]) == {"layers": [2, 4], "ffn": [64]}


@pytest.mark.parametrize("items, message", [
    (["hidden=256"], "--space hidden=256 is larger than the teacher's hidden 128"),
    (["layers=3"], "--space layers=3 is larger than the teacher's layers 2"),
    (["heads=3"], "--space heads=3 is larger than the teacher's heads 2"),
    (["heads=2", "hidden=126,127"], "heads 2 do not divide hidden 127"),
    (["heads=1", "hidden=63"], "hidden 63 is odd"),
    (["layers="], "--space layers= is empty"),
    (["ffn=63"], "ffn 63 is odd"),
    (["depth=2"], "unknown dimension 'depth'"),
    (["model.hidden=64"], "config overrides (key.name=value) go before --space"),
    (["layers"], "is not DIMENSION=V1,V2"),
    (["layers=two"], "values must be whole numbers"),
    (["layers=0"], "values must be at least 1"),
    (["layers=1", "layers=2"], "layers is given twice"),
])
def test_bad_spaces_are_one_line_errors(items, message):
    with pytest.raises(UserError) as err:
        candidate_space(TINY, items)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_teacher_with_no_smaller_default_shape_has_an_empty_space():
    smallest = ModelConfig(vocab_size=64, hidden=2, layers=1, heads=1, ffn_hidden=2)
    with pytest.raises(UserError, match="the candidate space is empty"):
        candidate_space(smallest)
