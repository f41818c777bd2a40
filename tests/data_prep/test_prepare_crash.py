"""`cram prepare --force` killed (SIGKILL, no cleanup) at many points, including between the
two renames of its swap: the data dir is always there, complete and verified, and the next
`prepare` into it leaves no leftovers."""

import shutil

import pytest
from conftest import cram_killed_at

from data_prep import open_data_dir, prepare

KILL_POINTS = [
    ("tokenizer.json:1", "building the new dir: before its tokenizer"),
    ("manifest.json:1", "building the new dir: before its manifest"),
    (".data.old:1", "the new dir complete, before the swap"),
    ("data:1", "inside the swap: the old dir moved aside, the new one not yet in place"),
    ("*.partial:1", "after the swap, before the old dir is removed"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kill", "moment"), KILL_POINTS, ids=[k for k, _ in KILL_POINTS])
def test_a_killed_prepare_force_leaves_an_intact_data_dir(kill, moment, pretrain_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pretrain_data, data)
    original = open_data_dir(data).data_sha256
    corpus = pretrain_data.parent / "corpus.txt"
    settings = ["--vocab-size", "256", "--seq-len", "32", "--val-fraction", "0.1"]
    killed = cram_killed_at(kill, ["prepare", "--source", str(corpus), "--out", str(data),
                                   *settings, "--force", "--quiet"])
    assert killed.returncode == -9, f"{moment}: the kill point was not reached\n{killed.stderr}"

    reopened = open_data_dir(data, verify_hashes=True)  # puts a cut-short swap back first
    assert reopened.data_sha256 == original, moment
    prepare([str(corpus)], data, vocab_size=256, seq_len=32, val_fraction=0.1, force=True,
            quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == ["data"], moment  # no leftovers, no lock
