"""IJB-C 1:1 protocol (faceptor_jax.ijbc): hand-computed figures and loop-based reference math."""

import numpy as np
import pytest

from faceptor_jax import ijbc

# 8 pairs, descending scores, one tie at 0.8: worked by hand below.
LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])


def test_roc_by_hand():
    # per distinct score: tps 1,2,3,3,3,4,4 and fps 0,1,1,2,3,3,4; the point (fps 2, tps 3) lies
    # between equal steps (+1, 0) and (+1, 0) in both counts and is dropped; (0, 0) prepended.
    fpr, tpr = ijbc.roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.25, 0.75, 0.75, 1])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.5, 0.75, 0.75, 1, 1])


def test_tar_at_far_nearest_point_highest_tar():
    got = ijbc.tar_at_far(LABELS, SCORES, (0.1, 0.25, 0.5, 1e-6))
    # FAR 0.5: no point at 0.5 (dropped); 0.25 and 0.75 are equally near -> the highest TAR, 1.0
    assert got == {0.1: 0.25, 0.25: 0.75, 0.5: 1.0, 1e-6: 0.25}  # 1e-6: (0, 0.25) over (0, 0)


def _reference_roc(labels, scores):
    """Thresholds from the highest score down, counted directly; then the equal-step rule."""
    pts = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        pts.append(
            (
                float(np.sum((scores >= t) & (labels == 0))),
                float(np.sum((scores >= t) & (labels == 1))),
            )
        )
    core = pts[1:]
    keep = [core[0]]
    for i in range(1, len(core) - 1):
        before = (core[i][0] - core[i - 1][0], core[i][1] - core[i - 1][1])
        after = (core[i + 1][0] - core[i][0], core[i + 1][1] - core[i][1])
        if before != after:
            keep.append(core[i])
    keep += core[-1:] if len(core) > 1 else []
    fps, tps = np.array([p[0] for p in [pts[0], *keep]]), np.array([p[1] for p in [pts[0], *keep]])
    return fps / fps[-1], tps / tps[-1]


def test_roc_matches_the_reference_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    for n in (5, 40, 300):
        labels = rng.integers(0, 2, n)
        labels[:2] = (0, 1)
        scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes ties
        fpr, tpr = ijbc.roc_curve(labels, scores)
        ref_fpr, ref_tpr = _reference_roc(labels, scores)
        np.testing.assert_allclose(fpr, ref_fpr)
        np.testing.assert_allclose(tpr, ref_tpr)


def test_template_features_media_mean_then_sum_by_hand():
    emb = np.array([[1, 0], [3, 0], [0, 2], [0, 1], [-1, 0]], np.float64)
    templates, medias = np.array([1, 1, 1, 2, 3]), np.array([10, 10, 11, 20, 30])
    tids, feats = ijbc.template_features(emb, templates, medias)
    # template 1: media 10 -> mean [2, 0], media 11 -> [0, 2]: sum [2, 2] (image mean [4/3, 2/3])
    np.testing.assert_array_equal(tids, [1, 2, 3])
    np.testing.assert_allclose(feats, [[2**-0.5, 2**-0.5], [0, 1], [-1, 0]])
    scores = ijbc.pair_scores(tids, feats, np.array([1, 1, 2]), np.array([2, 3, 3]))
    np.testing.assert_allclose(scores, [2**-0.5, -(2**-0.5), 0], atol=1e-12)


def test_flip_sum_and_face_score_weighting():
    emb = np.array([[1, 0], [3, 0], [0, 2]], np.float64)
    flipped = np.array([[1, 0], [0, 0], [0, 0]], np.float64)  # image 0: [2, 0] after the flip sum
    face = np.array([1.0, 0.5, 1.0])
    feats = ijbc.image_features(emb, flipped, face)
    np.testing.assert_allclose(feats, [[2, 0], [1.5, 0], [0, 2]])
    _, tf = ijbc.template_features(feats, np.array([1, 1, 1]), np.array([10, 10, 11]))
    np.testing.assert_allclose(tf, [np.array([1.75, 2]) / np.hypot(1.75, 2)])


def _reference_templates(feats, templates, medias):
    out = {}
    for t in sorted(set(templates.tolist())):
        total = np.zeros(feats.shape[1])
        for m in sorted(set(medias[templates == t].tolist())):
            total += feats[(templates == t) & (medias == m)].mean(0)
        out[t] = total / np.linalg.norm(total)
    return out


def test_protocol_matches_the_reference_on_a_synthetic_set():
    rng = np.random.default_rng(1)
    ids = rng.normal(size=(12, 16))
    n = 200
    templates = rng.integers(0, 30, n)
    templates[:30] = np.arange(30)  # every template has an image
    person = templates % 12
    medias = templates * 100 + rng.integers(0, 3, n)  # media ids are per template in IJB-C
    emb = ids[person] + 0.7 * rng.normal(size=(n, 16))
    flipped = emb + 0.1 * rng.normal(size=(n, 16))
    face = rng.uniform(0.5, 1.0, n)
    a, b = np.meshgrid(np.arange(30), np.arange(30), indexing="ij")
    a, b = a[a < b], b[a < b]
    y = (a % 12 == b % 12).astype(np.int64)

    got = ijbc.evaluate(emb, flipped, face, templates, medias, (a, b, y))
    ref_t = _reference_templates((emb + flipped) * face[:, None], templates, medias)
    ref_scores = np.array([ref_t[i] @ ref_t[j] for i, j in zip(a, b, strict=True)])
    tids, tf = ijbc.template_features(ijbc.image_features(emb, flipped, face), templates, medias)
    np.testing.assert_allclose(ijbc.pair_scores(tids, tf, a, b), ref_scores, atol=1e-12)
    assert got == ijbc.tar_at_far(y, ref_scores)
    assert set(got) == set(ijbc.FARS) and got[1e-1] >= got[1e-6] > 0.5


def test_errors_name_what_is_wrong(tmp_path):
    feats = np.eye(2)
    tids, tf = ijbc.template_features(feats, np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(KeyError, match=r"1 template id\(s\) in the pairs have no image: \[7\]"):
        ijbc.pair_scores(tids, tf, np.array([1]), np.array([7]))
    with pytest.raises(ValueError, match="both genuine"):
        ijbc.roc_curve(np.ones(3, int), np.arange(3.0))
    with pytest.raises(ValueError, match="one of each per image"):
        ijbc.template_features(feats, np.array([1]), np.array([1, 2]))
    with pytest.raises(ijbc.IJBCFormatError, match=r"nope\.txt: missing; expected lines"):
        ijbc.read_template_pairs(str(tmp_path / "nope.txt"))


def test_readers_and_table(tmp_path):
    (tmp_path / "p.txt").write_text("1 2 1\n3 4 0\n")
    a, b, y = ijbc.read_template_pairs(str(tmp_path / "p.txt"))
    assert (a.tolist(), b.tolist(), y.tolist()) == ([1, 3], [2, 4], [1, 0])
    (tmp_path / "l.txt").write_text("1.jpg " + " ".join(str(v) for v in range(10)) + " 0.75\n")
    names, pts, sc = ijbc.read_landmarks(str(tmp_path / "l.txt"))
    assert names.tolist() == ["1.jpg"] and pts[0, 2].tolist() == [4, 5] and sc[0] == 0.75
    table = ijbc.format_table({"swinface": {1e-6: 0.9082, 1e-1: 0.9908}})
    assert table.splitlines() == ["method | 1e-06 | 1e-01", "swinface | 90.82 | 99.08"]
