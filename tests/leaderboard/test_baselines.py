"""Outside models on the leaderboard: a tiny randomly initialised BERT saved here (no download)
scored with `cram eval glue --model` on slices of the real RTE and STS-B files, submitted with
`cram submit --results`, validated against its results, predictions and folder, and built into
a site beside a crammed entry: in the baselines table and the size figure, never ranked. Every
tampered score, hash or file is refused with one line naming the file and the field."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("transformers")

from conftest import edited_entry, glue_slice, save_tiny_bert  # noqa: E402
from test_entries import make_run  # noqa: E402

from crambench.contracts import sha256_file  # noqa: E402
from crambench.shell.cli import main  # noqa: E402
from cramming.rules import OUTSIDE_MODEL_REASON  # noqa: E402
from glue_eval import compute_averages  # noqa: E402
from glue_eval.model_folder import folder_sha256, identity_files  # noqa: E402
from leaderboard import submit, validate_entries  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.train]


@pytest.fixture(scope="module")
def scored(shared_data, tmp_path_factory):
    """(model folder, GLUE slice, results file) of the tiny BERT scored on RTE and STS-B."""
    root = tmp_path_factory.mktemp("baselines")
    model = save_tiny_bert(shared_data, root / "tiny-bert")
    glue = glue_slice(shared_data, root)
    results = root / "outside" / "tiny-bert" / "glue.json"
    assert main(["eval", "glue", "--model", str(model), "--glue-dir", str(glue), "--tasks",
                 "rte,stsb", "--protocol", "quick", "--out", str(results), "--device", "cpu",
                 "--quiet"]) == 0
    return model, glue, results


@pytest.fixture(scope="module")
def entry_file(scored, tmp_path_factory):
    model, _, results = scored
    out = tmp_path_factory.mktemp("entries") / "tiny-bert.json"
    assert main(["submit", "--results", str(results), "--name", "tiny-bert",
                 "--out", str(out)]) == 0
    return out


def _cli_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_submit_writes_an_entry_that_says_what_it_is(scored, entry_file):
    model, _, results = scored
    entry = json.loads(entry_file.read_text())
    recorded = json.loads(results.read_text())
    assert entry["format"] == "cram-entry/2" and entry["name"] == "tiny-bert"
    assert (entry["track"], entry["track_reason"]) == ("open", OUTSIDE_MODEL_REASON)
    # No run: no budget, hardware, training, data or loss-curve claim at all.
    for key in ("budget_s", "train_elapsed_s", "hardware", "training", "data", "loss_curve",
                "model", "stopped_by"):
        assert key not in entry
    assert entry["results"] == recorded and entry["results_file"] == "glue.json"
    assert entry["outside_model"] == recorded["outside_model"]
    assert entry["outside_model"]["files"] == identity_files(model)
    assert entry["hashes"] == {"folder_sha256": folder_sha256(identity_files(model)),
                               "model_sha256": sha256_file(model / "model.safetensors"),
                               "eval_sha256": sha256_file(results)}
    assert entry["date"] == recorded["finished_utc"][:10]
    assert entry["results"]["protocol"]["name"] == "quick"


def test_validate_checks_results_predictions_scores_and_folder(scored, entry_file, capsys):
    model, glue, results = scored
    assert validate_entries([entry_file]) == {str(entry_file): []}
    assert validate_entries([entry_file], results=results, glue_dir=glue, model=model) == \
        {str(entry_file): []}
    assert main(["leaderboard", "validate", str(entry_file), "--results", str(results),
                 "--glue-dir", str(glue), "--model", str(model)]) == 0
    assert capsys.readouterr().out == "valid\n"


def _tampered(entry_file, tmp_path, change) -> str:
    return str(edited_entry(entry_file, tmp_path, change))


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e["results"]["tasks"]["rte"]["metrics"].update(accuracy=99.0),
     "results.avg_cramming.value is"),
    (lambda e: e["hashes"].update(model_sha256="0" * 64),
     "hashes.model_sha256 differs from results.model_sha256"),
    (lambda e: e["outside_model"].update(folder_sha256="0" * 64),
     "outside_model.folder_sha256 000000000000... is not the sha256 of outside_model.files"),
    (lambda e: e.update(track_reason="outside model"), "track 'open' ('outside model')"),
    (lambda e: e["results"]["protocol"].update(rankable=True),
     "results.protocol.rankable is true"),
    (lambda e: e.update(budget_s=60.0), "entry: Additional properties are not allowed"),
    (lambda e: e["outside_model"].update(params=10**9),
     "outside_model differs from results.outside_model at params"),
])
def test_validate_rejects_a_tampered_entry_alone(entry_file, tmp_path, change, message):
    (problems,) = validate_entries([_tampered(entry_file, tmp_path, change)]).values()
    assert any(message in problem for problem in problems), problems


def test_validate_rejects_scores_its_predictions_do_not_give(scored, entry_file, tmp_path):
    model, glue, results = scored
    entry = json.loads(entry_file.read_text())
    stated = entry["results"]["tasks"]["stsb"]["metrics"]["pearson"]

    def forge(e):  # a score, its seed, spread and both averages moved together
        task = e["results"]["tasks"]["stsb"]
        task["metrics"]["pearson"] = stated + 10
        (run,) = task["seeds"]
        run["metrics"]["pearson"] += 10
        for key in ("mean", "min", "max"):
            task["spread"]["pearson"][key] += 10
        e["results"].update(compute_averages(
            {t: s["metrics"] for t, s in e["results"]["tasks"].items()}))

    forged = _tampered(entry_file, tmp_path, forge)
    assert validate_entries([forged]) == {forged: []}  # alone, nothing gives it away
    (problems,) = validate_entries([forged], results=results, glue_dir=glue).values()
    assert any(p.startswith(f"results differ from {results} at tasks.stsb.metrics.pearson")
               for p in problems), problems
    assert any(p.startswith("results.tasks.stsb.seeds[0].metrics.pearson is") and "saved "
               "predictions score" in p for p in problems), problems


def test_validate_with_the_folder_names_the_changed_file(scored, entry_file, tmp_path):
    model, _, _ = scored
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    config = json.loads((copy / "config.json").read_text())
    config["hidden_dropout_prob"] = 0.5
    (copy / "config.json").write_text(json.dumps(config))
    (problems,) = validate_entries([entry_file], model=copy).values()
    assert problems == [f"outside_model.files do not match the model folder {copy}: "
                        "config.json changed"]


def test_submit_refuses_bad_results_in_one_line_and_writes_nothing(scored, tmp_path, capsys):
    model, _, results = scored
    out = tmp_path / "entries" / "x.json"
    base = ["submit", "--name", "x", "--out", str(out)]

    def edited_results(name, change):
        folder = tmp_path / name
        shutil.copytree(results.parent, folder)
        record = json.loads((folder / "glue.json").read_text())
        change(record)
        (folder / "glue.json").write_text(json.dumps(record))
        return folder / "glue.json"

    # A tampered score: it is not what its seeds give, and the averages no longer add up.
    path = edited_results("score", lambda r: r["tasks"]["rte"]["metrics"].update(accuracy=99))
    err = _cli_error([*base, "--results", str(path)], capsys)
    assert err.startswith(f"cram submit: error: {path} does not make a valid entry: "
                          "results.tasks.rte.metrics.accuracy is 99")
    # A tampered model hash.
    path = edited_results("hash", lambda r: r.update(model_sha256="1" * 64))
    err = _cli_error([*base, "--results", str(path)], capsys)
    assert f"{path} does not make a valid entry: results.model_sha256 111111111111..." in err
    # A prediction file that is not the one scored.
    path = edited_results("preds", lambda r: None)
    (item,) = json.loads(path.read_text())["tasks"]["rte"]["seeds"][0]["predictions"]
    predictions = path.parent / item["file"]
    predictions.write_text(predictions.read_text() + "\n")
    err = _cli_error([*base, "--results", str(path)], capsys)
    assert f"rte dev predictions {predictions} do not match their sha256" in err
    # The model folder changed since it was scored (here: its tokenizer).
    copy = tmp_path / "changed-model"
    shutil.copytree(model, copy)
    (copy / "tokenizer_config.json").write_text("{}")
    err = _cli_error([*base, "--results", str(results), "--model", str(copy)], capsys)
    assert err == (f"cram submit: error: {results} does not make a valid entry: "
                   f"outside_model.files do not match the model folder {copy}: "
                   "tokenizer_config.json changed")
    # Results that are not an outside model's: a trained run's.
    run = make_run(tmp_path, name="run")
    err = _cli_error([*base, "--results", str(run / "eval" / "glue.json")], capsys)
    assert "is not an outside model's results (it has no outside_model record)" in err
    # No model folder where the results say, and none given.
    path = edited_results("moved", lambda r: r["outside_model"].update(source="gone/model"))
    err = _cli_error([*base, "--results", str(path)], capsys)
    assert "model folder gone/model (outside_model.source in" in err and "--model PATH" in err
    err = _cli_error([*base, "--run", str(run), "--model", str(model)], capsys)
    assert "--model goes with --results" in err
    assert not out.parent.exists()


def test_entry_kinds_keep_to_their_own_checks(scored, entry_file, tmp_path):
    model, _, results = scored
    run = make_run(tmp_path, name="run")
    crammed = tmp_path / "crammed.json"
    submit(run, "crammed", out=crammed)
    (problems,) = validate_entries([crammed], results=results).values()
    assert problems and "--results and --model are for an outside model's entry" in problems[0]
    (problems,) = validate_entries([entry_file], run=run).values()
    assert problems and "is an outside model's entry, with no run" in problems[0]


def test_site_shows_the_model_as_a_baseline_never_ranked(scored, entry_file, tmp_path,
                                                         capsys):
    model, glue, results = scored
    entries = tmp_path / "entries"
    entries.mkdir()
    shutil.copy(entry_file, entries / "tiny-bert.json")
    run = make_run(tmp_path, name="a6000-run")
    submit(run, "crammed-a6000", out=entries / "crammed-a6000.json")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "tiny-bert").symlink_to(results.parent)
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "site"), "--outside", str(outside), "--glue-dir",
                 str(glue)]) == 0
    err = capsys.readouterr().err
    assert "tiny-bert.json" not in err  # verified: its scores are its saved predictions'
    page = (tmp_path / "site" / "index.html").read_text()
    ranked = page.split("<h2>Ranked track</h2>")[1].split("<h2>Open track</h2>")[0]
    open_ = page.split("<h2>Open track</h2>")[1].split("<h2>Multi-GPU</h2>")[0]
    baselines = page.split("<h2>Baselines (outside models)</h2>")[1].split("</section>")[0]
    assert "tiny-bert" not in ranked + open_
    assert "<strong>tiny-bert</strong>" in baselines and str(model) in baselines
    assert OUTSIDE_MODEL_REASON in baselines and "scores recomputed from its saved" in baselines
    assert json.loads(entry_file.read_text())["hashes"]["folder_sha256"][:12] in baselines
    rte = json.loads(results.read_text())["tasks"]["rte"]["metrics"]["accuracy"]
    assert f"<td class=num>{rte:.1f}</td>" in baselines
    assert "<footer>2 entries · " in page
    assert "tiny-bert" in (tmp_path / "site" / "glue_vs_size.svg").read_text()
    assert "tiny-bert" not in (tmp_path / "site" / "glue_vs_budget.svg").read_text()
    # Without its results folder the entry is still a baseline, marked unverified.
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "site")]) == 0
    assert ("tiny-bert.json: unverified: not checked against its results: no --outside "
            "folder given") in capsys.readouterr().err
    page = (tmp_path / "site" / "index.html").read_text()
    baselines = page.split("<h2>Baselines (outside models)</h2>")[1].split("</section>")[0]
    assert "<strong>tiny-bert</strong>" in baselines and "unverified: not checked" in baselines
    unverified = page.split("Unverified entries (not ranked)")[1].split("</section>")[0]
    assert "tiny-bert" not in unverified
