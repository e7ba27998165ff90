"""PartialFC (arXiv 2203.15565) as insightface's arcface_torch and SwinFace use it.

Each step, on each class shard, the sampled centres are the shard's classes present in the global
batch (positives) then uniformly random other classes, `int(rate · real local classes)` of them in
all (the original's count, rounded down); when the positives outnumber that, all positives and no
negatives. CosFace on clamped cosines runs over the sampled centres only, so only they get a
gradient. Shapes are static: every shard has `slots` rows, = max(that count, min(local classes,
global batch)) (the most positives a shard can see), and `Sample.valid` masks the rows past the
shard's count. Sampling and loss run per shard under shard_map; no logits are gathered.

The draw depends on the class shards (as the original's on its ranks; the last shard here holds
the padding, where the original splits classes unevenly), not on the batch sharding. Randomness:
`step_key(config.seed, step, task)`, so no key has to travel through the loss contract. The
optimizer is not PartialFCAdamW: unsampled centres get a zero gradient, but AdamW still applies
their momentum and weight decay (the original leaves them and their moments untouched).
"""

import zlib
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from faceptor_jax import losses

_STREAM = 0x5046  # folded into the run seed: PartialFC's draws apart from every other key


class Sample(NamedTuple):
    """One step's sampled centres, `slots` per class shard, sharded over the class axis.

    index int32 [shards·slots]: global class ids, per shard its positives first; valid bool
    [shards·slots]: the slot is in the sample (False: padding of the static shape)."""

    index: jax.Array
    valid: jax.Array


def shard_sample_sizes(num_classes: int, num_padded: int, num_shards: int, rate: float):
    """[shards] int: each shard's sample count, int(rate · its real, non-padding classes)."""
    c = num_padded // num_shards
    real = np.clip(num_classes - c * np.arange(num_shards), 0, c)
    return np.array([int(rate * int(n)) for n in real], np.int32)


def slots(num_classes: int, num_padded: int, num_shards: int, rate: float, batch: int) -> int:
    """Rows per shard of a `Sample`: the largest count, or all positives a batch can bring."""
    c = num_padded // num_shards
    return max(
        int(shard_sample_sizes(num_classes, num_padded, num_shards, rate).max()), min(c, batch)
    )


def step_key(seed: int, step: jax.Array, task: str) -> jax.Array:
    """The key of one step's draw: the run seed, the task and the (traced) step folded together,
    so a resumed run draws the same samples and every step a new one."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), _STREAM)
    key = jax.random.fold_in(key, zlib.crc32(task.encode()) & 0x7FFFFFFF)
    return jax.random.fold_in(key, step)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def sample_classes(
    labels: jax.Array,
    key: jax.Array,
    mesh: Mesh,
    *,
    rate: float,
    num_classes: int,
    num_padded: int,
    batch_axes: Sequence[str] = ("data", "fsdp"),
    class_axis: str = "model",
) -> Sample:
    """The step's sample for labels int [B] (sharded over `batch_axes`) of a class matrix with
    `num_padded` rows sharded over `class_axis` (rows ≥ `num_classes` are padding, never drawn).
    Every batch shard draws the same sample: the key is shared, positives are summed over them."""
    batch_axes = tuple(batch_axes)
    n_model = mesh.shape[class_axis]
    _check(0.0 < rate <= 1.0, f"partial_fc: sample rate {rate} not in (0, 1]")
    _check(num_padded % n_model == 0, f"partial_fc: {num_padded} rows not a multiple of {n_model}")
    n_batch = int(np.prod([mesh.shape[a] for a in batch_axes]))
    _check(
        labels.shape[0] % n_batch == 0,
        f"partial_fc: batch {labels.shape[0]} not divisible by mesh axes {batch_axes} ({n_batch})",
    )
    c = num_padded // n_model
    counts = shard_sample_sizes(num_classes, num_padded, n_model, rate)  # [shards]
    k = slots(num_classes, num_padded, n_model, rate, labels.shape[0])

    def local(y, key):  # y [b], key: replicated
        shard = jax.lax.axis_index(class_axis)
        start = shard * c
        inside = (y >= start) & (y < start + c)
        hits = jnp.zeros((c,), jnp.int32).at[jnp.where(inside, y - start, c)].add(1, mode="drop")
        present = jax.lax.psum(hits, batch_axes) > 0  # [c] this shard's classes in the batch
        real = start + jnp.arange(c) < num_classes
        u = jax.random.uniform(jax.random.fold_in(key, shard), (c,))  # [0, 1)
        score = jnp.where(present, 2.0, jnp.where(real, u, -1.0))  # positives, negatives, padding
        _, idx = jax.lax.top_k(score, k)  # [k] by descending score: positives first
        count = jnp.maximum(jnp.asarray(counts)[shard], jnp.sum(present))
        return (start + idx).astype(jnp.int32), jnp.arange(k) < count

    index, valid = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(batch_axes), P()),
        out_specs=(P(class_axis), P(class_axis)),
        check_vma=True,
    )(labels, key)
    return Sample(index, valid)


def sampled_cosface_loss(
    embeddings: jax.Array,
    weight: jax.Array,
    labels: jax.Array,
    sample: Sample,
    mesh: Mesh,
    *,
    scale: float = losses.COSFACE_SCALE,
    margin: float = losses.COSFACE_MARGIN,
    batch_axes: Sequence[str] = ("data", "fsdp"),
    class_axis: str = "model",
) -> jax.Array:
    """Mean CosFace of embeddings [B,D] over the sampled rows of weight [C_pad,D] only.

    Shardings as `losses.cosface_loss`; `sample` as `sample_classes` draws it for this mesh's
    class axis (any sample whose every label is a valid slot of the shard holding that class
    works, e.g. one drawn on more shards, laid out again on one). Rows outside the sample get
    a zero gradient."""
    batch_axes = tuple(batch_axes)
    n_model = mesh.shape[class_axis]
    _check(weight.shape[0] % n_model == 0, f"partial_fc: {weight.shape[0]} rows, {n_model} shards")
    _check(sample.index.shape[0] % n_model == 0, "partial_fc: sample not laid out per shard")

    def local(x, w, y, index, valid):  # x [b,D], w [c,D], y [b], index/valid [k]
        start = jax.lax.axis_index(class_axis) * w.shape[0]
        onehot = (y[:, None] == index[None, :]) & valid[None, :]  # [b, k]
        logits = losses.cosface_logits(x, w[index - start], onehot, scale, margin, clamp=True)
        logits = jnp.where(valid[None, :], logits, -jnp.inf)
        return losses.class_sharded_cross_entropy(logits, onehot, class_axis)  # [b]

    per_example = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(
            P(batch_axes, None),
            P(class_axis, None),
            P(batch_axes),
            P(class_axis),
            P(class_axis),
        ),
        out_specs=P(batch_axes),
        check_vma=True,
    )(embeddings, weight, labels, sample.index, sample.valid)
    return jnp.mean(per_example)


def partial_fc_loss(
    embeddings: jax.Array,
    weight: jax.Array,
    labels: jax.Array,
    mesh: Mesh,
    key: jax.Array,
    *,
    rate: float,
    num_classes: int,
    scale: float = losses.COSFACE_SCALE,
    margin: float = losses.COSFACE_MARGIN,
    batch_axes: Sequence[str] = ("data", "fsdp"),
    class_axis: str = "model",
) -> tuple[jax.Array, Sample]:
    """(loss, sample): `sample_classes` with `key`, then `sampled_cosface_loss` over it."""
    axes = dict(batch_axes=batch_axes, class_axis=class_axis)
    sample = sample_classes(
        labels, key, mesh, rate=rate, num_classes=num_classes, num_padded=weight.shape[0], **axes
    )
    loss = sampled_cosface_loss(
        embeddings, weight, labels, sample, mesh, scale=scale, margin=margin, **axes
    )
    return loss, sample
