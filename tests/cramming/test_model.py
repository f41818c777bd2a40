"""The crammed BERT: shapes, sparse prediction, padding masks, save/load round trips, and
the training step's parameter groups and gradient accumulation."""

import pytest
import torch

from crambench.errors import UserError
from cramming.config import ModelConfig, load_config
from cramming.model import (
    IGNORE_INDEX,
    CrammedBert,
    CrammedBertForSequenceClassification,
    count_parameters,
)
from cramming.train.checkpoint import load_checkpoint, save_checkpoint
from cramming.train.objective import pad_rows
from cramming.weights import load_classifier, load_pretrained, save_pretrained

CFG = ModelConfig(vocab_size=512, seq_len=32, hidden=64, layers=2, heads=4, ffn_hidden=256,
                  head_hidden=48)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CFG.vocab_size, (b, CFG.seq_len), generator=g)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 1::4] = ids[:, 1::4]
    return ids, labels


def test_loss_at_init_is_near_uniform_and_shapes():
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    ids, labels = _batch()
    loss, logits = model(ids, labels)
    assert logits.shape == (int((labels != IGNORE_INDEX).sum()), CFG.vocab_size)
    assert abs(loss.item() - torch.log(torch.tensor(CFG.vocab_size)).item()) < 0.5
    assert model.encode(ids).shape == (3, CFG.seq_len, CFG.hidden)
    none_loss, all_logits = model(ids)
    assert none_loss is None and all_logits.shape == (3, CFG.seq_len, CFG.vocab_size)


def test_decoder_only_sees_masked_rows():
    model = CrammedBert(CFG)
    seen = []
    model.mlm_head.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape))
    ids, labels = _batch()
    model(ids, labels)
    assert seen == [(int((labels != IGNORE_INDEX).sum()), CFG.hidden)]


def test_sparse_loss_equals_dense_loss_on_masked_positions():
    model = CrammedBert(CFG).eval()
    ids, labels = _batch()
    loss, _ = model(ids, labels)
    _, dense = model(ids)
    expected = torch.nn.functional.cross_entropy(dense.reshape(-1, CFG.vocab_size),
                                                 labels.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_reference_architecture_has_no_biases_in_attention_and_ffn():
    model = CrammedBert(load_config("crammed-bert").model)
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if (".attn." in n or ".ffn." in n) and n.endswith("bias")]
    assert model.encoder.blocks[0].ffn.down.in_features == 1536  # GLU: half of 3072 goes out
    assert len(model.encoder.blocks) == 16
    assert 100e6 < count_parameters(model) < 140e6  # cramming paper: ~120M with vocab 32768


def test_padding_does_not_change_real_tokens():
    model = CrammedBertForSequenceClassification(CFG, num_labels=2).eval()
    ids, _ = _batch(b=1)
    short = ids[:, :20]
    padded = torch.cat([short, torch.zeros(1, 12, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 12)], dim=1).long()
    assert torch.allclose(model(short, torch.ones_like(short)), model(padded, mask), atol=1e-5)


def test_pretrained_round_trip_gives_identical_logits(tmp_path):
    model = CrammedBert(CFG).eval()
    save_pretrained(model, tmp_path)
    cfg, state = load_pretrained(tmp_path)
    assert cfg == CFG
    again = CrammedBert(cfg).eval()
    again.load_state_dict(state)
    ids, labels = _batch()
    assert torch.equal(model(ids, labels)[1], again(ids, labels)[1])


def test_classifier_from_pretrained_uses_the_encoder(tmp_path):
    model = CrammedBert(CFG).eval()
    save_pretrained(model, tmp_path)
    clf = load_classifier(tmp_path, num_labels=3).eval()
    ids, _ = _batch()
    assert torch.equal(clf.encoder(ids), model.encode(ids))
    assert clf(ids, torch.ones_like(ids)).shape == (3, 3)
    assert clf.head.dense.out_features == CFG.head_hidden
    regression = load_classifier(tmp_path, num_labels=1)
    assert regression(ids, torch.ones_like(ids)).shape == (3, 1)


def test_dropout_only_in_fine_tuning_and_only_in_train_mode(tmp_path):
    pretrain = CrammedBert(CFG).train()
    assert not any(isinstance(m, torch.nn.Dropout) for m in pretrain.modules())
    assert all(block.attn.dropout == 0.0 for block in pretrain.encoder.blocks)
    ids, _ = _batch()
    assert torch.equal(pretrain.encode(ids), pretrain.encode(ids))  # deterministic in train mode

    save_pretrained(pretrain, tmp_path)
    clf = load_classifier(tmp_path, num_labels=2, dropout=0.1)
    # embedding + one per block on the residual branches + the head's
    assert sum(isinstance(m, torch.nn.Dropout) for m in clf.modules()) == CFG.layers + 2
    assert all(block.attn.dropout == 0.1 for block in clf.encoder.blocks)
    mask = torch.ones_like(ids)
    clf.train()
    assert not torch.equal(clf.encoder(ids, mask), clf.encoder(ids, mask))
    clf.eval()
    assert torch.equal(clf.encoder(ids, mask), pretrain.eval().encode(ids, mask))


def test_from_pretrained_fails_clearly(tmp_path):
    with pytest.raises(UserError, match="model.safetensors is missing"):
        load_classifier(tmp_path, num_labels=2)


TRAIN_STATE = {"step": 1, "elapsed_s": 2.5, "tokens": 96, "rows": 3, "nonfinite_skips": 0,
               "train_loss": 5.5, "stopped_by": None, "config_sha256": "c" * 64,
               "data_sha256": "d" * 64, "started_utc": "2026-01-01T00:00:00+00:00",
               "preset": "tiny"}


def test_checkpoint_round_trip_gives_identical_logits_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = CrammedBert(CFG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ids, labels = _batch()
    model(ids, labels)[0].backward()
    optimizer.step()
    save_checkpoint(tmp_path, model=model, optimizer=optimizer, scaler=scaler,
                    train_state=TRAIN_STATE)
    other = CrammedBert(CFG)
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path, model=other, optimizer=other_opt, scaler=scaler)
    assert state["step"] == 1 and state["elapsed_s"] == 2.5
    model.eval(), other.eval()
    assert torch.equal(model(ids, labels)[1], other(ids, labels)[1])
    # the next optimizer step is identical too: Adam moments came back
    for m, opt in ((model, optimizer), (other, other_opt)):
        m.train()
        opt.zero_grad()
        m(ids, labels)[0].backward()
        opt.step()
    assert torch.equal(model(ids, labels)[1], other(ids, labels)[1])


def test_damaged_checkpoint_is_a_one_line_user_error(tmp_path):
    model = CrammedBert(CFG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_checkpoint(tmp_path, model=model, optimizer=optimizer, scaler=scaler,
                    train_state=TRAIN_STATE)
    folder = tmp_path / "checkpoint"
    for name, key in (("state.pt", "state_sha256"), ("model.safetensors", "model_sha256")):
        message = rf"{name} is damaged \(7 B\): its sha256 does not match {key}"
        intact = (folder / name).read_bytes()
        (folder / name).write_bytes(b"garbage")
        with pytest.raises(UserError, match=message) as err:
            load_checkpoint(tmp_path, model=model, optimizer=optimizer, scaler=scaler)
        assert "\n" not in str(err.value)
        (folder / name).write_bytes(intact)
    (folder / "train_state.json").write_text('{"format": "cram-checkpoint/2", "step": 3}')
    with pytest.raises(UserError, match="train_state.json is damaged: tokens is missing"):
        load_checkpoint(tmp_path, model=model, optimizer=optimizer, scaler=scaler)
    (folder / "train_state.json").write_text('{"format": "cram-checkpoint/1", "step": 3}')
    with pytest.raises(UserError, match="format 'cram-checkpoint/1', expected 'cram-checkpoi"):
        load_checkpoint(tmp_path, model=model, optimizer=optimizer, scaler=scaler)


def _loss_and_grads(model, ids, labels, **kwargs):
    model.zero_grad()
    loss, _ = model(ids, labels, **kwargs)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def test_padding_a_micro_batch_changes_nothing():
    model = CrammedBert(CFG)
    ids, labels = _batch(b=5)
    loss, grads = _loss_and_grads(model, ids, labels)
    padded_loss, padded_grads = _loss_and_grads(model, *pad_rows(ids, labels, 8))
    assert padded_loss == pytest.approx(loss, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, padded_grads, strict=True))


@pytest.mark.slow
def test_compiled_model_matches_the_plain_one():
    """As the trainer compiles it: the whole model, padded micro-batch, fixed MLM head rows."""
    from cramming.train.objective import sparse_rows

    torch.manual_seed(0)
    plain = CrammedBert(CFG)
    compiled = CrammedBert(CFG)
    compiled.load_state_dict(plain.state_dict())
    compiled.compile(dynamic=False)
    ids, labels = _batch(b=6)
    loss, grads = _loss_and_grads(plain, ids, labels)
    compiled_loss, compiled_grads = _loss_and_grads(compiled, *pad_rows(ids, labels, 8),
                                                    rows=sparse_rows(8 * CFG.seq_len, 0.25))
    assert compiled_loss == pytest.approx(loss, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, compiled_grads, strict=True))
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints stay portable


def test_weight_decay_skips_norms_biases_and_embeddings():
    from cramming.train.optimizers import build_optimizer

    cfg = load_config("tiny")
    model = CrammedBert(CFG)
    decay, no_decay = build_optimizer(model, cfg.optim, torch.device("cpu")).param_groups
    assert decay["weight_decay"] == cfg.optim.weight_decay and no_decay["weight_decay"] == 0.0
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    assert {id(p) for p in decay["params"]} == linear_weights
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert id(model.encoder.embedding.word.weight) in no_decay_ids
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            assert {id(module.weight), id(module.bias)} <= no_decay_ids


def test_micro_batches_accumulate_to_the_full_batch_gradient():
    from cramming.train.pretrain import micro_step

    torch.manual_seed(0)
    model = CrammedBert(CFG)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    ids, labels = _batch(b=6)
    labels[0, 1::8] = IGNORE_INDEX  # rows with different numbers of masked tokens
    total = int((labels != IGNORE_INDEX).sum())
    grads = []
    for size in (6, 2, 4):
        model.zero_grad()
        loss = float(sum(micro_step(model, ids[i:i + size], labels[i:i + size], total, scaler,
                                    "fp32") for i in range(0, 6, size)))
        grads.append((loss, [p.grad.clone() for p in model.parameters()]))
    for loss, g in grads[1:]:
        assert loss == pytest.approx(grads[0][0], rel=1e-5)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g, grads[0][1], strict=True))
