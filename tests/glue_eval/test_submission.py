"""The GLUE server's files from test sets laid out as GLUE ships them (header, index column,
text columns, no labels), written with real sentences from the shared dev files; and
`cram eval glue --predict-test` end to end on a tiny run."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from test_evaluate import write_glue_dir

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from glue_eval import evaluate_glue, read_predictions, read_split
from glue_eval.submission import (
    TEST_SETS,
    majority_label,
    present_test_sets,
    read_test_rows,
    server_file,
    submission_zip,
)
from glue_eval.tasks import TASKS

# What the server expects in each file (gluebenchmark.com submission format).
SERVER_FILES = {"cola": "CoLA.tsv", "sst2": "SST-2.tsv", "mrpc": "MRPC.tsv",
                "stsb": "STS-B.tsv", "qqp": "QQP.tsv", "mnli_m": "MNLI-m.tsv",
                "mnli_mm": "MNLI-mm.tsv", "qnli": "QNLI.tsv", "rte": "RTE.tsv",
                "wnli": "WNLI.tsv", "ax": "AX.tsv"}
SERVER_LABELS = {"cola": ["0", "1"], "sst2": ["0", "1"], "mrpc": ["0", "1"], "qqp": ["0", "1"],
                 "mnli_m": ["entailment", "neutral", "contradiction"],
                 "mnli_mm": ["entailment", "neutral", "contradiction"],
                 "qnli": ["entailment", "not_entailment"], "rte": ["entailment", "not_entailment"],
                 "wnli": ["0", "1"], "ax": ["entailment", "neutral", "contradiction"]}


def real_pairs(shared_data, n):
    lines = (shared_data / "glue" / "RTE" / "dev.tsv").read_text().splitlines()[1: n + 1]
    return [tuple(line.split("\t")[1:3]) for line in lines]


def write_test_file(glue_dir, test, pairs):
    """`test`'s file with GLUE's header; the text columns hold real sentences, the others
    plausible values (MNLI's parse columns, STS-B's genre and year, MRPC's ids)."""
    path = glue_dir / test.path
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(test.columns)]
    for i, (a, b) in enumerate(pairs):
        values = {test.index: str(i), test.text_a: a}
        if test.text_b:
            values[test.text_b] = b
        lines.append("\t".join(values.get(column, f"{column}-{i}") for column in test.columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_test_set_gives_the_server_layout(shared_data, tmp_path):
    pairs = real_pairs(shared_data, 7)
    for test in TEST_SETS.values():
        write_test_file(tmp_path, test, pairs)
    assert [t.name for t in present_test_sets(tmp_path, ["rte"])] == ["rte", "wnli"]
    assert {t.name for t in present_test_sets(tmp_path, ["mnli"])} == {"mnli_m", "mnli_mm",
                                                                          "wnli", "ax"}
    for name, test in TEST_SETS.items():
        rows = read_test_rows(tmp_path, test)
        assert test.server_file == SERVER_FILES[name]
        assert rows.index == [str(i) for i in range(7)]
        assert rows.text_a == [a for a, _ in pairs]
        assert rows.text_b == (None if name in ("cola", "sst2") else [b for _, b in pairs])
        if name == "stsb":
            scores = np.array([-0.4, 0.0, 1.25, 2.5, 4.9999, 5.0, 6.2], dtype=np.float32)
            expected = ["0.000", "0.000", "1.250", "2.500", "5.000", "5.000", "5.000"]
        else:
            labels = SERVER_LABELS[name]
            scores = np.arange(7) % len(labels)
            expected = [labels[i % len(labels)] for i in range(7)]
        text = server_file(rows, scores)
        assert text == "index\tprediction\n" + "".join(
            f"{i}\t{value}\n" for i, value in enumerate(expected))


def test_submission_zip_holds_the_files_at_its_top_level_reproducibly():
    files = {"RTE.tsv": "index\tprediction\n0\tentailment\n", "AX.tsv": "index\tprediction\n"}
    data = submission_zip(files)
    assert data == submission_zip(dict(reversed(files.items())))  # same bytes, same sha256
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["AX.tsv", "RTE.tsv"]
        assert archive.read("RTE.tsv").decode() == files["RTE.tsv"]


def test_wnli_majority_class_is_the_most_frequent_train_label(shared_data):
    assert majority_label(np.array([0, 1, 1, 0, 0]), 2) == 0
    assert majority_label(np.array([1, 1, 0]), 2) == 1
    assert majority_label(np.array([0, 1]), 2) == 0  # a tie goes to the lower id


@pytest.mark.parametrize("columns, problem", [
    (("index", "question", "sentence"), "not those of GLUE's RTE.tsv test file"),
    (("index", "sentence1", "sentence2", "label"), "not those of GLUE's RTE.tsv test file"),
])
def test_a_test_file_of_another_layout_is_refused(tmp_path, columns, problem):
    path = tmp_path / "RTE" / "test.tsv"
    path.parent.mkdir()
    path.write_text("\t".join(columns) + "\n" + "\t".join(["0"] * len(columns)) + "\n")
    with pytest.raises(UserError, match=problem) as err:
        read_test_rows(tmp_path, TEST_SETS["rte"])
    assert str(path) in str(err.value) and "index, sentence1, sentence2" in str(err.value)


def test_a_broken_test_row_is_an_error_not_a_skipped_row(tmp_path):
    path = tmp_path / "RTE" / "test.tsv"
    path.parent.mkdir()
    path.write_text("index\tsentence1\tsentence2\n0\ta.\tb.\n1\tonly one field\n")
    with pytest.raises(UserError, match=r"test.tsv line 3: 2 fields, expected 3"):
        read_test_rows(tmp_path, TEST_SETS["rte"])
    path.write_text("index\tsentence1\tsentence2\n0\ta.\tb.\n0\tc.\td.\n")
    with pytest.raises(UserError, match="repeats a value"):
        read_test_rows(tmp_path, TEST_SETS["rte"])


@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_index_value_is_refused(tmp_path, empty):
    """The server matches predictions by index: a row without one would go into the server
    file as a line no prediction can be matched to."""
    path = tmp_path / "RTE" / "test.tsv"
    path.parent.mkdir()
    path.write_text(f"index\tsentence1\tsentence2\n0\ta.\tb.\n{empty}\tc.\td.\n")
    with pytest.raises(UserError, match=r"RTE/test.tsv line 3: the index column is empty"):
        read_test_rows(tmp_path, TEST_SETS["rte"])


def dev_rows_as_test_file(glue_dir, test, split, task):
    """`test`'s file as GLUE ships it, holding the text of `task`'s `split` rows (so its
    predictions must equal the dev predictions of the same model), indices 100, 101, ..."""
    rows = read_split(glue_dir, task, split)
    pairs = list(zip(rows.text_a, rows.text_b or rows.text_a, strict=True))
    path = write_test_file(glue_dir, test, pairs)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *(line.replace(f"{i}\t", f"{100 + i}\t", 1)
                                           for i, line in enumerate(lines[1:]))]) + "\n")
    return len(pairs)


@pytest.mark.train
@pytest.mark.usefixtures("one_torch_thread")
def test_predict_test_writes_the_server_files_from_the_scored_models(tiny_run, tmp_path,
                                                                      capsys):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=24, n_dev=10)
    for name, task, split in (("rte", "rte", "dev"), ("stsb", "stsb", "dev"),
                              ("mnli_m", "mnli", "dev_matched"),
                              ("mnli_mm", "mnli", "dev_mismatched"),
                              ("ax", "mnli", "dev_matched"), ("wnli", "rte", "dev")):
        dev_rows_as_test_file(glue_dir, TEST_SETS[name], split, task)
    # WNLI train: majority class 1 (entailment), 3 to 2
    (glue_dir / "WNLI" / "train.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n" + "".join(
            f"{i}\tThe cat sat.\tIt sat.\t{label}\n" for i, label in enumerate([1, 0, 1, 0, 1])))
    out = tmp_path / "eval" / "glue.json"
    argv = ["eval", "glue", "--run", str(tiny_run), "--glue-dir", str(glue_dir), "--tasks",
            "rte,stsb,ax", "--protocol", "quick", "--out", str(out), "--predict-test",
            "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (f"wrote {out.parent / 'glue-test' / 'submission.zip'}: AX.tsv (10 rows), "
            "MNLI-m.tsv (10 rows), MNLI-mm.tsv (10 rows), RTE.tsv (10 rows), STS-B.tsv (10 rows), "
            "WNLI.tsv (10 rows, majority class)") in printed
    assert "not in the submission (no test file in --glue-dir): CoLA.tsv, SST-2.tsv, MRPC.tsv, "\
        "QQP.tsv, QNLI.tsv" in printed
    result = json.loads(out.read_text())
    assert list(result["tasks"]) == ["stsb", "mnli", "rte"]  # ax stands for mnli
    tests = result["test_predictions"]
    folder = out.parent / "glue-test"
    assert sorted(p.name for p in folder.iterdir()) == [
        "AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "RTE.tsv", "STS-B.tsv", "WNLI.tsv",
        "submission.zip"]
    assert tests["submission"] == {"file": "glue-test/submission.zip",
                                   "sha256": sha256_file(folder / "submission.zip")}
    with zipfile.ZipFile(folder / "submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f["file"].split("/")[1]
                                                    for f in tests["files"])
        for item in tests["files"]:
            name = item["file"].split("/")[1]
            assert archive.read(name) == (folder / name).read_bytes()
            assert item["sha256"] == sha256_file(folder / name) and item["rows"] == 10
    by_set = {f["test_set"]: f for f in tests["files"]}
    assert by_set["ax"]["predicted_by"] == "mnli" and by_set["rte"]["predicted_by"] == "rte"
    assert by_set["wnli"]["predicted_by"] == "majority class of WNLI train (1)"

    def served(name):
        lines = (folder / TEST_SETS[name].server_file).read_text().splitlines()
        assert lines[0] == "index\tprediction"
        index, values = zip(*(line.split("\t") for line in lines[1:]), strict=True)
        assert list(index) == [str(100 + i) for i in range(10)]
        return list(values)

    def dev(task, split):  # the dev predictions of the same fine-tuned model, as labels
        [first] = result["tasks"][task]["seeds"]  # one seed: the model that predicted the tests
        item = next(p for p in first["predictions"] if p["split"] == split)
        values = read_predictions(out.parent / item["file"])[1]
        if task == "stsb":
            return [f"{v:.3f}" for v in np.clip(values, 0, 5)]
        return [TASKS[task].labels[int(v)] for v in values]

    assert served("rte") == dev("rte", "dev")
    assert served("stsb") == dev("stsb", "dev")
    assert all(0 <= float(v) <= 5 for v in served("stsb"))
    assert served("mnli_m") == dev("mnli", "dev_matched")
    assert served("mnli_mm") == dev("mnli", "dev_mismatched")
    assert served("ax") == served("mnli_m")  # the same rows through the MNLI model
    assert served("wnli") == ["1"] * 10

    # Without --predict-test, --force replaces the results and removes the stale test folder.
    evaluate_glue(tiny_run, tasks="rte", glue_dir=glue_dir, protocol="quick", out=out,
                  force=True, quiet=True, device="cpu")
    assert not folder.exists() and "test_predictions" not in json.loads(out.read_text())


def test_predict_test_refusals_come_before_any_fine_tuning(tiny_run, tmp_path, capsys):
    glue_dir = write_glue_dir(tmp_path / "glue", n_train=8, n_dev=4)
    out = tmp_path / "r" / "glue.json"

    def refused(extra, message):
        capsys.readouterr()
        argv = ["eval", "glue", "--run", str(tiny_run), "--protocol", "quick", "--out",
                str(out), *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("cram eval: error: ") and message in err, err
        assert len(err.splitlines()) == 1
        assert not out.parent.exists()

    glue = ["--glue-dir", str(glue_dir)]
    refused([*glue, "--tasks", "rte", "--predict-test"],
            "has no test file of the tasks scored (looked for RTE/test.tsv)")
    refused([*glue, "--tasks", "ax"], "the diagnostic set has no labels to score")
    refused([*glue, "--tasks", "ax", "--predict-test"], "lacks diagnostic/diagnostic.tsv")
    refused(["--tasks", "rte", "--predict-test"], "pass --glue-dir")
    (glue_dir / "MNLI" / "test_matched.tsv").write_text("index\tsentence1\tsentence2\n0\ta\tb\n")
    refused([*glue, "--tasks", "mnli", "--predict-test"],
            "MNLI/test_matched.tsv has columns [index, sentence1, sentence2], not those of "
            "GLUE's MNLI-m.tsv test file")
    write_test_file(glue_dir, TEST_SETS["rte"], [("A cat sat.", "It sat.")])
    write_test_file(glue_dir, TEST_SETS["wnli"], [("A cat sat.", "It sat.")])
    refused([*glue, "--tasks", "rte", "--predict-test"],
            "has WNLI/test.tsv but not WNLI/train.tsv")
