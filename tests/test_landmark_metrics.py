"""Landmark NME / AUC / FR vs the original's evaluator (fixtures made with scipy 1.10's `simps`),
the 300W split, hand-known answers and bad input."""

import pathlib

import numpy as np
import pytest

from faceptor_jax import accumulators
from faceptor_jax import landmark_metrics as lm

FN = np.load(pathlib.Path(__file__).parent / "fixtures" / "losses_metrics" / "metrics_np.npz")
REL = 1e-6  # the original rounds its NME sum to float32 before dividing


def acc_of(name, batch=5):
    gt, pred, box, sub = (FN[f"lm_{name}_{k}"] for k in ("gt", "pred", "box", "subset"))
    parts = [
        lm.LandmarkAccumulator.from_batch(
            name, pred[i : i + batch], gt[i : i + batch], box[i : i + batch], sub[i : i + batch]
        )
        for i in range(0, len(gt), batch)
    ]
    return accumulators.merge_all(parts)


@pytest.mark.parametrize("name", ["300w", "cofw", "wflw", "aflw"])
def test_nme_auc_fr_match_original(name):
    res = acc_of(name).compute(name)
    groups = ["full", "common", "challenging"] if name == "300w" else ["full"]
    assert sorted(res) == sorted(groups)
    for g in groups:
        for norm in lm.PROTOCOLS[name].norms:
            want = float(FN[f"lm_{name}_{g}_{norm}"])
            assert abs(res[g][norm] - want) <= REL * want, (g, norm)
        if lm.PROTOCOLS[name].auc_fr is not None:
            tag = "box_7" if name == "aflw" else "inter_ocular_10"
            assert abs(res[g][f"auc_{tag}"] - FN[f"lm_{name}_{g}_auc"]) <= 1e-12
            assert abs(res[g][f"fr_{tag}"] - FN[f"lm_{name}_{g}_fr"]) <= 1e-12


def test_300w_full_is_the_image_weighted_union():
    res = acc_of("300w").compute("300w")
    n_c, n_ch = 7, 5
    for norm in ("inter_ocular", "inter_pupil"):
        want = (n_c * res["common"][norm] + n_ch * res["challenging"][norm]) / (n_c + n_ch)
        assert abs(res["full"][norm] - want) < 1e-12


@pytest.mark.parametrize("thr, key", [(0.1, 10), (0.07, 7), (0.08, 8)])
def test_auc_fr_match_scipy_simps(thr, key):
    # thr 0.1 / 0.08: odd grids (1001 / 801 points); thr 0.07: 702 points, the even-N branch.
    auc, fr = lm.auc_fr(FN["auc_nmes"], thr)
    assert abs(auc - FN[f"auc_{key}"]) <= 1e-12
    assert abs(fr - FN[f"fr_{key}"]) <= 1e-12


def test_perfect_predictions():
    gt = FN["lm_aflw_gt"]
    res = lm.LandmarkAccumulator.from_batch("aflw", gt, gt, FN["lm_aflw_box"]).compute("aflw")
    assert all(v == 0.0 for k, v in res["full"].items() if not k.startswith(("auc", "fr")))
    assert res["full"]["fr_box_7"] == 0.0
    # CED = 1 on the whole grid [0, 0.0701]: AUC = 0.0701 / 0.07 (the original's grid overshoots)
    assert abs(res["full"]["auc_box_7"] - 0.0701 / 0.07) < 1e-9


def test_nme_by_hand():
    gt = np.zeros((1, 29, 2))
    gt[0, 9] = [10.0, 0.0]  # COFW inter-ocular distance: points 8 and 9 -> 10 px
    pred = gt.copy()
    pred[0, :, 1] += 2.0  # every point 2 px off: NME 0.2, CED(0.1) = 0 -> FR 1, AUC 0
    res = lm.LandmarkAccumulator.from_batch("cofw", pred, gt).compute("cofw")["full"]
    assert abs(res["inter_ocular"] - 0.2) < 1e-12
    assert res["fr_inter_ocular_10"] == 1.0 and res["auc_inter_ocular_10"] == 0.0


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: lm.LandmarkAccumulator.from_batch(
                "300w", np.zeros((1, 68, 2)), np.zeros((1, 67, 2))
            ),
            "68",
        ),
        (
            lambda: lm.LandmarkAccumulator.from_batch("aflw", FN["lm_aflw_gt"], FN["lm_aflw_gt"]),
            "box",
        ),
        (
            lambda: lm.LandmarkAccumulator.from_batch(
                "cofw", np.zeros((1, 29, 2)), np.zeros((1, 29, 2))
            ),
            "distance is 0",
        ),
        (
            lambda: lm.LandmarkAccumulator.from_batch(
                "wflw", np.full((1, 98, 2), np.nan), FN["lm_wflw_gt"][:1]
            ),
            "NaN",
        ),
        (
            lambda: lm.LandmarkAccumulator.from_batch(
                "300w", FN["lm_300w_gt"], FN["lm_300w_gt"], subset=2
            ),
            "subset",
        ),
        (lambda: lm.get_protocol("ibug"), "valid"),
        (lambda: lm.auc_fr(np.zeros(0), 0.1), "no images"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
