"""Verification: the restricted .bin reader, sklearn-KFold folds, insightface accuracy (fixture from
sklearn + the original's code path), hand-known answers, TAR@FAR, and the mergeable accumulator."""

import io
import os
import pathlib
import pickle

import numpy as np
import pytest
from PIL import Image

from faceptor_jax import accumulators, verification

FIX = np.load(pathlib.Path(__file__).parent / "fixtures" / "losses_metrics" / "metrics_np.npz")


def jpeg(seed: int, size: int = 112) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def write(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


# ----------------------------------------------------------------------------- .bin reader
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_bytes_and_bools(tmp_path, protocol):
    bins = [jpeg(i) for i in range(4)]
    p = write(tmp_path / "lfw.bin", (bins, [True, False]), protocol)
    images, issame = verification.read_verification_bin(p)
    assert images == bins and issame.tolist() == [True, False]


@pytest.mark.parametrize("protocol", [2, 5])
def test_reads_numpy_buffers_and_numpy_bools(tmp_path, protocol):
    # insightface's cfp/agedb scripts store cv2.imencode buffers (uint8 [N,1]) and numpy bools.
    bins = [np.frombuffer(jpeg(i), np.uint8).reshape(-1, 1) for i in range(2)]
    p = write(tmp_path / "cfp_fp.bin", (bins, [np.bool_(True)]), protocol)
    images, issame = verification.read_verification_bin(p)
    assert images == [b.tobytes() for b in bins] and issame.tolist() == [True]


def test_reads_python2_str_pickles(tmp_path):
    # Python 2 wrote JPEG buffers as `str` (SHORT_BINSTRING); ASCII decoding fails, bytes works.
    payload = b"\xff\xd8\xff\xe0 fake jpeg \x80\x81"
    p = tmp_path / "py2.bin"
    # PROTO 2, list [SHORT_BINSTRING ×2], list [NEWTRUE], TUPLE2, STOP
    p.write_bytes(
        b"\x80\x02]q\x00(U"
        + bytes([len(payload)])
        + payload
        + b"U"
        + bytes([len(payload)])
        + payload
        + b"e]q\x01\x88a\x86q\x02."
    )
    images, issame = verification.read_verification_bin(p)
    assert images == [payload, payload] and issame.tolist() == [True]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_refuses_code_execution_and_names_the_global(tmp_path):
    p = write(tmp_path / "evil.bin", ([Evil(), b"x"], [True]))
    with pytest.raises(ValueError, match=r"evil\.bin.*'posix\.system'|evil\.bin.*'os\.system'"):
        verification.read_verification_bin(p)


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"bins": []}, "pair"),
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([b"a", b"b"], [1]), "bools"),
        (([b"a", "b"], [True]), "image 1 is str"),
        (([b"a", np.zeros(3, np.float32)], [True]), "image 1 is ndarray"),
    ],
)
def test_rejects_wrong_structure(tmp_path, obj, match):
    p = write(tmp_path / "bad.bin", obj)
    with pytest.raises(ValueError, match=match):
        verification.read_verification_bin(p)


def test_refuses_object_arrays_via_other_globals(tmp_path):
    p = write(tmp_path / "obj.bin", ([np.array([b"a"], dtype=object), b"b"], [True]))
    with pytest.raises(ValueError):
        verification.read_verification_bin(p)


def test_truncated_file_is_a_clear_error(tmp_path):
    p = write(tmp_path / "cut.bin", ([b"a", b"b"], [True]))
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"cut\.bin"):
        verification.read_verification_bin(p)


# ----------------------------------------------------------------------------- protocol
@pytest.mark.parametrize("n", [403, 10, 19])
def test_kfold_matches_sklearn(n):
    got = np.concatenate(
        [np.r_[te[0], te[-1], len(te)] for _, te in verification.kfold_splits(n, 10)]
    )
    np.testing.assert_array_equal(got, FIX[f"kfold_{n}_test"])
    for train, test in verification.kfold_splits(n, 10):
        assert sorted(np.r_[train, test]) == list(range(n))


def test_accuracy_matches_insightface_with_sklearn():
    acc = verification.VerificationAccumulator.from_batch(
        np.arange(800), FIX["ver_emb"], FIX["ver_emb_flip"]
    )
    res = acc.compute(FIX["ver_issame"])
    assert abs(res["accuracy"] - FIX["ver_acc_mean"]) <= 1e-12
    assert abs(res["accuracy_std"] - FIX["ver_acc_std"]) <= 1e-12
    np.testing.assert_array_equal(res["fold_accuracies"], FIX["ver_acc"])
    assert abs(res["xnorm"] - FIX["ver_xnorm"]) <= 1e-9 * FIX["ver_xnorm"]
    emb = verification.l2_normalize(
        FIX["ver_emb"].astype(np.float64) + FIX["ver_emb_flip"].astype(np.float64)
    )
    full = verification.verification_accuracy(emb, FIX["ver_issame"])
    np.testing.assert_array_equal(full["best_thresholds"], FIX["ver_best"])
    np.testing.assert_allclose(full["tpr"], FIX["ver_tpr"], atol=1e-12)
    np.testing.assert_allclose(full["fpr"], FIX["ver_fpr"], atol=1e-12)


def _separable(n_pairs=200, seed=0):
    rng = np.random.default_rng(seed)
    issame = rng.uniform(size=n_pairs) < 0.5
    emb = rng.normal(size=(2 * n_pairs, 16))
    emb = verification.l2_normalize(emb)
    emb[1::2][issame] = emb[0::2][issame] + 0.01 * rng.normal(size=(issame.sum(), 16))
    emb[1::2][~issame] = -emb[0::2][~issame]  # antipodal: distance 4, beyond every threshold
    return verification.l2_normalize(emb), issame


def test_perfect_embeddings_score_one_and_flipped_labels_the_complement():
    emb, issame = _separable()
    res = verification.verification_accuracy(emb, issame)
    assert res["acc_mean"] == 1.0 and res["acc_std"] == 0.0
    flipped = verification.verification_accuracy(emb, ~issame)
    # Flipped, calling any pair "same" is now wrong (close pairs are labelled different, the
    # antipodal ones lie beyond every threshold): t = 0 wins, each fold scores its share of
    # originally-same pairs, and the overall accuracy is 1 − accuracy of calling all "same".
    want = [np.mean(issame[te]) for _, te in verification.kfold_splits(len(issame))]
    np.testing.assert_allclose(flipped["fold_accuracies"], want)
    # For a fixed threshold, flipping the labels gives exactly 1 − accuracy.
    t = verification._accuracy_table
    dist = np.sum((emb[0::2] - emb[1::2]) ** 2, 1)
    np.testing.assert_allclose(
        t(dist, ~issame, verification.THRESHOLDS), 1 - t(dist, issame, verification.THRESHOLDS)
    )


def test_tar_at_far_by_hand():
    # 4 negatives at distances 0.1..0.4, 3 positives at 0.05, 0.15, 0.5 (pairs laid out on a line)
    d_neg, d_pos = [0.1, 0.2, 0.3, 0.4], [0.05, 0.15, 0.5]
    issame = np.array([False] * 4 + [True] * 3)
    pts = []
    for d in d_neg + d_pos:
        pts += [[0.0], [np.sqrt(d)]]
    res = verification.tar_at_far(np.array(pts), issame, fars=(0.0, 0.25, 0.5, 1.0))
    assert res == {0.0: 1 / 3, 0.25: 2 / 3, 0.5: 2 / 3, 1.0: 1.0}


def test_accumulator_merges_in_any_order_and_checks_completeness():
    emb, ef, same = FIX["ver_emb"], FIX["ver_emb_flip"], FIX["ver_issame"]
    perm = np.random.default_rng(3).permutation(800)
    parts = [
        verification.VerificationAccumulator.from_batch(
            perm[i : i + 96], emb[perm[i : i + 96]], ef[perm[i : i + 96]]
        )
        for i in range(0, 800, 96)
    ]
    merged = accumulators.merge_all(parts[::-1])
    assert merged.compute(same)["accuracy"] == FIX["ver_acc_mean"]
    with pytest.raises(ValueError, match=r"need each of 0\.\.799 once"):
        accumulators.merge_all(parts[1:]).compute(same)
    bad = verification.VerificationAccumulator.from_batch(
        np.arange(800), np.where(np.arange(800)[:, None] == 5, np.nan, emb), ef
    )
    with pytest.raises(ValueError, match="NaN"):
        bad.compute(same)
