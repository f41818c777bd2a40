"""Each command that writes, on a disk too small for its output (a real tmpfs of a few KB):
one line naming the output and how much it needed, exit status 2, no leftovers, earlier
outputs intact. Skipped where a tmpfs cannot be mounted (it needs root)."""

import shutil
import subprocess

import pytest

from crambench.shell.cli import main
from data_prep import open_data_dir

pytestmark = [pytest.mark.train, pytest.mark.subprocess]


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(size)` mounts a tmpfs of `size` bytes under tmp_path and returns it;
    `small_disk.grow(path, size)` remounts it larger (space freed)."""
    mounts = []

    def mount(size: int):
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
        mounts.append(point)
        return point

    def grow(point, size: int):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(point)], check=True)

    mount.grow = grow
    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _size(folder) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _one_error_line(capsys, command: str, pattern: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"cram {command}: error: no space left on device writing "), err
    assert pattern in err, err
    return err


def test_prepare_on_a_full_disk(pretrain_data, small_disk, capsys):
    corpus = pretrain_data.parent / "corpus.txt"
    settings = ["--vocab-size", "256", "--seq-len", "32", "--val-fraction", "0.1", "--quiet"]
    disk = small_disk(_size(pretrain_data) // 2)
    status = main(["prepare", "--source", str(corpus), "--out", str(disk / "data"), *settings])
    assert status == 2
    _one_error_line(capsys, "prepare", f"{disk / 'data'}")
    assert list(disk.iterdir()) == []  # no partial dir, no lock file

    # --force over a complete data dir: the new one does not fit beside it; the old one stays.
    disk = small_disk(_size(pretrain_data) * 3 // 2)
    shutil.copytree(pretrain_data, disk / "data")
    status = main(["prepare", "--source", str(corpus), "--out", str(disk / "data"), *settings,
                   "--force"])
    assert status == 2
    _one_error_line(capsys, "prepare", f"{disk / 'data'}")
    assert open_data_dir(disk / "data", verify_hashes=True).data_sha256 == \
        open_data_dir(pretrain_data).data_sha256
    assert [p.name for p in disk.iterdir()] == ["data"]


def test_pretrain_on_a_full_disk_then_resume(pretrain_data, pretrain_overrides, small_disk,
                                             capsys):
    disk = small_disk(64_000)  # config.yaml fits; the first checkpoint (MBs) does not
    run = disk / "run"
    status = main(["pretrain", "--data", str(pretrain_data), "--preset", "tiny", "--budget",
                   "60s", "--out", str(run), "--quiet", *pretrain_overrides,
                   "train.max_steps=2"])
    assert status == 2
    err = _one_error_line(capsys, "pretrain", f"{run / 'checkpoint' / 'model.safetensors'}: "
                                              "it needs 1.")
    assert f"then `cram pretrain --resume {run}` goes on from the last checkpoint" in err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.jsonl"]

    small_disk.grow(disk, 64_000_000)  # space freed: the hint works
    assert main(["pretrain", "--resume", str(run), "--quiet"]) == 0
    assert "2 steps in" in capsys.readouterr().out


def test_leaderboard_build_on_a_full_disk(tmp_path, small_disk, capsys):
    (tmp_path / "entries").mkdir()
    disk = small_disk(8_000)
    status = main(["leaderboard", "build", "--entries", str(tmp_path / "entries"), "--out",
                   str(disk / "site")])
    assert status == 2
    _one_error_line(capsys, "leaderboard", f"{disk / 'site'}")
    assert list(disk.iterdir()) == []
