"""Age / expression / attribute / parsing metrics vs the original's evaluator formulas (fixtures),
hand-known answers, bad input, and merging across batches."""

import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from faceptor_jax import accumulators, datasets, losses, metrics

FIXDIR = pathlib.Path(__file__).parent / "fixtures" / "losses_metrics"
FT = np.load(FIXDIR / "metrics_torch.npz")
FN = np.load(FIXDIR / "metrics_np.npz")


def batched(make, n, bs, *arrays):
    return accumulators.merge_all(make(*(a[i : i + bs] for a in arrays)) for i in range(0, n, bs))


# ----------------------------------------------------------------------------- age
def test_age_matches_original_evaluator():
    pred = np.asarray(losses.expected_age(jnp.asarray(FT["age_logits"])))
    acc = batched(metrics.AgeAccumulator.from_batch, 20, 7, pred, FT["age_ages"])
    res = acc.compute()
    assert abs(res["mae"] - FT["age_mae"]) <= 1e-5 * FT["age_mae"]
    assert res["cs5"] == FT["age_cs"]
    assert abs(res["eps_error"] - FT["age_eps"]) <= 1e-6


def test_age_perfect_prediction():
    res = metrics.AgeAccumulator.from_batch(np.array([20.0, 31.5]), np.array([20, 31.5])).compute()
    assert res == {"mae": 0.0, "cs5": 100.0, "eps_error": 0.0}


# ----------------------------------------------------------------------------- expression
def test_expression_matches_original_and_mean_class_accuracy_by_hand():
    acc = batched(
        metrics.ClassificationAccumulator.from_batch, 25, 4, FT["expr_logits"], FT["expr_labels"]
    )
    assert abs(acc.compute()["accuracy"] - FT["expr_acc"]) <= 1e-9
    # 3 samples of class 0 (2 right), 1 of class 1 (right): accuracy 75 %, class mean 83.3 %
    logits = np.eye(7)[[0, 0, 3, 1]]
    res = metrics.ClassificationAccumulator.from_batch(logits, np.array([0, 0, 0, 1])).compute()
    assert res["accuracy"] == 75.0
    assert abs(res["mean_class_accuracy"] - 100 * (2 / 3 + 1) / 2) < 1e-9


# ----------------------------------------------------------------------------- attributes
def test_attributes_match_original_evaluator():
    acc = batched(
        metrics.AttributeAccumulator.from_batch, 30, 16, FT["attr_logits"], FT["attr_labels"]
    )
    res = acc.compute()
    assert abs(res["mean_accuracy"] - FT["attr_mean_acc"]) <= 1e-5
    got = np.array(list(res["per_attribute"].values()))
    np.testing.assert_allclose(got, FT["attr_acc"], atol=1e-5)


def test_attributes_sigmoid_half_rounds_to_zero_and_ma_by_hand():
    logits = np.array([[0.0, 2.0], [1e-9, -2.0], [3.0, 2.0], [-3.0, -1.0]], np.float32)
    labels = np.array([[0, 1], [0, 0], [1, 0], [1, -1]])
    res = metrics.AttributeAccumulator.from_batch(logits, labels).compute(names=("a", "b"))
    # a: preds 0,0,1,0 vs 0,0,1,1 -> 75 %; b (one label ignored): preds 1,0,1 vs 1,0,0 -> 66.7 %
    np.testing.assert_allclose(list(res["per_attribute"].values()), [75.0, 200 / 3])
    # mA: a = (1/2 + 2/2)/2 = 0.75, b = (1/1 + 1/2)/2 = 0.75
    assert abs(res["mA"] - 75.0) < 1e-9


# ----------------------------------------------------------------------------- parsing
def test_parsing_f1_matches_original():
    acc = batched(
        lambda p, g: metrics.ParsingAccumulator.from_batch(p, g, 11),
        3,
        1,
        FN["parse_pred"],
        FN["parse_gt"],
    )
    res = acc.compute(datasets.LAPA_LABELS)
    np.testing.assert_allclose(list(res["per_class"].values()), FN["parse_f1"], atol=1e-12)
    assert abs(res["fg_mean"] - FN["parse_fg_mean"]) <= 1e-12
    assert res["empty_classes"] == []


def test_parsing_perfect_prediction_and_empty_class():
    mask = np.random.default_rng(0).integers(0, 5, (2, 16, 16))  # classes 5..18 never occur
    res = metrics.ParsingAccumulator.from_batch(mask, mask, 19).compute()
    assert res["fg_mean"] == 1.0 and all(v == 1.0 for v in res["per_class"].values())
    assert res["empty_classes"] == list(datasets.CELEBAMASK_HQ_LABELS[5:])
    wrong = np.where(mask == 1, 2, mask)  # class 1 (neck) never predicted: F1 0
    res = metrics.ParsingAccumulator.from_batch(wrong, mask, 19).compute()
    assert res["per_class"]["neck"] == 0.0
    assert not np.isnan(res["fg_mean"])


def test_label_sets():
    assert len(datasets.CELEBAMASK_HQ_LABELS) == 19 and len(datasets.LAPA_LABELS) == 11
    assert len(datasets.CELEBA_ATTRIBUTES) == 40 and len(datasets.EXPRESSIONS) == 7


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: metrics.AgeAccumulator.from_batch(np.array([np.nan]), np.array([3.0])), "NaN"),
        (lambda: metrics.AgeAccumulator.from_batch(np.zeros(3), np.zeros(4)), r"\(3,\).*\(4,\)"),
        (lambda: metrics.ClassificationAccumulator.from_batch(np.zeros((2, 7)), [0, 9]), "outside"),
        (lambda: metrics.AttributeAccumulator.from_batch(np.full((1, 2), np.inf), [[0, 1]]), "NaN"),
        (
            lambda: metrics.ParsingAccumulator.from_batch(np.zeros((4, 4)), np.zeros((4, 4)), 3),
            "label maps",
        ),
        (
            lambda: metrics.ParsingAccumulator.from_batch(
                np.zeros((4, 4), int), np.zeros((4, 5), int), 3
            ),
            "vs labels",
        ),
        (
            lambda: metrics.ParsingAccumulator.from_batch(
                np.full((2, 2), 3), np.zeros((2, 2), int), 3
            ),
            "outside",
        ),
        (lambda: metrics.AgeAccumulator.empty().compute(), "no data"),
        (lambda: metrics.AgeAccumulator.empty().merge(metrics.ParsingAccumulator.empty()), "merge"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- merging
def test_merge_is_associative_with_empty_identity():
    rng = np.random.default_rng(1)
    parts = [
        metrics.ParsingAccumulator.from_batch(
            rng.integers(0, 4, (8, 8)), rng.integers(0, 4, (8, 8)), 4
        )
        for _ in range(3)
    ]
    a = parts[0].merge(parts[1]).merge(parts[2])
    b = metrics.ParsingAccumulator.empty().merge(parts[0].merge(parts[1].merge(parts[2])))
    np.testing.assert_array_equal(a.confusion, b.confusion)
