"""data_prep.files: the JSON contract readers every stage shares."""

import json

import pytest

from data_prep import UserError
from data_prep.files import read_contract, read_json_object


def test_contract_file_round_trip_and_each_bad_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "cram-run/1", "steps": 3}))
    assert read_contract(good, "cram-run/1") == {"format": "cram-run/1", "steps": 3}

    with pytest.raises(UserError, match=r"has format 'cram-run/1', expected 'cram-run/2'"):
        read_contract(good, "cram-run/2")
    with pytest.raises(UserError, match=r"cannot read .*missing\.json: No such file"):
        read_json_object(tmp_path / "missing.json")
    (tmp_path / "cut.json").write_text('{"format": "cram-run/1", "ste')
    with pytest.raises(UserError, match=r"cut\.json: not valid JSON"):
        read_json_object(tmp_path / "cut.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(UserError, match=r"binary\.json: not UTF-8 text"):
        read_json_object(tmp_path / "binary.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"holds a JSON list, not an object"):
        read_contract(tmp_path / "list.json", "cram-run/1")


def test_atomic_dir_leaves_nothing_half_built(tmp_path):
    from data_prep.files import atomic_dir

    final = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(final) as building:
        (building / "part.bin").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # neither `out` nor a temporary sibling

    with atomic_dir(final) as building:
        (building / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(final, force=True) as building:
        (building / "a.txt").write_text("second")
        raise RuntimeError("interrupted")
    assert (final / "a.txt").read_text() == "first"  # the old output survives a failed --force
    with atomic_dir(final, force=True) as building:
        (building / "a.txt").write_text("second")
    assert (final / "a.txt").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
