"""GLUE test sets and the files the GLUE server (gluebenchmark.com) takes for them.

The test files carry no labels; a submission is one `index\\tprediction` TSV per test set, zipped
at the top level of `submission.zip`. Labels are spelled as in the task files (the server's
spelling: `0`/`1`, `entailment`/`not_entailment`, `entailment`/`neutral`/`contradiction`), STS-B
scores are clipped to the scale [0, 5]. The diagnostic set (AX) is predicted by the MNLI model,
as GLUE prescribes.

WNLI is not fine-tuned by the benchmark's protocol (its dev set is adversarial to train-set
memorisation). Its file predicts the majority class of WNLI's train set for every row, as
BERT's GLUE submission did (Devlin et al. 2019, footnote 12: "we always predicted the majority
class"); in GLUE's release that is 0 (not entailment), 65.1% on the test set.

Layouts are those of GLUE's own files (download_glue_data.py): every test file has a header
row, an index column (`id` in QQP), the task's text columns and no label column.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crambench.errors import UserError
from glue_eval.tasks import TASKS

AX = "ax"  # GLUE's diagnostic set: in --tasks, it stands for MNLI, whose model predicts it
STSB_RANGE = (0.0, 5.0)  # STS-B similarity scale; the server rejects nothing, but scores
# outside it cannot be right and GLUE submissions clip them
SUBMISSION = "submission.zip"
# A fixed timestamp inside the zip makes equal predictions give an equal sha256.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # a GLUE test set, not a pytest class
    name: str  # "cola", ..., "mnli_m", "mnli_mm", "ax": key in results and in --tasks (ax)
    server_file: str  # file name the GLUE server expects
    task: str  # the task whose fine-tuned model predicts it
    path: str  # in the GLUE folder
    columns: tuple[str, ...]  # the header row, as GLUE ships the file
    index: str  # column with the row index the server matches predictions by
    text_a: str
    text_b: str | None = None

    @property
    def majority_class(self) -> bool:
        """Predicted from the train set's label counts instead of a fine-tuned model."""
        return self.task == "wnli"


_PAIR = ("index", "sentence1", "sentence2")
_MNLI = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
         "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1", "sentence2")

TEST_SETS: dict[str, TestSet] = {
    test.name: test
    for test in [
        TestSet("cola", "CoLA.tsv", "cola", "CoLA/test.tsv", ("index", "sentence"), "index",
                "sentence"),
        TestSet("sst2", "SST-2.tsv", "sst2", "SST-2/test.tsv", ("index", "sentence"), "index",
                "sentence"),
        TestSet("mrpc", "MRPC.tsv", "mrpc", "MRPC/test.tsv",
                ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"), "index",
                "#1 String", "#2 String"),
        TestSet("stsb", "STS-B.tsv", "stsb", "STS-B/test.tsv",
                ("index", "genre", "filename", "year", "old_index", "source1", "source2",
                 "sentence1", "sentence2"), "index", "sentence1", "sentence2"),
        TestSet("qqp", "QQP.tsv", "qqp", "QQP/test.tsv", ("id", "question1", "question2"), "id",
                "question1", "question2"),
        TestSet("mnli_m", "MNLI-m.tsv", "mnli", "MNLI/test_matched.tsv", _MNLI, "index",
                "sentence1", "sentence2"),
        TestSet("mnli_mm", "MNLI-mm.tsv", "mnli", "MNLI/test_mismatched.tsv", _MNLI, "index",
                "sentence1", "sentence2"),
        TestSet("qnli", "QNLI.tsv", "qnli", "QNLI/test.tsv", ("index", "question", "sentence"),
                "index", "question", "sentence"),
        TestSet("rte", "RTE.tsv", "rte", "RTE/test.tsv", _PAIR, "index", "sentence1",
                "sentence2"),
        TestSet("wnli", "WNLI.tsv", "wnli", "WNLI/test.tsv", _PAIR, "index", "sentence1",
                "sentence2"),
        TestSet("ax", "AX.tsv", "mnli", "diagnostic/diagnostic.tsv", _PAIR, "index", "sentence1",
                "sentence2"),
    ]
}


@dataclass
class TestRows:
    """One test file: row i of every list is row i of the file."""

    __test__ = False

    test: TestSet
    index: list[str]
    text_a: list[str]
    text_b: list[str] | None

    def __len__(self) -> int:
        return len(self.index)


def present_test_sets(glue_dir, tasks: list[str]) -> list[TestSet]:
    """The test sets under `glue_dir` that `tasks` can predict: each task's own, AX with MNLI,
    and WNLI whenever its file is there (it needs no fine-tuning)."""
    glue_dir = Path(glue_dir)
    return [test for test in TEST_SETS.values()
            if (test.task in tasks or test.majority_class)
            and (glue_dir / test.path).is_file()]


def read_test_rows(glue_dir, test: TestSet) -> TestRows:
    """Parse one test file. Unlike train and dev rows, a test row that does not parse is an
    error, not a skipped row: the server needs a prediction for every index."""
    path = Path(glue_dir) / test.path
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            rows = [row for row in reader if row and row != [""]]
        except (UnicodeDecodeError, csv.Error) as err:
            raise UserError(f"{path}: not a GLUE TSV file ({err})") from None
    if not rows or tuple(rows[0]) != test.columns:
        found = ", ".join(rows[0]) if rows else "nothing"
        raise UserError(f"{path} has columns [{found}], not those of GLUE's {test.server_file} "
                        f"test file: [{', '.join(test.columns)}]")
    header, rows = rows[0], rows[1:]
    at = {name: header.index(name) for name in (test.index, test.text_a, test.text_b) if name}
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"{path} line {number}: {len(row)} fields, expected {len(header)}")
        if not row[at[test.index]].strip():  # the server could match no prediction to it
            raise UserError(f"{path} line {number}: the {test.index} column is empty; every "
                            "test row needs the index the server matches its prediction by")
    index = [row[at[test.index]] for row in rows]
    if len(set(index)) != len(index):
        raise UserError(f"{path}: the {test.index} column repeats a value; the server matches "
                        "predictions by it")
    return TestRows(test, index, [row[at[test.text_a]] for row in rows],
                    [row[at[test.text_b]] for row in rows] if test.text_b else None)


def read_test_sets(glue_dir, tasks: list[str], *, ax: bool = False) -> dict[str, TestRows]:
    """Test set name -> its rows, for every test file under `glue_dir` that `tasks` predict,
    read and checked now (before any fine-tuning). `ax`: AX was asked for by name, so its file
    must be there. Raises UserError for no GLUE folder, no test file at all, a missing AX file,
    WNLI's test file without its train file (the majority class comes from it) or a file
    whose layout is not GLUE's."""
    if glue_dir is None:
        raise UserError("--predict-test reads the test files of a local GLUE folder: pass "
                        "--glue-dir")
    glue_dir = Path(glue_dir)
    tests = present_test_sets(glue_dir, tasks)
    if ax and AX not in {t.name for t in tests}:
        raise UserError(f"--tasks ax: GLUE folder {glue_dir} lacks {TEST_SETS[AX].path}")
    if not any(t.task in tasks for t in tests):
        expected = ", ".join(t.path for t in TEST_SETS.values() if t.task in tasks)
        raise UserError(f"--predict-test: GLUE folder {glue_dir} has no test file of the "
                        f"tasks scored (looked for {expected})")
    wnli_train = glue_dir / TASKS["wnli"].folder / "train.tsv"
    if any(t.majority_class for t in tests) and not wnli_train.is_file():
        raise UserError(f"--predict-test: GLUE folder {glue_dir} has "
                        f"{TEST_SETS['wnli'].path} but not {TASKS['wnli'].folder}/train.tsv, "
                        "whose majority class WNLI's file predicts")
    return {test.name: read_test_rows(glue_dir, test) for test in tests}


def majority_label(train_labels: np.ndarray, num_labels: int) -> int:
    """The most frequent class id of a train split (ties: the lower id)."""
    return int(np.argmax(np.bincount(train_labels, minlength=num_labels)))


def server_file(rows: TestRows, predictions: np.ndarray) -> str:
    """The TSV the GLUE server takes: `index\\tprediction`, labels spelled as in the task files,
    STS-B scores clipped to [0, 5] and written with 3 decimals."""
    spec = TASKS[rows.test.task]
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} test rows")
    if spec.regression:
        values = [f"{v:.3f}" for v in np.clip(predictions.astype(np.float64), *STSB_RANGE)]
    else:
        values = [spec.labels[int(i)] for i in predictions]
    lines = ["index\tprediction", *(f"{i}\t{v}" for i, v in zip(rows.index, values, strict=True))]
    return "\n".join(lines) + "\n"


def submission_zip(files: dict[str, str]) -> bytes:
    """The server files, at the top level of one zip, in a fixed order and with fixed dates."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()
