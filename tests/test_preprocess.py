"""preprocess/augment/the task transforms: the original's transforms, flips, normalisation."""

import numpy as np
import pytest
import torch

from data.synthetic_faces import render_full
from faceptor_jax import augment, tasks
from faceptor_jax import preprocess as pp


def _bilinear_sample(image, x, y):
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    ax, ay = x - x0, y - y0
    p = image.astype(np.float64)
    return (
        p[y0, x0] * (1 - ax) * (1 - ay)
        + p[y0, x0 + 1] * ax * (1 - ay)
        + p[y0 + 1, x0] * (1 - ax) * ay
        + p[y0 + 1, x0 + 1] * ax * ay
    )


def test_normalisation_matches_original_mean_std():
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255  # torchvision ToTensor
    for mean, std in ((pp.HALF_MEAN, pp.HALF_STD), (pp.CLIP_MEAN, pp.CLIP_STD)):
        ref = (t - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        ours = pp.normalize(img, mean, std)
        np.testing.assert_allclose(ours, ref.permute(1, 2, 0).numpy(), atol=1e-6)
    np.testing.assert_array_equal(pp.CLIP_MEAN, np.float32([0.48145466, 0.4578275, 0.40821073]))
    np.testing.assert_array_equal(pp.CLIP_STD, np.float32([0.26862954, 0.26130258, 0.27577711]))
    assert pp.normalize(np.full((1, 1, 3), 255, np.uint8), pp.HALF_MEAN, pp.HALF_STD).max() == 1.0


def test_remap_matches_cv2_golden_values():
    # Reference: cv2 4.10 remap(INTER_LINEAR / INTER_NEAREST, BORDER_CONSTANT 0) on this input.
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 3)).astype(np.float32)
    xy = np.stack(
        [
            np.float32([[0.3, 1.7, 6.95, -0.6, 7.2, 3.03]]),
            np.float32([[0.9, 2.26, 0.1, 3.5, 7.4, 5.51]]),
        ],
        -1,
    )
    golden = [0.7027278, 0.42573327, 0.2042971, 0.1196693, 0.27900192, 0.48316902]
    np.testing.assert_allclose(pp.remap(img, xy, "bilinear")[0, :, 0], golden, atol=1e-6)
    lab = rng.integers(0, 19, (8, 8)).astype(np.uint8)
    np.testing.assert_array_equal(pp.remap(lab, xy, "nearest"), [[8, 15, 10, 0, 1, 8]])


def _bilinear_reference(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """One pixel the way cv2 does it (1/32 fractions, taps outside the image read 0)."""
    fx, fy = round(x * 32), round(y * 32)
    x0, y0, ax, ay = fx >> 5, fy >> 5, (fx & 31) / 32, (fy & 31) / 32
    h, w = img.shape[:2]
    tap = lambda i, j: img[j, i] if 0 <= i < w and 0 <= j < h else np.zeros(img.shape[2])
    return (
        tap(x0, y0) * (1 - ax) * (1 - ay) + tap(x0 + 1, y0) * ax * (1 - ay)
        + tap(x0, y0 + 1) * (1 - ax) * ay + tap(x0 + 1, y0 + 1) * ax * ay
    )  # fmt: skip


@pytest.mark.parametrize("where", ["inside", "across the corner", "outside"])
def test_remap_reads_only_the_window_it_needs_with_the_same_values(where):
    # remap pads only the part of the image the taps reach (a 72 MP photo is never copied whole).
    rng = np.random.default_rng(3)
    img = rng.random((40, 50, 3)).astype(np.float32)
    start = {"inside": (20.3, 11.7), "across the corner": (46.1, 36.6), "outside": (60.0, 45.0)}
    x, y = start[where]
    xy = np.stack(np.meshgrid(x + 0.73 * np.arange(7), y + 0.61 * np.arange(6)), -1)
    got = pp.remap(img, xy.astype(np.float32), "bilinear")
    want = [[_bilinear_reference(img, px, py) for px, py in row] for row in xy.astype(np.float32)]
    np.testing.assert_allclose(got, np.float32(want), atol=1e-6)


def test_identity_warp_and_crop_matrix():
    img = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(pp.warp(img, np.eye(3), 16), img, atol=1e-6)
    m = pp.crop_matrix(np.array([-0.5, -0.5, 15.5, 15.5]), 16)  # full-image box = identity
    np.testing.assert_allclose(m, np.eye(3), atol=1e-6)
    m = pp.crop_matrix(np.array([10.0, 20.0, 110.0, 120.0]), 512)
    np.testing.assert_allclose(
        pp.source_to_warped(np.array([[20.0, 10.0]]), m), [[-0.5, -0.5]], atol=1e-5
    )


@pytest.mark.parametrize("warp_factor", [0.0, 0.8])
def test_points_round_trip_through_tanh_warp(warp_factor):
    m = pp.random_similarity(np.random.default_rng(2), 512) @ pp.crop_matrix(
        np.array([5, 9, 300, 290])
    )
    pts = np.random.default_rng(3).uniform(40, 250, (20, 2))
    warped = pp.source_to_warped(pts, m, warp_factor)
    np.testing.assert_allclose(pp.warped_to_source(warped, m, warp_factor), pts, atol=2e-3)


def test_warp_moves_landmarks_with_the_image():
    """A landmark label through M stays on the same image content as the warped image."""
    rec = render_full(0, 5, 256, masks=False)
    m = pp.random_similarity(np.random.default_rng(4), 256, 0.05, 0.2, 0.1) @ pp.crop_matrix(
        rec["box"], 256
    )
    img = pp.to_unit_float(rec["image"])
    warped = pp.warp(img, m, 256)
    pts = pp.source_to_warped(rec["landmarks_68"], m, 0.0, 256)
    src = np.array([_bilinear_sample(img, x, y) for x, y in rec["landmarks_68"]])
    dst = np.array([_bilinear_sample(warped, x, y) for x, y in pts])
    assert np.median(np.abs(src - dst)) < 0.05


def test_umeyama_recovers_a_similarity():
    truth = pp.similarity_matrix(0.3, 1.7, (12.0, -4.0), (0.0, 0.0)).astype(np.float64)
    src = np.random.default_rng(5).uniform(0, 100, (5, 2))
    dst = src @ truth[:2, :2].T + truth[:2, 2]
    np.testing.assert_allclose(pp.umeyama_similarity(src, dst), truth, atol=1e-4)
    pts = pp.FACE_TEMPLATE * 100 + 200  # the template itself aligns onto the 512 template
    m = pp.face_align_matrix(pts, 512)
    np.testing.assert_allclose(m[0, 0], 511 / 2 / 100, rtol=1e-5)


# The original flips no dense task in training; the landmark sets' mirror permutations stay here
# as test data: they check that the synthetic renderer lays out left and right as the datasets do.
def _pairs_to_perm(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    perm = np.arange(n)
    for i, j in pairs:
        perm[i], perm[j] = j, i
    return perm


_COFW_PAIRS = [(0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (10, 11), (12, 14), (16, 17), (13, 15)]
_COFW_PAIRS += [(18, 19), (22, 23)]
# Horizontal-flip landmark permutations (flipped[k] = original[perm[k]] with x mirrored).
FLIP_PERMUTATION = {
    68: _pairs_to_perm(
        68,
        [(i, 16 - i) for i in range(8)]
        + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34)]
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
        + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)],
    ),
    98: _pairs_to_perm(
        98,
        [(i, 32 - i) for i in range(16)]
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48)]
        + [(41, 47), (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74)]
        + [(67, 73), (55, 59), (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84)]
        + [(88, 92), (89, 91), (95, 93), (96, 97)],
    ),
    29: _pairs_to_perm(29, _COFW_PAIRS),
    19: _pairs_to_perm(19, [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 14), (15, 17)]),
}


def hflip_landmarks(points: np.ndarray, width: int) -> np.ndarray:
    """Mirror [K,2] (x, y) pixel landmarks: x -> width-1-x and left/right indices swapped."""
    out = np.array(points, np.float32)[FLIP_PERMUTATION[points.shape[0]]]
    out[:, 0] = width - 1 - out[:, 0]
    return out


def test_flipping_twice_is_identity():
    rng = np.random.default_rng(6)
    img = rng.random((9, 11, 3))
    np.testing.assert_array_equal(pp.hflip_image(pp.hflip_image(img)), img)
    for k in (68, 98, 29, 19):
        pts = rng.integers(0, 400, (k, 2)).astype(np.float32) / 4  # exact in float32
        np.testing.assert_allclose(hflip_landmarks(hflip_landmarks(pts, 101), 101), pts)
        perm = FLIP_PERMUTATION[k]
        np.testing.assert_array_equal(perm[perm], np.arange(k))


@pytest.mark.parametrize("k", [68, 98, 29, 19])
def test_flipped_landmarks_match_flipped_face(k):
    """On the renderer's geometry: a frontal face is its own mirror, so flipping its landmarks
    (mirror x, permute left/right indices) must give back the same landmarks; and on any face
    the flipped set sits on the same pixels of the flipped image as the original set."""
    from data.synthetic_faces import geometry, render

    ident = render.make_identity(0, 3)
    sample = render.make_sample(0, 3, 256, 10, identity=3)
    frontal = render.Sample(3, 30, 0, ident.shape, sample.flags, 0.0, 80.0, (127.5, 127.5))
    pts = render.to_pixels(frontal, geometry.LANDMARK_SETS[k](frontal.shape))
    np.testing.assert_allclose(hflip_landmarks(pts, 256), pts, atol=1e-3)

    rec = render_full(0, 11, 256, masks=False)
    img, pts = rec["image"], rec[f"landmarks_{k}"]
    flipped_img, flipped_pts = pp.hflip_image(img), hflip_landmarks(pts, 256)
    for j in range(k):
        src = _bilinear_sample(img, *pts[j])
        dst = _bilinear_sample(flipped_img, *flipped_pts[FLIP_PERMUTATION[k][j]])
        np.testing.assert_allclose(src, dst, atol=0.02)  # float32 coordinates


def test_box_blur_and_gray_are_cv2_like():
    img = np.random.default_rng(7).random((10, 12, 3)).astype(np.float32)
    out = augment.box_blur(img, 3)
    np.testing.assert_allclose(out[4, 5], img[3:6, 4:7].mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(out[0, 0], img[[1, 0, 1]][:, [1, 0, 1]].mean(axis=(0, 1)), atol=1e-6)
    g = augment.rgb_to_gray3(img)
    np.testing.assert_allclose(g[..., 1], img @ np.float32([0.299, 0.587, 0.114]), atol=1e-6)


def test_small_image_transforms_shapes_and_determinism():
    img = np.random.default_rng(8).integers(0, 256, (130, 112, 3)).astype(np.uint8)
    a = augment.attribute_train(np.random.default_rng(9), img)
    b = augment.attribute_train(np.random.default_rng(9), img)
    assert a.shape == (112, 112, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    test = augment.attribute_test(img)
    assert test.shape == (112, 112, 3) and test.min() >= -1.0 and test.max() <= 1.0
    sq = augment.center_square(augment.Image.fromarray(img))
    assert sq.size == (112, 112)


@pytest.mark.parametrize(
    "task", ["parsing_celebamaskhq", "parsing_lapa", "landmarks_wflw", "age_morph2"]
)
def test_dataset_transforms_follow_the_batch_contract(task):
    from data.synthetic_faces import SyntheticFaces

    t = tasks.get(task)
    rec = SyntheticFaces(t.dataset, "train", length=4)[1]
    rng = np.random.default_rng(0)
    train = tasks.transform(task, rec, rng, train=True, size=None)
    test = tasks.transform(task, rec, rng, train=False)
    size = t.input_size
    assert train["image"].shape == (size, size, 3) and train["image"].dtype == np.float32
    if t.type.name == "parsing":
        assert train["mask"].shape == (size, size) and train["mask"].max() < t.outputs
    if t.type.name == "landmarks":
        assert train["landmarks"].shape == (t.outputs, 2)
        assert test["crop_matrix"].shape == (3, 3) and test["landmarks_orig"].shape == (98, 2)
        back = pp.warped_to_source(test["landmarks"], test["crop_matrix"])
        np.testing.assert_allclose(back, test["landmarks_orig"], atol=1e-2)


def test_posterize_at_full_magnitude_keeps_no_bits():
    from PIL import Image

    from faceptor_jax import augment

    img = Image.fromarray(np.full((4, 4, 3), 200, np.uint8))
    assert np.all(np.asarray(augment._posterize(img, 0)) == 0)  # timm level 10 -> 0 bits
    assert np.all(np.asarray(augment._posterize(img, 4)) == 192)
    assert np.all(np.asarray(augment._posterize(img, 8)) == 200)
