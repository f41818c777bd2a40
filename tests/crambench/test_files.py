"""crambench.files, .contracts and .locks: the JSON contract readers, atomic writers, locks
and swap repair every stage shares; umask and full-disk behaviour."""

import errno
import json
import os
import stat

import pytest
from conftest import lock_held_elsewhere

from crambench.contracts import read_contract, read_json_object
from crambench.errors import UserError


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
    from crambench.files import atomic_dir

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


@pytest.mark.subprocess
def test_a_second_writer_is_refused_naming_the_first_ones_pid(tmp_path):
    from crambench.locks import dir_lock

    target = tmp_path / "data"
    with lock_held_elsewhere(target, "cram prepare") as holder:
        with pytest.raises(UserError, match=rf"{target} is in use by PID {holder.pid} \(cram "
                                            r"prepare\); wait for it to finish"):
            with dir_lock(target, owner="cram prepare"):
                pass
    assert (tmp_path / ".data.lock").exists()  # the dead holder's file stays, unlocked
    with dir_lock(target, owner="cram prepare"), dir_lock(target, owner="cram prepare"):
        assert (tmp_path / ".data.lock").read_text() == f"{os.getpid()}\ncram prepare\n"
    assert list(tmp_path.iterdir()) == []  # released: the lock file is gone


@pytest.mark.subprocess
def test_atomic_dir_takes_its_outputs_lock_unless_one_above_is_held(tmp_path):
    from crambench.files import atomic_dir
    from crambench.locks import dir_lock, holds_lock

    final = tmp_path / "out"
    with lock_held_elsewhere(final, "cram export") as holder:
        with pytest.raises(UserError, match=rf"{final} is in use by PID {holder.pid} \(cram "
                                            r"export\)"), atomic_dir(final, force=True):
            pass
    with atomic_dir(final) as building:  # no lock held: it takes out's own
        assert holds_lock(final) and (tmp_path / ".out.lock").is_file()
        (building / "a.txt").write_text("first")
    assert not holds_lock(final) and [p.name for p in tmp_path.iterdir()] == ["out"]

    run = tmp_path / "run"
    with dir_lock(run, owner="cram pretrain"), atomic_dir(run / "checkpoint") as building:
        assert holds_lock(run / "checkpoint") and not holds_lock(tmp_path)
        (building / "state.pt").write_bytes(b"")
    assert [p.name for p in run.iterdir()] == ["checkpoint"]  # no lock file of its own


def test_tidy_undoes_a_swap_cut_between_its_renames_and_removes_leftovers(tmp_path):
    from crambench.files import atomic_dir, interrupted_swap, tidy

    final = tmp_path / "out"
    with atomic_dir(final) as building:
        (building / "a.txt").write_text("first")
    # What a kill between the two renames of a --force swap leaves: the complete old copy
    # aside, no `out`, and the new copy under its temporary name.
    final.rename(tmp_path / ".out.old")
    (tmp_path / ".out.k2x9_q1z.partial").mkdir()
    (tmp_path / ".out.abcdefgh.tmp").write_text("half")
    keep = [".outer.abcdefgh.partial", ".out.short.tmp", "other.txt"]  # not out's leftovers
    (tmp_path / keep[0]).mkdir()
    (tmp_path / keep[1]).write_text("")
    (tmp_path / keep[2]).write_text("")
    assert interrupted_swap(final)
    tidy(final)
    assert (final / "a.txt").read_text() == "first" and not interrupted_swap(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *keep])
    # A swap that completed but was killed before removing the old copy: the copy goes.
    (tmp_path / ".out.old").mkdir()
    tidy(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *keep])


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_follow_the_umask(tmp_path, mask):
    from crambench.files import atomic_dir, write_json_atomic

    previous = os.umask(mask)
    try:
        write_json_atomic(tmp_path / "file.json", {"a": 1})
        with atomic_dir(tmp_path / "dir") as building:
            (building / "inner.txt").write_text("x")
        with atomic_dir(tmp_path / "dir", force=True) as building:
            (building / "inner.txt").write_text("y")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "file.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "dir").stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((tmp_path / "dir" / "inner.txt").stat().st_mode) == 0o666 & ~mask


def test_a_full_disk_is_one_line_and_leaves_earlier_outputs(tmp_path, monkeypatch):
    """ENOSPC simulated at the last moment a write can hit it (fsync); the real thing on a
    small tmpfs is in test_full_tmpfs_for_every_command."""
    from crambench import files

    files.write_json_atomic(tmp_path / "summary.json", {"old": True})
    with files.atomic_dir(tmp_path / "checkpoint") as building:
        (building / "weights").write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(files.OutOfSpace, match=r"^no space left on device writing .*summary\."
                                               r"json: it needs 2.0 KB, .* free; free some space"):
        files.write_bytes_atomic(tmp_path / "summary.json", b"x" * 2000)
    with pytest.raises(files.OutOfSpace, match=r"writing .*checkpoint/weights: it needs 1.5 MB"):
        with files.atomic_dir(tmp_path / "checkpoint", force=True) as building:
            files.write_bytes_atomic(building / "weights", b"x" * 1_500_000)
    monkeypatch.undo()

    def full_write(*args):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    with pytest.raises(files.OutOfSpace, match=r"^disk quota exceeded writing .*checkpoint: it "
                                               r"needs more than the 3 B written"):
        with files.atomic_dir(tmp_path / "checkpoint", force=True) as building:
            (building / "weights").write_bytes(b"new")
            full_write()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"old": True}
    assert (tmp_path / "checkpoint" / "weights").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "summary.json"]


def test_an_output_may_not_be_or_hold_an_input(tmp_path):
    from crambench.files import refuse_output_over_inputs

    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    refuse_output_over_inputs(tmp_path / "runs" / "tiny-int8", run=run)  # a sibling: fine
    refuse_output_over_inputs(run / "hf", run=run, data=None)  # a new folder inside: fine
    (run / "final").mkdir()
    with pytest.raises(UserError, match=f"--out {run / 'final'} is inside --run {run}: "):
        refuse_output_over_inputs(run / "final", run=run)  # --force would replace a part
    for out, relation in ((run, "is"), (tmp_path / "runs", "holds"), (tmp_path, "holds")):
        with pytest.raises(UserError, match=f"--out {out} {relation} --run {run}: writing it "
                                            "would delete its own input"):
            refuse_output_over_inputs(out, run=run)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "runs")  # the same folder by another name
    with pytest.raises(UserError, match="holds --teacher"):
        refuse_output_over_inputs(link, teacher=run)


def test_a_full_disk_inside_a_folder_says_what_the_folder_needed(tmp_path, monkeypatch):
    """The free space is measured once the partial folder is removed: the line says what the
    whole folder needed, not only the file that did not fit."""
    from crambench import files

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(files.OutOfSpace, match=r"writing .*checkpoint/state: it needs 1.5 MB, "
                                               r"and checkpoint/ at least 3.5 MB in all, "):
        with files.atomic_dir(tmp_path / "checkpoint") as building:
            files.write_bytes_atomic(building / "weights", b"x" * 2_000_000)
            monkeypatch.setattr(files.os, "fsync", full)
            files.write_bytes_atomic(building / "state", b"x" * 1_500_000)
    assert not (tmp_path / "checkpoint").exists()


def test_copy_tree_turns_a_full_disk_into_one_line(tmp_path, monkeypatch):
    from crambench import files

    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a").write_bytes(b"x" * 3000)
    (tmp_path / "src" / "sub" / "b").write_bytes(b"y" * 2000)
    files.copy_tree(tmp_path / "src", tmp_path / "copy")
    assert (tmp_path / "copy" / "sub" / "b").read_bytes() == b"y" * 2000

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(files.shutil, "copyfile", full)
    with pytest.raises(files.OutOfSpace, match=r"writing .*/again: it needs 5.0 KB"):
        files.copy_tree(tmp_path / "src", tmp_path / "again")
    assert not (tmp_path / "again").exists()
