"""The compact safetensors form: what goes in comes back, the size reported is the size on
disk, and the torch-free reader recomputes every count from the file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from cramming.compress.storage import (
    load_compact,
    pack_int4,
    save_compact,
    stored_stats,
    unpack_int4,
)


@pytest.mark.parametrize("count", [1, 2, 7, 64])
def test_int4_packing_round_trips(count):
    values = np.random.default_rng(count).integers(-8, 8, count).astype(np.int8)
    packed = pack_int4(values)
    assert packed.dtype == np.uint8 and len(packed) == (count + 1) // 2
    assert np.array_equal(unpack_int4(packed, count), values)


def _layer(rows=8, cols=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator)
    keep = torch.rand(rows, cols, generator=generator) > 0.6  # about 60% pruned
    return weight * keep, keep


@pytest.mark.parametrize("bits", [32, 8, 4])
@pytest.mark.parametrize("sparse", [False, True])
def test_round_trip_and_bytes_on_disk(tmp_path, bits, sparse):
    weight, keep = _layer()
    state = {"a.weight": weight, "norm.weight": torch.ones(64)}
    masks = {"a.weight": keep} if sparse else {}
    quantized, expected = {}, weight
    if bits != 32:
        group = 64 if bits == 8 else 32
        qmax = 127 if bits == 8 else 7
        scale = weight.reshape(8, -1, group).abs().amax(-1) / qmax  # (8, groups)
        q = torch.round(weight / scale.repeat_interleave(group, 1)).clamp(-qmax, qmax)
        quantized = {"a.weight": (q.to(torch.int8), scale, bits)}
        expected = q * scale.repeat_interleave(group, 1)
    path = tmp_path / "model.safetensors"
    written = save_compact(path, state, masks=masks, quantized=quantized)
    assert written == path.stat().st_size
    loaded, loaded_masks, metadata = load_compact(path)
    assert metadata["format"] == "cram-compact/1"
    assert torch.allclose(loaded["a.weight"], expected, atol=1e-6)
    assert torch.equal(loaded["norm.weight"], state["norm.weight"])
    assert set(loaded_masks) == set(masks) and all(
        torch.equal(loaded_masks[k], masks[k]) for k in masks)
    stats = stored_stats(path)
    pruned = int((~keep).sum()) if sparse else 0
    assert stats == {"stored_bytes": written, "params": 8 * 64 + 64,
                     "kept_params": 8 * 64 + 64 - pruned, "prunable_params": 512 if sparse else 0,
                     "sparsity": pruned / 512 if sparse else 0.0, "bits": bits}


def test_sparse_and_quantized_storage_is_smaller(tmp_path):
    weight, keep = _layer(64, 256)
    sizes = {}
    for name, masks in (("dense", {}), ("sparse", {"w": keep})):
        sizes[name] = save_compact(tmp_path / f"{name}.safetensors", {"w": weight}, masks=masks)
    # 40% kept: fp32 values of the kept entries and a 1-bit mask, against 4 bytes per entry.
    assert sizes["sparse"] < 0.45 * sizes["dense"]


@pytest.mark.subprocess
def test_stored_stats_needs_no_torch(tmp_path):
    weight, keep = _layer()
    path = tmp_path / "m.safetensors"
    save_compact(path, {"w": weight}, masks={"w": keep})
    code = ("import json, sys\nfrom cramming.compress import stored_stats\n"
            f"stats = stored_stats({str(path)!r})\n"
            "print(json.dumps([stats, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    stats, torch_loaded = json.loads(done.stdout)
    assert stats == stored_stats(path) and not torch_loaded
