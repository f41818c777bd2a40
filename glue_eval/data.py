"""Load a GLUE split, from a local folder of the standard TSV files or from the Hub.

The original GLUE TSVs are not well-formed CSV: sentences contain unbalanced quote characters
(MRPC: `"The foodservice pie business ...`), so they are read with `csv.QUOTE_NONE` and split
on tabs only. MRPC starts with a UTF-8 byte-order mark, removed by reading as `utf-8-sig`.
A row that does not parse (wrong number of fields, a label outside the task's set, a score
that is not a number) is counted and reported in one warning line, never dropped silently; a
split with no usable row at all is an error that names the file and what its rows look like.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crambench.errors import UserError
from data_prep.hub import hub_unreachable, offline_requested
from glue_eval.tasks import TASKS, TaskSpec

HUB_DATASET = "nyu-mll/glue"


@dataclass
class Split:
    """One split of one task. Row i of every array is example i of the split."""

    task: str
    split: str  # "train", "dev", "dev_matched", "dev_mismatched"
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray  # int64 class ids (Hub order), or float32 scores for STS-B
    malformed: int = 0  # rows in the file that could not be parsed
    first_malformed: str = ""  # "line N: why" of the first one, for the warning

    def __len__(self) -> int:
        return len(self.text_a)


def labels_sha256(labels: np.ndarray) -> str:
    """sha256 of a split's labels as scored: their dtype's name, then the values in row order,
    little-endian. The same labels hash the same read from a GLUE folder or from the Hub; a
    copy whose labels differ in one row does not."""
    import hashlib

    values = np.ascontiguousarray(labels, dtype=labels.dtype.newbyteorder("<"))
    return hashlib.sha256(labels.dtype.name.encode() + b"\0" + values.tobytes()).hexdigest()


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown GLUE task {name!r}; known: {', '.join(TASKS)}") from None


def split_names(spec: TaskSpec) -> tuple[str, ...]:
    return ("train", *spec.dev_splits)


def read_split(glue_dir, task: str, split: str) -> Split:
    """Read `split` ("train", "dev", or MNLI's "dev_matched"/"dev_mismatched") of `task`.

    `glue_dir` is the GLUE folder (CoLA/, SST-2/, ...); None loads the Hub dataset instead.
    """
    spec = task_spec(task)
    if split not in split_names(spec):
        names = ", ".join(split_names(spec))
        raise UserError(f"task {task} has no split {split!r}; it has {names}")
    if glue_dir is None:
        return _read_hub(spec, split)
    path = Path(glue_dir) / spec.folder / f"{split}.tsv"
    if not path.is_file():
        raise UserError(f"GLUE folder {glue_dir} lacks {spec.folder}/{split}.tsv (task {task})")
    return _read_tsv(spec, split, path)


def _read_tsv(spec: TaskSpec, split: str, path: Path) -> Split:
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    with handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            rows = list(reader)
        except UnicodeDecodeError as err:  # decoded in blocks: no line number to give
            raise UserError(f"{path} is not UTF-8 text (byte {err.start} of a block)") from None
        except csv.Error as err:  # e.g. a "field" over csv's 128 KiB limit: not a GLUE row
            raise UserError(f"{path}: line {reader.line_num} is not a GLUE TSV row "
                            f"({err})") from None
    first_line = 1
    if spec.has_header:
        if not rows:
            raise UserError(f"{path} is empty; expected a header row")
        header, rows, first_line = rows[0], rows[1:], 2
        columns = {}
        for key in (spec.text_a, spec.text_b, spec.label):
            if key is None:
                continue
            if key not in header:
                raise UserError(f"{path}: header has no column {key!r} (task {spec.name})")
            # MNLI dev has label1..label5 then gold_label: take the last column of that name.
            columns[key] = len(header) - 1 - header[::-1].index(key)
        width = len(header)
        col_a, col_label = columns[spec.text_a], columns[spec.label]
        col_b = columns.get(spec.text_b)
    else:
        col_a, col_b, col_label = spec.text_a, spec.text_b, spec.label
        width = None  # header-less CoLA: the sentence is the last of its 4 fields

    text_a, text_b, labels = [], [], []
    malformed, first_bad, widths = 0, "", Counter()
    need = max(c for c in (col_a, col_b, col_label) if c is not None) + 1
    width = width or need
    for offset, row in enumerate(rows):
        if not row or row == [""]:
            continue  # blank line (e.g. a trailing newline): not a row
        problem = None
        widths[len(row)] += 1
        if len(row) != width:
            problem = f"{len(row)} fields, expected {width}"
        else:
            label, problem = _parse_label(spec, row[col_label])
        if problem:
            malformed += 1
            first_bad = first_bad or f"line {first_line + offset}: {problem}"
            continue
        text_a.append(row[col_a])
        if col_b is not None:
            text_b.append(row[col_b])
        labels.append(label)
    if not text_a:  # fine-tuning on nothing or scoring nothing is never a result
        raise UserError(_no_usable_rows(path, spec, width, malformed, widths, first_bad))
    dtype = np.float32 if spec.regression else np.int64
    return Split(spec.name, split, text_a, text_b if col_b is not None else None,
                 np.asarray(labels, dtype=dtype), malformed, first_bad and f"{path} {first_bad}")


def _no_usable_rows(path: Path, spec: TaskSpec, width: int, malformed: int, widths: Counter,
                    first_bad: str) -> str:
    if not malformed:
        return f"{path} has no rows (task {spec.name})"
    if width not in widths:  # e.g. every row ends in an extra tab
        counts = ", ".join(f"{n} with {w} fields" for w, n in sorted(widths.items()))
        return (f"{path}: no usable row: its {malformed} rows are tab-separated into "
                f"{counts}; task {spec.name} expects {width}")
    return f"{path}: no usable row: all {malformed} rows are malformed (first: {first_bad})"


def _parse_label(spec: TaskSpec, value: str):
    value = value.strip()
    if spec.regression:
        try:
            score = float(value)
        except ValueError:
            return None, f"score {value!r} is not a number"
        return score, None
    if value not in spec.labels:
        return None, f"label {value!r} not in {list(spec.labels)}"
    return spec.labels.index(value), None


def check_hub() -> None:
    """Fail at once when the Hub is out of reach (instead of after the `datasets` retries),
    unless the user asked for the offline cache (HF_HUB_OFFLINE=1), which needs no network."""
    if offline_requested():
        return
    reason = hub_unreachable()
    if reason:
        raise UserError(f"cannot reach the Hugging Face Hub for {HUB_DATASET} ({reason}): pass "
                        "--glue-dir with a local GLUE folder, or set HF_HUB_OFFLINE=1 to use a "
                        "copy in the datasets cache")


def _read_hub(spec: TaskSpec, split: str) -> Split:
    hub_split = "train" if split == "train" else spec.dev_splits[split][0]
    import datasets  # heavy; only needed on this path

    try:
        ds = datasets.load_dataset(HUB_DATASET, spec.hub_config, split=hub_split)
    except Exception as err:  # network, cache and auth errors all mean the same to a user
        raise UserError(
            f"could not load {HUB_DATASET}/{spec.hub_config} ({hub_split}) from the Hugging "
            f"Face Hub: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            " -- pass --glue-dir with a local GLUE folder instead"
        ) from None
    labels = np.asarray(ds["label"], dtype=np.float32 if spec.regression else np.int64)
    keep = np.ones(len(labels), dtype=bool)
    if not spec.regression:
        keep = (labels >= 0) & (labels < spec.num_labels)  # -1 marks unlabelled (test) rows
    text_a = [t for t, k in zip(ds[spec.hub_text_a], keep, strict=True) if k]
    text_b = None
    if spec.hub_text_b:
        text_b = [t for t, k in zip(ds[spec.hub_text_b], keep, strict=True) if k]
    malformed = int((~keep).sum())
    if not text_a:
        raise UserError(f"{HUB_DATASET}/{spec.hub_config} {hub_split} has no labelled rows")
    return Split(spec.name, split, text_a, text_b, labels[keep], malformed,
                 f"{HUB_DATASET}/{spec.hub_config} {hub_split}: rows without a label"
                 if malformed else "")


def warn_malformed(split: Split) -> None:
    """One warning line on stderr, printed under --quiet too: it reports a fault in the input,
    not progress (tqdm.write keeps it clear of any progress bar)."""
    if split.malformed:
        tqdm.write(f"cram eval: warning: {split.task} {split.split}: skipped {split.malformed} "
                   f"of {split.malformed + len(split)} rows that do not parse; first: "
                   f"{split.first_malformed}", file=sys.stderr)
