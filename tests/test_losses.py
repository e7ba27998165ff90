"""Losses vs the original's formulas (fixtures, see tests/fixtures/losses_metrics/README.md) and vs
hand-known answers; the sharded CosFace vs the dense one on the 8-device CPU mesh."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from faceptor_jax import heatmaps, losses, resample
from faceptor_jax.model.interpreters import landmark_output

FIX = np.load(pathlib.Path(__file__).parent / "fixtures" / "losses_metrics" / "losses.npz")
TOL = 1e-5


def close(a, b, tol=TOL):
    """|a − b| ≤ tol·max(1, |b|) elementwise (relative for large values like CosFace's)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def mesh_of(shape):
    return jax.make_mesh(
        shape, ("data", "fsdp", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )


# ----------------------------------------------------------------------------- CosFace
def cosface_dense(x, w, y, scale=64.0, margin=0.4):
    """The unsharded CosFace formula, the oracle for the sharded `losses.cosface_loss`."""
    norms = jnp.linalg.norm(x, axis=-1)[:, None] * jnp.linalg.norm(w, axis=-1)[None, :]
    onehot = jax.nn.one_hot(y, w.shape[0])
    logits = scale * (x @ w.T / jnp.maximum(norms, 1e-8) - margin * onehot)
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.sum(onehot * logits, axis=-1))


def test_cosface_dense_matches_original_value_and_grads():
    x, w, y = FIX["cos_x"], FIX["cos_w"], FIX["cos_y"]
    loss, (gx, gw) = jax.jit(jax.value_and_grad(cosface_dense, argnums=(0, 1)))(x, w, y)
    close(loss, FIX["cos_loss"])
    close(gx, FIX["cos_gx"])
    close(gw, FIX["cos_gw"])


@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 1, 4), (2, 2, 2), (8, 1, 1)])
def test_cosface_sharded_equals_dense(shape):
    mesh = mesh_of(shape)
    x, w, y = FIX["cos_x"], FIX["cos_w"], FIX["cos_y"]  # 37 classes: needs padding to the mesh
    c_pad = losses.padded_num_classes(w.shape[0], mesh.shape["model"])
    w_pad = np.concatenate([w, np.zeros((c_pad - w.shape[0], w.shape[1]), np.float32)])
    xs = jax.device_put(x, NamedSharding(mesh, P(("data", "fsdp"), None)))
    ws = jax.device_put(w_pad, NamedSharding(mesh, P("model", None)))
    ys = jax.device_put(y, NamedSharding(mesh, P(("data", "fsdp"))))

    def f(x, w, y):
        return losses.cosface_loss(x, w, y, mesh, num_classes=37)

    vg = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    loss, (gx, gw) = vg(xs, ws, ys)
    dloss, (dgx, dgw) = jax.jit(jax.value_and_grad(cosface_dense, argnums=(0, 1)))(x, w, y)
    close(loss, dloss)
    close(loss, FIX["cos_loss"])
    close(gx, dgx)
    close(gw[:37], dgw)
    np.testing.assert_array_equal(np.asarray(gw[37:]), 0.0)  # padding rows learn nothing
    # The [B, C] logits are never gathered: the compiled step has no all-gather at all.
    hlo = vg.lower(xs, ws, ys).compile().as_text()
    assert "all-gather" not in hlo


def test_cosface_rejects_unpadded_classes():
    with pytest.raises(ValueError, match="padded_num_classes"):
        losses.cosface_loss(FIX["cos_x"], FIX["cos_w"], FIX["cos_y"], mesh_of((1, 1, 8)))


def test_cosface_full_size_class_count_pads():
    assert losses.padded_num_classes(93431, 8) == 93432
    assert losses.padded_num_classes(93431, 1) == 93431


# ----------------------------------------------------------------------------- age
def test_age_matches_original():
    logits, ages = FIX["age_logits"], FIX["age_ages"]
    close(losses.age_target_distribution(jnp.asarray(ages)), FIX["age_dist"])
    t = jax.jit(losses.age_loss_terms)(logits, ages)
    close(t["kl"], FIX["age_kl"])
    close(t["l1"], FIX["age_l1"])
    close(
        jax.jit(losses.expected_age)(logits), FIX["age_pred"], tol=1e-4
    )  # ages ~50: 2e-6 relative
    close(jax.jit(jax.grad(losses.age_loss))(logits, ages), FIX["age_grad"])


def test_age_perfect_distribution_has_zero_kl():
    ages = jnp.array([30.0, 31.0])
    d = losses.age_target_distribution(ages)
    logits = jnp.log(d) - jnp.log1p(-d)  # σ(logits) = d exactly, already L1-normalised
    t = jax.jit(losses.age_loss_terms)(jnp.maximum(logits, -80.0), ages)
    assert abs(float(t["kl"])) < 1e-5
    assert float(t["l1"]) < 1e-3


def test_age_loss_finite_when_sigmoid_underflows():
    logits = jnp.full((1, 101), -200.0).at[0, 40].set(5.0)  # σ = 0 in fp32 for most bins
    val, g = jax.jit(jax.value_and_grad(losses.age_loss))(logits, jnp.array([40.0]))
    assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(g)))


# ----------------------------------------------------------------------------- attributes etc.
def test_attributes_match_original_with_and_without_ratio():
    lg, tg = FIX["attr_logits"], FIX["attr_targets"]
    close(jax.jit(losses.attribute_loss)(lg, tg), FIX["attr_loss"])
    close(losses.attribute_loss(lg, tg, FIX["attr_ratio"]), FIX["attr_loss_ratio"])


def test_attribute_ignored_labels_carry_no_loss_or_gradient():
    lg = jnp.array([[3.0, -2.0, 1000.0]])
    tg = jnp.array([[1, 0, -1]])
    g = jax.grad(losses.attribute_loss)(lg, tg)
    assert float(g[0, 2]) == 0.0
    want = np.log1p(np.exp(-3.0)) + np.log1p(np.exp(-2.0))
    close(losses.attribute_loss(lg, tg), want)


def test_expression_and_parsing_match_original():
    close(losses.expression_loss(FIX["expr_logits"], FIX["expr_labels"]), FIX["expr_loss"])
    close(jax.jit(losses.parsing_loss)(FIX["parse_logits"], FIX["parse_mask"]), FIX["parse_loss"])


def test_parsing_ignore_index_is_excluded_from_the_mean():
    lg = jnp.asarray(FIX["parse_logits"])
    mask = jnp.asarray(FIX["parse_mask"])
    ignored = mask.at[0].set(-100)
    loss = jax.jit(losses.parsing_loss)
    close(loss(lg, ignored), loss(lg[1:], mask[1:]))
    assert float(loss(lg, jnp.full_like(mask, -100))) == 0.0


# ----------------------------------------------------------------------------- landmarks
def test_rendered_targets_equal_the_cuda_kernel_reference():
    g = heatmaps.normalize_points(jnp.asarray(FIX["align_landmarks"]), 512)
    got = np.asarray(jax.jit(heatmaps.render_heatmaps)(g))
    want = FIX["align_target"]
    np.testing.assert_array_equal(got > 0, want > 0)  # same support (r ≤ R, image bounds)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_rendered_target_by_hand():
    # heatmap point (10, 20) == normalised ((10.5)/128, (20.5)/128)
    g = jnp.array([[[10.5 / 128, 20.5 / 128]]])
    hm = np.asarray(heatmaps.render_heatmaps(g, 128, 5.0))[0, 0]
    assert hm[20, 10] == 1.0
    close(hm[20, 15], np.exp(-8.0))  # r = R: σ = R/4 -> exp(-16/2)
    close(hm[23, 14], np.exp(-25 * 16 / 50))  # r = 5 exactly (3-4-5)
    assert hm[20, 16] == 0.0 and hm[26, 10] == 0.0  # r > R
    assert np.count_nonzero(hm) == 81  # lattice points with x² + y² ≤ 25


def test_landmark_loss_matches_original_value_and_grads():
    # the fixtures are the original's [B, K, h, w]; the loss takes the model's [B, h, w, K]
    heatmap = np.moveaxis(FIX["align_heatmap_logits"], 1, -1)
    args = (heatmap, FIX["align_pred_points"], FIX["align_landmarks"])
    t = jax.jit(losses.landmark_loss_terms)(*args)
    close(t["coord"], FIX["align_coord"])
    close(t["heatmap"], FIX["align_bce"])
    g_hm, g_pts = jax.jit(jax.grad(losses.landmark_loss, argnums=(0, 1)))(*args)
    close(g_pts, FIX["align_grad_points"])  # includes an exact hit: gradient 0, not NaN
    close(np.moveaxis(np.asarray(g_hm), -1, 1), FIX["align_grad_heatmap"])


def test_landmark_perfect_points_zero_coord_loss():
    lm = jnp.asarray(FIX["align_landmarks"])
    pred = heatmaps.normalize_points(lm, 512)
    hm = jnp.zeros((2, 128, 128, 6))
    t = losses.landmark_loss_terms(hm, pred, lm)
    assert float(t["coord"]) == 0.0
    assert np.all(np.isfinite(np.asarray(jax.grad(losses.landmark_loss, argnums=1)(hm, pred, lm))))


def test_soft_argmax_matches_original_and_peaks():
    # The model's soft-argmax (its AlignOutput) takes channels-last maps [B,h,w,K].
    def soft_argmax(logits):  # [B,K,h,w] -> [B,K,2]
        return landmark_output(jnp.moveaxis(jnp.asarray(logits), 1, -1))["landmarks"]

    close(soft_argmax(FIX["softargmax_logits"]), FIX["softargmax_points"])
    logits = jnp.full((1, 1, 16, 20), -1e4).at[0, 0, 3, 7].set(1e4)
    close(soft_argmax(logits)[0, 0], [(7 + 0.5) / 20, (3 + 0.5) / 16])


def test_resize_bilinear_matches_torch():
    # The landmark loss resizes [B,K,h,w] heatmaps with the model's channels-last resize.
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(1, 2, 50, 50)).astype(np.float32)
    for size in (128, 20):
        want = torch.nn.functional.interpolate(
            torch.from_numpy(x), (size, size), mode="bilinear", align_corners=False
        ).numpy()
        got = resample.resize_bilinear(jnp.asarray(x.transpose(0, 2, 3, 1)), (size, size))
        close(np.asarray(got).transpose(0, 3, 1, 2), want)


# ----------------------------------------------------------------------------- bad input
Z62 = jnp.zeros((2, 6, 2))
Z48 = jnp.zeros((4, 8))


@pytest.mark.parametrize(
    "call",
    [
        lambda: losses.expression_loss(jnp.zeros((4, 7)), jnp.zeros((3,), jnp.int32)),
        lambda: losses.attribute_loss(jnp.zeros((4, 40)), jnp.zeros((4, 39), jnp.int32)),
        lambda: losses.parsing_loss(jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 8, 9), jnp.int32)),
        lambda: losses.age_loss(jnp.zeros((4, 101)), jnp.zeros((5,))),
        lambda: losses.landmark_loss(jnp.zeros((2, 5, 8, 8)), Z62, Z62),
        lambda: losses.cosface_loss(Z48, jnp.zeros((8, 8)), jnp.zeros(3, int), mesh_of((1, 1, 8))),
        lambda: heatmaps.render_heatmaps(jnp.zeros((2, 5, 3))),
    ],
)
def test_shape_mismatch_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
