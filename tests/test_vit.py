"""FaRL ViT encoder: parity with the original (golden fixtures), PE resizing, drop path."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from convert.__main__ import main as convert_main
from faceptor_jax.model import families
from faceptor_jax.model.vit import (
    ViTConfig,
    ViTEncoder,
    bicubic_matrix,
    patch_tokens,
    resize_grid,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "farl_vit")
TINY = ViTConfig(width=32, depth=2, heads=2, mlp_dim=64, pe_grid=4)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return dict(np.load(os.path.join(FIXTURES, "expected.npz")))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> str:
    dst = str(tmp_path_factory.mktemp("ckpt") / "farl")
    src = os.path.join(FIXTURES, "farl_tiny.pth")
    assert convert_main(["farl", "--src", src, "--dst", dst, "--heads", "4"]) == 0
    return dst


def _forward(model: ViTEncoder, images_nchw: np.ndarray) -> np.ndarray:
    x = jnp.asarray(images_nchw).transpose(0, 2, 3, 1)  # fixtures are NCHW, we are NHWC
    return np.asarray(nnx.jit(lambda m, x: m(x))(model, x))


@pytest.mark.parametrize("size", [112, 512])
def test_every_layer_matches_original(converted, expected, size):
    model = families.get("farl_vit").load(converted)
    tokens = _forward(model, expected[f"input_{size}"])
    want = expected[f"tokens_{size}"]
    assert tokens.shape == want.shape
    err = np.abs(tokens - want).max(axis=(1, 2, 3))  # per layer
    assert err.max() <= 1e-4, f"max abs error per layer at {size}px: {err}"


def test_feature_maps_match_original_layout(converted, expected):
    model = families.get("farl_vit").load(converted)
    tokens = _forward(model, expected["input_112"])
    maps = patch_tokens(tokens, (7, 7))  # [L, B, 7, 7, D]
    want = expected["features_112"].transpose(0, 1, 3, 4, 2)  # [L, B, D, h, w] -> channels last
    np.testing.assert_allclose(maps, want, atol=1e-4, rtol=0)


def test_positional_embedding_resized_like_faceptor(converted, expected):
    model = families.get("farl_vit").load(converted)
    np.testing.assert_allclose(np.asarray(model.pos_embed[...]), expected["pe_1025"], atol=1e-5)


def test_clip_image_embedding_end_to_end(tmp_path, expected):
    """Unresized 14×14 PE at 224 px + CLIP's ln_post/proj from the file = FaRL's own embedding."""
    src = os.path.join(FIXTURES, "farl_tiny.pth")
    dst = str(tmp_path / "farl14")
    assert (
        convert_main(["farl", "--src", src, "--dst", dst, "--heads", "4", "--pe_grid", "14"]) == 0
    )
    tokens = _forward(families.get("farl_vit").load(dst), expected["input_224"])
    sd = torch.load(src, weights_only=True)["state_dict"]
    cls = tokens[-1][:, 0].astype(np.float64)
    mu, var = cls.mean(-1, keepdims=True), cls.var(-1, keepdims=True)
    ln = (cls - mu) / np.sqrt(var + 1e-5) * sd["visual.ln_post.weight"].numpy()
    embed = (ln + sd["visual.ln_post.bias"].numpy()) @ sd["visual.proj"].numpy()
    np.testing.assert_allclose(embed, expected["clip_image_embed_224"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("n_in", "n_out"), [(14, 32), (32, 7), (32, 14), (7, 32), (5, 5)])
def test_bicubic_matches_torch(n_in, n_out):
    grid = np.random.default_rng(0).normal(size=(n_in, n_in, 3))

    def torch_resize(g: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(g).permute(2, 0, 1)[None]
        out = torch.nn.functional.interpolate(
            t, size=(n_out, n_out), mode="bicubic", align_corners=False
        )
        return out[0].permute(1, 2, 0).numpy()

    m = bicubic_matrix(n_in, n_out)  # [n_out, n_in], float64: exact up to rounding
    np.testing.assert_allclose(
        np.einsum("oh,pw,hwd->opd", m, m, grid), torch_resize(grid), atol=1e-12
    )
    got = resize_grid(jnp.asarray(grid, jnp.float32), (n_out, n_out))  # fp32 path
    np.testing.assert_allclose(np.asarray(got), torch_resize(grid.astype(np.float32)), atol=1e-5)


def test_image_size_not_divisible_by_patch():
    model = ViTEncoder(TINY, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"100x100 is not divisible by the patch size 16"):
        model(jnp.zeros((1, 100, 100, 3)))


def test_any_grid_size_and_output_layout():
    model = ViTEncoder(TINY, rngs=nnx.Rngs(0))
    tokens = model(jnp.zeros((3, 48, 80, 3)))
    assert tokens.shape == (2, 3, 1 + 3 * 5, 32)
    assert patch_tokens(tokens, (3, 5)).shape == (2, 3, 3, 5, 32)


def test_drop_path_token_mode_is_shared_by_the_batch():
    cfg = dataclasses.replace(TINY, drop_path_rate=0.9, depth=4)
    model = ViTEncoder(cfg, rngs=nnx.Rngs(0))
    image = jax.random.normal(jax.random.key(0), (1, 32, 32, 3))
    images = jnp.concatenate([image, image])
    eval_out = model(images)
    train_out = model(images, train=True, rng=jax.random.key(3))
    assert not np.allclose(eval_out, train_out)  # stochastic depth is active
    np.testing.assert_array_equal(train_out[:, 0], train_out[:, 1])  # one mask for the batch
    sample = ViTEncoder(dataclasses.replace(cfg, drop_path_mode="sample"), rngs=nnx.Rngs(0))
    per_image = sample(images, train=True, rng=jax.random.key(3))
    assert not np.allclose(per_image[:, 0], per_image[:, 1])
    # No rng or no rate: exactly the eval forward.
    np.testing.assert_array_equal(model(images, train=True), eval_out)


def test_bf16_compute_keeps_fp32_params_and_is_close():
    model32 = ViTEncoder(TINY, rngs=nnx.Rngs(0))
    model16 = ViTEncoder(dataclasses.replace(TINY, dtype="bfloat16"), rngs=nnx.Rngs(0))
    images = jax.random.normal(jax.random.key(1), (2, 64, 64, 3))
    t32, t16 = model32(images), model16(images)
    assert t16.dtype == jnp.bfloat16 and model16.blocks.attn.qkv[...].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(t16, np.float32), t32, atol=0.15, rtol=0.05)


def test_attention_implementations_agree():
    from faceptor_jax.layers import dot_product_attention

    q, k, v = jax.random.normal(jax.random.key(2), (3, 2, 40, 4, 8))
    want = dot_product_attention(q, k, v, "xla")
    np.testing.assert_allclose(dot_product_attention(q, k, v, "per_head"), want, atol=1e-5)
    np.testing.assert_allclose(dot_product_attention(q, k, v), want, atol=1e-5)
    with pytest.raises(ValueError, match="unknown attention implementation 'flash'"):
        dot_product_attention(q, k, v, "flash")
