"""FRA losses on the original's own tensors, LARS, teacher EMA, schedules, FER logits, converter.

Each of the original's traps has a check here that fails if it is fallen into (the parity test
covers them end to end as well)."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from convert.fra import convert_fra, convert_resnet, fra_rules
from convert.mapping import ConversionError
from convert.torch_reader import read_state_dict
from faceptor_jax import fra_losses, lars
from faceptor_jax.model.fra import FRA, TRAINABLE
from faceptor_jax.model.resnet import ResNet

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "fra")
MEAN = np.array([0.5231, 0.4044, 0.3489], np.float32)
STD = np.array([0.2536, 0.2194, 0.2070], np.float32)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return dict(np.load(os.path.join(FIXTURES, "expected.npz")))


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return read_state_dict(os.path.join(FIXTURES, "fra_tiny.pth.tar"))


def original_outputs(e: dict[str, np.ndarray], crossed: bool = True) -> dict:
    """`FRA.__call__`-shaped outputs made of the original's recorded tensors."""
    net = lambda n: {k: jnp.asarray(e[f"{n}_{k}"]) for k in ("z_g", "obj_val", "dots")}
    out = {"online1": net("o1"), "online2": net("o2"), "teacher1": net("t1"), "teacher2": net("t2")}
    if not crossed:  # the trap: pair each view with its own teacher
        out["teacher1"], out["teacher2"] = out["teacher2"], out["teacher1"]
    for i in (1, 2):
        out[f"pred{i}"] = {"z": jnp.asarray(e[f"pred{i}_z"]), "obj": jnp.asarray(e[f"pred{i}_obj"])}
    return out


def test_losses_on_the_originals_tensors(expected):
    terms = fra_losses.fra_loss(original_outputs(expected))
    for i in (1, 2):
        for k in ("base", "inst", "obj", "obj_pos", "obj_neg"):
            # obj_neg was recorded as (L_obj − pos)/0.02: ~5e-6 of fp32 cancellation in it.
            want = expected[f"loss{i}_{k}"]
            np.testing.assert_allclose(terms[f"pair{i}/{k}"], want, rtol=2e-6, atol=1e-5)
        np.testing.assert_allclose(terms[f"sd{i}/loss"], expected[f"sd{i}"], rtol=2e-6)
    for k in ("base", "inst", "obj", "clu"):
        np.testing.assert_allclose(terms[k], expected[f"pack_{k}"], rtol=2e-6)
    np.testing.assert_allclose(terms["loss"], expected["loss_total"], rtol=2e-6)


def test_trap_consistency_pairs_crossed_views_clustering_same_view(expected):
    uncrossed = fra_losses.fra_loss(original_outputs(expected, crossed=False))
    assert abs(float(uncrossed["base"]) - float(expected["pack_base"])) > 1e-2
    # Clustering on crossed views instead of the same view also changes the value.
    out = original_outputs(expected)
    rows = {k: out[k]["dots"].reshape(-1, 8) for k in ("online1", "teacher2")}
    sd = fra_losses.self_distill(rows["online1"], rows["teacher2"])
    assert abs(float(sd["loss"]) - float(expected["sd1"])) > 1e-3


def test_trap_sinkhorn_starts_from_probabilities_prototype_rows_first(expected):
    p = jnp.asarray(expected["sinkhorn1_in"])  # [N, K] teacher softmax at 0.04
    np.testing.assert_allclose(fra_losses.sinkhorn(p), expected["sinkhorn1_out"], atol=1e-6)
    q = p.T / p.sum()  # columns first instead: a different matrix
    q = q / q.sum(0, keepdims=True) / q.shape[1]
    q = q / q.sum(1, keepdims=True) / q.shape[0]
    assert np.abs(q.T * q.shape[1] - expected["sinkhorn1_out"]).max() > 1e-3
    exp_start = fra_losses.sinkhorn(jnp.exp(p / 0.05))  # SwAV's exp(·/ε) start
    assert np.abs(exp_start - expected["sinkhorn1_out"]).max() > 1e-3
    # Teacher temperature 0.04, not the heatmap temperature 1.0.
    rows = jnp.asarray(expected["t1_dots"]).reshape(-1, 8)
    np.testing.assert_allclose(jax.nn.softmax(rows / 0.04), p, atol=1e-6)


def test_trap_heatmap_softmax_over_prototypes_at_temperature_1(expected):
    dots = expected["o1_dots"]  # [B, h, w, Q]
    np.testing.assert_allclose(jax.nn.softmax(dots, -1) + 1e-7, expected["o1_obj_attn"], atol=1e-6)
    over_space = jax.nn.softmax(dots.reshape(4, -1, 8), 1).reshape(dots.shape) + 1e-7
    assert np.abs(over_space - expected["o1_obj_attn"]).max() > 1e-2


def test_trap_batch_mean_embeddings_and_raw_map_pooling(expected):
    from faceptor_jax.model.fra import l2_normalize

    e, feat = expected["o1_mask_embed"], expected["o1_feat"]  # [B, Q, D], [B, h, w, D]
    dots = jnp.einsum("qd,bhwd->bhwq", l2_normalize(e.mean(0)), l2_normalize(feat))
    np.testing.assert_allclose(dots, expected["o1_dots"], atol=1e-5)
    per_image = jnp.einsum("bqd,bhwd->bhwq", l2_normalize(e), l2_normalize(feat))
    assert np.abs(per_image - expected["o1_dots"]).max() > 1e-2
    w = expected["o1_obj_attn"].reshape(4, -1, 8)
    w = w / w.sum(1, keepdims=True)
    raw = np.einsum("bnc,bnq->bqc", expected["o1_layer4"].reshape(4, -1, 256), w)
    np.testing.assert_allclose(raw, expected["o1_slots"], rtol=1e-5, atol=1e-5)


def _lars_tree(expected, prefix: str) -> dict[str, jax.Array]:
    return {str(n): jnp.asarray(expected[prefix + str(n)]) for n in expected["lars_names"]}


def test_lars_two_steps_match_the_original(expected):
    """wd 0.01 and lr 0.5 (fixture values), the same gradients twice: momentum and trust ratio."""
    w0, g = _lars_tree(expected, "lars_w0/"), _lars_tree(expected, "lars_g/")
    excluded = {n: lars.lars_excluded(n) for n in w0}
    opt = lars.lars(0.5, weight_decay=0.01, excluded=excluded)
    st = opt.init(w0)
    params = w0
    for k in (1, 2):
        upd, st = opt.update(g, st, params)
        params = optax.apply_updates(params, upd)
        for n in w0:
            want, before = expected[f"lars_w{k}/{n}"], expected[f"lars_w{k - 1}/{n}"]
            # The step itself (tiny for adapted tensors: η = 1e-3) to 1e-5 of its size.
            step_err = np.abs((params[n] - w0[n]) - (want - expected["lars_w0/" + n])).max()
            scale = np.abs(want - before).max()
            assert step_err <= 1e-5 * np.abs(want - expected["lars_w0/" + n]).max() + 1e-7, (
                n,
                step_err,
                scale,
            )


def test_optax_lars_is_not_the_originals():
    """optax divides by ‖g + wd·w‖ and steps where ‖w‖ = 0; the original does neither."""
    w, g = {"a": jnp.array([1.0, 0.0]), "z": jnp.zeros(2)}, {"a": jnp.array([0.0, 1.0])}
    g["z"] = jnp.ones(2)
    ours = lars.lars(1.0, weight_decay=1.0, excluded={"a": False, "z": False})
    ref = optax.lars(1.0, weight_decay=1.0, trust_coefficient=1e-3, eps=1e-8)
    u_ours, _ = ours.update(g, ours.init(w), w)
    u_ref, _ = ref.update(g, ref.init(w), w)
    np.testing.assert_allclose(u_ours["a"], -1e-3 * np.array([1.0, 1.0]) / 2, rtol=1e-6)
    np.testing.assert_allclose(u_ref["a"], -1e-3 * np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    assert np.all(np.asarray(u_ours["z"]) == 0) and np.all(np.asarray(u_ref["z"]) != 0)


def test_trap_lars_exclusion_by_original_name(state, expected):
    """Our paths + the substring rule select exactly the original's excluded tensors."""
    cfg, _ = convert_fra(state, "fra_tiny")
    rules = fra_rules(cfg)

    def target(name: str) -> str:
        return next(r.target for r in rules if re.fullmatch(r.source, "module." + name))

    for name in expected["lars_excluded"]:
        assert lars.lars_excluded(target(str(name))), name
    for name in expected["lars_adapted"]:
        assert not lars.lars_excluded(target(str(name))), name
    assert "online_net.neck.proj.mlp.1.weight" in set(expected["lars_adapted"])  # MLP BN gamma
    model = nnx.eval_shape(lambda: FRA(cfg, rngs=nnx.Rngs(0)))
    mask = lars.exclusion_mask(nnx.to_pure_dict(nnx.state(model, TRAINABLE)))
    assert mask["online"]["neck"]["proj"]["norm"]["scale"] is False
    assert mask["online"]["backbone"]["layer1"]["0"]["downsample"]["bn"]["scale"] is True


def test_teacher_ema_and_its_momentum_schedule(expected):
    m = lars.teacher_momentum(7, 20)
    np.testing.assert_allclose(m, expected["ema_m"], rtol=1e-7)
    for n in ("backbone.conv1.weight", "neck.proj_attn.query_embed.weight", "neck.proj.mlp.1.bias"):
        t = lars.ema_update(expected["ema_teacher0/" + n], expected["ema_online/" + n], m)
        np.testing.assert_allclose(t, expected["ema_teacher1/" + n], atol=1e-7)
    got = [float(lars.teacher_momentum(i, 20)) for i in expected["mom_iters"]]
    np.testing.assert_allclose(got, expected["mom_values"], rtol=1e-7)


@pytest.mark.parametrize(("tag", "warmup"), [("w3", 3), ("w0", 0)])
def test_trap_lr_per_iteration_warmup_then_per_epoch_cosine(expected, tag, warmup):
    schedule = lars.learning_rate_schedule(0.9, iters_per_epoch=4, epochs=8, warmup_epochs=warmup)
    got = np.array([float(schedule(s)) for s in range(32)])
    np.testing.assert_allclose(got, expected[f"lr_{tag}"], rtol=1e-5)  # fp32 vs Python floats
    # Constant within each cosine epoch.
    assert np.all(got[warmup * 4 :].reshape(-1, 4).std(1) == 0)


def test_fer_logits_from_the_main_fer_container():
    e = dict(np.load(os.path.join(FIXTURES, "fer_expected.npz")))
    sd = read_state_dict(os.path.join(FIXTURES, "fer_tiny.pth.tar"))
    cfg, params = convert_resnet(sd, "fer_tiny", prefix="module.")
    assert (cfg.width, cfg.blocks, cfg.num_classes) == (4, (3, 4, 6, 3), 7)
    model = nnx.eval_shape(lambda: ResNet(cfg, rngs=nnx.Rngs(0)))
    s = nnx.state(model)
    nnx.replace_by_pure_dict(s, jax.tree.map(jnp.asarray, params))
    nnx.update(model, s)
    x = ((e["images_uint8"].astype(np.float32) / np.float32(255)) - MEAN) / STD
    logits = nnx.jit(lambda m, x: m(x)["logits"])(model, jnp.asarray(x))
    np.testing.assert_allclose(logits, e["logits"], atol=1e-4, rtol=1e-4)


def test_torchvision_plain_state_dict(tmp_path):
    sd = read_state_dict(os.path.join(FIXTURES, "fer_tiny.pth.tar"))
    plain = {k[len("module.") :]: v for k, v in sd.items()}
    cfg, params = convert_resnet(plain, "tv")
    assert cfg.num_classes == 7 and params["fc"].shape == (4 * 32, 7)
    enc_cfg, enc = convert_resnet(plain, "tv", keep_fc=False)
    assert enc_cfg.num_classes == 0 and "fc" not in enc


def test_fra_container_parts_and_deliberate_drops(state):
    cfg, params = convert_fra(state, "fra_tiny")
    assert (cfg.backbone.width, cfg.dim, cfg.hidden, cfg.num_proto) == (8, 32, 64, 8)
    np.testing.assert_array_equal(
        params["online"]["neck"]["proto"], state["module.online_net.neck.proto"]
    )
    assert not np.array_equal(params["teacher"]["neck"]["proto"], params["online"]["neck"]["proto"])
    bcfg, backbone = convert_fra(state, "fra_tiny", part="online_backbone")
    np.testing.assert_array_equal(
        backbone["bn1"]["mean"], state["module.online_net.backbone.bn1.running_mean"]
    )
    assert "fc" not in backbone and bcfg.num_classes == 0


def test_converter_reports_every_problem_at_once(state):
    bad = dict(state)
    k_shape = "module.online_net.neck.proj.mlp.0.weight"
    bad[k_shape] = np.zeros((64, 255, 1), np.float32)  # wrong shape
    del bad["module.target_net.neck.proj_attn.query_embed.weight"]  # missing
    bad["module.online_net.neck.extra.weight"] = np.zeros(3, np.float32)  # unknown
    bad["module.encoder_q.conv1.weight"] = state["module.encoder_q.conv1.weight"] + 1  # no alias
    unprefixed = "online_net.backbone.bn1.weight"
    bad[unprefixed] = state["module.online_net.backbone.bn1.weight"]  # no `module.`
    with pytest.raises(ConversionError) as info:
        convert_fra(bad, "bad.pth")
    msg = str(info.value)
    assert len(info.value.problems) == 5, msg
    for needle in (
        k_shape,
        "teacher.neck.proj_attn.query_embed",
        "module.online_net.neck.extra.weight",
        "module.encoder_q.conv1.weight",
        unprefixed,
    ):
        assert needle in msg


def test_torch_checkpoint_is_read_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": Evil()}}, path)
    from convert.torch_reader import CheckpointError

    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(path)
