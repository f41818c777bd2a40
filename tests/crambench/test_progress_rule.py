"""One progress rule for every command: live bars on a terminal only, progress lines in logs,
nothing but results under --quiet."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pydoc_data.topics import topics

import pytest

from crambench.progress import bars_enabled, progress_disabled


def test_bars_only_on_a_terminal_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    leader, follower = os.openpty()
    with open(follower, "w") as terminal:
        assert bars_enabled(False, terminal)
        assert not bars_enabled(True, terminal)  # --quiet
        monkeypatch.setenv("CI", "TRUE")
        assert not bars_enabled(False, terminal)
    os.close(leader)
    monkeypatch.delenv("CI")
    assert not bars_enabled(False, io.StringIO())  # a log file or a pipe
    assert progress_disabled(False)  # pytest's stderr is captured, not a terminal


def run_cram(args, tmp_path) -> tuple[str, str]:
    """(stdout, stderr) of `cram ARGS 2> log` outside CI."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    log = tmp_path / "log"
    with open(log, "w") as handle:
        done = subprocess.run([sys.executable, "-m", "crambench", *args], env=env,
                              stdout=subprocess.PIPE, stderr=handle, text=True, check=True)
    return done.stdout, log.read_text()


@pytest.mark.subprocess
def test_a_log_gets_progress_lines_and_no_bar_frames(tmp_path):
    """Issue example: `cram demo > log` filled the log with tqdm carriage-return frames."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for key in sorted(topics)[:40]:
        (corpus / f"{key}.txt").write_text(topics[key])
    args = ["prepare", "--source", str(corpus), "--vocab-size", "400", "--val-fraction", "0.2"]
    out, log = run_cram([*args, "--out", str(tmp_path / "a")], tmp_path)
    assert "\r" not in log and "it/s" not in log and "doc/s" not in log
    lines = log.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("cram prepare: trained the tokenizer (400 tokens) on ")
    assert lines[1].startswith("cram prepare: trained the trash filter's reference tokenizer")
    assert lines[2].startswith("cram prepare: encoded and packed")
    assert out.startswith(f"wrote {tmp_path / 'a'}: ")
    # --quiet: the result, and nothing else
    out, log = run_cram([*args, "--out", str(tmp_path / "b"), "--quiet"], tmp_path)
    assert log == "" and out.startswith(f"wrote {tmp_path / 'b'}: ")
