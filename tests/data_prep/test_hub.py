"""The `hf:` source. The Hub is out of reach in tests, so the stream is a local file opened by
`datasets` in streaming mode, exactly as a Hub dataset would be; everything after it is real."""

from __future__ import annotations

import json
from pydoc_data.topics import topics

import pytest

from crambench.errors import UserError
from data_prep import prepare
from data_prep.hub import HubSource

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    import datasets

    rows = tmp_path / "rows.jsonl"
    texts = [topics[key] for key in sorted(topics)]
    rows.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))

    def open_local(self):
        return datasets.load_dataset("json", data_files=str(rows), split="train", streaming=True)

    monkeypatch.setattr(HubSource, "_open", open_local)
    monkeypatch.setattr(HubSource, "revision", lambda self: REVISION)
    return texts


def test_hub_stream_is_re_iterable_and_recorded(local_hub, tmp_path):
    manifest = prepare(["hf:someone/topics:default:train"], tmp_path / "out", vocab_size=2000,
                       val_fraction=0.1, quiet=True)
    [record] = manifest["sources"]
    assert record == {"name": "hf:someone/topics:default:train", "kind": "hub",
                      "dataset": "someone/topics", "config": "default", "split": "train",
                      "bytes": sum(len(t.encode()) for t in local_hub), "revision": REVISION}
    assert manifest["pipeline"]["counts"]["documents_read"] == len(local_hub)
    assert manifest["num_sequences"]["train"] > 100


def test_rows_without_text_are_a_user_error(tmp_path, monkeypatch):
    import datasets

    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"body": "no text field"}) + "\n")
    monkeypatch.setattr(HubSource, "_open", lambda self: datasets.load_dataset(
        "json", data_files=str(rows), split="train", streaming=True))
    with pytest.raises(UserError, match="row 0 has no string field 'text'"):
        list(HubSource.from_spec("hf:someone/other").documents())


def test_unreachable_hub_is_one_plain_user_error(monkeypatch):
    import huggingface_hub

    def offline(self, name, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", offline)
    with pytest.raises(UserError) as err:
        list(HubSource.from_spec("hf:someone/topics").documents())
    assert str(err.value) == ("cannot resolve Hub dataset hf:someone/topics:train: "
                              "Name or service not known")
