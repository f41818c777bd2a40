"""The GLUE task table: one `TaskSpec` per task, and the two fine-tuning protocols.

Everything task-specific lives in this table (where the text and the label sit in each file,
the label set, the metrics); `finetune.py` holds the one recipe every task shares.

Label ids follow the Hub dataset `nyu-mll/glue` (its `ClassLabel` order), so a model scored on
the local TSV files and one scored on the Hub data predict the same ids. `labels` lists each
class as it is spelled in the GLUE TSV files, in id order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str  # lowercase key used everywhere: results, --tasks, file names
    folder: str  # folder in the standard GLUE layout (download_glue_data.py)
    hub_config: str  # config name in the Hub dataset nyu-mll/glue
    # Text and label columns. Files with a header are read by column name (MNLI's train and
    # dev files differ in width); header-less CoLA is read by position.
    text_a: str | int
    text_b: str | int | None
    label: str | int
    has_header: bool
    # Hub column names for the two texts (the label column is always "label").
    hub_text_a: str
    hub_text_b: str | None
    labels: tuple[str, ...]  # TSV spelling of each class, in Hub id order; () for regression
    metrics: tuple[str, ...]  # metric names as computed on one dev split
    # dev split name in the GLUE folder -> (Hub split name, suffix added to metric keys)
    dev_splits: dict[str, tuple[str, str]]
    in_protocol: bool = True  # WNLI is excluded by the cramming protocol (rules v1, item 4)

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1

    @property
    def metric_keys(self) -> tuple[str, ...]:
        """The metric keys in results, e.g. mnli -> accuracy_m, accuracy_mm."""
        return tuple(m + sfx for _, sfx in self.dev_splits.values() for m in self.metrics)


_DEV = {"dev": ("validation", "")}
_NLI_2 = ("entailment", "not_entailment")

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        # CoLA columns: source code, label, original annotation (blank), sentence.
        TaskSpec("cola", "CoLA", "cola", 3, None, 1, False, "sentence", None,
                 ("0", "1"), ("mcc",), _DEV),
        TaskSpec("sst2", "SST-2", "sst2", "sentence", None, "label", True, "sentence", None,
                 ("0", "1"), ("accuracy",), _DEV),
        TaskSpec("mrpc", "MRPC", "mrpc", "#1 String", "#2 String", "Quality", True,
                 "sentence1", "sentence2", ("0", "1"), ("f1", "accuracy"), _DEV),
        TaskSpec("stsb", "STS-B", "stsb", "sentence1", "sentence2", "score", True,
                 "sentence1", "sentence2", (), ("pearson", "spearman"), _DEV),
        TaskSpec("qqp", "QQP", "qqp", "question1", "question2", "is_duplicate", True,
                 "question1", "question2", ("0", "1"), ("f1", "accuracy"), _DEV),
        TaskSpec("mnli", "MNLI", "mnli", "sentence1", "sentence2", "gold_label", True,
                 "premise", "hypothesis", ("entailment", "neutral", "contradiction"),
                 ("accuracy",),
                 {"dev_matched": ("validation_matched", "_m"),
                  "dev_mismatched": ("validation_mismatched", "_mm")}),
        TaskSpec("qnli", "QNLI", "qnli", "question", "sentence", "label", True,
                 "question", "sentence", _NLI_2, ("accuracy",), _DEV),
        TaskSpec("rte", "RTE", "rte", "sentence1", "sentence2", "label", True,
                 "sentence1", "sentence2", _NLI_2, ("accuracy",), _DEV),
        # WNLI: 1 = entailment; the Hub orders (not_entailment, entailment) the same way.
        TaskSpec("wnli", "WNLI", "wnli", "sentence1", "sentence2", "label", True,
                 "sentence1", "sentence2", ("0", "1"), ("accuracy",), _DEV,
                 in_protocol=False),
    ]
}

PROTOCOL_TASKS = tuple(name for name, spec in TASKS.items() if spec.in_protocol)


@dataclass(frozen=True)
class Protocol:
    name: str
    rankable: bool
    epochs: int
    batch_size: int
    lr: float
    warmup_fraction: float
    dropout: float
    max_length: int  # tokens, including [CLS] and the [SEP]s
    max_train_rows: int | None  # None: the whole train split
    max_dev_rows: int | None
    weight_decay: float
    schedule: str = "cosine"

    def record(self, seeds, pooling: str = "first-token") -> dict:
        """The protocol as stored in results (contract 3); `seeds`: the fine-tuning seeds, in
        the order they ran; `pooling`: what the classifier's head reads (the model's choice,
        `model.pooler`; not part of the ranked recipe)."""
        return {
            "name": self.name, "rankable": self.rankable, "epochs": self.epochs,
            "batch_size": self.batch_size, "lr": self.lr,
            "warmup_fraction": self.warmup_fraction, "schedule": self.schedule,
            "dropout": self.dropout, "max_length": self.max_length, "pooling": pooling,
            "max_train_rows": self.max_train_rows, "max_dev_rows": self.max_dev_rows,
            "weight_decay": self.weight_decay, "seeds": [int(seed) for seed in seeds],
        }


PROTOCOLS: dict[str, Protocol] = {
    # The cramming paper's GLUE recipe (Geiping & Goldstein 2022, sec. 4; rules v1 item 4):
    # 5 epochs, batch 16, lr 4e-5, cosine decay, 10% warm-up, dropout 0.1, length 128.
    # Weight decay 0.01 is the BERT fine-tuning default (Devlin et al. 2019, appendix A).
    "cramming": Protocol("cramming", True, epochs=5, batch_size=16, lr=4e-5,
                         warmup_fraction=0.1, dropout=0.1, max_length=128,
                         max_train_rows=None, max_dev_rows=None, weight_decay=0.01),
    # CPU smoke runs and the demo: same recipe, a fraction of the data and epochs, never ranked.
    # ~150 updates instead of thousands: at lr 4e-5 or 1e-4 a tiny model stays at the majority
    # class; 3e-4 lets it move (measured on a 5-minute tiny run, SST-2 dev: 50.9% at 1e-4 and
    # 2 epochs, 56.9% at 3e-4, 60.2% at 3e-4 and 4 epochs; from random weights ~50% in all).
    "quick": Protocol("quick", False, epochs=3, batch_size=16, lr=3e-4,
                      warmup_fraction=0.1, dropout=0.1, max_length=128,
                      max_train_rows=800, max_dev_rows=2000, weight_decay=0.01),
}
