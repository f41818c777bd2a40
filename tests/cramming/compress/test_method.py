"""METHOD strings: what parses, what is refused with one line, and how methods compose."""

import pytest

from crambench.errors import UserError
from cramming.compress.method import Method, compose, parse_method


@pytest.mark.parametrize("text, method", [
    ("prune:0.5", Method(0.5, None)), ("int8", Method(None, 8)), ("INT4", Method(None, 4)),
    ("prune:0.9+int4", Method(0.9, 4)), (" prune:.25 + int8 ", Method(0.25, 8)),
])
def test_parse(text, method):
    assert parse_method(text) == method
    assert parse_method(str(method)) == method  # the canonical string parses back


@pytest.mark.parametrize("text, reason", [
    ("prune:0", "must lie strictly between 0 and 1"),
    ("prune:1", "must lie strictly between 0 and 1"),
    ("prune:1.5", "must lie strictly between 0 and 1"),
    ("prune:-0.2", "must lie strictly between 0 and 1"),
    ("prune", "malformed pruning step 'prune'"),
    ("prune:half", "malformed pruning step"),
    ("prune:0.5:0.6", "malformed pruning step"),
    ("int3", "unknown step 'int3'"),
    ("", r"unknown step '\(empty\)'"),
    ("prune:0.5+", r"unknown step '\(empty\)'"),
    ("int8+prune:0.5", "pruning must come before quantization"),
    ("int8+int4", "quantization is given twice"),
    ("prune:0.3+prune:0.5", "prune is given twice"),
])
def test_bad_methods_are_one_line_errors(text, reason):
    with pytest.raises(UserError, match=reason) as caught:
        parse_method(text)
    assert "\n" not in str(caught.value) and repr(text) in str(caught.value)


def test_compose_prunes_further_and_quantizes_a_pruned_run():
    assert compose(None, Method(0.5, 8), "p") == Method(0.5, 8)
    assert compose(Method(0.5, None), Method(0.8, None), "p") == Method(0.8, None)
    assert compose(Method(0.5, None), Method(None, 4), "p") == Method(0.5, 4)


@pytest.mark.parametrize("parent, stage, reason", [
    (Method(None, 8), Method(0.5, None), "already compressed with int8"),
    (Method(0.5, 4), Method(None, 8), "already compressed with prune:0.5\\+int4"),
    (Method(0.5, None), Method(0.5, None), "already pruned to 0.5"),
    (Method(0.7, None), Method(0.6, 8), "already pruned to 0.7"),
])
def test_compose_refuses_what_it_cannot_do(parent, stage, reason):
    with pytest.raises(UserError, match=reason):
        compose(parent, stage, "runs/parent")
