"""`cram prepare --verify`: every manifest claim checked, each failure one line naming the file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from data_prep import prepare
from data_prep.shards import data_sha256
from data_prep.verify import verify_data_dir


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("topics")
    for key in sorted(topics)[:80]:
        (corpus / f"{key}.txt").write_text(topics[key])
    out = tmp_path_factory.mktemp("data") / "data"
    prepare([str(corpus)], out, vocab_size=600, val_fraction=0.1, quiet=True)
    return out


@pytest.fixture
def copy(data_path, tmp_path) -> Path:
    return Path(shutil.copytree(data_path, tmp_path / "data"))


def edit_manifest(root: Path, change) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def write_ids(root: Path, row: int, col: int, token: int) -> None:
    """Put `token` into the first train shard and make every hash agree again: only the
    ids are wrong."""
    def change(manifest):
        shard = next(s for s in manifest["shards"] if s["split"] == "train")
        file = root / shard["file"]
        rows = np.fromfile(file, dtype="<u2").reshape(-1, manifest["seq_len"])
        rows[row, col] = token
        file.write_bytes(rows.tobytes())
        shard["sha256"] = hashlib.sha256(rows.tobytes()).hexdigest()
        manifest["data_sha256"] = data_sha256(manifest["shards"])
    edit_manifest(root, change)


def test_a_good_dir_verifies_and_says_what_it_checked(data_path, capsys):
    found = verify_data_dir(data_path)
    assert found["tokenizer_size"] == 600 and 5 <= found["max_token_id"] < 600
    assert main(["prepare", "--verify", str(data_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {data_path}: cram-data/1") and "tokenizer agrees" in out


def test_vocab_size_that_disagrees_with_the_tokenizer(copy, capsys):
    """Issue example: --verify said OK when the manifest's vocab_size disagreed."""
    edit_manifest(copy, lambda m: m.update(vocab_size=8192))
    assert main(["prepare", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err == (f"cram prepare: error: {copy / 'manifest.json'}: vocab_size 8192 disagrees "
                   f"with {copy / 'tokenizer.json'} (600 tokens)\n")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda root: write_ids(root, 3, 7, 600),
     r"train-00000\.bin: token id 600 is out of range for vocab_size 600"),
    (lambda root: write_ids(root, 2, 5, 0), r"train-00000\.bin: row 2 holds the \[PAD\] id 0"),
    (lambda root: write_ids(root, 4, 1, 4), r"row 4 holds the \[MASK\] id 4"),
    (lambda root: edit_manifest(root, lambda m: m.update(num_tokens=m["num_tokens"] + 128)),
     r"manifest\.json is corrupt: num_tokens \d+ disagrees with its \d+ rows of 128"),
    (lambda root: edit_manifest(root, lambda m: m["pipeline"]["counts"].update(tokens_packed=7)),
     r"manifest\.json: pipeline tokens_packed 7 disagrees with num_tokens"),
    (lambda root: edit_manifest(root, lambda m: m.update(tokenizer_sha256="0" * 64)),
     r"tokenizer\.json does not match the .*tokenizer_sha256"),
    (lambda root: edit_manifest(root, lambda m: m.update(data_sha256="0" * 64)),
     r"manifest\.json: data_sha256 does not match its shard hashes"),
    (lambda root: edit_manifest(root, lambda m: m["shards"][0].update(file="../../etc/x.bin")),
     r"manifest\.json is corrupt: bad shard entry"),
    (lambda root: edit_manifest(root, lambda m: m["special_ids"].update(mask=5)),
     r"special token ids .* differ"),
])
def test_each_claim_that_disagrees_is_named(copy, damage, message):
    damage(copy)
    with pytest.raises(UserError, match=message):
        verify_data_dir(copy)


def test_a_tokenizer_with_other_special_ids_is_named(copy):
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["[MASK]"], vocab["[SEP]"] = vocab["[SEP]"], vocab["[MASK]"]
    for token in tokenizer["added_tokens"]:
        token["id"] = vocab[token["content"]]
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    # Re-hashed in the manifest, so the data dir opens and the ids themselves are checked.
    digest = sha256_file(copy / "tokenizer.json")
    edit_manifest(copy, lambda m: m.update(tokenizer_sha256=digest))
    with pytest.raises(UserError, match=r"tokenizer\.json: special token \[SEP\] has id 4"):
        verify_data_dir(copy)
