"""Swin trunk (SwinFace's Swin-T): parity with the original on a converted golden fixture, and the
traps of the original's windowing each caught by a test that fails when the trap is fallen into."""

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert import swin as swin_rules
from convert.mapping import ConversionError, apply_rules, flatten_paths, unflatten_paths
from convert.torch_reader import read_state_dict
from faceptor_jax.model import swin
from faceptor_jax.model.interpreters import RecognitionHead

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "swin"
# The fixture's reduced Swin: real depths, windows, shifts and patch size; width 8 (heads 1..8).
CFG = swin.SwinConfig(embed_dim=8, heads=(1, 2, 4, 8), drop_path_rate=0.0)
EMBED = 24


class Backbone(nnx.Module):
    """Trunk + recognition head, as SwinFace's `backbone` module (fixture-only composition)."""

    def __init__(self, cfg: swin.SwinConfig, embed: int, *, rngs: nnx.Rngs):
        self.trunk = swin.SwinTransformer(cfg, rngs=rngs)
        self.recognition = RecognitionHead(cfg.widths()[-1], embed, rngs=rngs)


def _convert(state, cfg=CFG) -> Backbone:
    model = nnx.eval_shape(lambda: Backbone(cfg, EMBED, rngs=nnx.Rngs(0)))
    skeleton = flatten_paths(nnx.to_pure_dict(nnx.state(model)))
    rules = swin_rules.trunk_rules(cfg, dst="trunk.") + swin_rules.recognition_rules(
        dst="recognition."
    )
    flat = apply_rules(state, rules, swin_rules.DROPPED, skeleton, "fixture")
    st = nnx.state(model)
    nnx.replace_by_pure_dict(st, unflatten_paths({k: jnp.asarray(v) for k, v in flat.items()}))
    nnx.update(model, st)
    return model


@pytest.fixture(scope="module")
def golden():
    state = read_state_dict(FIXTURES / "swinface.pt", "state_dict_backbone")
    return state, dict(np.load(FIXTURES / "swinface_expected.npz"))


@pytest.fixture(scope="module")
def converted(golden):
    state, expected = golden
    model = _convert(state)
    out = model.trunk(jnp.asarray(expected["images"]))
    return model, out


def _close(got, want, name):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: {got.shape} vs {want.shape}"
    err = np.abs(got - want).max()
    assert err <= 1e-4 + 1e-4 * np.abs(want).max(), f"{name}: max abs err {err:.3g}"


def test_every_stage_matches_the_original(golden, converted):
    _, expected = golden
    model, out = converted
    _close(model.trunk.embed(jnp.asarray(expected["images"])), expected["patch_embed"], "embed")
    for i, s in enumerate(out["stages"]):
        b, g, _, c = s.shape
        _close(s.reshape(b, g * g, c), expected[f"stage{i}"], f"stage {i}")


def test_levels_and_embedding_match_the_original(golden, converted):
    _, expected = golden
    model, out = converted
    levels = swin.level_maps(out["stages"])
    local, glob = jnp.concatenate(levels[:-1], axis=-1), levels[-1]
    _close(local, expected["local"], "local levels")
    _close(glob, expected["global"], "global level")
    b, g, _, c = glob.shape
    emb = model.recognition(glob.reshape(b, g * g, c))
    _close(emb, expected["embedding"], "embedding")


def test_stage_shapes_of_swin_t_at_112():
    cfg = swin.SwinConfig()
    assert cfg.grids() == (56, 28, 14, 7)
    assert cfg.out_widths() == (192, 384, 768, 768)
    assert [swin.window_and_shift(g, 7, 1) for g in cfg.grids()] == [(7, 3)] * 3 + [(7, 0)]
    model = nnx.eval_shape(lambda: swin.SwinTransformer(cfg, rngs=nnx.Rngs(0)))
    n = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert n == 27_515_898 - 768 * 2  # the original's trunk, less its final norm (in the head)


@pytest.mark.parametrize(
    "trap",
    ["no_shift", "no_mask", "merge_order", "index_transposed"],
)
def test_each_windowing_trap_changes_the_output(golden, converted, monkeypatch, trap):
    """Falling into a trap (shift off, mask off, merge order, bias index) moves the output far
    beyond the parity tolerance: the golden test above would catch it."""
    _, expected = golden
    model, _ = converted
    images = jnp.asarray(expected["images"])
    if trap == "no_shift":
        monkeypatch.setattr(swin, "window_and_shift", lambda g, w, b: (min(g, w), 0))
        model = _convert(golden[0])  # shifts are fixed at construction
    elif trap == "no_mask":
        monkeypatch.setattr(swin, "shift_mask", lambda g, w, s: np.zeros((1, w * w, w * w)))
    elif trap == "merge_order":
        orig = swin.PatchMerging.__call__

        def swapped(self, x):
            b, n, c = x.shape
            g = self.grid
            x = x.reshape(b, g, g, c).transpose(0, 2, 1, 3).reshape(b, n, c)
            return orig(self, x)

        monkeypatch.setattr(swin.PatchMerging, "__call__", swapped)
    else:
        monkeypatch.setattr(swin, "relative_position_index", lambda w: _transposed_index(w))
    out = model.trunk(images)["stages"][-1]
    b, g, _, c = out.shape
    err = np.abs(np.asarray(out).reshape(b, g * g, c) - expected["stage3"]).max()
    assert err > 1e-2, f"{trap}: output unchanged ({err:.3g})"


def _transposed_index(w: int) -> np.ndarray:
    coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
    return (rel[..., 1] * (2 * w - 1) + rel[..., 0]).astype(np.int32)  # Δw-major: wrong


def test_relative_position_index_and_mask_as_the_original():
    idx = swin.relative_position_index(7)
    assert idx.shape == (49, 49) and idx[0, 0] == 6 * 13 + 6 and idx.max() == 168
    assert idx[0, 48] == 0 and idx[48, 0] == 168  # Δ = (−6, −6) and (+6, +6)
    mask = swin.shift_mask(56, 7, 3)
    assert mask.shape == (64, 49, 49)
    assert set(np.unique(mask)) == {0.0, -100.0}
    assert not mask[0].any()  # the top-left window lies in one region
    assert mask[-1].any()  # the bottom-right window mixes four


def test_drop_path_only_in_training_and_remat_is_exact(converted, golden):
    _, expected = golden
    _, out = converted
    images = jnp.asarray(expected["images"])
    cfg = dataclasses.replace(CFG, drop_path_rate=0.5)
    model2 = _convert(golden[0], cfg)
    same = model2.trunk(images, train=False)["stages"][-1]
    np.testing.assert_allclose(same, out["stages"][-1], atol=1e-6)
    dropped = model2.trunk(images, train=True, rng=jax.random.PRNGKey(0))["stages"][-1]
    assert np.abs(np.asarray(dropped) - np.asarray(same)).max() > 1e-3
    remat = _convert(golden[0], dataclasses.replace(CFG, remat=True))
    np.testing.assert_allclose(remat.trunk(images)["stages"][-1], out["stages"][-1], atol=1e-6)


def test_converter_names_every_bad_key(golden):
    state = dict(golden[0])
    state.pop("layers.2.blocks.3.attn.qkv.weight")
    state["layers.0.blocks.0.attn.surprise"] = np.zeros(3, np.float32)
    state["layers.1.blocks.1.mlp.fc2.weight"] = np.zeros((5, 5), np.float32)
    with pytest.raises(ConversionError) as e:
        _convert(state)
    text = str(e.value)
    assert "stages.2.blocks.3.attn.qkv" in text
    assert "layers.0.blocks.0.attn.surprise" in text
    assert "layers.1.blocks.1.mlp.fc2.weight" in text


def test_bad_config_and_input_size_are_clear():
    with pytest.raises(ValueError, match="depths"):
        swin.SwinConfig(depths=(2, 2), heads=(3,))
    with pytest.raises(ValueError, match="divisible"):
        swin.SwinConfig(image_size=100)
    model = swin.SwinTransformer(CFG, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[B, 112, 112, 3\]"):
        model(jnp.zeros((1, 64, 64, 3)))
