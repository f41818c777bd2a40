"""Metrics against hand-computed values; both averages on a fixed score table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crambench.errors import UserError
from glue_eval import (
    TASKS,
    compute_averages,
    compute_metrics,
    median_over_seeds,
    read_predictions,
    seed_spread,
)
from glue_eval.evaluate import parse_seeds
from glue_eval.results import check_out_path, format_predictions

# 5 pairs: TP=2 (rows 0,1), FN=1 (row 2), FP=1 (row 3), TN=1 (row 4).
Y_PAIR, P_PAIR = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]


def test_f1_and_accuracy_for_paraphrase_tasks():
    # precision 2/3, recall 2/3 -> F1 2/3; accuracy 3/5.
    for task in ("mrpc", "qqp"):
        got = compute_metrics(task, Y_PAIR, P_PAIR)
        assert got == pytest.approx({"f1": 200 / 3, "accuracy": 60.0})


def test_matthews_correlation_for_cola():
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2*1 - 1*1) / sqrt(3*3*2*2)
    assert compute_metrics("cola", Y_PAIR, P_PAIR) == pytest.approx({"mcc": 100 * 1 / 6})
    assert compute_metrics("cola", [1, 0, 1], [1, 1, 1]) == {"mcc": 0.0}  # constant: 0


def test_correlations_for_stsb():
    y, p = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 9.0, 6.0]
    # Pearson: deviations y (-1.5,-.5,.5,1.5), p (-3.25,-1.25,3.75,.75):
    # sum of products 8.5, sums of squares 5 and 26.75.
    pearson = 8.5 / math.sqrt(5 * 26.75)
    # Spearman: ranks of p are (1,2,4,3): 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60.
    got = compute_metrics("stsb", y, p)
    assert got == pytest.approx({"pearson": 100 * pearson, "spearman": 80.0})
    # A model that predicts one score for every pair has no correlation: reported as 0.
    assert compute_metrics("stsb", y, [3.0] * 4) == {"pearson": 0.0, "spearman": 0.0}


def test_accuracy_tasks_and_mnli_matched_mismatched():
    for task in ("sst2", "qnli", "rte", "wnli"):
        assert compute_metrics(task, [0, 1, 1, 0], [0, 1, 0, 0]) == {"accuracy": 75.0}
    labels = {"dev_matched": [0, 1, 2, 0], "dev_mismatched": [2, 2]}
    preds = {"dev_matched": [0, 1, 1, 0], "dev_mismatched": [2, 0]}
    assert compute_metrics("mnli", labels, preds) == {"accuracy_m": 75.0, "accuracy_mm": 50.0}
    assert compute_metrics("mnli", [2, 2], [2, 0], split="dev_mismatched") == {"accuracy_mm": 50.0}
    with pytest.raises(UserError, match="3 predictions for 2 labels"):
        compute_metrics("rte", [0, 1], [0, 1, 1])
    with pytest.raises(UserError, match="unknown GLUE task"):
        compute_metrics("squad", [0], [0])


SCORES = {
    "cola": {"mcc": 40.0}, "sst2": {"accuracy": 90.0}, "mrpc": {"f1": 88.0, "accuracy": 84.0},
    "stsb": {"pearson": 86.0, "spearman": 85.0}, "qqp": {"f1": 86.0, "accuracy": 89.0},
    "mnli": {"accuracy_m": 82.0, "accuracy_mm": 83.0}, "qnli": {"accuracy": 89.0},
    "rte": {"accuracy": 55.0},
}


def test_both_averages_on_a_fixed_table():
    avgs = compute_averages(SCORES)
    # cramming: MNLI-m, MNLI-mm, QQP F1, QNLI, SST-2, CoLA, STS-B Pearson, MRPC F1, RTE.
    cram = (82 + 83 + 86 + 89 + 90 + 40 + 86 + 88 + 55) / 9
    # GLUE: per task mean of its metrics (MNLI (82+83)/2), then mean over the 8 tasks.
    glue = (40 + 90 + (88 + 84) / 2 + (86 + 85) / 2 + (86 + 89) / 2 + (82 + 83) / 2 + 89 + 55) / 8
    assert avgs["avg_cramming"]["value"] == pytest.approx(cram)
    assert avgs["avg_glue"]["value"] == pytest.approx(glue)
    assert avgs["avg_cramming"]["complete"] and avgs["avg_glue"]["complete"]
    assert len(avgs["avg_cramming"]["components"]) == 9
    assert {"task": "mnli", "value": 82.5} in avgs["avg_glue"]["components"]
    assert "WNLI excluded" in avgs["avg_glue"]["label"]
    # WNLI scores, if present, change neither average.
    assert compute_averages({**SCORES, "wnli": {"accuracy": 0.0}}) == avgs


def test_partial_averages_are_marked_incomplete():
    part = {t: SCORES[t] for t in ("cola", "sst2", "mrpc", "stsb", "rte")}
    avgs = compute_averages(part)
    assert avgs["avg_cramming"]["value"] == pytest.approx((90 + 40 + 86 + 88 + 55) / 5)
    assert not avgs["avg_cramming"]["complete"]
    assert "missing mnli.accuracy_m, mnli.accuracy_mm, qqp.f1" in avgs["avg_cramming"]["label"]
    assert avgs["avg_glue"]["value"] == pytest.approx((40 + 90 + 86 + 85.5 + 55) / 5)
    # MNLI with only one of its two dev sets counts for neither average's MNLI-task score.
    one = compute_averages({"mnli": {"accuracy_m": 80.0}})
    assert one["avg_glue"]["value"] is None
    assert one["avg_cramming"]["value"] == 80.0


def test_task_score_is_the_median_of_each_metric_over_seeds():
    # MRPC over 3 seeds: F1's median comes from seed 1, accuracy's from seed 0.
    runs = [{"f1": 80.0, "accuracy": 65.0}, {"f1": 90.0, "accuracy": 60.0},
            {"f1": 70.0, "accuracy": 75.0}]
    assert median_over_seeds(runs) == {"f1": 80.0, "accuracy": 65.0}
    spread = seed_spread(runs)
    assert spread["f1"] == {"mean": 80.0, "std": 10.0, "min": 70.0, "max": 90.0}
    assert spread["accuracy"]["mean"] == pytest.approx(200 / 3)
    assert spread["accuracy"]["std"] == pytest.approx(math.sqrt(((65 - 200 / 3) ** 2 + (
        60 - 200 / 3) ** 2 + (75 - 200 / 3) ** 2) / 2))  # sample std: n - 1
    # An even count takes the mean of the middle two; one seed is its own median, no std.
    assert median_over_seeds([{"mcc": v} for v in (4.0, 1.0, 3.0, 2.0)]) == {"mcc": 2.5}
    assert median_over_seeds([{"mcc": 7.0}]) == {"mcc": 7.0}
    assert seed_spread([{"mcc": 7.0}])["mcc"]["std"] is None


@pytest.mark.parametrize("given, seeds", [("0,1,2,3,4", [0, 1, 2, 3, 4]), (" 3 ,1", [3, 1]),
                                          (5, [5]), ((0, 2), [0, 2])])
def test_seed_lists_parse_in_order(given, seeds):
    assert parse_seeds(given) == seeds


@pytest.mark.parametrize("given", ["0,1,1", "-1", "0,a", "", "1.5", ","])
def test_bad_seed_lists_are_user_errors(given):
    with pytest.raises(UserError, match="give distinct whole numbers >= 0"):
        parse_seeds(given)


def test_predictions_round_trip_exactly(tmp_path):
    scores = np.array([0.1, 2.0 / 3.0, 4.75, -1e-7], dtype=np.float32).astype(np.float64)
    path = tmp_path / "stsb-dev.tsv"
    path.write_text(format_predictions(np.array([0, 3, 4, 9]), scores))
    idx, back = read_predictions(path)
    assert idx.tolist() == [0, 3, 4, 9] and back.dtype == np.float64
    assert np.array_equal(back, scores)  # metrics recomputed from the file match exactly
    path.write_text(format_predictions(np.arange(3), np.array([2, 0, 1])))
    assert read_predictions(path)[1].tolist() == [2, 0, 1]
    path.write_text("idx\tpred\n0\t1\n")
    with pytest.raises(UserError, match="header"):
        read_predictions(path)
    path.write_text("index\tprediction\n0\t1\n1\t0\t7\n")
    with pytest.raises(UserError, match=r"stsb-dev.tsv line 3: '1\\t0\\t7' is not "):
        read_predictions(path)
    path.write_bytes(b"index\tprediction\n0\t\xff\n")
    with pytest.raises(UserError, match="stsb-dev.tsv: not UTF-8 text"):
        read_predictions(path)


def test_existing_results_are_refused_without_force(tmp_path):
    out = tmp_path / "glue.json"
    out.write_text("{}")
    with pytest.raises(UserError, match="--force"):
        check_out_path(out, force=False)
    check_out_path(out, force=True)
    (tmp_path / "other-predictions").mkdir()  # left by a run that stopped before its JSON:
    check_out_path(tmp_path / "other.json", force=False)  # not a result, so no --force needed


def test_table_metric_keys_match_contract():
    keys = {name: spec.metric_keys for name, spec in TASKS.items()}
    assert keys["mnli"] == ("accuracy_m", "accuracy_mm")
    assert keys["stsb"] == ("pearson", "spearman") and TASKS["stsb"].num_labels == 1
    assert keys["mrpc"] == keys["qqp"] == ("f1", "accuracy")
    assert keys["cola"] == ("mcc",)
