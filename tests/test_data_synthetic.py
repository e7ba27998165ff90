"""Synthetic faces: deterministic, and every label agrees with what is drawn."""

import numpy as np
import pytest

from data.synthetic_faces import DATASET_LAYOUTS, SyntheticFaces, render, render_full
from faceptor_jax import preprocess as pp

ATTR = {name: i for i, name in enumerate(render.CELEBA_ATTRIBUTES)}


def test_deterministic_per_seed_and_index():
    a, b = render_full(3, 17, 128), render_full(3, 17, 128)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert not np.array_equal(render_full(4, 17, 128)["image"], a["image"])


@pytest.mark.parametrize("index", range(12))
def test_labels_agree_with_the_drawing(index):
    r = render_full(0, index, 256)
    attrs, mask, lapa = r["attributes"], r["mask_celebamask_hq"], r["mask_lapa"]
    assert len(render.CELEBA_ATTRIBUTES) == 40 and attrs.shape == (40,)
    assert mask.max() < 19 and lapa.max() < 11
    for attr, cls in (("Eyeglasses", 15), ("Wearing_Hat", 16), ("Wearing_Necklace", 18)):
        assert bool(attrs[ATTR[attr]]) == bool((mask == cls).any()), attr
    assert attrs[ATTR["Smiling"]] == (r["expression"] == 1)
    assert attrs[ATTR["Young"]] == (r["age"] < 35)
    assert attrs[ATTR["Bald"]] == (not (mask == 14).any())
    # pupils (98-pt 96/97) lie on the eyes (or the glasses drawn over them), the nose tip on
    # the nose, both mouth corners near the lips
    lm = r["landmarks_98"]
    at = lambda p, m: m[round(float(p[1])), round(float(p[0]))]
    assert {at(lm[96], mask), at(lm[97], mask)} <= {8, 9, 15}
    assert at(lm[96], lapa) == 5 and at(lm[97], lapa) == 4  # re (image left), le
    assert at(lm[54], mask) in (10, 15)
    assert np.isin([at(lm[76], lapa), at(lm[82], lapa)], [1, 7, 8, 9]).all()


def test_lapa_alignment_points_fit_the_template():
    r = SyntheticFaces("lapa", "train", length=4)[2]
    pts = r["landmarks"][list(pp.LAPA_ALIGN_INDICES)]
    m = pp.face_align_matrix(pts, 512)
    target = (pp.FACE_TEMPLATE + 1) * 511 / 2
    # a face, not noise (expressions are caricatured: a smile is 30% wider than the template)
    assert np.abs(pp.source_to_warped(pts, m) - target).max() < 32


def test_every_dataset_view_and_identity_pairs():
    for name in DATASET_LAYOUTS:
        rec = SyntheticFaces(name, "train", length=2, size=96)[1]
        assert rec["image"].dtype == np.uint8 and rec["image"].shape[2] == 3
    pairs = SyntheticFaces("lfw", "test", length=4)
    assert [pairs[i]["issame"] for i in range(4)] == [1, 0, 1, 0]
    ids = SyntheticFaces("ms1mv3", length=50, num_identities=7)
    assert {ids[i]["label"] for i in range(50)} <= set(range(7))


def test_cached_source_returns_the_same_records_read_only():
    plain = SyntheticFaces("ibug300w", "train", length=3, size=64)
    cached = SyntheticFaces("ibug300w", "train", length=3, size=64, cache=True)
    for i in (2, 0, 2):
        a, b = plain[i], cached[i]
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert cached[2] is cached[2] and not cached[2]["image"].flags.writeable
