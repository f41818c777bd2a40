"""`cram compress` end to end on a tiny run pretrained here (a fake clock makes it fast and
deterministic): the compressed run dir, the recovery budget, and every refusal."""

import json
import os
import shutil

import pytest
import torch
from conftest import TickingClock, pretrain_small_run

from crambench.errors import UserError
from crambench.shell.cli import main
from cramming.compress import compress, prune, recovery, stored_stats
from cramming.config import config_sha256
from cramming.weights import load_pretrained_with_masks

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A finished tiny run (6 fake seconds) on a small grammar corpus."""
    return pretrain_small_run(tmp_path_factory.mktemp("compress"))


@pytest.fixture(scope="module")
def pruned(parent, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "p50"
    threads = torch.get_num_threads()
    summary = compress(parent, "prune:0.5", out, budget="8s", quiet=True,
                       clock=TickingClock(0.05))
    torch.set_num_threads(threads)
    return out, summary


def test_pruned_run_dir_is_a_complete_derived_run(parent, pruned):
    out, summary = pruned
    record, lineage = summary["compression"], summary["lineage"]
    parent_summary = json.loads((parent / "summary.json").read_text())
    assert json.loads((out / "summary.json").read_text()) == summary
    # Exactly the documented rule: round(0.5 * N) of the N encoder linear weights.
    _, state, masks = load_pretrained_with_masks(out / "final")
    total = sum(mask.numel() for mask in masks.values())
    pruned_count = sum(int((~mask).sum()) for mask in masks.values())
    assert total == record["prunable_params"] == 7168 and pruned_count == round(0.5 * total)
    assert record["sparsity"] == pruned_count / total
    assert all((state[name][~mask] == 0).all() for name, mask in masks.items())
    assert len(record["rounds"]) == len(prune.round_targets(total, 0, 0.5)) == 5
    assert record["stored_bytes"] == (out / "final" / "model.safetensors").stat().st_size
    assert stored_stats(out / "final" / "model.safetensors")["kept_params"] == \
        record["nonzero_params"]
    assert summary["model_sha256"] != parent_summary["model_sha256"]
    assert summary["config_sha256"] == config_sha256(out / "config.yaml")
    # The budget covers all training: the parent's time plus the stage's.
    assert lineage["parent_model_sha256"] == parent_summary["model_sha256"]
    assert summary["train_elapsed_s"] == round(parent_summary["train_elapsed_s"]
                                               + lineage["stage_train_elapsed_s"], 3)
    assert summary["budget_s"] == parent_summary["budget_s"] + 8.0
    assert summary["steps"] == parent_summary["steps"] + sum(r["steps"] for r in
                                                             record["rounds"])
    assert summary["val_loss"] is not None and summary["stopped_by"] == "budget"
    spec = json.loads((out / "final" / "compression.json").read_text())
    assert spec == {"format": "cram-compression/1", "method": "prune:0.5", "sparsity": 0.5,
                    "bits": 32, "quantization": None}
    assert not (out / "checkpoint").exists()


def test_recovery_training_keeps_within_its_budget(parent, pruned):
    out, summary = pruned
    record = summary["compression"]
    assert 0 < record["train_elapsed_s"] <= record["budget_s"] == 8.0
    assert record["train_elapsed_s"] == summary["lineage"]["stage_train_elapsed_s"]
    elapsed = [r["elapsed_s"] for r in record["rounds"]]
    assert elapsed == sorted(elapsed) and elapsed[-1] <= 8.0
    assert all(r["steps"] > 0 for r in record["rounds"])  # every round got its share
    # metrics.jsonl: the parent's curve, then the recovery rounds after it, never past the sum.
    parent_lines = (parent / "metrics.jsonl").read_text().splitlines()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [json.dumps(x) for x in lines[:len(parent_lines)]] == \
        [json.dumps(json.loads(x)) for x in parent_lines]
    times = [x["elapsed_s"] for x in lines]
    assert times == sorted(times) and times[-1] <= summary["train_elapsed_s"] + 1e-3


def test_quantizing_a_pruned_run_trains_nothing(pruned, tmp_path):
    out, _ = pruned
    summary = compress(out, "int8", tmp_path / "p50-int8", quiet=True)
    assert summary["compression"]["method"] == "prune:0.5+int8"
    assert summary["compression"]["bits"] == 8
    assert summary["lineage"]["stage_budget_s"] == 0.0
    assert summary["lineage"]["stage_train_elapsed_s"] == 0.0
    assert summary["model_sha256"] == json.loads((out / "summary.json").read_text())[
        "model_sha256"]  # the weights to fine-tune from are the pruned run's
    assert json.loads((tmp_path / "p50-int8" / "final" / "compression.json").read_text())[
        "bits"] == 8


def _no_run_left(out):
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("method, budget, reason", [
    ("prune:1.2", "4s", "sparsity 1.2 must lie strictly between 0 and 1"),
    ("prune:0", "4s", "sparsity 0 must lie strictly between 0 and 1"),
    ("prune=0.5", "4s", "malformed pruning step"),
    ("int2", None, "unknown step 'int2'"),
    ("prune:0.5", None, "give --budget"),
    ("int8", "4s", "--budget does not apply to --method int8"),
    ("int8 optim.lr=5e-4", None, "'optim.lr=5e-4': key=value overrides change pruning's "
                                 "recovery training, and --method int8 trains nothing"),
])
def test_bad_arguments_are_one_line_errors(parent, tmp_path, capsys, method, budget, reason):
    out = tmp_path / "out"
    method, *overrides = method.split()
    argv = ["compress", "--run", str(parent), "--method", method, "--out", str(out), *overrides]
    assert main(argv + (["--budget", budget] if budget else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("cram compress: error: ") and reason in err
    assert len(err.strip().splitlines()) == 1
    _no_run_left(out)


def test_refusals_about_the_runs(parent, pruned, tmp_path):
    with pytest.raises(UserError, match="is --run .*: writing it would delete its own input"):
        compress(parent, "int8", parent)
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match="already exists; use --force"):
        compress(parent, "int8", tmp_path / "taken")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(parent, unfinished)
    shutil.rmtree(unfinished / "final")
    with pytest.raises(UserError, match="has no final model"):
        compress(unfinished, "int8", tmp_path / "out")
    quantized = tmp_path / "int4"
    compress(pruned[0], "int4", quantized, quiet=True)
    with pytest.raises(UserError, match="already compressed with prune:0.5\\+int4"):
        compress(quantized, "prune:0.8", tmp_path / "out", budget="4s")
    with pytest.raises(UserError, match="already pruned to 0.5"):
        compress(pruned[0], "prune:0.4", tmp_path / "out", budget="4s")
    _no_run_left(tmp_path / "out")


def test_int4_the_library_cannot_run_is_refused_before_any_work(parent, tmp_path, monkeypatch):
    from cramming.compress import quantize

    def cannot(bits, device="cpu"):
        raise UserError(f"int{bits} weight-only quantization does not run on cpu; use int8")

    monkeypatch.setattr(quantize, "check_supported", cannot)
    with pytest.raises(UserError, match="does not run on cpu; use int8"):
        compress(parent, "prune:0.5+int4", tmp_path / "out", budget="4s")
    _no_run_left(tmp_path / "out")


def test_an_interrupted_compression_leaves_no_run(parent, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loop = recovery.train_loop

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C (or SIGTERM) in the second recovery round
            return "interrupt"
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(recovery, "train_loop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress(parent, "prune:0.5", tmp_path / "out", budget="4s", quiet=True,
                 clock=TickingClock(0.05))
    _no_run_left(tmp_path / "out")
    assert calls["n"] == 2


def test_a_budget_too_short_for_one_step_is_an_error(parent, tmp_path):
    with pytest.raises(UserError, match="too short for"):
        compress(parent, "prune:0.5", tmp_path / "out", budget="0.2s", quiet=True,
                 clock=TickingClock(0.05))
    _no_run_left(tmp_path / "out")


def test_force_never_replaces_a_folder_holding_the_inputs(parent, tmp_path, capsys):
    # `--out` one folder above the run, with --force: replacing it would delete the run being
    # compressed (and anything beside it). Refused in one line; both are still there.
    tree = tmp_path / "tree"
    shutil.copytree(parent, tree / "run")
    (tree / "other-file").write_text("keep")
    argv = ["compress", "--run", str(tree / "run"), "--method", "int8", "--out", str(tree),
            "--force"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"cram compress: error: --out {tree} holds --run {tree / 'run'}: "
                           "writing it would delete its own input; name another folder")
    assert (tree / "run" / "final" / "model.safetensors").is_file()
    assert (tree / "other-file").read_text() == "keep"


def test_a_sparsity_that_rounds_to_no_weight_says_so(parent, tmp_path):
    with pytest.raises(UserError, match=r"prune:1e-07 prunes no weight: round\(1e-07 x "):
        compress(parent, "prune:1e-7", tmp_path / "none", budget="5s", device="cpu", quiet=True)
    assert not (tmp_path / "none").exists()


def test_force_never_replaces_the_data_dir_recovery_reads(parent, tmp_path):
    data = json.loads((parent / "summary.json").read_text())["data_path"]
    with pytest.raises(UserError, match=f"--out {data} is --data {data}: writing it would "):
        compress(parent, "prune:0.5", data, budget="5s", force=True, quiet=True)
    assert os.path.isfile(os.path.join(data, "manifest.json"))


def _run_of_width(parent, root, width):
    """A copy of `parent` whose final/ holds a model `width` wide (its summary's hash updated):
    a finished run as `cram pretrain model.hidden=W model.ffn_hidden=2W model.head_hidden=W`
    leaves it."""
    import dataclasses

    from crambench.contracts import sha256_file
    from cramming import CrammedBert, save_pretrained

    run = root / f"wide{width}"
    shutil.copytree(parent, run)
    cfg, _, _ = load_pretrained_with_masks(run / "final")
    cfg = dataclasses.replace(cfg, hidden=width, ffn_hidden=2 * width, head_hidden=width)
    save_pretrained(CrammedBert(cfg), run / "final")
    summary = json.loads((run / "summary.json").read_text())
    summary["model_sha256"] = sha256_file(run / "final" / "model.safetensors")
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_int4_checks_the_runs_own_widths_before_writing(parent, tmp_path, capsys):
    wide = _run_of_width(parent, tmp_path, 48)
    out = tmp_path / "wide48-int4"
    assert main(["compress", "--run", str(wide), "--method", "int4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"cram compress: error: {wide}/final/model_config.json: int4 groups 32 input "
                   "features, but encoder.embedding.word has 48; use int8 (per-channel int8 "
                   "runs wherever torchao does)\n")
    _no_run_left(out)
    # After pruning too: pruning keeps the shapes that int4 must group.
    with pytest.raises(UserError, match="int4 groups 32 input features, but encoder"):
        compress(wide, "prune:0.5+int4", out, budget="4s")
    _no_run_left(out)
    assert compress(wide, "int8", out, quiet=True)["compression"]["bits"] == 8  # any width


def test_evaluation_refuses_an_int4_run_it_cannot_deploy_before_fine_tuning(parent, tmp_path):
    """A run compressed before compress checked real widths: eval refuses it on opening."""
    from crambench.files import write_json_atomic
    from cramming.compress.job import deployment_spec
    from cramming.compress.method import Method
    from glue_eval.encoder import Encoder

    wide = _run_of_width(parent, tmp_path, 48)
    write_json_atomic(wide / "final" / "compression.json", deployment_spec(Method(bits=4)))
    with pytest.raises(UserError, match=r"model_config.json: int4 groups 32 input features, "
                                        r"but encoder.embedding.word has 48"):
        Encoder(wide / "final")


def _break_config(final, **changes):
    config = json.loads((final / "model_config.json").read_text())
    config.update(changes)
    (final / "model_config.json").write_text(json.dumps(config))


BROKEN_FINALS = {
    "config wider than the weights": (lambda final: _break_config(final, hidden=64),
                                      "model_config.json does not match .*model.safetensors"),
    "layers not a number": (lambda final: _break_config(final, layers="two"),
                            "model_config.json: layers is 'two', expected a whole number"),
    "no tokenizer": (lambda final: (final / "tokenizer.json").unlink(),
                     "final/tokenizer.json is missing"),
    "tokenizer not JSON": (lambda final: (final / "tokenizer.json").write_text("{"),
                           "cannot read tokenizer .*tokenizer.json"),
}


@pytest.mark.parametrize("method", ["int8", "int4", "prune:0.5"])
@pytest.mark.parametrize("broken", sorted(BROKEN_FINALS))
def test_a_broken_parent_final_is_refused_before_the_clock_starts(parent, tmp_path, capsys,
                                                                  method, broken):
    run = tmp_path / "broken"
    shutil.copytree(parent, run)
    damage, message = BROKEN_FINALS[broken]
    damage(run / "final")
    readings = []

    def clock():  # the recovery budget starts with its first reading
        readings.append(1)
        return 0.0

    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        compress(run, method, out, budget="4s" if method.startswith("prune") else None,
                 quiet=True, clock=clock)
    assert readings == []
    _no_run_left(out)


def test_a_full_disk_while_copying_the_parent_is_one_line(parent, tmp_path, capsys,
                                                          monkeypatch):
    import errno

    from crambench import files

    real_copy = shutil.copyfile

    def full(src, dst, *args, **kwargs):
        if str(src).endswith("model.safetensors"):
            with open(dst, "wb") as handle:
                handle.write(b"x" * 100)  # some bytes land before the disk fills
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(files.shutil, "copyfile", full)
    out = tmp_path / "int8"
    assert main(["compress", "--run", str(parent), "--method", "int8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    size = sum(path.stat().st_size for path in (parent / "final").iterdir())
    assert err.startswith(f"cram compress: error: no space left on device writing "
                          f"{out}/final: it needs {size / 1000:.1f} KB")  # the whole copy
    assert err.count("\n") == 1
    _no_run_left(out)


def test_the_parent_cannot_be_rewritten_while_it_is_compressed(parent, tmp_path, capsys,
                                                               monkeypatch):
    """`cram pretrain --force` on the parent while compress reads it is refused at once; the
    compression finishes from the parent it started with."""
    from cramming.compress import job

    data = json.loads((parent / "summary.json").read_text())["data_path"]
    before = (parent / "summary.json").read_bytes()
    statuses = []
    real_copy = job.copy_tree

    def copy_while_pretraining(src, dst):
        statuses.append(main(["pretrain", "--data", data, "--preset", "tiny", "--budget", "5s",
                              "--out", str(parent), "--force", "--quiet"]))
        statuses.append(capsys.readouterr().err)
        real_copy(src, dst)

    monkeypatch.setattr(job, "copy_tree", copy_while_pretraining)
    summary = compress(parent, "int8", tmp_path / "int8", quiet=True)
    assert statuses[0] == 2
    assert statuses[1] == (f"cram pretrain: error: {parent} is in use by another command "
                           "reading it (cram compress or cram extract); wait for it to finish "
                           "(or stop it) and run again\n")
    assert (parent / "summary.json").read_bytes() == before
    assert summary["lineage"]["parent_model_sha256"] == json.loads(before)["model_sha256"]
    assert not (parent.parent / f".{parent.name}.lock").exists()  # the last reader tidied
