"""`cram leaderboard compare`: the paired bootstrap and its weighted metrics.

The metrics are checked against `glue_eval.compute_metrics` (all weights 1, and integer weights
against the sample repeated by them); the interval against the binomial quantiles it must
approach on a hand-made case; the command on results files written in both formats over real
GLUE dev labels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from crambench.contracts import sha256_file
from crambench.errors import UserError
from crambench.shell.cli import main
from glue_eval import compute_metrics, labels_sha256, read_split
from glue_eval.results import format_predictions
from leaderboard import bootstrap
from leaderboard.compare import compare_results

CASES = [  # (task, metric, labels, predictions) with ties, several classes, constant inputs
    ("rte", "accuracy", [0, 1, 1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 1, 0, 1]),
    ("mrpc", "f1", [1, 1, 0, 1, 0, 0, 1, 1], [1, 0, 0, 1, 1, 0, 1, 1]),
    ("mrpc", "f1", [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]),  # nothing predicted positive: 0
    ("cola", "mcc", [1, 0, 1, 1, 0, 1, 0, 0, 1], [1, 0, 0, 1, 0, 1, 1, 0, 1]),
    ("cola", "mcc", [1, 0, 1, 1, 0], [1, 1, 1, 1, 1]),  # constant predictions: 0
    ("mnli", "accuracy", [0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 1, 1, 0, 2]),
    ("stsb", "pearson", [0.0, 1.5, 2.5, 2.5, 4.0, 5.0], [0.3, 1.1, 2.9, 2.2, 4.4, 4.1]),
    ("stsb", "spearman", [0.0, 1.5, 2.5, 2.5, 4.0, 5.0], [0.3, 1.1, 2.9, 2.9, 4.4, 4.1]),
    ("stsb", "pearson", [0.0, 1.5, 2.5, 4.0], [3.0, 3.0, 3.0, 3.0]),  # constant: 0
]


@pytest.mark.parametrize("task, metric, labels, predictions", CASES)
def test_weighted_metrics_equal_compute_metrics(task, metric, labels, predictions):
    y, p = np.array(labels), np.array(predictions)
    expected = compute_metrics(task, y, p, split="dev_matched" if task == "mnli" else None)
    key = metric + ("_m" if task == "mnli" else "")
    ones = np.ones((1, len(y)))
    assert bootstrap.weighted_metric(metric, ones, y, p)[0] == pytest.approx(expected[key],
                                                                               abs=1e-9)
    # Weights are draw counts: weight k must score as the example repeated k times.
    weights = np.random.default_rng(3).integers(0, 4, size=(5, len(y))).astype(float)
    weights[:, :2] += 1  # every replicate keeps some examples
    got = bootstrap.weighted_metric(metric, weights, y, p)
    for row, value in zip(weights.astype(int), got, strict=True):
        ys, ps = np.repeat(y, row), np.repeat(p, row)
        assert value == pytest.approx(compute_metrics(task, ys, ps, split=(
            "dev_matched" if task == "mnli" else None))[key], abs=1e-9)


def test_multiclass_mcc_is_sklearns():
    from sklearn.metrics import matthews_corrcoef

    y, p = np.array([0, 1, 2, 2, 1, 0, 2, 1]), np.array([0, 2, 2, 1, 1, 0, 2, 0])
    weighted = bootstrap.weighted_metric("mcc", np.ones((1, len(y))), y, p)[0]
    assert weighted == pytest.approx(100 * matthews_corrcoef(y, p))


def test_interval_and_p_value_on_a_hand_made_case():
    # 200 examples; B is right on 20 that A gets wrong, and they agree on the rest. Each
    # replicate's difference is 100/200 x (draws among those 20), Binomial(200, 0.1) / 2.
    n, better = 200, 20
    labels = np.zeros(n, dtype=int)
    a, b = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    a[:better] = 1
    rng = np.random.default_rng(0)
    drawn = bootstrap.split_replicates(rng, labels, {"a": a[None], "b": b[None]},
                                       ("accuracy",), 4000)
    result = bootstrap.summarize(90.0, 100.0, drawn["a"]["accuracy"][:, 0],
                                 drawn["b"]["accuracy"][:, 0])
    low, high = (stats.binom.ppf(q, n, better / n) / 2 for q in (0.025, 0.975))
    assert result["diff"] == 10.0
    assert result["interval"][0] == pytest.approx(low, abs=0.6)
    assert result["interval"][1] == pytest.approx(high, abs=0.6)
    assert result["p"] == pytest.approx(2 / 4001)  # no replicate at or below zero
    # The same predictions on both sides: no difference, p = 1.
    same = bootstrap.split_replicates(rng, labels, {"a": a[None], "b": a[None]}, ("accuracy",),
                                      200)
    tie = bootstrap.summarize(90.0, 90.0, same["a"]["accuracy"][:, 0],
                              same["b"]["accuracy"][:, 0])
    assert tie["interval"] == [0.0, 0.0] and tie["p"] == 1.0


def test_median_over_drawn_seeds():
    per_seed = np.array([[1.0, 5.0, 9.0]] * 2000)
    medians = bootstrap.median_over_drawn_seeds(np.random.default_rng(0), per_seed)
    assert set(np.unique(medians)) == {1.0, 5.0, 9.0}  # a median of three drawn seeds
    # P(median = 5) for three draws from {1, 5, 9}: 1 - 2 x P(at least two of one extreme).
    assert (medians == 5.0).mean() == pytest.approx(1 - 2 * 7 / 27, abs=0.03)
    one = np.array([[4.0], [6.0]])
    assert list(bootstrap.median_over_drawn_seeds(np.random.default_rng(0), one)) == [4.0, 6.0]


# --- the command on results files ------------------------------------------------------------

def _noisy(labels, wrong: float, seed: int, regression: bool = False):
    rng = np.random.default_rng(seed)
    if regression:
        return labels + rng.normal(0, wrong, len(labels))
    flip = rng.random(len(labels)) < wrong
    return np.where(flip, 1 - labels, labels)


def write_results(path, glue, tasks: dict[str, list[float]], *, seeds_format: bool,
                  noise: int = 0, hashed: bool = False, protocol: str = "cramming"):
    """A results file of each format whose predictions are the dev labels made wrong at the
    given rates (one rate per seed, the errors drawn with seed `noise` + seed), with real
    prediction files and hashes; `hashed`: with the dev labels' hashes, as `cram eval` now
    records them."""
    folder = path.with_name(f"{path.stem}-predictions")
    folder.mkdir(parents=True)
    record = {"format": "cram-glue/2" if seeds_format else "cram-glue/1", "suite": "glue",
              "protocol": {"name": protocol, "seed": 0}, "tasks": {}}
    for task, rates in tasks.items():
        labels = read_split(glue, task, "dev").labels
        runs = []
        for seed, rate in enumerate(rates):
            predictions = _noisy(labels, rate, noise + seed, regression=task == "stsb")
            name = f"{task}-dev-seed{seed}.tsv"
            (folder / name).write_text(format_predictions(np.arange(len(labels)), predictions))
            runs.append({"seed": seed, "metrics": compute_metrics(task, labels, predictions),
                         "predictions": [{"split": "dev", "file": f"{folder.name}/{name}",
                                          "sha256": sha256_file(folder / name)}]})
        if seeds_format:
            record["tasks"][task] = {"metrics": {}, "seeds": runs}
        else:
            record["tasks"][task] = {"metrics": runs[0]["metrics"],
                                     "predictions": runs[0]["predictions"]}
        if hashed:
            record["tasks"][task]["dev_labels_sha256"] = {"dev": labels_sha256(labels)}
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def two_results(tmp_path, shared_data):
    glue = shared_data / "glue"
    a = write_results(tmp_path / "a" / "eval" / "glue.json", glue,
                      {"rte": [0.45], "mrpc": [0.3], "stsb": [1.5]}, seeds_format=False)
    b = write_results(tmp_path / "b" / "glue.json", glue,
                      {"rte": [0.15, 0.2, 0.1], "mrpc": [0.3, 0.25, 0.35], "stsb": [0.5] * 3},
                      seeds_format=True)
    return a, b, glue


def test_compare_finds_the_better_results(two_results, tmp_path, capsys):
    a, b, glue = two_results
    out = tmp_path / "comparison.json"
    # A by its run dir, B by its results file.
    assert main(["leaderboard", "compare", str(a.parent.parent), str(b), "--glue-dir",
                 str(glue), "--replicates", "400", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["format"] == "cram-compare/1" and record["method"]["replicates"] == 400
    rte = record["tasks"]["rte"]
    assert rte["seeds"] == [1, 3] and rte["metrics"]["accuracy"]["rows"] == 277
    # Observed scores are what the predictions score: B's the median over its three seeds.
    labels = read_split(glue, "rte", "dev").labels
    b_scores = [compute_metrics("rte", labels, _noisy(labels, r, s))["accuracy"]
                for s, r in enumerate([0.15, 0.2, 0.1])]
    assert rte["metrics"]["accuracy"]["b"] == pytest.approx(np.median(b_scores))
    assert rte["metrics"]["accuracy"]["p"] < 0.01
    average = record["avg_cramming"]
    low, high = average["interval"]
    assert 0 < low < average["diff"] < high and not average["complete"]
    assert record["verdict"].startswith("B beats A: +")
    assert "rte    accuracy" in printed and record["verdict"] in printed
    assert "* partial: over the components both results have" in printed
    # The same pair the other way round: the difference flips sign.
    flipped = compare_results(b, a, glue_dir=glue, replicates=400)
    assert flipped["avg_cramming"]["diff"] == pytest.approx(-average["diff"])
    assert flipped["verdict"].startswith("A beats B: -")
    # Repeatable under the same resampling seed.
    assert compare_results(a, b, glue_dir=glue, replicates=400)["avg_cramming"] == average


def _glue_copy(glue, tmp_path, flip_rte: bool):
    """The dev files of RTE, MRPC and STS-B in a folder of their own, RTE's first label
    flipped when asked (another copy of GLUE's dev labels)."""
    copy = tmp_path / "glue-copy"
    for folder in ("RTE", "MRPC", "STS-B"):
        (copy / folder).mkdir(parents=True)
        text = (glue / folder / "dev.tsv").read_text(encoding="utf-8-sig")
        if flip_rte and folder == "RTE":
            header, first, rest = text.split("\n", 2)
            label = first.rsplit("\t", 1)[1]
            other = "entailment" if label == "not_entailment" else "not_entailment"
            text = "\n".join([header, first.rsplit("\t", 1)[0] + "\t" + other, rest])
        (copy / folder / "dev.tsv").write_text(text, encoding="utf-8")
    return copy


def test_compare_refuses_dev_labels_the_results_were_not_scored_against(tmp_path, shared_data):
    glue = shared_data / "glue"
    tasks = {"rte": [0.45], "mrpc": [0.3], "stsb": [1.5]}
    a = write_results(tmp_path / "a" / "glue.json", glue, tasks, seeds_format=True, hashed=True)
    b = write_results(tmp_path / "b" / "glue.json", glue, tasks, seeds_format=True, hashed=True,
                      noise=7)
    same = compare_results(a, b, glue_dir=_glue_copy(glue, tmp_path / "same", False),
                           replicates=100)
    assert same["notes"] == []  # a copy with the same labels is the same labels
    other = _glue_copy(glue, tmp_path / "other", True)
    with pytest.raises(UserError) as caught:
        compare_results(a, b, glue_dir=other, replicates=100)
    assert str(caught.value) == (
        f"the rte dev labels in {other} are not the labels A ({a}) was scored against "
        "(dev_labels_sha256 differs): compare with the GLUE files both were scored with")


def test_compare_says_what_it_cannot_confirm_or_what_differs(tmp_path, shared_data, capsys):
    glue = shared_data / "glue"
    a = write_results(tmp_path / "a" / "glue.json", glue, {"rte": [0.45], "mrpc": [0.3]},
                      seeds_format=True)  # scored before the label hashes were recorded
    b = write_results(tmp_path / "b" / "glue.json", glue, {"rte": [0.2]}, seeds_format=True,
                      hashed=True, protocol="quick")
    assert main(["leaderboard", "compare", str(a), str(b), "--glue-dir", str(glue),
                 "--replicates", "100"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: different fine-tuning protocols (A used 'cramming', B 'quick'): the difference "
        "is not only the models'",
        "note: different task sets (only A has mrpc): compared on the 1 both have",
        f"note: A ({a}) records no dev label hashes (scored by an earlier cram eval): its dev "
        "labels could not be confirmed"]


def test_a_results_file_against_itself_shows_no_difference(two_results):
    a, _, glue = two_results
    record = compare_results(a, a, glue_dir=glue, replicates=200)
    assert record["avg_cramming"]["diff"] == 0.0 and record["avg_cramming"]["p"] == 1.0
    assert record["verdict"].startswith("no significant difference: +0.00 points")


def test_compare_refuses_changed_or_unrelated_inputs(two_results, tmp_path, capsys):
    a, b, glue = two_results
    with pytest.raises(UserError, match="at least 100"):
        compare_results(a, b, glue_dir=glue, replicates=50)
    only_cola = write_results(tmp_path / "c" / "glue.json", glue, {"cola": [0.2]},
                              seeds_format=False)
    with pytest.raises(UserError, match="share no GLUE task"):
        compare_results(a, only_cola, glue_dir=glue)
    predictions = a.parent / "glue-predictions" / "rte-dev-seed0.tsv"
    predictions.write_text(predictions.read_text().replace("\t1\n", "\t0\n", 1))
    assert main(["leaderboard", "compare", str(a), str(b), "--glue-dir", str(glue)]) == 2
    assert "rte-dev-seed0.tsv does not match the sha256 in" in capsys.readouterr().err
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps({"format": "cram-glue/1", "suite": "probe", "tasks": {}}))
    with pytest.raises(UserError, match="holds probe results; compare needs GLUE scores"):
        compare_results(probe, b, glue_dir=glue)


def test_site_marks_rank_differences_that_are_not_significant(tmp_path, shared_data):
    from leaderboard.admission import VERIFIED, Judged
    from leaderboard.site import significance_marks

    glue = shared_data / "glue"
    judged = []
    for noise, (name, wrong, avg) in enumerate((("strong", 0.10, 90.0), ("close", 0.11, 89.0),
                                                ("weak", 0.45, 55.0))):
        write_results(tmp_path / name / "eval" / "glue.json", glue,
                      {"rte": [wrong], "mrpc": [wrong]}, seeds_format=False, noise=10 * noise)
        entry = {"name": name, "track": "open", "train_elapsed_s": 60.0,
                 "results_file": "eval/glue.json",
                 "results": {"suite": "glue", "avg_cramming": {"value": avg, "complete": True}}}
        judged.append(Judged(tmp_path / f"{name}.json", VERIFIED, entry, [], tmp_path / name))
    marks = significance_marks(judged, glue)
    # strong vs close: errors at 10% and 11% of a few hundred rows, drawn independently, are
    # within resampling noise; close vs weak (45%) is not.
    assert set(marks) == {"strong"} and 0.05 <= marks["strong"] <= 1.0
