"""Every command that writes an output folder takes its lock first: while another process
holds it (a `cram` still running there), the command exits 2 naming that process, before it
reads, trains or writes anything, and the other's output is left as it was."""

import pytest
from conftest import lock_held_elsewhere

from crambench.shell.cli import main

pytestmark = pytest.mark.subprocess


def _refused(capsys, command: str, target, holder, owner: str) -> None:
    err = capsys.readouterr().err
    assert err == (f"cram {command}: error: {target.absolute()} is in use by PID {holder.pid} "
                   f"({owner}); wait for it to finish (or stop it) and run again\n")


def test_pretrain_into_a_run_dir_in_use(pretrain_data, pretrain_overrides, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "elapsed_s": 0.5}\n')
    argv = ["pretrain", "--data", str(pretrain_data), "--preset", "tiny", "--budget", "5s",
            "--out", str(run), "--quiet", "--force", *pretrain_overrides]
    with lock_held_elsewhere(run, "cram pretrain") as holder:
        assert main(argv) == 2
        _refused(capsys, "pretrain", run, holder, "cram pretrain")
        assert main(["pretrain", "--resume", str(run)]) == 2  # --resume too
        _refused(capsys, "pretrain", run, holder, "cram pretrain")
    assert (run / "metrics.jsonl").read_text() == '{"step": 1, "elapsed_s": 0.5}\n'


def test_prepare_into_a_data_dir_in_use(pretrain_data, tmp_path, capsys):
    data = tmp_path / "data"
    corpus = pretrain_data.parent / "corpus.txt"
    with lock_held_elsewhere(data, "cram prepare") as holder:
        assert main(["prepare", "--source", str(corpus), "--out", str(data), "--quiet"]) == 2
        _refused(capsys, "prepare", data, holder, "cram prepare")
    assert not data.exists()


@pytest.mark.parametrize("command", [["eval", "probe"], ["leaderboard", "build"]])
def test_eval_and_site_refuse_an_output_in_use(pretrain_data, tmp_path, capsys, command):
    if command[0] == "eval":  # eval writes RUN/eval/: it takes the run dir's lock
        target = tmp_path / "run"
        (target / "final").mkdir(parents=True)
        argv = [*command, "--run", str(target), "--data", str(pretrain_data)]
        owner = "cram pretrain"
    else:
        target = tmp_path / "site"
        (tmp_path / "entries").mkdir()
        argv = [*command, "--entries", str(tmp_path / "entries"), "--out", str(target)]
        owner = "cram leaderboard build"
    with lock_held_elsewhere(target, owner) as holder:
        assert main(argv) == 2
        _refused(capsys, command[0], target, holder, owner)


@pytest.mark.parametrize("command", ["export", "extract"])
def test_derived_outputs_in_use_are_refused_before_any_work(pretrain_data, tmp_path, capsys,
                                                            command):
    out = tmp_path / "out"
    argv = {"export": ["export", "--run", str(tmp_path / "no-run"), "--out", str(out)],
            "extract": ["extract", "--teacher", str(tmp_path / "no-run"), "--data",
                        str(pretrain_data), "--budget", "10s", "--out", str(out)]}[command]
    with lock_held_elsewhere(out, f"cram {command}") as holder:
        assert main(argv) == 2  # refused for the lock, before the missing run is noticed
        _refused(capsys, command, out, holder, f"cram {command}")
    assert not out.exists()


def test_eval_results_outside_the_run_take_their_own_lock(tiny_run, tmp_path, capsys):
    out = tmp_path / "scores" / "probe.json"
    with lock_held_elsewhere(out, "cram eval probe") as holder:
        assert main(["eval", "probe", "--run", str(tiny_run), "--out", str(out)]) == 2
        _refused(capsys, "eval", out, holder, "cram eval probe")
    assert not out.exists()


def test_a_rerun_of_eval_removes_what_a_killed_eval_left(tiny_run):
    """A kill while the results were being written leaves temporary names in RUN/eval/; the
    next eval (holding the run's lock) removes them, and its outputs are whole."""
    evals = tiny_run / "eval"
    evals.mkdir(exist_ok=True)
    (evals / ".probe.json.k2x9_q1z.tmp").write_text('{"half": ')
    (evals / ".probe-predictions.abcdefgh.partial").mkdir()
    (evals / ".probe-predictions.abcdefgh.partial" / "word_order-dev.tsv").write_text("index\n")
    argv = ["eval", "probe", "--run", str(tiny_run), "--quiet", "--force", "--device", "cpu"]
    assert main(argv) == 0
    assert sorted(p.name for p in evals.iterdir()) == [
        "probe-model.safetensors", "probe-predictions", "probe.json"]
    assert sorted(p.name for p in tiny_run.parent.iterdir()) == ["corpus.txt", "data", "run"]


def test_readers_share_a_folder_and_keep_writers_out(tmp_path):
    """compress and extract read their parent under its shared lock: other readers go on, a
    writer is refused naming what holds it, and the last reader out removes the lock file."""
    from crambench.errors import UserError
    from crambench.locks import dir_lock, read_lock

    parent = tmp_path / "run"
    parent.mkdir()
    with read_lock(parent), read_lock(parent):  # two readers at once
        with pytest.raises(UserError, match=r"run is in use by another command reading it "
                                            r"\(cram compress or cram extract\); wait"):
            with dir_lock(parent, owner="cram pretrain"):
                pass
    assert not (tmp_path / ".run.lock").exists()
    with dir_lock(parent, owner="cram pretrain"):  # free again
        with read_lock(parent):  # this process writes it: reading it needs no other lock
            pass


@pytest.mark.subprocess
def test_a_reader_is_refused_while_another_process_writes(tmp_path):
    from crambench.errors import UserError
    from crambench.locks import read_lock

    parent = tmp_path / "run"
    parent.mkdir()
    with lock_held_elsewhere(parent, "cram pretrain") as holder:
        with pytest.raises(UserError, match=rf"in use by PID {holder.pid} \(cram pretrain\)"):
            with read_lock(parent):
                pass
