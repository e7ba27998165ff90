"""PartialFC sampling (`faceptor_jax.partial_fc`) and the recognition loss's `partial_fc` option:
rate 1 is today's CosFace exactly; a sample holds every positive and its count of distinct
classes; the loss is CosFace over exactly the sampled centres (numpy oracle); only they learn;
a class-sharded mesh equals one device given the same sample; each step draws anew."""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from faceptor_jax import losses, partial_fc
from faceptor_jax.tasks import LossContext, recognition

B, D, C = 16, 8, 197  # 197 classes: padded to 200 (25 per shard) on 8 class shards
TASK = "recognition_ms1mv3"
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, D)).astype(np.float32)
W = RNG.normal(size=(200, D)).astype(np.float32)
W[C:] = 0.0  # padding rows, as `recognition._init` leaves them after a load
Y = np.concatenate([RNG.choice(C - 3, B - 4, replace=False), [C - 1, C - 1, 3, 3]]).astype(np.int32)


def mesh_of(shape):
    return jax.make_mesh(
        shape, ("data", "fsdp", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )


def put(mesh, x, w, y):
    return (
        jax.device_put(x, NamedSharding(mesh, P(("data", "fsdp"), None))),
        jax.device_put(w, NamedSharding(mesh, P("model", None))),
        jax.device_put(y, NamedSharding(mesh, P(("data", "fsdp")))),
    )


def numpy_cosface(x, w, y, s=64.0, m=0.4):
    """float64 CosFace on clamped cosines of x [B,D] against w [S,D], labels y in [0, S)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    cos = np.clip(x @ w.T / (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(w, axis=1)), -1, 1)
    logits = s * (cos - m * np.eye(w.shape[0])[y])
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return np.mean(lse - logits[np.arange(len(y)), y])


def pfc(mesh, rate):
    def f(x, w, y, key):
        return partial_fc.partial_fc_loss(x, w, y, mesh, key, rate=rate, num_classes=C)

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))


def chosen(sample) -> np.ndarray:
    return np.asarray(sample.index)[np.asarray(sample.valid)]


def context(mesh, w, rate=None, step=0) -> LossContext:
    entry = {} if rate is None else {"partial_fc": rate}
    config = ml_collections.ConfigDict(
        dict(seed=7, recognition_classes=C, tasks={TASK: dict(batch_size=B, **entry)})
    )
    return LossContext(TASK, 112, mesh, {"classifier": w}, config, step)


def task_loss(mesh, rate):
    def f(x, w, y, step):
        return recognition.loss({"embedding": x}, {"label": y}, context(mesh, w, rate, step))

    return f


def recognition_grads(mesh, rate):
    return jax.jit(jax.value_and_grad(task_loss(mesh, rate), argnums=(0, 1)))


def test_rate_one_is_todays_cosface_exactly():
    mesh = mesh_of((1, 1, 8))
    x, w, y = put(mesh, X, W, Y)

    def cosface(x, w, y, step):
        return losses.cosface_loss(x, w, y, mesh, num_classes=C)

    want = jax.jit(jax.value_and_grad(cosface, argnums=(0, 1)))(x, w, y, 0)
    program = str(jax.make_jaxpr(cosface)(x, w, y, 0))
    for rate in (None, 1.0):
        got = recognition_grads(mesh, rate)(x, w, y, 0)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert str(jax.make_jaxpr(task_loss(mesh, rate))(x, w, y, 0)) == program  # same program


def test_sample_is_positives_plus_random_and_loss_is_cosface_over_it():
    mesh = mesh_of((1, 1, 1))
    (loss, sample), (gx, gw) = pfc(mesh, 0.3)(X, W, Y, jax.random.PRNGKey(1))
    idx = chosen(sample)
    assert len(idx) == int(0.3 * C) == len(set(idx.tolist()))  # num_sample distinct classes
    assert set(Y.tolist()) <= set(idx.tolist()) and idx.max() < C  # every positive, no padding
    n_pos = len(set(Y.tolist()))
    assert set(idx[:n_pos].tolist()) == set(Y.tolist())  # positives first
    remap = np.searchsorted(np.sort(idx), Y)
    np.testing.assert_allclose(loss, numpy_cosface(X, W[np.sort(idx)], remap), rtol=1e-5)
    out = np.setdiff1d(np.arange(200), idx)
    np.testing.assert_array_equal(np.asarray(gw)[out], 0.0)  # only sampled centres learn
    assert np.all(np.abs(np.asarray(gw)[Y]).sum(1) > 0)  # (others may underflow at s = 64)
    assert np.all(np.isfinite(np.asarray(gx)))


def test_all_positives_kept_when_they_outnumber_the_sample():
    mesh = mesh_of((1, 1, 1))
    (loss, sample), _ = pfc(mesh, 0.05)(X, W, Y, jax.random.PRNGKey(1))  # 9 < 14 positives
    idx = chosen(sample)
    assert sorted(idx.tolist()) == sorted(set(Y.tolist()))
    remap = np.searchsorted(np.sort(idx), Y)
    np.testing.assert_allclose(loss, numpy_cosface(X, W[np.sort(idx)], remap), rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 8), (2, 1, 4)])
def test_class_sharded_equals_one_device_given_the_sample(shape):
    mesh = mesh_of(shape)
    x, w, y = put(mesh, X, W, Y)
    vg = pfc(mesh, 0.3)
    (loss, sample), (gx, gw) = vg(x, w, y, jax.random.PRNGKey(2))
    n = mesh.shape["model"]
    index, valid = np.asarray(sample.index).reshape(n, -1), np.asarray(sample.valid).reshape(n, -1)
    counts = partial_fc.shard_sample_sizes(C, 200, n, 0.3)
    for s in range(n):  # per shard: its own classes, max(count, positives) of them
        mine = index[s][valid[s]]
        pos = {c for c in Y.tolist() if c // (200 // n) == s}
        assert pos <= set(mine.tolist()) and len(set(mine.tolist())) == max(counts[s], len(pos))
        assert np.all(mine // (200 // n) == s) and mine.max() < C
    idx = chosen(sample)
    one = mesh_of((1, 1, 1))
    ref = lambda x, w: partial_fc.sampled_cosface_loss(x, w, Y, sample_on(one, sample), one)
    dloss, (dgx, dgw) = jax.jit(jax.value_and_grad(ref, argnums=(0, 1)))(X, W)
    np.testing.assert_allclose(loss, dloss, rtol=1e-5)
    np.testing.assert_allclose(gx, dgx, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gw, dgw, rtol=1e-4, atol=1e-6)
    remap = np.searchsorted(np.sort(idx), Y)
    np.testing.assert_allclose(loss, numpy_cosface(X, W[np.sort(idx)], remap), rtol=1e-5)
    hlo = vg.lower(x, w, y, jax.random.PRNGKey(2)).compile().as_text()
    assert "all-gather" not in hlo  # neither logits nor labels are gathered


def sample_on(mesh, sample):
    return partial_fc.Sample(
        *(jax.device_put(np.asarray(a), NamedSharding(mesh, P())) for a in sample)
    )


def test_each_step_draws_a_new_sample_and_a_step_repeats_its_own():
    mesh = mesh_of((1, 1, 8))
    _, w, y = put(mesh, X, W, Y)
    draw = jax.jit(
        lambda y, step: partial_fc.sample_classes(
            y, partial_fc.step_key(7, step, TASK), mesh, rate=0.3, num_classes=C, num_padded=200
        )
    )
    s0, s1, again = (set(chosen(draw(y, s)).tolist()) for s in (0, 1, 0))
    assert s0 != s1 and s0 == again
    assert set(Y.tolist()) <= s0 & s1
    # the task's loss takes the step's sample from config.seed and ctx.step
    x = jax.device_put(X, NamedSharding(mesh, P(("data", "fsdp"), None)))
    vg = recognition_grads(mesh, 0.3)
    for step in (0, 1):
        (loss, (_, gw)), sample = vg(x, w, y, step), draw(y, step)
        idx = np.sort(chosen(sample))
        np.testing.assert_allclose(
            loss, numpy_cosface(X, W[idx], np.searchsorted(idx, Y)), rtol=1e-5
        )
        learn = set(np.flatnonzero(np.abs(np.asarray(gw)).sum(1)).tolist())
        assert set(Y.tolist()) <= learn <= set(idx.tolist())
