"""Every GLUE folder layout parses with the right columns; bad rows are counted, not dropped."""

from __future__ import annotations

import numpy as np
import pytest

from crambench.errors import UserError
from data_prep.hub import hub_unreachable
from glue_eval import TASKS, evaluate_glue, read_split
from glue_eval.data import check_hub, warn_malformed
from glue_eval.evaluate import check_glue_dir, parse_tasks

T = "\t"
MNLI_TRAIN_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                     "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER.replace("label1", "label1 label2 label3 label4 label5")


def _mnli_row(i, s1, s2, gold, labels=1):
    return T.join([str(i), "31193", f"{i}n", "government", "( x )", "( y )", "(ROOT x)",
                   "(ROOT y)", s1, s2, *([gold] * labels), gold])


# Tiny files in each task's real layout: (folder, file, text, expected a, b, labels).
LAYOUTS = {
    "cola": ("CoLA", "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
             "gj04\t0\t*\tThe \"sailors rode.\n"
             "cj99\t1\t\tHe said \"hi.\n",
             ["The sailors rode the breeze clear of the rocks.", "The \"sailors rode.",
              "He said \"hi."], None, [1, 0, 1]),
    "sst2": ("SST-2", "sentence\tlabel\nit 's a charming journey . \t1\n"
             "\" bleak and desperate \t0\n",
             ["it 's a charming journey . ", "\" bleak and desperate "], None, [1, 0]),
    "mrpc": ("MRPC", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
             "1\t1355540\t1355592\tHe said the pie business doesn't fit.\t\"The pie business "
             "does not fit.\n0\t2029631\t2029565\tA \"quoted\" one.\tAnother one.\n",
             ["He said the pie business doesn't fit.", "A \"quoted\" one."],
             ["\"The pie business does not fit.", "Another one."], [1, 0]),
    "stsb": ("STS-B", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
             "sentence2\tscore\n0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\t"
             "A man is dancing.\tA man dances.\t5.000\n1\tmain-news\theadlines\t2013\t0002\t"
             "none\tnone\tA child rides.\tA \"child\" rides a horse.\t2.750\n",
             ["A man is dancing.", "A child rides."],
             ["A man dances.", "A \"child\" rides a horse."],
             [5.0, 2.75]),
    "qqp": ("QQP", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
            "0\t1\t2\tWhat is \"AI\"?\tWhat's AI?\t1\n1\t3\t4\tHow do I cook?\tWhy cook?\t0\n",
            ["What is \"AI\"?", "How do I cook?"], ["What's AI?", "Why cook?"], [1, 0]),
    "qnli": ("QNLI", "index\tquestion\tsentence\tlabel\n0\tWho wrote it?\tShe wrote it.\t"
             "entailment\n1\tWhen?\tNever \"then\".\tnot_entailment\n",
             ["Who wrote it?", "When?"], ["She wrote it.", "Never \"then\"."], [0, 1]),
    "rte": ("RTE", "index\tsentence1\tsentence2\tlabel\n0\tNo weapons found.\tWeapons found.\t"
            "not_entailment\n1\tA pope died.\tThe pope died.\tentailment\n",
            ["No weapons found.", "A pope died."], ["Weapons found.", "The pope died."], [1, 0]),
    "wnli": ("WNLI", "index\tsentence1\tsentence2\tlabel\n0\tI put the cake in the box.\t"
             "The box is big.\t1\n1\tJo hit Al.\tAl hit Jo.\t0\n",
             ["I put the cake in the box.", "Jo hit Al."], ["The box is big.", "Al hit Jo."],
             [1, 0]),
}


def _write(root, folder, split, text):
    path = root / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("task", sorted(LAYOUTS))
def test_each_layout_reads_the_right_columns(tmp_path, task):
    folder, text, want_a, want_b, want_labels = LAYOUTS[task]
    _write(tmp_path, folder, "dev", text)
    split = read_split(tmp_path, task, "dev")
    assert split.text_a == want_a
    assert split.text_b == want_b
    assert split.labels.tolist() == want_labels
    assert split.malformed == 0
    assert split.labels.dtype == (np.float32 if task == "stsb" else np.int64)


def test_mnli_train_and_dev_widths_and_label_order(tmp_path):
    # Train has one annotator label, dev five; gold_label is the last column in both.
    _write(tmp_path, "MNLI", "train", MNLI_TRAIN_HEADER.replace(" ", T) + "\n"
           + _mnli_row(0, "A \"man\" sits.", "A man sits.", "entailment") + "\n"
           + _mnli_row(1, "It rains.", "It is dry.", "contradiction") + "\n")
    _write(tmp_path, "MNLI", "dev_matched", MNLI_DEV_HEADER.replace(" ", T) + "\n"
           + _mnli_row(0, "Dogs run.", "Animals move.", "neutral", labels=5) + "\n")
    _write(tmp_path, "MNLI", "dev_mismatched", MNLI_DEV_HEADER.replace(" ", T) + "\n"
           + _mnli_row(0, "Cats nap.", "Cats sleep.", "entailment", labels=5) + "\n"
           + _mnli_row(1, "Too few fields.", "x", "neutral", labels=2) + "\n")
    train = read_split(tmp_path, "mnli", "train")
    assert train.text_a == ["A \"man\" sits.", "It rains."]
    assert train.labels.tolist() == [0, 2]  # Hub order: entailment, neutral, contradiction
    assert read_split(tmp_path, "mnli", "dev_matched").labels.tolist() == [1]
    mm = read_split(tmp_path, "mnli", "dev_mismatched")
    assert (len(mm), mm.malformed) == (1, 1)
    assert "line 3: 13 fields, expected 16" in mm.first_malformed
    with pytest.raises(UserError, match="no split 'dev'"):
        read_split(tmp_path, "mnli", "dev")


def test_malformed_rows_are_counted_and_warned(tmp_path, capsys):
    _write(tmp_path, "QQP", "dev", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
           "0\t1\t2\tGood?\tFine?\t1\n"
           "1\t3\t4\tA question split\nacross lines?\tOther?\t0\n"  # broken row: two bad lines
           "2\t5\t6\tBad label?\tYes\tmaybe\n"
           "3\t7\t8\tLast?\tFirst?\t0\n")
    split = read_split(tmp_path, "qqp", "dev")
    assert split.labels.tolist() == [1, 0]
    assert split.malformed == 3
    assert "line 3: 4 fields, expected 6" in split.first_malformed
    warn_malformed(split)  # the harness's own one-line warning, not a Python UserWarning
    assert capsys.readouterr().err == (
        f"cram eval: warning: qqp dev: skipped 3 of 5 rows that do not parse; first: "
        f"{tmp_path / 'QQP' / 'dev.tsv'} line 3: 4 fields, expected 6\n")
    _write(tmp_path, "STS-B", "dev", LAYOUTS["stsb"][1].replace("2.750", "n/a"))
    assert read_split(tmp_path, "stsb", "dev").malformed == 1


@pytest.mark.parametrize("task", sorted(LAYOUTS))
def test_a_split_where_no_row_parses_is_an_error_naming_the_file(tmp_path, task):
    """Every row with an extra trailing tab (3 fields instead of SST-2's 2): an error that
    names the file and the field count, for every task's layout, train or dev."""
    folder, text, *_ = LAYOUTS[task]
    lines = text.splitlines()
    header = [] if task == "cola" else lines[:1]
    rows = lines[len(header):]
    _write(tmp_path, folder, "train", "\n".join(header + [r + "\t" for r in rows]) + "\n")
    width = len(rows[0].split("\t"))
    with pytest.raises(UserError) as err:
        read_split(tmp_path, task, "train")
    path = tmp_path / folder / "train.tsv"
    assert str(err.value) == (f"{path}: no usable row: its {len(rows)} rows are tab-separated "
                              f"into {len(rows)} with {width + 1} fields; task {task} expects "
                              f"{width}")
    _write(tmp_path, folder, "dev", "\n".join(header) + "\n")  # a header and nothing else
    with pytest.raises(UserError, match=f"dev.tsv has no rows \\(task {task}\\)"):
        read_split(tmp_path, task, "dev")


def test_a_split_whose_labels_never_parse_names_the_first_bad_row(tmp_path):
    _write(tmp_path, "RTE", "dev", "index\tsentence1\tsentence2\tlabel\n"
           "0\tA.\tB.\tyes\n1\tC.\tD.\tno\n")
    with pytest.raises(UserError, match=r"RTE/dev.tsv: no usable row: all 2 rows are malformed "
                                        r"\(first: line 2: label 'yes' not in "):
        read_split(tmp_path, "rte", "dev")


def test_missing_files_and_unknown_tasks_are_user_errors(tmp_path):
    _write(tmp_path, "RTE", "train", LAYOUTS["rte"][1])
    with pytest.raises(UserError, match="lacks RTE/dev.tsv"):
        read_split(tmp_path, "rte", "dev")
    with pytest.raises(UserError, match=r"lacks RTE/dev\.tsv, CoLA/train\.tsv, CoLA/dev\.tsv"):
        check_glue_dir(tmp_path, ["rte", "cola"])
    with pytest.raises(UserError, match="unknown GLUE task"):
        read_split(tmp_path, "colaa", "dev")
    with pytest.raises(UserError, match="unknown GLUE task.*boolq"):
        parse_tasks("cola,boolq")
    assert parse_tasks("RTE, cola") == ["cola", "rte"]
    assert parse_tasks("rte,") == ["rte"]
    with pytest.raises(UserError, match="no GLUE task given; known: cola, "):
        parse_tasks(" , ")
    assert parse_tasks("all") == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
    _write(tmp_path, "SST-2", "dev", "text\tlabel\nfine\t1\n")
    with pytest.raises(UserError, match="no column 'sentence'"):
        read_split(tmp_path, "sst2", "dev")
    (tmp_path / "SST-2" / "dev.tsv").write_bytes(b"sentence\tlabel\n\xff\xfe\x00\t1\n")
    with pytest.raises(UserError, match="SST-2/dev.tsv is not UTF-8 text"):
        read_split(tmp_path, "sst2", "dev")


# Row counts from ../shared/data/MANIFEST.md (header excluded).
SHARED_ROWS = {("cola", "train"): 8551, ("cola", "dev"): 1043, ("sst2", "train"): 67349,
               ("sst2", "dev"): 872, ("mrpc", "train"): 3668, ("mrpc", "dev"): 408,
               ("stsb", "train"): 5749, ("stsb", "dev"): 1500, ("rte", "train"): 2490,
               ("rte", "dev"): 277}


@pytest.mark.parametrize("task,split", sorted(SHARED_ROWS))
def test_real_glue_files_parse_whole(shared_data, task, split):
    parsed = read_split(shared_data / "glue", task, split)
    assert (len(parsed), parsed.malformed) == (SHARED_ROWS[task, split], 0)
    if TASKS[task].regression:
        assert parsed.labels.min() >= 0.0 and parsed.labels.max() <= 5.0
    else:
        assert set(parsed.labels.tolist()) == {0, 1}
    if task == "mrpc" and split == "dev":
        # The unbalanced quote of the original file stays in the text (QUOTE_NONE).
        assert parsed.text_b[0] == "\"The foodservice pie business does not fit our " \
                                   "long-term growth strategy."


def test_hub_rows_map_to_the_same_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"premise": ["a", "b", "c"],
                                           "hypothesis": ["x", "y", "z"],
                                           "label": [2, -1, 0], "idx": [0, 1, 2]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    split = read_split(None, "mnli", "dev_mismatched")
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched")]
    assert split.text_a == ["a", "c"] and split.text_b == ["x", "z"]
    assert split.labels.tolist() == [2, 0] and split.malformed == 1

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match="--glue-dir"):
        read_split(None, "cola", "train")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_dict(
        {"sentence": ["a"], "label": [-1], "idx": [0]}))
    with pytest.raises(UserError, match="nyu-mll/glue/sst2 train has no labelled rows"):
        read_split(None, "sst2", "train")


def test_an_unreachable_hub_fails_at_once_without_trying_datasets(tiny_run, monkeypatch):
    """Offline, `cram eval glue` without --glue-dir stops after one refused connect, before
    the model is loaded, instead of after the datasets library's retries."""
    datasets = pytest.importorskip("datasets")

    def must_not_run(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called")

    monkeypatch.setattr(datasets, "load_dataset", must_not_run)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    with pytest.raises(UserError) as err:
        evaluate_glue(tiny_run, tasks="rte", protocol="quick", out=tiny_run / "hub.json")
    assert str(err.value).startswith("cannot reach the Hugging Face Hub for nyu-mll/glue "
                                     "(cannot connect to 127.0.0.1: ")
    assert str(err.value).endswith("pass --glue-dir with a local GLUE folder, or set "
                                   "HF_HUB_OFFLINE=1 to use a copy in the datasets cache")
    assert not (tiny_run / "hub.json").exists()
    # With the offline switch set, the datasets cache is read (no network, so no retries).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"
    check_hub()  # the cache may hold GLUE: datasets is asked, without the network


def test_run_dir_errors_name_what_is_wrong(tmp_path):
    from glue_eval.encoder import final_dir

    with pytest.raises(UserError, match="run dir .*nowhere does not exist"):
        final_dir(tmp_path / "nowhere")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="run dir .*summary.json is not a folder"):
        final_dir(tmp_path / "summary.json")
    with pytest.raises(UserError, match="has no final/model.safetensors"):
        final_dir(tmp_path)
