"""`evaluate_glue` and `cram eval glue` end to end on a tiny run made here (a randomly
initialised tiny encoder saved through cramming's API, with a data dir's tokenizer)."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from conftest import grammar_sentence as sentence

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from glue_eval import (
    PROTOCOLS,
    TASKS,
    compute_averages,
    compute_metrics,
    evaluate_glue,
    read_predictions,
    read_split,
)

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.train]


MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
               "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")


def write_glue_dir(root, n_train=40, n_dev=12):
    """RTE, STS-B and MNLI in their GLUE layouts, with one broken row in RTE train."""
    rng = random.Random(1)
    nli = ["entailment", "not_entailment"]
    mnli = ["entailment", "neutral", "contradiction"]

    def write(folder, split, header, rows):
        path = root / folder / f"{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *rows]) + "\n")

    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = [f"{i}\t{sentence(rng)}\t{sentence(rng)}\t{rng.choice(nli)}" for i in range(n)]
        if split == "train":
            rows.append(f"{n}\ta sentence with no label column")
        write("RTE", split, "index\tsentence1\tsentence2\tlabel", rows)
        write("STS-B", split, "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
              "sentence1\tsentence2\tscore",
              [f"{i}\tmain\tx\t2012\t{i}\tnone\tnone\t{sentence(rng)}\t{sentence(rng)}\t"
               f"{rng.uniform(0, 5):.3f}" for i in range(n)])
    for split, n in (("train", n_train), ("dev_matched", n_dev), ("dev_mismatched", n_dev)):
        width = 1 if split == "train" else 5
        header = MNLI_HEADER if split == "train" else MNLI_HEADER.replace(
            "label1", "label1\tlabel2\tlabel3\tlabel4\tlabel5")
        rows = []
        for i in range(n):
            gold = rng.choice(mnli)
            rows.append("\t".join([str(i), "1", f"{i}e", "fiction", "(a)", "(b)", "(A)", "(B)",
                                   sentence(rng), sentence(rng), *[gold] * width, gold]))
        write("MNLI", split, header, rows)
    return root


def test_quick_eval_writes_contract_3_and_its_predictions_rescore(tiny_run, tmp_path, capsys):
    glue_dir = write_glue_dir(tmp_path / "glue")
    out = tmp_path / "eval" / "glue.json"
    result = evaluate_glue(tiny_run, tasks="rte,stsb,mnli", glue_dir=glue_dir,
                           protocol="quick", out=out, quiet=True, device="cpu")
    # The broken row is reported in one line, even under quiet, and only that.
    assert capsys.readouterr().err == (
        f"cram eval: warning: rte train: skipped 1 of 41 rows that do not parse; first: "
        f"{glue_dir / 'RTE' / 'train.tsv'} line 42: 2 fields, expected 4\n")
    assert json.loads(out.read_text()) == result
    assert (result["format"], result["suite"], result["source"]) == ("cram-glue/2", "glue", "dir")
    assert result["protocol"]["seeds"] == [0]
    assert result["protocol"]["name"] == "quick" and result["protocol"]["rankable"] is False
    assert result["protocol"]["max_train_rows"] == 800
    assert result["protocol"]["epochs"] == PROTOCOLS["quick"].epochs < 5
    assert result["model_sha256"] == sha256_file(tiny_run / "final" / "model.safetensors")
    assert result["from_scratch"] is False
    assert list(result["tasks"]) == ["stsb", "mnli", "rte"]  # table order
    assert result["tasks"]["rte"]["malformed_rows"] == {"train": 1, "dev": 0}
    assert result["tasks"]["rte"]["n_train"] == 40 and result["tasks"]["rte"]["n_dev"] == 12
    assert result["tasks"]["mnli"]["n_dev"] == {"dev_matched": 12, "dev_mismatched": 12}

    for task, entry in result["tasks"].items():
        assert tuple(entry["metrics"]) == TASKS[task].metric_keys
        assert entry["seconds"] > 0 and entry["epochs"] == PROTOCOLS["quick"].epochs
        [run] = entry["seeds"]  # one seed: its metrics are the task's score
        assert run["seed"] == 0 and run["metrics"] == entry["metrics"]
        assert all(spread["std"] is None for spread in entry["spread"].values())
        rescored = {}
        for item in run["predictions"]:
            path = out.parent / item["file"]
            assert item["sha256"] == sha256_file(path)
            indices, preds = read_predictions(path)
            labels = read_split(glue_dir, task, item["split"]).labels
            assert indices.tolist() == list(range(len(labels)))
            rescored.update(compute_metrics(task, labels[indices], preds, split=item["split"]))
        assert rescored == entry["metrics"]  # exactly: the files hold what was scored
    assert [p["file"] for p in result["tasks"]["mnli"]["seeds"][0]["predictions"]] == [
        "glue-predictions/mnli-dev_matched-seed0.tsv",
        "glue-predictions/mnli-dev_mismatched-seed0.tsv"]
    averages = compute_averages({t: e["metrics"] for t, e in result["tasks"].items()})
    assert result["avg_cramming"] == averages["avg_cramming"]
    assert result["avg_glue"] == averages["avg_glue"]
    assert not result["avg_glue"]["complete"]

    with pytest.raises(UserError, match="exists; pass --force"):
        evaluate_glue(tiny_run, tasks="rte", glue_dir=glue_dir, protocol="quick", out=out)


def test_from_scratch_control_is_seeded_and_kept_apart(tiny_run, tmp_path):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=16, n_dev=8)
    first = evaluate_glue(tiny_run, tasks="rte", glue_dir=glue_dir, protocol="quick",
                          from_scratch=True, quiet=True, device="cpu")
    assert first["from_scratch"] is True
    written = tiny_run / "eval" / "glue-from-scratch.json"
    assert json.loads(written.read_text())["from_scratch"] is True
    again = evaluate_glue(tiny_run, tasks="rte", glue_dir=glue_dir, protocol="quick",
                          from_scratch=True, quiet=True, device="cpu", force=True)
    sha = [r["tasks"]["rte"]["seeds"][0]["predictions"][0]["sha256"] for r in (first, again)]
    assert sha[0] == sha[1]  # same seed, same predictions


def test_cli_writes_results_and_reports_user_errors_in_one_line(tiny_run, tmp_path, capsys):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=16, n_dev=8)
    out = tmp_path / "cli.json"
    argv = ["eval", "glue", "--run", str(tiny_run), "--glue-dir", str(glue_dir), "--tasks",
            "stsb", "--protocol", "quick", "--out", str(out), "--quiet", "--threads", "1"]
    assert main(argv) == 0
    assert set(json.loads(out.read_text())["tasks"]) == {"stsb"}
    # --quiet hides progress bars only: the score and where it went are results.
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert re.fullmatch(r"stsb: pearson -?\d+\.\d, spearman -?\d+\.\d \(16 train rows, "
                        r"[\d.]+ s\)", lines[0]), captured.out
    assert lines[1].startswith("deployed model (none): ")
    assert [line.split(":")[0] for line in lines[2:4]] == ["avg_cramming", "avg_glue"]
    assert lines[4:] == [f"wrote {out}"] and captured.err == ""

    (tmp_path / "unfinished").mkdir()
    cases = [
        (argv, "exists; pass --force"),
        (argv[:3] + [str(tmp_path / "unfinished")], "has no final/model.safetensors"),
        (argv[:7] + ["cola,squad"] + argv[8:] + ["--force"], "unknown GLUE task(s) squad"),
        (argv[:7] + ["cola,stsb"] + argv[8:] + ["--force"], "lacks CoLA/train.tsv, CoLA/dev.tsv"),
    ]
    for case, message in cases:
        capsys.readouterr()
        assert main(case) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("cram eval: error:")


def test_real_rte_scores_every_dev_row(tiny_run, shared_data, tmp_path):
    result = evaluate_glue(tiny_run, tasks="rte", glue_dir=shared_data / "glue",
                           protocol="quick", out=tmp_path / "rte.json", quiet=True, device="cpu")
    entry = result["tasks"]["rte"]
    assert (entry["n_train"], entry["n_dev"]) == (800, 277)  # train capped, dev whole
    indices, preds = read_predictions(tmp_path / entry["seeds"][0]["predictions"][0]["file"])
    assert indices.tolist() == list(range(277)) and set(np.unique(preds)) <= {0, 1}
    assert 0.0 <= entry["metrics"]["accuracy"] <= 100.0


def test_ranked_protocol_on_a_subset_is_not_rankable(tiny_run, tmp_path):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=8, n_dev=4)
    result = evaluate_glue(tiny_run, tasks="stsb", glue_dir=glue_dir, protocol="cramming",
                           out=tmp_path / "ranked.json", quiet=True, device="cpu")
    protocol = result["protocol"]
    assert (protocol["epochs"], protocol["batch_size"], protocol["lr"]) == (5, 16, 4e-5)
    assert protocol["max_train_rows"] is None and protocol["warmup_fraction"] == 0.1
    assert protocol["rankable"] is False  # 1 of the 8 tasks: a partial score is never ranked


def test_rows_longer_than_the_model_has_positions_are_one_line(tmp_path):
    # A run pretrained with seq_len 8 cannot take the protocol's 128-token rows: one UserError
    # naming the run, not a tensor-size error inside the position embedding.
    import dataclasses

    from conftest import make_tiny_run, tiny_model_config

    from cramming import CrammedBert, save_pretrained
    from glue_eval.encoder import Encoder

    run = make_tiny_run(tmp_path)
    vocab = Encoder(run / "final").config.vocab_size
    short = dataclasses.replace(tiny_model_config(vocab), seq_len=8)
    save_pretrained(CrammedBert(short), run / "final")
    encoder = Encoder(run / "final")
    assert len(encoder.encode(["the cat"], None, max_length=128)[0]) <= 8
    with pytest.raises(UserError, match=r"has 8 positions \(model.seq_len\).*rows of [0-9]+"):
        encoder.encode([" ".join(["the cat sees a red ball."] * 3)], None, max_length=128)


def test_several_seeds_are_each_kept_and_scored_by_their_median(tiny_run, tmp_path, capsys):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=24, n_dev=10)
    out = tmp_path / "seeds.json"
    argv = ["eval", "glue", "--run", str(tiny_run), "--glue-dir", str(glue_dir), "--tasks",
            "rte,stsb", "--protocol", "quick", "--out", str(out), "--threads", "1",
            "--seeds", "0,1,2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["format"] == "cram-glue/2" and result["protocol"]["seeds"] == [0, 1, 2]
    for task, entry in result["tasks"].items():
        runs = entry["seeds"]
        assert [r["seed"] for r in runs] == [0, 1, 2]
        if task == "stsb":  # scores differ by seed (a tiny random RTE model predicts one class)
            assert len({r["predictions"][0]["sha256"] for r in runs}) == 3
        for run in runs:  # each seed's metrics come from its own saved predictions
            item = run["predictions"][0]
            assert item["file"] == f"seeds-predictions/{task}-dev-seed{run['seed']}.tsv"
            indices, preds = read_predictions(out.parent / item["file"])
            labels = read_split(glue_dir, task, "dev").labels
            assert run["metrics"] == compute_metrics(task, labels[indices], preds)
        for key in TASKS[task].metric_keys:
            values = sorted(r["metrics"][key] for r in runs)
            assert entry["metrics"][key] == values[1]  # the median of three
            assert entry["spread"][key]["mean"] == pytest.approx(np.mean(values))
            assert entry["spread"][key]["std"] == pytest.approx(np.std(values, ddof=1))
        # Each seed prints its line, then the task its median and spread.
        assert f"{task} seed 2: " in printed
        assert f"median of 3 seeds ({entry['n_train']} train rows" in printed
    # The averages are taken over the median task scores.
    averages = compute_averages({t: e["metrics"] for t, e in result["tasks"].items()})
    assert result["avg_cramming"]["value"] == averages["avg_cramming"]["value"]

    # Seed 0 of several is the run a one-seed evaluation makes: the same rows, the same model.
    single = evaluate_glue(tiny_run, tasks="rte", glue_dir=glue_dir, protocol="quick",
                           out=tmp_path / "one.json", quiet=True, device="cpu")
    assert (single["tasks"]["rte"]["seeds"][0]["predictions"][0]["sha256"]
            == result["tasks"]["rte"]["seeds"][0]["predictions"][0]["sha256"])
    assert single["protocol"]["seeds"] == [0]
    capsys.readouterr()
    assert main([*argv[:-1], "0,1,1", "--force"]) == 2
    assert "'0,1,1' names a seed twice" in capsys.readouterr().err


@pytest.mark.parametrize("task, split", [("sst2", "train"), ("sst2", "dev"), ("rte", "train")])
def test_a_split_with_a_trailing_tab_on_every_row_stops_before_fine_tuning(
        tiny_run, shared_data, tmp_path, capsys, task, split):
    """Every row of one file ends in an extra tab (SST-2: 3 fields, not 2). No fine-tuning on
    0 rows, no 50.0 averaged in, no crash inside torch: one line naming the file and the field
    count, exit 2, before any task is fine-tuned (RTE is scored after SST-2)."""
    sst2 = (shared_data / "glue" / "SST-2" / "train.tsv").read_text().splitlines()[:201]
    rte = ["index\tsentence1\tsentence2\tlabel",
           *(f"{i}\tA man sleeps.\tA man rests.\tentailment" for i in range(30))]
    glue = tmp_path / "glue"
    for folder, name, lines in (("SST-2", "sst2", sst2), ("RTE", "rte", rte)):
        (glue / folder).mkdir(parents=True)
        for part in ("train", "dev"):
            broken = (name, part) == (task, split)
            rows = [lines[0], *(row + "\t" if broken else row for row in lines[1:])]
            (glue / folder / f"{part}.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "glue.json"
    assert main(["eval", "glue", "--run", str(tiny_run), "--glue-dir", str(glue), "--tasks",
                 "sst2,rte", "--protocol", "quick", "--out", str(out), "--threads", "1"]) == 2
    captured = capsys.readouterr()
    folder, n, width = ("SST-2", 200, 2) if task == "sst2" else ("RTE", 30, 4)
    assert captured.err == (f"cram eval: error: {glue / folder / f'{split}.tsv'}: no usable "
                            f"row: its {n} rows are tab-separated into {n} with {width + 1} "
                            f"fields; task {task} expects {width}\n")
    assert captured.out == "" and not out.exists()


def _edit_config(final, **changes):
    config = json.loads((final / "model_config.json").read_text())
    (final / "model_config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize("edit, message", [
    # A model_config.json that does not match its weights (was a 55-line traceback).
    (lambda f: _edit_config(f, hidden=64), "model_config.json does not match {final}/"
     "model.safetensors: encoder.embedding.word.weight is [{vocab}, 32] in the weights but "
     "[{vocab}, 64] by the config (and "),
    (lambda f: _edit_config(f, layers=2), "model_config.json does not match {final}/"
     "model.safetensors: 8 of the config's tensors are missing (first encoder.blocks.1."),
    (lambda f: _edit_config(f, hidden="32"), "model_config.json: hidden is '32', expected a "
     "whole number"),
    (lambda f: _edit_config(f, heads=3), "model_config.json: model.hidden=32 is not divisible "
     "by model.heads=3"),
    (lambda f: _edit_config(f, vocab_size=100), "model_config.json does not match "),
    (lambda f: (f / "model.safetensors").write_bytes(b"\0" * 10), "cannot load {final}/"
     "model.safetensors: "),
    (lambda f: (f / "tokenizer.json").write_text("{"), "cannot read tokenizer {final}/"
     "tokenizer.json: "),
])
def test_a_broken_final_dir_is_one_line_naming_the_file(tiny_run, tmp_path, capsys, edit,
                                                       message):
    import shutil

    from crambench.contracts import sha256_file
    from glue_eval.encoder import RECORDED_HASHES

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval"))
    vocab = json.loads((run / "final" / "model_config.json").read_text())["vocab_size"]
    edit(run / "final")
    # The summary vouches for the files as they are (a run damaged before it was hashed), so
    # what is reported is the fault in the files, not a changed hash.
    summary = json.loads((run / "summary.json").read_text())
    summary.update({key: sha256_file(run / "final" / name) for name, key in RECORDED_HASHES})
    (run / "summary.json").write_text(json.dumps(summary))
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=8, n_dev=4)
    assert main(["eval", "glue", "--run", str(run), "--glue-dir", str(glue_dir), "--tasks",
                 "rte", "--protocol", "quick", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cram eval: error: ") and err.count("\n") == 1, err
    assert message.format(final=run / "final", vocab=vocab) in err, err


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused(tiny_run, tmp_path):
    import shutil

    from data_prep.tokenizer import train_tokenizer
    from glue_eval.encoder import Encoder

    final = tmp_path / "final"
    shutil.copytree(tiny_run / "final", final)
    words = [" ".join(f"w{i}x{j}" for j in range(40)) for i in range(40)]
    (final / "tokenizer.json").write_text(train_tokenizer(words, vocab_size=600).to_str())
    with pytest.raises(UserError, match=r"tokenizer.json has 600 tokens but .*model_config."
                                        r"json a vocabulary of \d+: not this model's tokenizer"):
        Encoder(final)
