"""Faceptor / Naive Faceptor on tiny configs: routing, batching, BN, gradients, outputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from faceptor_jax import sharding, tasks
from faceptor_jax.layers import BatchNorm
from faceptor_jax.model.faceptor import Faceptor, FaceptorConfig
from faceptor_jax.model.interpreters import landmark_output
from faceptor_jax.model.naive import NaiveConfig, NaiveFaceptor
from faceptor_jax.model.transformer_decoder import DecoderConfig, anchor_sine
from faceptor_jax.model.vit import ViTConfig
from faceptor_jax.resample import adaptive_avg_pool, resize_bilinear

ENC = ViTConfig(width=32, depth=4, heads=2, mlp_dim=64, pe_grid=4)
SIZES = {112: 32, 512: 64}  # tiny stand-ins for the two input sizes (grids 2×2 and 4×4)


def tiny_config(names=tasks.FULL, new_levels=(1,)) -> FaceptorConfig:
    return FaceptorConfig(
        encoder=ENC,
        decoder=DecoderConfig(hidden=16, heads=2, ffn=32, layers=2),
        tasks=tasks.head_specs(names),
        levels=(3,),
        new_levels=new_levels,
        embed_dim=24,
    )


def tiny_images(names, batch=2, seed=0) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(names))
    return {
        n: jax.random.normal(k, (batch, *(SIZES[tasks.get(n).input_size],) * 2, 3))
        for n, k in zip(names, keys, strict=True)
    }


SUBSET = ("recognition_ms1mv3", "age_morph2", "expression_rafdb", "parsing_lapa", "landmarks_aflw")
forward = nnx.jit(lambda m, x: m(x))


@pytest.fixture(scope="module")
def model(numpy_init):
    return numpy_init(lambda: Faceptor(tiny_config(), rngs=nnx.Rngs(0)))


@pytest.fixture(scope="module")
def together(model):
    images = tiny_images(tasks.FULL)
    return images, forward(model, images)


def test_unknown_task_lists_the_valid_ones(model):
    with pytest.raises(ValueError, match=r"unknown task\(s\) pose_300w.*recognition_ms1mv3.*"):
        model({"pose_300w": jnp.zeros((1, 32, 32, 3))})
    with pytest.raises(ValueError, match=r"unknown task 'nope'; valid tasks: recognition_ms1mv3"):
        tasks.get("nope")


def test_output_shapes(together):
    _, out = together
    assert out["recognition_ms1mv3"]["embedding"].shape == (2, 24)
    assert out["age_morph2"]["logits"].shape == (2, 101)
    assert out["attributes_celeba"]["logits"].shape == (2, 40)
    assert out["expression_ferplus"]["logits"].shape == (2, 7)
    assert out["parsing_lapa"]["maps"].shape == (2, 16, 16, 11)  # 4× the 4×4 grid
    assert out["parsing_lapa"]["logits"].shape == (2, 64, 64, 11)  # input size, channels last
    assert out["landmarks_wflw"]["heatmap"].shape == (2, 16, 16, 98)
    assert out["landmarks_wflw"]["landmarks"].shape == (2, 98, 2)


def test_grouped_and_batched_forward_equals_one_task_at_a_time(model, together):
    images, out = together
    # each of these shares its decoder call (same kind and query count) with another task
    for name in ("age_utkface", "expression_rafdb", "landmarks_aflw", "recognition_ms1mv3"):
        alone = forward(model, {name: images[name]})[name]
        for k, v in alone.items():
            np.testing.assert_allclose(out[name][k], v, atol=2e-5, rtol=1e-5, err_msg=name)


def test_added_levels_change_decoder_tasks_only(model, together):
    images, out = together
    changed = nnx.clone(model)
    p = changed.layer_attention.new_input_proj
    p.embed[...] = p.embed[...] + 1.0
    new = forward(changed, images)
    np.testing.assert_array_equal(
        new["recognition_ms1mv3"]["embedding"], out["recognition_ms1mv3"]["embedding"]
    )
    assert not np.allclose(new["age_morph2"]["logits"], out["age_morph2"]["logits"], atol=1e-4)
    assert not np.allclose(new["parsing_lapa"]["maps"], out["parsing_lapa"]["maps"], atol=1e-4)


def test_memory_holds_every_level(model):
    patches = jax.random.normal(jax.random.key(1), (4, 3, 16, 32))
    memory, pos, source = model.layer_attention(patches, model.decoder.anchor_pos((4, 4)))
    assert memory.shape == (3, 32, 16) and pos.shape == (32, 16) and source.shape == (3, 16, 16)
    np.testing.assert_array_equal(memory[:, :16], source)  # level 3 first, then the added level 1


def test_train_mode_batchnorm_uses_and_tracks_batch_statistics(numpy_init):
    m = numpy_init(lambda: Faceptor(tiny_config(("recognition_ms1mv3",)), rngs=nnx.Rngs(0)))
    x = tiny_images(("recognition_ms1mv3",), batch=4)
    eval_out = m(x)["recognition_ms1mv3"]["embedding"]
    before = np.array(m.recognition.bn_2.var[...])
    train_out = m(x, train=True)["recognition_ms1mv3"]["embedding"]
    # batch statistics: every feature has zero mean over the batch before the affine
    np.testing.assert_allclose(
        np.asarray(train_out).mean(0), np.asarray(m.recognition.bn_2.bias[...]), atol=1e-4
    )
    assert not np.allclose(train_out, eval_out)
    after = np.asarray(m.recognition.bn_2.var[...])
    assert not np.allclose(before, after)


def test_every_parameter_a_task_reaches_gets_a_gradient(numpy_init):
    m = numpy_init(lambda: Faceptor(tiny_config(SUBSET), rngs=nnx.Rngs(0)))
    images = tiny_images(SUBSET)

    def loss(m):
        out = m(images)
        return sum(
            jnp.sum(jnp.square(v))
            for o in out.values()
            for v in o.values()
            if v.dtype == jnp.float32
        )

    grads = nnx.jit(nnx.grad(loss))(m)
    zero = [
        jax.tree_util.keystr(p)
        for p, g in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(grads))
        if not np.any(np.asarray(g))
    ]
    assert zero == [], zero


def test_user_terms():
    out = {
        "age_morph2": {"logits": jnp.where(jnp.arange(101) == 30, 20.0, -20.0)[None]},
        "expression_rafdb": {"logits": jnp.array([[0.0, 5.0, 0, 0, 0, 0, 0]])},
        "landmarks_300w": {
            "heatmap": jnp.zeros((1, 4, 4, 68)),
            "landmarks": jnp.full((1, 68, 2), 0.25),
        },
        "parsing_lapa": {"logits": jax.nn.one_hot(jnp.full((1, 8, 8), 3), 11)},
    }
    dec = tasks.decode(out)
    np.testing.assert_allclose(dec["age_morph2"]["age"], [30.0], atol=1e-4)
    assert int(dec["expression_rafdb"]["label"][0]) == 1  # happy
    np.testing.assert_allclose(dec["landmarks_300w"]["landmarks"], 0.25 * 512 - 0.5)
    assert (np.asarray(dec["parsing_lapa"]["label_map"]) == 3).all()


def test_landmark_soft_argmax_of_sigmoid_maps():
    logits = jnp.full((1, 8, 16, 2), -30.0).at[0, 5, 3, 0].set(30.0).at[0, 2, 12, 1].set(30.0)
    pts = landmark_output(logits)["landmarks"]
    np.testing.assert_allclose(pts[0], [[3.5 / 16, 5.5 / 8], [12.5 / 16, 2.5 / 8]], atol=1e-6)


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 28), (32, 128), (128, 512), (6, 3), (5, 13)])
def test_bilinear_resize_matches_torch(n_in, n_out):
    # torch computes source indices in fp32 (ours in fp64): ~1e-5 apart for odd ratios
    x = np.random.default_rng(0).normal(size=(2, 3, n_in, n_in + 1)).astype(np.float32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=(n_out, n_out + 2), mode="bilinear", align_corners=False
    ).numpy()
    got = resize_bilinear(jnp.asarray(x.transpose(0, 2, 3, 1)), (n_out, n_out + 2))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=5e-5)


@pytest.mark.parametrize("size", [1, 2, 3, 6])
def test_adaptive_avg_pool_matches_torch(size):
    x = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), size).numpy()
    got = adaptive_avg_pool(jnp.asarray(x.transpose(0, 2, 3, 1)), size)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-6)


def test_anchor_sine_embedding_layout():
    emb = anchor_sine((2, 3), 4)  # [6, 8]: y's 4 features then x's 4, sin/cos interleaved
    y, x = (0 + 0.5) / 2, (2 + 0.5) / 3  # token 2 = (h 0, w 2)
    a = lambda v, k: 2 * np.pi * v / 10000 ** (2 * (k // 2) / 4)
    want = [np.sin(a(y, 0)), np.cos(a(y, 1)), np.sin(a(y, 2)), np.cos(a(y, 3))]
    want += [np.sin(a(x, 0)), np.cos(a(x, 1)), np.sin(a(x, 2)), np.cos(a(x, 3))]
    np.testing.assert_allclose(emb[2], want, atol=1e-6)


def test_naive_forward_and_routing(numpy_init):
    cfg = NaiveConfig(
        encoder=dataclasses.replace(ENC, depth=12),
        tasks=tasks.head_specs(tasks.BASE),
        embed_dim=24,
        swin_dim=32,
        uper_channels=16,
    )
    m = numpy_init(lambda: NaiveFaceptor(cfg, rngs=nnx.Rngs(0)))
    images = tiny_images(tasks.BASE)
    out = forward(m, images)
    assert sorted(m.heads.keys()) == sorted(
        ["recognition", "age", "attributes", "expression", "parsing", "landmarks"]
    )
    assert out["expression_rafdb"]["logits"].shape == (2, 7)
    assert out["landmarks_300w"]["heatmap"].shape == (2, 16, 16, 68)
    assert out["parsing_celebamaskhq"]["logits"].shape == (2, 64, 64, 19)
    alone = forward(m, {"expression_rafdb": images["expression_rafdb"]})["expression_rafdb"]
    np.testing.assert_allclose(alone["logits"], out["expression_rafdb"]["logits"], atol=2e-5)
    with pytest.raises(ValueError, match="unknown task"):
        m({"age_utkface": images["age_morph2"]})


def test_sharded_forward_equals_single_device(model):
    """All 13 tasks on a (data 2, fsdp 2, model 2) mesh: params placed by the logical-axis rules."""
    images = tiny_images(tasks.FULL, batch=4, seed=3)
    want = forward(model, images)
    mesh = sharding.make_mesh((2, 2, 2))
    graphdef, state = nnx.split(nnx.clone(model))
    specs = sharding.param_specs(state, sharding.DEFAULT_RULES, mesh)
    place = lambda v, s: jax.device_put(v, jax.NamedSharding(mesh, s))
    values = jax.tree.map(place, nnx.to_pure_dict(state), nnx.to_pure_dict(specs))
    nnx.replace_by_pure_dict(state, values)
    sharded = nnx.merge(graphdef, state)
    qkv = sharded.decoder.layers.cross_attn.qkv[...]
    assert len({str(s.index) for s in qkv.addressable_shards}) > 1  # really split
    batch = jax.NamedSharding(mesh, jax.P(("data", "fsdp")))
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        x = {k: jax.device_put(v, batch) for k, v in images.items()}
        got = forward(sharded, x)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=5e-5, rtol=1e-5), got, want)


def test_batchnorm_matches_pytorch_train_and_eval():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(6, 5)).astype(np.float32)
    ref = torch.nn.BatchNorm1d(5, eps=2e-5)  # momentum 0.1
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5), ref.bias.normal_()
    bn = BatchNorm(5, eps=2e-5, rngs=nnx.Rngs(0))  # momentum 0.9 (Flax convention)
    bn.scale[...], bn.bias[...] = jnp.asarray(ref.weight.detach()), jnp.asarray(ref.bias.detach())
    for train in (True, False, True):
        ref.train(train)
        want = ref(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(bn(jnp.asarray(x), train), want, atol=1e-5)
        np.testing.assert_allclose(bn.mean[...], ref.running_mean.numpy(), atol=1e-6)
        np.testing.assert_allclose(bn.var[...], ref.running_var.numpy(), atol=1e-5)
