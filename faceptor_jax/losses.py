"""Loss primitives of every Faceptor task: pure, jit-able functions on arrays.

Every `*_loss` returns a float32 scalar equal to the original's `tloss` for the same inputs; the
`*_loss_terms` variants return the named parts the original logs. Shape checks happen at trace time
(ValueError); nothing here syncs with the host. Landmark heatmap targets live in
`faceptor_jax/heatmaps.py`.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from faceptor_jax import heatmaps, resample

COSFACE_SCALE = 64.0
COSFACE_MARGIN = 0.4
AGE_BINS = 101  # ages 0..100
AGE_SIGMA = 2.0  # years, std of the DLDL-v2 label distribution


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _check_batch(name: str, a: jax.Array, b: jax.Array, b_name: str) -> None:
    _check(
        a.shape[0] == b.shape[0],
        f"{name}: batch size {a.shape[0]} of the predictions != {b.shape[0]} of `{b_name}`",
    )


def _safe_norm(v: jax.Array) -> jax.Array:
    """‖v‖₂ over the last axis with gradient 0 (not NaN) at v = 0, as torch's norm."""
    sq = jnp.sum(jnp.square(v), axis=-1)
    nz = sq > 0
    return jnp.where(nz, jnp.sqrt(jnp.where(nz, sq, 1.0)), 0.0)


# ----------------------------------------------------------------------------- recognition
def padded_num_classes(num_classes: int, num_shards: int) -> int:
    """Smallest multiple of `num_shards` >= `num_classes` (93431 = 13·7187: no power of 2)."""
    return -(-num_classes // num_shards) * num_shards


def cosface_logits(
    x: jax.Array, w: jax.Array, onehot: jax.Array, scale: float, margin: float, clamp: bool = False
) -> jax.Array:
    """s·(cos − m·onehot) with cos = x·w / max(‖x‖‖w‖, 1e-8) as the original (clamp: cos first
    clipped to [−1, 1], as insightface's PartialFC). x [B,D], w [C,D], onehot [B,C] -> [B,C]."""
    ip = x @ w.T  # [B, C]
    norms = _safe_norm(x)[:, None] * _safe_norm(w)[None, :]  # zero padding rows: grad 0, not NaN
    cos = ip / jnp.maximum(norms, 1e-8)
    if clamp:
        cos = jnp.clip(cos, -1.0, 1.0)
    return scale * (cos - margin * onehot.astype(cos.dtype))


def class_sharded_cross_entropy(logits: jax.Array, onehot: jax.Array, class_axis: str):
    """Per-example CE of one class shard's logits [b, c] (inside shard_map over `class_axis`):
    max, exp-sum and target logit combined over the shards, so no device holds all classes.
    Columns at −inf take no part; each row's target is in exactly one shard. -> [b]."""
    # The max only stabilises exp; it cancels in the value and carries no gradient.
    m = jax.lax.pmax(jax.lax.stop_gradient(jnp.max(logits, axis=-1)), class_axis)
    sumexp = jax.lax.psum(jnp.sum(jnp.exp(logits - m[:, None]), axis=-1), class_axis)
    target = jax.lax.psum(jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1), class_axis)
    return jnp.log(sumexp) + m - target


def cosface_loss(
    embeddings: jax.Array,
    weight: jax.Array,
    labels: jax.Array,
    mesh: Mesh,
    *,
    num_classes: int | None = None,
    scale: float = COSFACE_SCALE,
    margin: float = COSFACE_MARGIN,
    batch_axes: Sequence[str] = ("data", "fsdp"),
    class_axis: str = "model",
) -> jax.Array:
    """CosFace, class dimension sharded over `class_axis` (partial-FC style). Scalar mean CE.

    embeddings [B,D] (B sharded over `batch_axes`), weight [C_pad,D] (C_pad sharded over
    `class_axis`; rows >= `num_classes` are padding and take no part), labels int [B].
    Each device computes only its [B_local, C_pad/n] block of logits; the softmax max, the
    exp-sum and the target logit are combined with pmax/psum over `class_axis`, so the full
    [B, C] logits never exist on one device. Labels outside [0, num_classes) are not detected.
    """
    n_cls = weight.shape[0]
    num_classes = n_cls if num_classes is None else num_classes
    batch_axes = tuple(batch_axes)
    n_model = mesh.shape[class_axis]
    n_batch = 1
    for a in batch_axes:
        n_batch *= mesh.shape[a]
    _check(embeddings.ndim == 2 and weight.ndim == 2, "cosface: want x [B,D], weight [C,D]")
    _check_batch("cosface", embeddings, labels, "label")
    _check(
        n_cls % n_model == 0,
        f"cosface: weight has {n_cls} classes, not a multiple of mesh axis '{class_axis}' size "
        f"{n_model}; pad to padded_num_classes({num_classes}, {n_model})",
    )
    _check(num_classes <= n_cls, f"cosface: num_classes {num_classes} > weight rows {n_cls}")
    _check(
        embeddings.shape[0] % n_batch == 0,
        f"cosface: batch {embeddings.shape[0]} not divisible by mesh axes {batch_axes} ({n_batch})",
    )

    def local(x, w, y):  # x [b,D], w [c,D], y [b]
        c = w.shape[0]
        cls = jax.lax.axis_index(class_axis) * c + jnp.arange(c)  # global class ids of this shard
        onehot = y[:, None] == cls[None, :]
        logits = cosface_logits(x, w, onehot, scale, margin)  # [b, c]
        if num_classes < n_cls:
            logits = jnp.where((cls < num_classes)[None, :], logits, -jnp.inf)
        return class_sharded_cross_entropy(logits, onehot, class_axis)  # [b]

    per_example = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(batch_axes, None), P(class_axis, None), P(batch_axes)),
        out_specs=P(batch_axes),
        check_vma=True,
    )(embeddings, weight, labels)
    return jnp.mean(per_example)


# ----------------------------------------------------------------------------- age
def age_target_distribution(age: jax.Array, num_bins: int = AGE_BINS, sigma: float = AGE_SIGMA):
    """DLDL-v2 label distribution: Gaussian pdf at k=0..num_bins-1 around `age`, L1-normalised.

    age float [B] in years -> [B, num_bins] float32. The original evaluates the pdf in fp64 and
    stores fp32; here it is fp32 throughout, which differs only in tails below ~1e-38.
    """
    k = jnp.arange(num_bins, dtype=jnp.float32)
    d = jnp.exp(-jnp.square(k[None, :] - age[:, None].astype(jnp.float32)) / (2 * sigma**2))
    d = d / (jnp.sqrt(2 * jnp.pi) * sigma)
    return d / jnp.maximum(jnp.sum(d, axis=-1, keepdims=True), 1e-12)


def age_probabilities(logits: jax.Array) -> jax.Array:
    """p = σ(logits) / max(Σσ, 1e-12) (sigmoid then L1-normalise, not softmax). [B,Q] -> [B,Q]."""
    s = jax.nn.sigmoid(logits.astype(jnp.float32))
    return s / jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), 1e-12)


def expected_age(logits: jax.Array) -> jax.Array:
    """Predicted age in years, Σ_k k·p_k. logits [B,Q] -> [B]."""
    p = age_probabilities(logits)
    return p @ jnp.arange(p.shape[-1], dtype=jnp.float32)


def age_loss_terms(logits: jax.Array, age: jax.Array) -> dict[str, jax.Array]:
    """The original's DLDL-v2 age loss (`AgeLoss_DLDLV2`).

    {'kl': Σ_{b,k} d·(log d − log p) / B, 'l1': mean |â − age|}.
    """
    _check(logits.ndim == 2, f"age: logits must be [B,Q], got {logits.shape}")
    _check_batch("age", logits, age, "age")
    logits = logits.astype(jnp.float32)
    d = age_target_distribution(age, logits.shape[-1])
    s = jax.nn.sigmoid(logits)
    z = jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), 1e-12)
    log_p = jax.nn.log_sigmoid(logits) - jnp.log(z)  # = log(p), finite even where σ underflows
    pos = d > 0
    kl_terms = jnp.where(pos, d * (jnp.log(jnp.where(pos, d, 1.0)) - log_p), 0.0)
    kl = jnp.sum(kl_terms) / logits.shape[0]
    ages = (s / z) @ jnp.arange(logits.shape[-1], dtype=jnp.float32)
    l1 = jnp.mean(jnp.abs(ages - age.astype(jnp.float32)))
    return {"kl": kl, "l1": l1}


def age_loss(logits: jax.Array, age: jax.Array) -> jax.Array:
    """DLDL-v2 age loss = KL + L1 (weights 1, 1). logits [B,101], age float [B] years."""
    t = age_loss_terms(logits, age)
    return t["kl"] + t["l1"]


# ----------------------------------------------------------------------------- attributes
def _bce_with_logits(x: jax.Array, t: jax.Array) -> jax.Array:
    """Element-wise binary cross-entropy on logits, the stable form torch uses."""
    return jnp.maximum(x, 0.0) - x * t + jnp.log1p(jnp.exp(-jnp.abs(x)))


def attribute_loss(
    logits: jax.Array, targets: jax.Array, pos_ratio: jax.Array | None = None
) -> jax.Array:
    """The original's `CEL_Sigmoid`: masked sigmoid BCE summed over attributes, divided by B.

    logits [B,A]; targets int [B,A] in {0,1}, -1 = ignore (weight 0). `pos_ratio` [A] (positive
    ratio per attribute) enables the original's optional `ratio2weight` weighting
    exp(t·(1−r) + (1−t)·r); every Faceptor config leaves it off (None).
    """
    _check(logits.shape == targets.shape, f"attributes: logits {logits.shape} != {targets.shape}")
    x = logits.astype(jnp.float32)
    valid = targets != -1
    t = jnp.where(valid, targets, 0).astype(jnp.float32)
    loss = jnp.where(valid, _bce_with_logits(x, t), 0.0)
    if pos_ratio is not None:
        r = jnp.asarray(pos_ratio, jnp.float32)[None, :]
        tm = (targets > 0.5).astype(jnp.float32)
        loss = loss * jnp.exp(tm * (1 - r) + (1 - tm) * r)
    return jnp.sum(loss) / logits.shape[0]


# ----------------------------------------------------------------------------- expression, parsing
def _ce_per_item(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy per item; logits [...,C], labels int [...] -> [...]."""
    logits = logits.astype(jnp.float32)
    safe = jnp.clip(labels, 0, logits.shape[-1] - 1)
    tgt = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
    return jax.nn.logsumexp(logits, axis=-1) - tgt


def expression_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The original's `MyCrossEntropyLoss`: mean softmax CE. logits [B,C], labels int [B]."""
    _check(logits.ndim == 2 and labels.ndim == 1, f"expression: {logits.shape}, {labels.shape}")
    _check_batch("expression", logits, labels, "label")
    return jnp.mean(_ce_per_item(logits, labels))


def parsing_loss(logits: jax.Array, mask: jax.Array, ignore_index: int = -100) -> jax.Array:
    """The original's `ParsingLoss`: mean CE over all non-ignored pixels.

    logits channels-last [B,H,W,C] (already at the label resolution); mask int [B,H,W].
    If every pixel is ignored the result is 0 (torch would give NaN).
    """
    _check(
        logits.ndim == 4 and logits.shape[:3] == mask.shape,
        f"parsing: logits {logits.shape} must be [B,H,W,C] over mask {mask.shape}",
    )
    valid = mask != ignore_index
    ce = jnp.where(valid, _ce_per_item(logits, mask), 0.0)
    return jnp.sum(ce) / jnp.maximum(jnp.sum(valid), 1)


# ----------------------------------------------------------------------------- landmarks
def landmark_loss_terms(
    heatmap_logits: jax.Array,
    pred_points: jax.Array,
    landmarks: jax.Array,
    input_size: int = 512,
    heatmap_size: int = 128,
    radius: float = 5.0,
) -> dict[str, jax.Array]:
    """The original's `AlignLoss`: {'coord': mean ‖g − ĝ‖₂, 'heatmap': mean BCE vs targets}.

    heatmap_logits [B,h,w,K] raw, the model's layout (bilinearly resized to heatmap_size if
    needed; the resize and the rendered targets work channels-first); pred_points
    [B,K,2] normalised (x,y) in [0,1]; landmarks [B,K,2] (x,y) pixels in the `input_size` image,
    pixel-centre convention, normalised as g = (p + 0.5) / input_size.
    """
    _check(
        heatmap_logits.ndim == 4 and pred_points.shape == landmarks.shape,
        f"landmarks: heatmaps {heatmap_logits.shape}, points {pred_points.shape} "
        f"vs landmarks {landmarks.shape}",
    )
    heatmap_logits = jnp.moveaxis(heatmap_logits, -1, 1)  # [B, h, w, K] -> [B, K, h, w]
    _check(
        heatmap_logits.shape[:2] == landmarks.shape[:2] and landmarks.shape[-1] == 2,
        f"landmarks: heatmaps {heatmap_logits.shape[:2]} != landmarks [B,K] {landmarks.shape[:2]}",
    )
    g = heatmaps.normalize_points(landmarks.astype(jnp.float32), input_size)
    coord = jnp.mean(_safe_norm(g - pred_points.astype(jnp.float32)))
    hm = jnp.moveaxis(heatmap_logits.astype(jnp.float32), 1, -1)  # the resize is channels-last
    pred = jnp.moveaxis(resample.resize_bilinear(hm, (heatmap_size,) * 2), -1, 1)  # [B,K,s,s]
    target = jax.lax.stop_gradient(heatmaps.render_heatmaps(g, heatmap_size, radius))
    bce = jnp.mean(_bce_with_logits(pred, target))
    return {"coord": coord, "heatmap": bce}


def landmark_loss(
    heatmap_logits: jax.Array, pred_points: jax.Array, landmarks: jax.Array, **kwargs
) -> jax.Array:
    """AlignLoss = coord + heatmap BCE (weights 1, 1); arguments as `landmark_loss_terms`."""
    t = landmark_loss_terms(heatmap_logits, pred_points, landmarks, **kwargs)
    return t["coord"] + t["heatmap"]
