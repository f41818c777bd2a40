"""The GPUs `cram plan` knows without measuring: spec-sheet figures and derived speed constants.

No GPU was available where these constants were made, so none of them is measured. Each GPU's
speed law is the published V100 fit of the "How big should my language model be?" calculator
(Le Scao, Hugging Face, 2020: k = 2.21e7, a = 1.66, b = 5.92, c = 1.33), with `k` scaled by the
ratio of dense 16-bit tensor-core peak FLOP/s (the matmuls that dominate a step run there). The
other constants keep the V100's values: they describe how utilization grows with width, depth
and batch, which we cannot derive from a spec sheet. `cram plan --measure` on the GPU itself
replaces all four with a fit to timings of the real model.

Memory bandwidth is recorded beside each spec but not used in the scaling: LayerNorm, GELU and
softmax are bandwidth-bound, so a card whose bandwidth ratio is below its FLOP/s ratio (the A6000
has 1.24x a V100's tensor FLOP/s but 0.85x its bandwidth) will run somewhat slower than derived.
"""

from __future__ import annotations

from dataclasses import dataclass

from cramming.plan.speed_law import SpeedLaw

GIB = 1024**3


@dataclass(frozen=True)
class GpuSpec:
    key: str  # name on the command line (`--gpu a6000`)
    name: str  # marketing name, as torch.cuda.get_device_name reports it
    memory_gib: float  # device memory (nvidia-smi reports e.g. 49140 MiB for the A6000)
    tensor_tflops: float  # dense FP16/BF16 tensor-core peak with FP32 accumulate, TFLOP/s
    bandwidth_gbs: float  # peak memory bandwidth, GB/s
    precision: str  # mixed precision the card trains in: bf16 (Ampere) or fp16 (Turing)
    source: str  # where the figures come from


# The reference the published speed law was fitted on (V100 SXM2; the PCIe card peaks at 112).
V100 = GpuSpec(
    key="v100",
    name="Tesla V100-SXM2",
    memory_gib=16,
    tensor_tflops=125.0,
    bandwidth_gbs=900.0,
    precision="fp16",
    source="NVIDIA Tesla V100 datasheet (SXM2): 125 TFLOPS tensor, 900 GB/s, 16/32 GB HBM2",
)

GPUS: dict[str, GpuSpec] = {
    spec.key: spec
    for spec in (
        GpuSpec(
            key="rtx2080ti",
            name="NVIDIA GeForce RTX 2080 Ti",
            memory_gib=11,
            # Turing whitepaper, reference clocks: 107.6 TFLOPS FP16 tensor with FP16
            # accumulate but 53.8 with FP32 accumulate (GeForce runs that at half rate;
            # Founders Edition clocks: 113.8 / 56.9). Mixed-precision training accumulates in
            # FP32, so 53.8 is the figure that bounds it. No bf16 on Turing: fp16 + scaler.
            tensor_tflops=53.8,
            bandwidth_gbs=616.0,
            precision="fp16",
            source="NVIDIA Turing GPU architecture whitepaper (2018), RTX 2080 Ti reference: "
            "53.8 TFLOPS FP16 tensor w/ FP32 accumulate (107.6 w/ FP16), 616 GB/s, 11 GB GDDR6",
        ),
        GpuSpec(
            key="a4000",
            name="NVIDIA RTX A4000",
            memory_gib=16,
            # Datasheet: 153.4 TFLOPS tensor is with structured sparsity; dense is half.
            tensor_tflops=76.7,
            bandwidth_gbs=448.0,
            precision="bf16",
            source="NVIDIA RTX A4000 datasheet: 153.4 TFLOPS tensor (sparse; 76.7 dense), "
            "448 GB/s, 16 GB GDDR6",
        ),
        GpuSpec(
            key="a6000",
            name="NVIDIA RTX A6000",
            memory_gib=48,
            # Datasheet: 309.7 TFLOPS tensor is with structured sparsity; dense is 154.8.
            tensor_tflops=154.8,
            bandwidth_gbs=768.0,
            precision="bf16",
            source="NVIDIA RTX A6000 datasheet: 309.7 TFLOPS tensor (sparse; 154.8 dense "
            "FP16/BF16), 768 GB/s, 48 GB GDDR6",
        ),
    )
}

# Published fit (calculator, V100); provenance travels with every law derived from it.
V100_LAW = SpeedLaw(
    k=2.21e7,
    a=1.66,
    b=5.92,
    c=1.33,
    provenance={
        "kind": "published",
        "device": V100.name,
        "source": "How big should my language model be? (Le Scao, Hugging Face, 2020): "
        "speed fitted on a V100 as k * width^a * depth/(depth+b) * log(batch)^c",
    },
)


def derived_law(spec: GpuSpec) -> SpeedLaw:
    """The V100 law with `k` scaled by this GPU's tensor FLOP/s over the V100's."""
    ratio = spec.tensor_tflops / V100.tensor_tflops
    return SpeedLaw(
        k=V100_LAW.k * ratio,
        a=V100_LAW.a,
        b=V100_LAW.b,
        c=V100_LAW.c,
        provenance={
            "kind": "derived",
            "device": spec.name,
            "method": "published V100 fit, k scaled by the ratio of dense 16-bit tensor peak "
            f"FLOP/s ({spec.tensor_tflops} / {V100.tensor_tflops} = {ratio:.3f}); a, b, c "
            "kept; not measured on this GPU",
            "reference": V100_LAW.provenance["source"],
            "spec_source": spec.source,
            "reference_spec_source": V100.source,
            "bandwidth_ratio": round(spec.bandwidth_gbs / V100.bandwidth_gbs, 3),
        },
    )


def find_gpu(name: str) -> GpuSpec | None:
    """A spec by key (`a6000`) or by a name as torch reports it (`NVIDIA GeForce RTX 2080 Ti`)."""
    folded = _fold(name)
    for spec in GPUS.values():
        if folded in (_fold(spec.key), _fold(spec.name)):
            return spec
    return None


def _fold(name: str) -> str:
    text = name.lower().replace(" ", "").replace("-", "")
    for prefix in ("nvidia", "geforce", "rtx"):
        text = text.removeprefix(prefix)
    return text
