"""Face recognition (MS1MV3): a 512-d embedding from the last encoder layer, no decoder queries.

Trained with CosFace (s 64, m 0.4) over the dataset's identities; the classifier weight belongs
to the loss, not the model (`LOSS_PARAMS`, `params.loss[task]`). Evaluated on the verification
sets (image + mirrored image embeddings summed, 10-fold accuracy); predict embeds faces with the
same flip-sum (`flip_views` / `flip_sum`, one implementation for both).
"""

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import datasets, losses, partial_fc, report
from faceptor_jax.tasks import crops, ijbc_eval
from faceptor_jax.tasks.spec import LossContext, LossParams, PredictOutput, Task, TaskType
from faceptor_jax.verification import VerificationAccumulator

EMBEDDING = 512  # the head's output width in the recipes (`model.embed_dim` may shrink it)


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    """Training: a labelled face (resize + flip); a verification set: both images of a pair."""
    if dataset.verification:
        a = crops.small_image(rng, record["image_a"], False, size, policy)
        b = crops.small_image(rng, record["image_b"], False, size, policy)
        return {"image_a": a, "image_b": b, "issame": np.int32(record["issame"])}
    image = crops.small_image(rng, record["image"], train, size, policy, flip_only=True)
    return {"image": image, "label": np.int32(record["label"])}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    e = raw["embedding"]
    norm = jnp.linalg.norm(e, axis=-1, keepdims=True)
    return {"embedding": e, "embedding_normalized": e / jnp.maximum(norm, 1e-12)}


def classes(config, task: str) -> int:
    """Identities of the CosFace classifier: `config.recognition_classes`, or with 0 there the
    task's dataset's (`datasets.Dataset.identities`)."""
    from faceptor_jax import tasks  # the task table imports this file

    n = int(config.get("recognition_classes", 0))
    return n or datasets.get(tasks.get(task).dataset).identities


def sample_rate(config, task: str) -> float:
    """`config.tasks[task].partial_fc`: PartialFC's class sample rate; 1.0 (default): all."""
    entry = (config.get("tasks") or {}).get(task) if config is not None else None
    return float((entry or {}).get("partial_fc", 1.0))


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    """CosFace with the class matrix sharded over the mesh's `model` axis (never gathered);
    with a sample rate < 1 over PartialFC's sampled centres, drawn anew each step."""
    x, w, y = raw["embedding"].astype(jnp.float32), ctx.params["classifier"], batch["label"]
    n, rate = classes(ctx.config, ctx.task), sample_rate(ctx.config, ctx.task)
    if rate < 1.0:
        key = partial_fc.step_key(int(ctx.config.get("seed", 0)), ctx.step, ctx.task)
        return partial_fc.partial_fc_loss(x, w, y, ctx.mesh, key, rate=rate, num_classes=n)[0]
    return losses.cosface_loss(x, w, y, ctx.mesh, num_classes=n)


def _init(task: str, config, mesh, key: jax.Array) -> dict:
    padded = losses.padded_num_classes(classes(config, task), mesh.shape["model"])
    dim = int(config.model.embed_dim)
    bound = dim**-0.5  # PyTorch's default init of the classifier: U(±1/√512)
    w = jax.random.uniform(key, (padded, dim), minval=-bound)
    return {"classifier": jnp.minimum(w, bound)}


def _describe(task: str, config) -> dict:
    return {"recognition_classes": {task: classes(config, task)}}


def _export(tree: dict, task: str, meta: Mapping) -> dict:
    """Training's padded class matrix cut to the real classes model.json states."""
    n = meta.get("recognition_classes", {}).get(task)
    return {"classifier": tree["classifier"][:n]}


def _load(stored: Mapping, tree: dict, where: str) -> dict:
    """A stored classifier [classes, D] into the padded training matrix (padding rows zero)."""
    w, classifier = tree["classifier"], stored["classifier"]
    if classifier.shape[0] > w.shape[0] or classifier.shape[1] != w.shape[1]:
        raise ValueError(
            f"{where}: CosFace classifier {tuple(classifier.shape)} does not fit the "
            f"configured {tuple(w.shape)} (config.recognition_classes, model.embed_dim)"
        )
    padded = jnp.zeros(w.shape, w.dtype).at[: classifier.shape[0]].set(classifier)
    return {"classifier": jax.device_put(padded, w.sharding)}


LOSS_PARAMS = LossParams(
    init=_init, axes={"classifier": ("classes", None)}, describe=_describe, export=_export,
    load=_load,
)  # fmt: skip


# ----------------------------------------------------------------------------- verification
def flip_views(images: jax.Array) -> jax.Array:
    """[B, S, S, 3] -> [2B, S, S, 3]: the crops, then their mirror images."""
    return jnp.concatenate([images, images[:, :, ::-1]])


def flip_sum(embeddings: jax.Array) -> jax.Array:
    """[2B, E] embeddings of `flip_views` -> [B, E] L2-normalised sums (the protocol's)."""
    e = embeddings.astype(jnp.float32)
    e = e[: e.shape[0] // 2] + e[e.shape[0] // 2 :]
    return e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def _test_sets(task: Task) -> tuple[str, ...]:
    return datasets.VERIFICATION_SETS


def _eval_images(batch: Mapping[str, jax.Array]) -> jax.Array:
    """[4B, S, S, 3]: image a, image b, then both mirrored."""
    return flip_views(jnp.concatenate([batch["image_a"], batch["image_b"]]))


def _eval_rows(raw: Mapping) -> dict:
    """[4B, E] -> [B, 4, E] (a, b, mirrored a, mirrored b per pair)."""
    e = np.asarray(raw["embedding"])
    return {"embedding": e.reshape(4, -1, e.shape[-1]).transpose(1, 0, 2)}


@dataclasses.dataclass(frozen=True)
class PairAccumulator:
    """Embeddings of pairs seen so far and their same/different labels."""

    embeddings: VerificationAccumulator
    issame: dict

    def merge(self, other: "PairAccumulator") -> "PairAccumulator":
        return PairAccumulator(self.embeddings.merge(other.embeddings), self.issame | other.issame)


def evaluate(raw, batch, dataset: str, size: int) -> PairAccumulator:
    e = raw["embedding"]  # [B, 4, E]
    pair = np.asarray(batch["index"])
    index = np.concatenate([2 * pair, 2 * pair + 1])
    part = VerificationAccumulator.from_batch(
        index, np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 2], e[:, 3]])
    )
    issame = dict(zip(pair.tolist(), np.asarray(batch["issame"]).tolist(), strict=True))
    return PairAccumulator(part, issame)


def summarize(acc: PairAccumulator, dataset: str) -> report.Result:
    same = np.array([acc.issame[i] for i in sorted(acc.issame)], bool)
    return report.Result("verification", dataset, acc.embeddings.compute(same))


def tables(results: Sequence[report.Result]) -> list[report.Table]:
    """One table for every 10-fold verification set, in the paper's order; then IJB-C's."""
    templates = [r for r in results if ijbc_eval.is_template_result(r)]
    pairs = [r for r in results if not ijbc_eval.is_template_result(r)]
    return [*(_pair_tables(pairs) if pairs else []), *ijbc_eval.tables(templates)]


def _pair_tables(results: Sequence[report.Result]) -> list[report.Table]:
    order = {d: i for i, d in enumerate(datasets.VERIFICATION_SETS)}
    rs = sorted(results, key=lambda r: order.get(r.dataset, len(order)))
    f = report.fmt
    header = ("Metric", *(report.display(r.dataset) for r in rs))
    acc = ("Accuracy (%)", *(f(r.metrics["accuracy"], 100) for r in rs))
    std = ("± std (%)", *(f(r.metrics["accuracy_std"], 100) for r in rs))
    thr = ("Threshold (sq. L2)", *(f(r.metrics.get("threshold"), 1.0, 2) for r in rs))
    rows = [acc, std, thr]
    fars = sorted({far for r in rs for far in r.metrics.get("tar_at_far", {})}, reverse=True)
    for far in fars:
        rows.append(
            (f"TAR@FAR={far:g} (%)", *(f(r.metrics["tar_at_far"].get(far), 100) for r in rs))
        )
    return [report.Table("Face verification (10-fold, flip)", header, tuple(rows))]


def _entry(value, matrix, task, labels, mask) -> list[float]:
    return np.asarray(value, np.float64).round(6).tolist()  # float64: no float32 digits


PREDICT = PredictOutput(
    key="embedding",
    schema={"type": "object"},  # task -> [E] L2-normalised, flip-summed
    views=("plain", "hflip"),  # = flip_views: the protocol's flip-summed embedding
    essentials=lambda d: flip_sum(d["embedding"]),
    entry=_entry,
    extras=lambda entry, task: {"embedding": entry},  # JSONL only: too wide for the CSV
)
TYPE = TaskType(
    name="recognition", original="recog", kind="feature", output="none", input_size=112,
    head=lambda d: (0, EMBEDDING), transform=transform, crop=crops.ARCFACE, decode=decode,
    loss=loss, evaluate=evaluate, summarize=summarize, report="verification", tables=tables,
    predict=PREDICT, test_sets=_test_sets, eval_images=_eval_images, eval_rows=_eval_rows,
    loss_params=LOSS_PARAMS, protocols={"ijbc": ijbc_eval.PROTOCOL},
)  # fmt: skip
