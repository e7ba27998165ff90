"""The encoder sharded by the logical-axis rules on 8 CPU devices equals the single-device run."""

import jax
import numpy as np
import pytest
from flax import nnx

from faceptor_jax import sharding
from faceptor_jax.model.vit import ViTConfig, ViTEncoder

CFG = ViTConfig(width=64, depth=3, heads=8, mlp_dim=128, pe_grid=4)  # heads divisible by 8


def test_eight_devices():
    assert jax.device_count() == 8


@pytest.fixture(scope="module")
def reference():
    images = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
    model = ViTEncoder(CFG, rngs=nnx.Rngs(0))
    return images, np.asarray(nnx.jit(lambda m, x: m(x))(model, images))


@pytest.mark.parametrize("shape", [(8, 1, 1), (2, 2, 2), (1, 1, 8), (2, 4, 1)])
def test_sharded_forward_equals_single_device(reference, shape):
    images, want = reference
    mesh = sharding.make_mesh(shape)
    # As train.create_state does: shapes first, then every parameter created in its place.
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: ViTEncoder(CFG, rngs=nnx.Rngs(0))))
    specs = sharding.param_specs(abstract, sharding.DEFAULT_RULES, mesh)
    out = jax.tree.map(lambda s: jax.NamedSharding(mesh, s), specs)
    init = jax.jit(lambda: nnx.state(ViTEncoder(CFG, rngs=nnx.Rngs(0))), out_shardings=out)
    model = nnx.merge(graphdef, init())
    qkv = model.blocks.attn.qkv[...]
    assert qkv.sharding.spec == sharding.logical_to_spec(
        ("layers", "embed", "qkv", "heads", "kv"), sharding.DEFAULT_RULES
    )
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        x = jax.device_put(images, jax.NamedSharding(mesh, jax.P(("data", "fsdp"))))
        got = nnx.jit(lambda m, x: m(x))(model, x)
    if shape[2] > 1:  # tensor-parallel: the heads really are split over devices
        assert len({str(s.index) for s in qkv.addressable_shards}) > 1
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-5)


def test_rules_use_each_mesh_axis_once():
    spec = sharding.logical_to_spec(("batch", "tokens", "embed"), sharding.DEFAULT_RULES)
    assert spec == jax.P(("data", "fsdp"), None, None)  # embed's fsdp already used by batch
    assert sharding.logical_to_spec(("embed", "mlp"), sharding.DEFAULT_RULES) == jax.P(
        "fsdp", "model"
    )


def test_mesh_size_must_match_devices():
    with pytest.raises(ValueError, match=r"needs 16 devices, but 8 are available"):
        sharding.make_mesh((4, 2, 2))


def test_dimensions_the_mesh_does_not_divide_stay_replicated():
    mesh = sharding.make_mesh((2, 1, 4))
    spec = sharding.logical_to_spec(("embed", "heads"), sharding.DEFAULT_RULES)
    assert sharding.fit_spec(spec, (64, 8), mesh) == jax.P("fsdp", "model")
    assert sharding.fit_spec(spec, (64, 2), mesh) == jax.P("fsdp", None)  # 2 heads on 4 devices
