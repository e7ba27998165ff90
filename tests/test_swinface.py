"""SwinFace (Swin-T + MLCA + subnets + 42 heads): parity with the original on a converted golden
fixture in the released checkpoint's container, and the output-order and LN-before-pooling traps."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from convert import swin as swin_rules
from convert.mapping import ConversionError
from convert.torch_reader import CheckpointError
from faceptor_jax.model import swin, swinface

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "swin"
# The fixture's reduced SwinFace: real depths/windows/shifts/patch, stage widths 8..64, MLCA 64.
CFG = swinface.SwinFaceConfig(
    encoder=swin.SwinConfig(embed_dim=8, heads=(1, 2, 4, 8)),
    embed_dim=24,
    feature_dim=64,
    level_out=(6, 12, 23, 23),
)


def _state(path=FIXTURE / "swinface.pt") -> dict:
    return swin_rules.read_swinface(str(path))


def _model(state: dict, cfg=CFG) -> swinface.SwinFace:
    got, params = swin_rules.convert_swinface(state, "fixture")
    assert got == cfg  # every dimension inferred from the tensors
    model = nnx.eval_shape(lambda: swinface.SwinFace(cfg, rngs=nnx.Rngs(0)))
    st = nnx.state(model)
    nnx.replace_by_pure_dict(st, jax.tree.map(jnp.asarray, params))
    nnx.update(model, st)
    return model


@pytest.fixture(scope="module")
def run():
    expected = dict(np.load(FIXTURE / "swinface_expected.npz"))
    model = _model(_state())
    return model, model.features(jnp.asarray(expected["images"])), expected


def _close(got, want, name):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{name}: {got.shape} vs {want.shape}"
    err = np.abs(got - want)
    assert np.all(err <= 1e-4 + 1e-4 * np.abs(want)), f"{name}: max abs err {err.max():.3g}"


def test_mlca_subnets_and_all_88_logits_match_the_original(run):
    _, out, expected = run
    _close(out["embedding"], expected["embedding"], "embedding")
    _close(out["mlca"], expected["mlca"], "MLCA")
    _close(out["subnets"], expected["subnets"], "subnets")
    names = [str(n) for n in expected["names"]]
    by_name = {name: lg for (_, name, _), lg in zip(swinface.HEADS, out["logits"], strict=True)}
    assert sum(v.shape[-1] for v in by_name.values()) == 88
    for i, name in enumerate(names[:-1]):  # the original's dict order; the last is Recognition
        _close(by_name[name], expected[f"out{i:02d}"], name)
    _close(out["embedding"], expected[f"out{len(names) - 1:02d}"], "Recognition")


def test_pooling_before_the_final_norm_is_caught(run, monkeypatch):
    """Trap: the paper's figure draws Avgpool -> LN for the recognition path; the code is LN per
    token, then the mean. Pooling first moves the embedding far from the original's."""
    from faceptor_jax.model import interpreters

    model, _, expected = run

    def pool_then_norm(self, tokens, train=False):
        x = self.norm(tokens.mean(axis=1, keepdims=True))[:, 0].astype(jnp.float32)
        return self.bn_2(self.fc_2(self.bn_1(self.fc_1(x), train)), train).astype(jnp.float32)

    monkeypatch.setattr(interpreters.RecognitionHead, "__call__", pool_then_norm)
    got = np.asarray(model.features(jnp.asarray(expected["images"]))["embedding"])
    want = expected["embedding"]
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err > 1e-2, f"pooling before the norm left the embedding unchanged ({err:.3g})"


def test_one_branch_intermediates(run):
    """Branch 0's fusion convs and channel gate alone (localises a mismatch)."""
    model, _, expected = run
    stages = model.trunk(jnp.asarray(expected["images"]))["stages"]
    levels = swin.level_maps(stages)
    branch0 = jax.tree.map(lambda x: x[0], nnx.state(model.branches))
    b = nnx.merge(nnx.graphdef(model.branches), branch0)
    conv = jnp.concatenate([c(lv) for c, lv in zip(b.convs, levels, strict=True)], -1)
    _close(conv, expected["conv0"], "branch 0 fusion conv")
    _close(b.channel_attention(conv), expected["gate0"], "branch 0 channel gate")


def test_task_outputs_follow_the_original_names_not_the_fc_order(run):
    """Trap: the original's fc order (Gender first) differs from its output order (Age first,
    Gender 6th); a model that read the heads by position would swap them."""
    model, _, expected = run
    names = [str(n) for n in expected["names"]]
    assert names[0] == "Age" and names[5] == "Gender" and swinface.HEADS[0][1] == "Gender"
    images = jnp.asarray(expected["images"])
    tasks = model({"a": images[:1], "b": images[1:]})
    age = np.concatenate([tasks["a"]["age"], tasks["b"]["age"]])
    _close(age, expected["out00"][:, 0], "age")
    attrs = np.concatenate([tasks["a"]["attributes"], tasks["b"]["attributes"]])
    for i, name in enumerate(swinface.ATTRIBUTES):
        _close(attrs[:, i], expected[f"out{names.index(name):02d}"], name)
    expr = np.concatenate([tasks["a"]["expression"], tasks["b"]["expression"]])
    _close(expr, expected[f"out{names.index('Expression'):02d}"], "expression")


def test_training_mode_uses_dropout_and_updates_batch_statistics(run):
    model, out, expected = run
    images = jnp.asarray(expected["images"])
    before = np.asarray(model.branches.norm.mean[...]).copy()
    train = model.features(images, train=True, rng=jax.random.PRNGKey(0))
    assert np.abs(np.asarray(train["subnets"]) - np.asarray(out["subnets"])).max() > 1e-3
    after = np.asarray(model.branches.norm.mean[...])
    assert after.shape == (11, 64) and np.abs(after - before).max() > 1e-4
    nnx.update(model, nnx.state(_model(_state())))  # restore for the other tests


def test_bad_config_is_clear():
    with pytest.raises(ValueError, match="must sum to feature_dim"):
        swinface.SwinFaceConfig(feature_dim=100)


def test_converter_reads_the_release_container_strictly(tmp_path):
    import torch

    container = torch.load(FIXTURE / "swinface.pt", weights_only=True)
    state = _state()
    state.pop("fam.nets.3.norm.running_var")
    state["om.output_fcs.42.weight"] = np.zeros((2, 64), np.float32)
    state["tss.nets.0.feature.0.weight"] = np.zeros((64, 63), np.float32)
    with pytest.raises(ConversionError) as e:
        swin_rules.convert_swinface(state, "damaged")
    text = str(e.value)
    for needle in ("branches.norm.var", "om.output_fcs.42.weight", "tss.nets.0.feature.0.weight"):
        assert needle in text
    del container["state_dict_fam"]
    torch.save(container, tmp_path / "no_fam.pt")
    with pytest.raises(CheckpointError, match="no state_dict_fam"):
        swin_rules.read_swinface(str(tmp_path / "no_fam.pt"))


def test_convert_cli_writes_a_model_directory_that_loads(tmp_path, run):
    from convert.__main__ import main
    from faceptor_jax.model import families

    _, out, expected = run
    dst = tmp_path / "swinface"
    assert main(["swinface", "--src", str(FIXTURE / "swinface.pt"), "--dst", str(dst)]) == 0
    model = families.load(dst)
    assert isinstance(model, swinface.SwinFace)
    again = model.features(jnp.asarray(expected["images"]))
    np.testing.assert_array_equal(np.asarray(again["embedding"]), np.asarray(out["embedding"]))
    assert main(["swinface", "--src", str(tmp_path / "absent.pt"), "--dst", str(dst)]) == 2
