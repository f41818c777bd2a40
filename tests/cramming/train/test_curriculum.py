"""Pretraining on a curriculum data dir (`cram prepare --order sentence-length`): the train
rows go in their stored order, not shuffled by the seed, and a resumed run reads on from the
row where the interrupted one stopped."""

import os
import signal

import numpy as np
import pytest
import torch
from conftest import TickingClock, make_grammar_data

from cramming.train import pretrain as pretrain_module
from cramming.train.pretrain import pretrain
from cramming.train.rows import RowStream
from data_prep import open_data_dir

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory):
    return make_grammar_data(tmp_path_factory.mktemp("curriculum"), seq_len=32,
                             val_fraction=0.1, order="sentence-length")


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_pretraining_keeps_the_stored_order_and_resumes_at_its_row(curriculum, tmp_path,
                                                                    monkeypatch):
    data = open_data_dir(curriculum)
    assert data.curriculum
    stored = data.get_rows("train", np.arange(data.num_rows("train")))
    consumed = []

    class Recording(RowStream):
        def consume(self, size):
            consumed.append(self.peek(size)[0].copy())
            super().consume(size)

    real, calls = pretrain_module.micro_step, {"n": 0}

    def micro_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "RowStream", Recording)
    overrides = [f"model.vocab_size={data.vocab_size}", "model.seq_len=32", "impl.threads=1",
                 "seed=3"]
    with monkeypatch.context() as patch:
        patch.setattr(pretrain_module, "micro_step", micro_step)
        summary = pretrain(curriculum, tmp_path / "run", budget_s=6, preset="tiny",
                           overrides=overrides, quiet=True, clock=TickingClock(0.05))
    assert summary["stopped_by"] == "interrupt"
    first = np.concatenate(consumed)
    np.testing.assert_array_equal(first, stored[np.arange(len(first)) % len(stored)])

    consumed.clear()
    summary = pretrain(resume=tmp_path / "run", quiet=True, clock=TickingClock(0.05))
    assert summary["stopped_by"] == "budget"
    rest = np.concatenate(consumed)
    positions = len(first) + np.arange(len(rest))
    np.testing.assert_array_equal(rest, stored[positions % len(stored)])
