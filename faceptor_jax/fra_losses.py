"""FRA pretraining losses (pure functions, fp32): global BYOL, local region, deep clustering.

Per step with views 1, 2, online O and teacher T (stop-gradient):
  L_base = consistency(O1, T2) + consistency(O2, T1)            (crossed views, summed)
  consistency = w·L_inst + (1 − w)·L_obj, w = 0.5
  L_clu  = ½·[SD(dots O1, dots T1) + SD(dots O2, dots T2)]       (same view)
  L      = L_base + 0.1·L_clu
Region q of one view is matched with region q of the other (same prototype index).
"""

import math

import jax
import jax.numpy as jnp

from faceptor_jax.model.fra import l2_normalize


def byol_loss(p: jax.Array, z: jax.Array) -> jax.Array:
    """2 − 2·mean_n cos(p_n, z_n). p, z: [N, D]."""
    cos = jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1)
    return 2.0 - 2.0 * cos.sum() / p.shape[0]


def region_loss(
    p: jax.Array, z: jax.Array, neg_weight: float = 0.02
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Matched-region BYOL plus decorrelation of unmatched regions. p, z: [B, Q, D].

    pos = byol over the B·Q rows; neg = mean_{b,q} Σ_{j≠q} <p̂_bq, ẑ_bj>² / Q.
    Returns (pos + neg_weight·neg, pos, neg).
    """
    p, z = l2_normalize(p), l2_normalize(z)
    q = p.shape[1]
    pos = byol_loss(p.reshape(-1, p.shape[-1]), z.reshape(-1, z.shape[-1]))
    corr = jnp.einsum("bqd,bjd->bqj", p, z) * (1.0 - jnp.eye(q))
    neg = jnp.mean(jnp.sum(jnp.square(corr), axis=-1) / q)
    return pos + neg_weight * neg, pos, neg


def consistency_loss(
    pred: dict[str, jax.Array], teacher: dict[str, jax.Array], weight: float = 0.5
) -> dict[str, jax.Array]:
    """One crossed pair: online predictions of one view vs the teacher of the other view.

    pred: {"z" [B, D], "obj" [B, Q, D]} (predictor outputs); teacher: its network outputs
    ("z_g", "obj_val"). Returns {"base", "inst", "obj", "obj_pos", "obj_neg"}.
    """
    inst = byol_loss(pred["z"], jax.lax.stop_gradient(teacher["z_g"]))
    obj, pos, neg = region_loss(pred["obj"], jax.lax.stop_gradient(teacher["obj_val"]))
    base = inst * weight + obj * (1.0 - weight)
    return {"base": base, "inst": inst, "obj": obj, "obj_pos": pos, "obj_neg": neg}


def sinkhorn(p: jax.Array, iters: int = 3) -> jax.Array:
    """Balanced assignments from probabilities p [N, K] (rows = pixels), no gradient, fp32.

    On Q = pᵀ / Σp: `iters` × (each prototype row sums to 1/K, then each pixel column to 1/N),
    then × N so every pixel's assignment sums to 1. Starts from the probabilities themselves (no
    exp(·/ε)). Under a mesh the sums are global, as the original's all-reduces make them.
    """
    q = jax.lax.stop_gradient(p).astype(jnp.float32).T  # [K, N]
    k, n = q.shape
    q = q / jnp.sum(q)
    for _ in range(iters):
        q = q / jnp.sum(q, axis=1, keepdims=True)
        q = q / k
        q = q / jnp.sum(q, axis=0, keepdims=True)
        q = q / n
    return (q * n).T


def self_distill(
    student: jax.Array,
    teacher: jax.Array,
    *,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
    center: jax.Array | float = 0.0,
    sinkhorn_iters: int = 3,
) -> dict[str, jax.Array]:
    """Cross-entropy to Sinkhorn-balanced teacher assignments + me-max. Rows [N, K] of logits.

    CE = mean_rows Σ_k −P·log_softmax(student/τs), P = sinkhorn(softmax((teacher − center)/τt));
    R = Σ_k ā_k·log ā_k + log K with ā the row-mean of softmax(student/τs). Returns
    {"loss": CE + R, "ce", "me_max", "assign_in", "assign"}.
    """
    s = student.astype(jnp.float32)
    t = jax.lax.stop_gradient(teacher).astype(jnp.float32)
    log_q = jax.nn.log_softmax(s / student_temp, axis=-1)
    probs_in = jax.nn.softmax((t - center) / teacher_temp, axis=-1)
    assign = sinkhorn(probs_in, sinkhorn_iters)
    ce = jnp.mean(jnp.sum(-assign * log_q, axis=-1))
    avg = jnp.mean(jnp.exp(log_q), axis=0)  # [K], global batch mean
    me_max = jnp.sum(avg * jnp.log(avg)) + math.log(avg.shape[0])
    loss = ce + me_max
    return {"loss": loss, "ce": ce, "me_max": me_max, "assign_in": probs_in, "assign": assign}


def _rows(dots: jax.Array) -> jax.Array:
    """Heatmap logits [B, h, w, Q] -> rows [B·h·w, Q] (order b, i, j)."""
    return dots.reshape(-1, dots.shape[-1])


def fra_loss(
    outputs: dict[str, dict[str, jax.Array]],
    *,
    consistency_weight: float = 0.5,
    cluster_weight: float = 0.1,
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
) -> dict[str, jax.Array]:
    """The total FRA loss and every term, from `FRA.__call__` outputs.

    Returns {"loss", "base", "inst", "obj", "clu"} (the original's logged pack: inst and obj are
    the weighted sums over both pairs) plus per-pair terms "pair{1,2}/…" and "sd{1,2}/…".
    """
    terms: dict[str, jax.Array] = {}
    # Crossed views: online view 1 against teacher view 2, and vice versa.
    pairs = {1: consistency_loss(outputs["pred1"], outputs["teacher2"], consistency_weight)}
    pairs[2] = consistency_loss(outputs["pred2"], outputs["teacher1"], consistency_weight)
    # Same view: online heatmaps of view v against the teacher's of view v.
    sds = {
        v: self_distill(
            _rows(outputs[f"online{v}"]["dots"]),
            _rows(outputs[f"teacher{v}"]["dots"]),
            student_temp=student_temp,
            teacher_temp=teacher_temp,
        )
        for v in (1, 2)
    }
    for v in (1, 2):
        terms.update({f"pair{v}/{k}": x for k, x in pairs[v].items()})
        terms.update({f"sd{v}/{k}": x for k, x in sds[v].items()})
    base = pairs[1]["base"] + pairs[2]["base"]
    clu = 0.5 * (sds[1]["loss"] + sds[2]["loss"])
    terms["base"] = base
    terms["inst"] = (pairs[1]["inst"] + pairs[2]["inst"]) * consistency_weight
    terms["obj"] = (pairs[1]["obj"] + pairs[2]["obj"]) * (1.0 - consistency_weight)
    terms["clu"] = clu
    terms["loss"] = base + cluster_weight * clu
    return terms


def ema(old: jax.Array, new: jax.Array, momentum: float) -> jax.Array:
    """Buffer update old·m + new·(1 − m) (FRA's `proto`, m 0.9), no gradient."""
    return old * momentum + jax.lax.stop_gradient(new) * (1.0 - momentum)
