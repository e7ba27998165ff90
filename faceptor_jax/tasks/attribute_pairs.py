"""The 40 CelebA attributes as SwinFace predicts them: a 2-logit softmax ([no, yes]) each.

The model's "attributes" output [B, 40, 2] is in SwinFace's order (`swinface.ATTRIBUTES`, its
names: "Gender" is CelebA's Male); every use here first reorders it into the dataset's label order
(`datasets.Dataset.labels`) by name, so labels, metrics and predict's names are the dataset's.
Loss: the sum over attributes of each pair's softmax CE (batch mean, labels −1 ignored), as the
original sums its 40 attribute losses; Gender's term is scaled by `gender_share`, as the age sets'
streams (`age_gender`) train the Gender pair too and the original takes one Gender mean over both
kinds of rows. Prediction: argmax of the pair (yes iff its logit is larger), scored as the mean
accuracy over the 40.
"""

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import datasets
from faceptor_jax.metrics import AttributeAccumulator
from faceptor_jax.model.swinface import ATTRIBUTES
from faceptor_jax.tasks import attributes, crops
from faceptor_jax.tasks.spec import LossContext, PredictOutput, Task, TaskType

_ALIASES = {"gender": "male", "five_o_clock_shadow": "5_o_clock_shadow"}


def _key(name: str) -> str:
    k = name.lower().replace(" ", "_").replace("'", "_")
    return _ALIASES.get(k, k)


@functools.lru_cache(maxsize=8)
def order(labels: Sequence[str]) -> np.ndarray:
    """[A] int: index in `ATTRIBUTES` of each of the dataset's `labels` (matched by name)."""
    index = {_key(n): i for i, n in enumerate(ATTRIBUTES)}
    missing = [n for n in labels if _key(n) not in index]
    if missing:
        raise ValueError(f"attributes {missing} are not among SwinFace's {ATTRIBUTES}")
    return np.asarray([index[_key(n)] for n in labels], np.int32)


def in_dataset_order(pairs, labels: Sequence[str]):
    """[B, 40, 2] in `ATTRIBUTES` order -> [B, A, 2] in the order of `labels`."""
    return pairs[:, order(tuple(labels))]


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    return attributes.transform(record, rng, train, size, dataset, policy)


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    pairs = in_dataset_order(raw["attributes"].astype(jnp.float32), task.labels)
    p = jax.nn.softmax(pairs, axis=-1)
    return {"logits": pairs, "probabilities": p[..., 1], "present": pairs[..., 1] > pairs[..., 0]}


def pair_loss(pairs: jax.Array, targets: jax.Array, weights=None) -> jax.Array:
    """pairs [B, A, 2]; targets int [B, A] in {0, 1}, −1 ignored; weights [A] (default 1) ->
    Σ_a w_a · mean_b CE[b, a]."""
    x = pairs.astype(jnp.float32)
    valid = targets != -1
    t = jnp.where(valid, targets, 0)
    ce = jax.nn.logsumexp(x, -1) - jnp.take_along_axis(x, t[..., None], -1)[..., 0]
    per_attribute = jnp.sum(jnp.where(valid, ce, 0.0), 0) / jnp.maximum(jnp.sum(valid, 0), 1)
    return jnp.sum(per_attribute if weights is None else per_attribute * weights)


# Task types whose loss trains the Gender pair: CelebA's Male column, the age sets' gender.
GENDER_TYPES = ("attribute_pairs", "age_gender")


def gender_share(config, task: str) -> float:
    """The part of the Gender loss that `task`'s stream carries: the rows of its type over all
    rows training Gender in the run (global batch sizes of `config.tasks`; 1 outside a run).

    The original takes one CE mean over its age_gender + CelebA rows, i.e. (A·CE_age +
    C·CE_celeba)/(A + C). A type's streams already split its weight by rows (loss_weight = batch
    size), so scaling each type's Gender term by A/(A+C) resp. C/(A+C) sums to that mean when
    the two types' task_weights are equal (1 in the recipe)."""
    if config is None or task not in config.get("tasks", {}):
        return 1.0
    from faceptor_jax import tasks  # the task table imports this file

    rows: dict[str, int] = {}
    for name, t in config.tasks.items():
        typ = tasks.get(name).type.name
        if typ in GENDER_TYPES:
            rows[typ] = rows.get(typ, 0) + int(t.batch_size)
    return rows[tasks.get(task).type.name] / sum(rows.values())


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    from faceptor_jax import tasks  # the task table imports this file

    labels = tasks.get(ctx.task).labels
    gender = order(tuple(labels)) == ATTRIBUTES.index("Gender")  # [A]: Male's place in labels
    weights = np.where(gender, gender_share(ctx.config, ctx.task), 1.0).astype(np.float32)
    return pair_loss(in_dataset_order(raw["attributes"], labels), batch["attributes"], weights)


def evaluate(raw, batch, dataset: str, size: int) -> AttributeAccumulator:
    labels = datasets.get(dataset).labels
    pairs = in_dataset_order(np.asarray(raw["attributes"], np.float32), labels)
    # yes − no > 0 ⇔ argmax = yes: the accumulator's logit > 0 rule is the pair's argmax
    return AttributeAccumulator.from_batch(pairs[..., 1] - pairs[..., 0], batch["attributes"])


PREDICT = PredictOutput(
    key="attributes",
    schema=attributes.PREDICT.schema,
    essentials=lambda d: d["probabilities"],
    entry=attributes.PREDICT.entry,
    columns=attributes.PREDICT.columns,
    cells=attributes.PREDICT.cells,
)
TYPE = TaskType(
    name="attribute_pairs", original="biattr", kind="value", output="none", input_size=112,
    head=lambda d: (len(d.labels), 2 * len(d.labels)), transform=transform, crop=crops.ARCFACE,
    decode=decode, loss=loss, evaluate=evaluate, summarize=attributes.summarize,
    report="attributes", tables=attributes.tables, predict=PREDICT,
)  # fmt: skip
