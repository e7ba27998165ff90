"""Age as one regression value (SwinFace): the model's "age" output [B] in years, no bins.

Loss: the original's MSE→Welsch blend, d = â − age, mean[(1−λ)/2·d² + λ·(1 − exp(−d²/(2·3²)))]
with λ = step / `config.total_steps` (80 000 in the recipe), so training starts as MSE and ends
as a robust loss. Evaluation: MAE, CS@5 and ε-error with each image's σ where the test set gives
one (CLAP2015's apparent-age std), else σ = 3. Test sets: CLAP2015 and FG-NET (those built).
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from faceptor_jax import datasets
from faceptor_jax.metrics import AgeAccumulator
from faceptor_jax.tasks import age, crops
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

WELSCH_SIGMA = 3.0  # years


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    """{"image", "age" (years), "age_std" (σ of the apparent age; 0 where the set has none)}."""
    image = crops.small_image(rng, record["image"], train, size, policy)
    std = np.float32(record.get("age_std", 0.0))
    return {"image": image, "age": np.float32(record["age"]), "age_std": std}


def decode(raw: Mapping[str, jax.Array], task: Task) -> dict:
    return {"age": raw["age"].astype(jnp.float32)}


def blend_loss(pred: jax.Array, target: jax.Array, blend: jax.Array) -> jax.Array:
    """pred, target [B] years; blend λ in [0, 1] -> mean[(1−λ)/2·d² + λ·(1 − e^(−d²/2σ²))]."""
    d2 = jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32))
    welsch = 1.0 - jnp.exp(-d2 / (2.0 * WELSCH_SIGMA**2))
    return jnp.mean((1.0 - blend) / 2.0 * d2 + blend * welsch)


def blend_weight(step: jax.Array, total_steps: int) -> jax.Array:
    """λ = step / total_steps (clipped to [0, 1])."""
    return jnp.clip(jnp.asarray(step, jnp.float32) / max(int(total_steps), 1), 0.0, 1.0)


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    total = ctx.config.total_steps if ctx.config is not None else 1
    return blend_loss(raw["age"], batch["age"], blend_weight(ctx.step, total))


def evaluate(raw, batch, dataset: str, size: int) -> AgeAccumulator:
    std = np.asarray(batch["age_std"], np.float64)
    sigma = np.where(std > 0, std, WELSCH_SIGMA)  # ε-error: the image's σ where it has one
    return AgeAccumulator.from_batch(np.asarray(raw["age"], np.float32), batch["age"], sigma)


def _test_sets(task: Task) -> tuple[str, ...]:
    return ("clap2015", "fgnet")


TYPE = TaskType(
    name="age_regression", original="age", kind="value", output="none", input_size=112,
    head=lambda d: (1, 1), transform=transform, crop=crops.ARCFACE, decode=decode, loss=loss,
    evaluate=evaluate, summarize=age.summarize, report="age", tables=age.tables,
    predict=age.PREDICT, test_sets=_test_sets,
)  # fmt: skip
