"""`cram extract` end to end on a small real teacher: the run it writes, its budgets, the round
trip extract -> eval -> submit -> validate, tampering, and every bad input as one line."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch
from conftest import edited_entry, grammar_sentence

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from cramming import pretrain
from cramming.config import config_sha256
from cramming.extract.job import extract, ranking_table
from cramming.weights import load_pretrained
from data_prep import prepare
from glue_eval import evaluate_probes
from leaderboard import submit, validate_entries

pytestmark = pytest.mark.slow  # about 40 s on two cores: a teacher, an extraction, probes

TEACHER_YAML = """
model: {vocab_size: 256, hidden: 32, layers: 2, heads: 2, ffn_hidden: 64, head_hidden: 32}
train: {batch_start: 8, batch_size: 16, val_rows: 64, max_steps: 40}
impl: {threads: 1, micro_batch: 16, log_every: 5}
"""
SPACE = ["layers=1", "hidden=16,32"]  # 4 candidates: 2 widths x 2 ffn
BUDGET_S = 12.0


def _corpus(path, seed, sentence=grammar_sentence):
    rng = random.Random(seed)
    docs = [" ".join(sentence(rng) for _ in range(rng.randint(10, 30))) for _ in range(300)]
    path.write_text("\n\n".join(docs) + "\n")
    return path


def _other_sentence(rng):
    return " ".join(rng.choice(["qux", "zorp", "blick", "fremd", "wugs"]) for _ in range(6)) + "."


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    manifest = prepare([str(_corpus(root / "corpus.txt", 0))], root / "data", vocab_size=256,
                       val_fraction=0.3, quiet=True)
    (root / "teacher.yaml").write_text(TEACHER_YAML)
    pretrain(root / "data", root / "teacher", budget_s=60, preset=root / "teacher.yaml",
             overrides=[f"model.vocab_size={manifest['vocab_size']}"], device="cpu", quiet=True)
    yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def extracted(teacher):
    # The teacher's recipe capped its steps; the candidates train to their deadlines.
    summary = extract(teacher / "teacher", teacher / "data", teacher / "x", budget=BUDGET_S,
                      space=SPACE, device="cpu", overrides=["train.max_steps=null"], quiet=True)
    return teacher / "x", summary


def test_the_extracted_run_is_a_run_with_its_lineage(teacher, extracted):
    run, summary = extracted
    parent = json.loads((teacher / "teacher" / "summary.json").read_text())
    lineage = summary["lineage"]
    assert lineage["stage"] == "extract" and lineage["parent_run"] == "../teacher"
    assert lineage["parent_model_sha256"] == parent["model_sha256"]
    assert lineage["parent_summary_sha256"] == sha256_file(teacher / "teacher" / "summary.json")
    assert lineage["parent_train_elapsed_s"] == parent["train_elapsed_s"]
    assert lineage["stage_budget_s"] == BUDGET_S
    assert summary["train_elapsed_s"] == pytest.approx(parent["train_elapsed_s"]
                                                       + lineage["stage_train_elapsed_s"])
    assert summary["budget_s"] == parent["budget_s"] + BUDGET_S
    # A normal run dir: final/ loads as the chosen shape; config and model hash as recorded.
    cfg, state = load_pretrained(run / "final")
    search = json.loads((run / "search.json").read_text())
    chosen = next(r for r in search["candidates"] if r["name"] == search["chosen"])
    assert (cfg.layers, cfg.heads, cfg.hidden, cfg.ffn_hidden) == \
        (chosen["layers"], chosen["heads"], chosen["hidden"], chosen["ffn"])
    assert summary["model_sha256"] == sha256_file(run / "final" / "model.safetensors")
    assert summary["config_sha256"] == config_sha256(run / "config.yaml")
    assert (run / "final" / "tokenizer.json").read_bytes() == \
        (teacher / "teacher" / "final" / "tokenizer.json").read_bytes()
    record = summary["extracted_from"]
    assert record["teacher_model_sha256"] == parent["model_sha256"]
    assert record["search_sha256"] == sha256_file(run / "search.json")
    assert record["extraction_s"] == lineage["stage_train_elapsed_s"]
    assert not (run / "search").exists() and not list(run.parent.glob(".x.*"))


def test_per_candidate_and_total_budgets_are_respected(extracted):
    run, summary = extracted
    search = json.loads((run / "search.json").read_text())
    budget = search["budget"]
    assert len(search["candidates"]) == 4
    assert budget["search_budget_s"] == BUDGET_S / 2
    assert budget["slot_s"] == pytest.approx(BUDGET_S / 2 / 4, abs=1e-3)
    for row in search["candidates"]:
        assert row["steps"] >= 1, row
        assert 0 < row["train_s"] <= budget["train_window_s"] + 1e-3, row
    assert budget["train_window_s"] * 4 <= budget["search_budget_s"]
    stage = summary["lineage"]["stage_train_elapsed_s"]
    assert budget["search_elapsed_s"] < stage <= BUDGET_S
    # The chosen candidate trained on after the search, on the same clock.
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["elapsed_s"] <= stage
    ranked = sorted(search["candidates"], key=lambda r: r["rank"])
    assert ranked[0]["name"] == search["chosen"] and ranked[0]["w"] is not None
    assert metrics[-1]["step"] == summary["steps"] > ranked[0]["steps"]
    assert summary["stopped_by"] == "budget"


@pytest.fixture(scope="module")
def entry(extracted, tmp_path_factory):
    run, _ = extracted
    evaluate_probes(run, quiet=True, device="cpu")
    path = tmp_path_factory.mktemp("entries") / "x.json"
    submit(run, "x", out=path)
    return path


def _problems(path, run):
    return validate_entries([path], run=run)[str(path)]


def test_round_trip_extract_eval_submit_validate(extracted, entry, capsys):
    run, summary = extracted
    data = json.loads(entry.read_text())
    assert data["lineage"] == summary["lineage"]
    assert data["budget_s"] == summary["budget_s"]
    assert data["train_elapsed_s"] == summary["train_elapsed_s"]
    assert data["extraction"]["search"]["chosen"] == summary["extracted_from"]["chosen"]
    assert _problems(entry, run) == []
    assert main(["leaderboard", "validate", str(entry), "--run", str(run)]) == 0
    assert capsys.readouterr().out == "valid\n"


def _claim_less_time(entry):
    # Shave the extraction off both the total and the lineage: the sums still add up, so
    # only the run dir can tell.
    lineage = entry["lineage"]
    entry["train_elapsed_s"] -= lineage["stage_train_elapsed_s"] - 1.0
    lineage["stage_train_elapsed_s"] = 1.0


def _choose_another(entry):
    search = entry["extraction"]["search"]
    other = next(r for r in search["candidates"] if r["name"] != search["chosen"])
    search["chosen"] = other["name"]


@pytest.mark.parametrize("change, reason", [
    (lambda e: e.update(train_elapsed_s=e["train_elapsed_s"] - 5), "train_elapsed_s "),
    (lambda e: e["lineage"].update(stage_train_elapsed_s=0.5), "train_elapsed_s "),
    (_claim_less_time, "lineage.stage_train_elapsed_s is 1.0 but "),
    (lambda e: e["lineage"].update(parent_train_elapsed_s=1.0,
                                   stage_train_elapsed_s=e["train_elapsed_s"] - 1.0),
     "lineage"),
    (lambda e: e["lineage"].update(parent_model_sha256="b" * 64), "lineage"),
    (lambda e: e.pop("extraction"), "lineage.stage is 'extract' but the entry has no "),
    (_choose_another, "extraction.search.chosen is "),
    (lambda e: e["extraction"]["search"]["candidates"][0].update(val_loss=0.1),
     "candidate "),
    (lambda e: e["extraction"]["search"]["candidates"][-1].update(train_s=1e3),
     "candidate "),
])
def test_tampering_with_lineage_time_or_search_is_rejected(extracted, entry, tmp_path, change,
                                                           reason):
    run, _ = extracted
    problems = _problems(edited_entry(entry, tmp_path, change), run)
    assert any(p.startswith(reason) for p in problems), (reason, problems)


def test_a_changed_teacher_or_search_table_is_rejected(teacher, extracted, entry, tmp_path):
    run, _ = extracted
    shutil.copytree(run, tmp_path / "x")
    search = json.loads((tmp_path / "x" / "search.json").read_text())
    search["candidates"][0]["val_loss"] -= 0.5
    (tmp_path / "x" / "search.json").write_text(json.dumps(search))
    problems = _problems(entry, tmp_path / "x")
    assert any(p.startswith("extraction.search_sha256 ") for p in problems), problems
    with pytest.raises(UserError, match="search.json does not match the search_sha256"):
        submit(tmp_path / "x", "x2", out=tmp_path / "x2.json")
    # The teacher's summary edited after the extraction: its hash no longer matches.
    parent = teacher / "teacher" / "summary.json"
    original = parent.read_text()
    try:
        parent.write_text(original.replace('"budget_s": 60.0', '"budget_s": 6.0'))
        problems = _problems(entry, run)
        assert any(p.startswith("lineage.parent_summary_sha256 ") for p in problems), problems
    finally:
        parent.write_text(original)


def test_the_ranking_table_lists_every_candidate_then_the_teacher(extracted):
    run, summary = extracted
    search = json.loads((run / "search.json").read_text())
    lines = ranking_table(search).splitlines()
    rows = lines[1:-2]
    assert lines[0].split()[:2] == ["rank", "candidate"]
    assert len(rows) == len(search["candidates"]) + 1
    assert rows[0].split()[:2] == ["1", search["chosen"]]
    assert rows[-1].split()[:3] == ["-", "teacher", search["teacher"]["name"]]
    assert " 1.0000 " in rows[-1]
    front = [row["name"] for row in search["candidates"] if row["pareto"]]
    assert lines[-1].endswith("marked *: " + ", ".join(front))


# Bad input: one line, non-zero exit, nothing written.

def _cram_extract(teacher_root, out, *extra):
    return main(["extract", "--teacher", str(teacher_root / "teacher"), "--data",
                 str(teacher_root / "data"), "--out", str(out), "--quiet", *extra])


@pytest.mark.parametrize("extra, message", [
    (["--budget", "10s", "--space", "hidden=64"],
     "--space hidden=64 is larger than the teacher's hidden 32"),
    (["--budget", "10s", "--space", "heads=2", "hidden=31"], "heads 2 do not divide hidden 31"),
    (["--budget", "10s", "--space", "heads=3"], "--space heads=3 is larger than the teacher"),
    (["--budget", "10s", "--space", "layers="], "--space layers= is empty"),
    (["--budget", "0.05s", "--space", "layers=1"], "budget too small: each of the "),
    (["--budget", "10s", "--search-budget", "10s"], "--search-budget 10s leaves nothing"),
])
def test_bad_input_is_one_line_and_writes_nothing(teacher, tmp_path, capsys, extra, message):
    assert _cram_extract(teacher, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("cram extract: error: ") and err.count("\n") == 1
    assert message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("quiet", [True, False])
def test_results_print_always_and_progress_goes_to_stderr_unless_quiet(teacher, tmp_path,
                                                                        capsys, quiet):
    # The one rule of every command: progress lines on stderr (none under --quiet; no bar
    # frames where stderr is not a terminal), the results on stdout either way.
    out = tmp_path / "out"
    assert main(["extract", "--teacher", str(teacher / "teacher"), "--data",
                 str(teacher / "data"), "--out", str(out), "--budget", "4s",
                 *(["--quiet"] if quiet else []), "train.max_steps=null",
                 "--space", "layers=1", "hidden=16"]) == 0
    printed = capsys.readouterr()
    if quiet:
        assert printed.err == ""
    else:
        assert "\r" not in printed.err
        assert "cram extract: chose " in printed.err
    search = json.loads((out / "search.json").read_text())
    assert printed.out.startswith(ranking_table(search) + "\n")
    assert printed.out.splitlines()[-1].startswith(f"cram extract: {out}: {search['chosen']}, ")


def test_budget_too_small_says_how_much_is_needed(teacher, tmp_path, capsys):
    assert _cram_extract(teacher, tmp_path / "out", "--budget", "0.05s") == 2
    err = capsys.readouterr().err
    assert "give --budget " in err and "--search-budget " in err
    needed = err.split("give --budget ")[1].split("s ")[0]
    assert float(needed) > 0.05


def test_teacher_without_final_and_foreign_tokenizer(teacher, tmp_path, capsys):
    shutil.copytree(teacher / "teacher", tmp_path / "unfinished", ignore=shutil.ignore_patterns(
        "final"))
    assert main(["extract", "--teacher", str(tmp_path / "unfinished"), "--data",
                 str(teacher / "data"), "--budget", "10s", "--out", str(tmp_path / "o")]) == 2
    assert "has no final model" in capsys.readouterr().err
    prepare([str(_corpus(tmp_path / "other.txt", 1, _other_sentence))], tmp_path / "other",
            vocab_size=256, val_fraction=0.3, quiet=True)
    assert main(["extract", "--teacher", str(teacher / "teacher"), "--data",
                 str(tmp_path / "other"), "--budget", "10s", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "has a different tokenizer than the teacher" in err and "--tokenizer " in err
    assert not (tmp_path / "o").exists()


def test_the_teacher_cannot_be_rewritten_while_it_is_extracted(teacher, tmp_path, capsys,
                                                               monkeypatch):
    """`cram pretrain --force` on the teacher while extract reads it is refused at once."""
    from cramming.extract import job

    statuses = []

    def check_while_pretraining(*args):
        statuses.append(main(["pretrain", "--data", str(teacher / "data"), "--preset", "tiny",
                              "--budget", "5s", "--out", str(teacher / "teacher"), "--force",
                              "--quiet"]))
        statuses.append(capsys.readouterr().err)
        raise UserError("stop here")

    monkeypatch.setattr(job, "check_tokenizer", check_while_pretraining)
    with pytest.raises(UserError, match="stop here"):
        extract(teacher / "teacher", teacher / "data", tmp_path / "o", budget="10s")
    assert statuses[0] == 2 and "is in use by another command reading it" in statuses[1]
    assert (teacher / "teacher" / "final" / "model.safetensors").is_file()
    assert not (teacher / ".teacher.lock").exists()


def test_site_shows_the_search_and_validate_needs_no_torch(extracted, entry, tmp_path):
    import subprocess
    import sys

    from leaderboard import build_site

    run, _ = extracted
    entries = tmp_path / "entries"
    entries.mkdir()
    shutil.copy(entry, entries / "x.json")
    index = build_site(entries, tmp_path / "site")
    page = index.read_text()
    assert "Extracted models" in page and "extraction-x.svg" in page
    search = json.loads(entry.read_text())["extraction"]["search"]
    for row in search["candidates"]:
        assert row["name"] in page
    svg = (tmp_path / "site" / "extraction-x.svg").read_text()
    assert "Pareto front" in svg and search["chosen"] in svg
    # The validator checks the table with the torch-free ranking code.
    code = ("import sys\nfrom crambench.shell.cli import main\n"
            f"status = main(['leaderboard', 'validate', {str(entry)!r}, '--run', {str(run)!r}])\n"
            "print(status, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split()[-2:] == ["0", "False"], done.stdout + done.stderr
