"""SwinFace's age_gender stream: each face of an age set trains the Age value AND the Gender pair.

The original's `age_gender` batches (its AIO mix: Adience, MORPH II, WIKI, IMDB) feed two of its
42 losses: Age (fc 1, the MSE→Welsch blend of `age_regression`) and Gender (fc 0, a 2-logit CE
whose mean runs over these rows and the CelebA rows together, CelebA's label being its Male
column). Here the Gender pair is the model's "attributes" output at `ATTRIBUTES.index("Gender")`
and the record's `gender` (1 male, 0 female, −1 unknown) its label.

Loss: blend(age) + s·CE(Gender pair, gender), CE the mean over the rows whose gender is known.
Unknown rows (−1) are left out of the CE: the original's list turns a gender into 1 iff its text
is "1.0", so an unknown one (IMDB-WIKI's NaN, Adience's "u") trains as female; we mask them (a
deliberate difference, stated in configs/swinface.py). s = the age_gender streams' share of
the rows that train Gender, A/(A+C) (`attribute_pairs.gender_share`; the trainer's stream
weights already split the type's part by rows): with CelebA's Gender term scaled by C/(A+C),
the two add up to the original's one mean over all those rows.
Evaluation, report and predict: age_regression's (CLAP2015 and FG-NET have no gender; CelebA's
test set scores Gender).
"""

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from faceptor_jax import datasets
from faceptor_jax.errors import DataError
from faceptor_jax.model.swinface import ATTRIBUTES
from faceptor_jax.tasks import age_regression, attribute_pairs
from faceptor_jax.tasks.spec import LossContext

GENDER = ATTRIBUTES.index("Gender")  # the Gender pair among the model's 40 ([female, male])


def transform(record, rng, train: bool, size: int, dataset: datasets.Dataset, policy: str):
    """age_regression's example + "gender" (int32: 1 male, 0 female, −1 unknown or none given:
    the age test sets have no gender)."""
    if train and "gender" not in record:
        raise DataError(
            f"{dataset.display} records have no 'gender' (an age_gender stream needs it): "
            "rebuild the dataset with `python -m data build`"
        )
    example = age_regression.transform(record, rng, train, size, dataset, policy)
    return example | {"gender": np.int32(record.get("gender", -1))}


def gender_loss(pairs: jax.Array, gender: jax.Array) -> jax.Array:
    """pairs [B, 40, 2] (`ATTRIBUTES` order); gender int [B], −1 unknown -> the Gender pair's
    CE averaged over the known rows (0 when none is)."""
    return attribute_pairs.pair_loss(pairs[:, GENDER : GENDER + 1], gender[:, None])


def loss(raw: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], ctx: LossContext):
    share = attribute_pairs.gender_share(ctx.config, ctx.task)
    gender = gender_loss(raw["attributes"], batch["gender"])
    return age_regression.loss(raw, batch, ctx) + share * gender


TYPE = dataclasses.replace(
    age_regression.TYPE, name="age_gender", original="age_gender", transform=transform, loss=loss
)
