"""Slicing a teacher: the weights a candidate starts from are exactly the teacher's slices,
and the teacher's own shape is the teacher."""

import math

import pytest
import torch

from crambench.errors import UserError
from cramming.config import ModelConfig
from cramming.extract.slicing import (
    FRESH,
    check_sliceable,
    evenly_spaced_layers,
    extract_model,
    select,
)
from cramming.extract.space import Shape, teacher_shape
from cramming.model import CrammedBert

# With the MLM head transform and decoder bias (bert-original's head), so their slices are
# checked too; the reference's head has neither (test_the_reference_head_...).
CFG = ModelConfig(vocab_size=97, seq_len=16, hidden=32, layers=4, heads=4, ffn_hidden=64,
                  head_transform=True, decoder_bias=True)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    model = CrammedBert(CFG).eval()
    with torch.no_grad():  # trained-looking weights: units of clearly different magnitude
        for p in model.parameters():
            p.mul_(torch.rand_like(p) * 3)
    return model


@pytest.fixture(scope="module")
def ids():
    generator = torch.Generator().manual_seed(1)
    return torch.randint(5, CFG.vocab_size, (3, CFG.seq_len), generator=generator)


def test_the_teachers_full_shape_reproduces_the_teacher_exactly(teacher, ids):
    student, selection = extract_model(teacher, teacher_shape(CFG))
    assert selection.layers == [0, 1, 2, 3]
    for (name, a), (other, b) in zip(teacher.state_dict().items(), student.state_dict().items(),
                                     strict=True):
        assert name == other and torch.equal(a, b), name
    labels = torch.where(torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) < 0.3,
                         ids, -100)
    with torch.no_grad():
        assert torch.equal(teacher(ids)[1], student.eval()(ids)[1])
        t_loss, t_logits = teacher(ids, labels)
        s_loss, s_logits = student(ids, labels)
    assert torch.equal(t_logits, s_logits) and torch.equal(t_loss, s_loss)


def test_evenly_spaced_layers():
    assert evenly_spaced_layers(16, 4) == [0, 5, 10, 15]
    assert evenly_spaced_layers(4, 2) == [0, 3]
    assert evenly_spaced_layers(4, 1) == [3]
    assert evenly_spaced_layers(4, 4) == [0, 1, 2, 3]


def test_sliced_weights_are_the_teachers_slices(teacher):
    shape = Shape(layers=2, heads=2, hidden=16, ffn=32)  # head size 8 of the teacher's 8
    student, sel = extract_model(teacher, shape)
    t, s = teacher.state_dict(), student.state_dict()
    h = sel.hidden
    assert len(h) == 16 and torch.equal(h, torch.sort(h).values)
    assert torch.equal(s["encoder.embedding.word.weight"], t["encoder.embedding.word.weight"][:, h])
    assert torch.equal(s["mlm_head.dense.weight"], t["mlm_head.dense.weight"][h][:, h])
    assert torch.equal(s["mlm_head.bias"], t["mlm_head.bias"])
    assert torch.equal(s["encoder.final_norm.weight"], t["encoder.final_norm.weight"][h])
    for i, layer in enumerate(sel.layers):  # layers 0 and 3
        src, dst = f"encoder.blocks.{layer}.", f"encoder.blocks.{i}."
        assert torch.equal(s[dst + "norm2.bias"], t[src + "norm2.bias"][h])
        qkv_t, qkv_s = t[src + "attn.qkv.weight"], s[dst + "attn.qkv.weight"]
        qk, v = sel.qk[i], sel.v[i]
        assert (qk != FRESH).all() and sel.query_scale == 1.0
        assert torch.equal(qkv_s[:16], qkv_t[:32][qk][:, h])           # queries
        assert torch.equal(qkv_s[16:32], qkv_t[32:64][qk][:, h])       # keys
        assert torch.equal(qkv_s[32:], qkv_t[64:][v][:, h])            # values
        assert torch.equal(s[dst + "attn.out.weight"], t[src + "attn.out.weight"][h][:, v])
        # Whole heads: each student head is one teacher head's 8 dimensions, in order.
        heads = (qk // 8).view(2, 8)
        assert (heads == heads[:, :1]).all() and torch.equal(qk % 8, torch.arange(16) % 8)
        # GLU: value and gate rows of the same units, and the matching out columns.
        units = sel.ffn[i]
        up_t, up_s = t[src + "ffn.up.weight"], s[dst + "ffn.up.weight"]
        assert torch.equal(up_s[:16], up_t[:32][units][:, h])
        assert torch.equal(up_s[16:], up_t[32:][units][:, h])
        assert torch.equal(s[dst + "ffn.down.weight"], t[src + "ffn.down.weight"][h][:, units])


def test_kept_units_are_the_strongest(teacher):
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    state["encoder.blocks.3.ffn.down.weight"][:, 5] = 0.0  # unit 5 of the last layer: dead
    state["encoder.blocks.3.ffn.up.weight"][[5, 37]] = 0.0
    state["encoder.blocks.3.attn.out.weight"][:, 16:24] *= 100  # head 2 of the last layer
    sel = select(CFG, state, Shape(layers=1, heads=1, hidden=8, ffn=62))  # one head of 8
    assert sel.layers == [3]
    assert 5 not in sel.ffn[0].tolist() and len(sel.ffn[0]) == 31
    assert torch.equal(sel.v[0] // 8, torch.full((8,), 2))


def test_smaller_heads_keep_each_heads_attention_scale(teacher):
    # Head size 4 of the teacher's 8: the student's q.k / sqrt(4) over the kept dimensions
    # equals the teacher's q.k / sqrt(8) over the same dimensions.
    student, sel = extract_model(teacher, Shape(layers=4, heads=4, hidden=16, ffn=64))
    assert sel.query_scale == pytest.approx(math.sqrt(4 / 8))
    x = torch.randn(5, 16)
    q_s, k_s = student.state_dict()["encoder.blocks.0.attn.qkv.weight"][:32].chunk(2)
    q_t, k_t = teacher.state_dict()["encoder.blocks.0.attn.qkv.weight"][:64].chunk(2)
    full_x = torch.zeros(5, 32)
    full_x[:, sel.hidden] = x
    head = slice(0, 4)
    student_logits = (x @ q_s[head].T) @ (x @ k_s[head].T).T / math.sqrt(4)
    dims = sel.qk[0][head]
    teacher_logits = (full_x @ q_t[dims].T) @ (full_x @ k_t[dims].T).T / math.sqrt(8)
    torch.testing.assert_close(student_logits, teacher_logits)


def test_wider_heads_merge_teacher_heads_and_fill_the_rest_fresh(teacher):
    # 3 heads of size 8 from 4 of size 8 keeps head size; 1 head of 24 merges 3 teacher heads.
    student, sel = extract_model(teacher, Shape(layers=1, heads=1, hidden=24, ffn=64))
    assert (sel.qk[0] != FRESH).all() and len(set((sel.qk[0] // 8).tolist())) == 3
    assert sel.query_scale == pytest.approx(math.sqrt(24 / 8))
    # 2 heads of size 16 need 4 teacher heads: all are used, none left to spare.
    _, sel = extract_model(teacher, Shape(layers=1, heads=2, hidden=32, ffn=64))
    assert sorted(sel.qk[0].tolist()) == list(range(32))
    # Of a 2-layer, 2-head teacher (head size 16), one head of 32 takes both, 1 of 24 a part.
    small = CrammedBert(ModelConfig(vocab_size=97, seq_len=16, hidden=32, layers=2, heads=2,
                                    ffn_hidden=64))
    student, sel = extract_model(small, Shape(layers=2, heads=1, hidden=32, ffn=64))
    assert (sel.qk[0] != FRESH).all()
    with torch.no_grad():
        assert torch.isfinite(student(torch.randint(5, 97, (2, 16)))[1]).all()


def test_fresh_dimensions_when_too_few_teacher_heads():
    # Merged heads whose group holds fewer teacher dimensions than the student head has
    # start those from the student's random init.
    small = CrammedBert(ModelConfig(vocab_size=97, seq_len=16, hidden=48, layers=1, heads=3,
                                    ffn_hidden=64))
    student, sel = extract_model(small, Shape(layers=1, heads=2, hidden=48, ffn=64))
    # Head size 24 from size 16: groups of ceil(24/16) = 2 heads, 3 heads for 2 groups.
    fresh = (sel.qk[0] == FRESH).sum().item()
    assert fresh == 24 - 16  # the second group holds one teacher head of 16
    assert torch.isfinite(student.state_dict()["encoder.blocks.0.attn.qkv.weight"]).all()


@pytest.mark.parametrize("components", [
    {},  # the reference: no head transform, no decoder bias
    {"norm": "rmsnorm", "pos_embedding": "rotary", "final_norm": False},
    {"norm_scheme": "post", "pos_embedding": "none", "embedding_norm": False},
])
def test_other_components_slice_to_an_exact_copy_at_full_shape(components, ids):
    import dataclasses

    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, head_transform=False, decoder_bias=False, **components)
    teacher = CrammedBert(cfg).eval()
    student, _ = extract_model(teacher, teacher_shape(cfg))
    assert student.state_dict().keys() == teacher.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(teacher(ids)[1], student.eval()(ids)[1])
    smaller, _ = extract_model(teacher, Shape(layers=2, heads=2, hidden=16, ffn=32))
    with torch.no_grad():
        assert torch.isfinite(smaller(ids)[1]).all()


@pytest.mark.parametrize(("field", "value"), [("ffn", "mlp"), ("linear_bias", True),
                                              ("qkv_bias", True), ("tie_weights", False),
                                              ("pos_embedding", "learned")])
def test_components_the_slices_do_not_know_are_refused_by_name(field, value):
    import dataclasses

    cfg = dataclasses.replace(CFG, **{field: value})
    with pytest.raises(UserError, match=rf"^run/final/model_config.json: model\.{field}="
                                        rf"{str(value).lower()}: extract slices models with"):
        check_sliceable(cfg, where="run/final/model_config.json: ")
