"""tensors_sha256: the same tensors hash the same whatever file holds them; any change of a
name, dtype, shape or value changes it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save

from crambench.errors import UserError
from crambench.tensor_hash import tensors_sha256, tensors_sha256_of_bytes


def test_the_same_tensors_in_two_layouts_hash_the_same(tmp_path):
    weights = {"b": torch.arange(6.0).view(2, 3), "a": torch.ones(4, dtype=torch.bfloat16)}
    (tmp_path / "one.safetensors").write_bytes(save(weights))
    (tmp_path / "two.safetensors").write_bytes(save(dict(reversed(weights.items())),
                                                    metadata={"format": "pt"}))
    one = tensors_sha256(tmp_path / "one.safetensors")
    assert one == tensors_sha256(tmp_path / "two.safetensors")
    assert one == tensors_sha256_of_bytes(save(weights), "weights")
    changed = {**weights, "b": weights["b"].clone()}
    changed["b"][1, 2] += 1
    assert tensors_sha256_of_bytes(save(changed), "changed") != one
    reshaped = {**weights, "b": weights["b"].reshape(3, 2)}
    assert tensors_sha256_of_bytes(save(reshaped), "reshaped") != one


def test_a_file_that_is_not_safetensors_is_one_line(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights of run")
    with pytest.raises(UserError, match="is not a safetensors file"):
        tensors_sha256(path)
