"""The tasks Faceptor is trained on, as data: one line per dataset-level task.

A task of an existing type is one line in `TASKS` (plus a dataset line in `datasets.DATASETS` for
a new dataset); a new type is one file beside these (a `TaskType`) and its lines here.
"""

from collections.abc import Iterable, Mapping

import jax
import numpy as np

from faceptor_jax import datasets
from faceptor_jax.model.head_spec import HeadSpec
from faceptor_jax.tasks import (
    age,
    age_gender,
    age_regression,
    attribute_pairs,
    attributes,
    crops,
    expression,
    expression_ordered,
    landmarks,
    parsing,
    recognition,
)
from faceptor_jax.tasks.spec import VIEWS, LossContext, Task, TaskType

__all__ = ["TASKS", "VIEWS", "LossContext", "Task", "TaskType", "get", "head_specs", "transform"]

R, A, T, E, P, L = (m.TYPE for m in (recognition, age, attributes, expression, parsing, landmarks))
AR, AG, TP, EO = (
    m.TYPE for m in (age_regression, age_gender, attribute_pairs, expression_ordered)
)  # SwinFace

# name: Task(name, type, dataset of datasets.DATASETS, the original's task name)
TASKS: dict[str, Task] = {
    "recognition_ms1mv3": Task("recognition_ms1mv3", R, "ms1mv3", "recog_ms1mv3"),
    "age_morph2": Task("age_morph2", A, "morph2", "age_morph2"),
    "age_utkface": Task("age_utkface", A, "utkface", "age_utkface"),
    "attributes_celeba": Task("attributes_celeba", T, "celeba", "biattr_celeba"),
    "expression_affectnet": Task("expression_affectnet", E, "affectnet", "affect_affectnet"),
    "expression_rafdb": Task("expression_rafdb", E, "rafdb", "affect_rafdb"),
    "expression_ferplus": Task("expression_ferplus", E, "ferplus", "affect_ferplus"),
    "parsing_celebamaskhq": Task("parsing_celebamaskhq", P, "celebamask_hq", "parsing_celebam"),
    "parsing_lapa": Task("parsing_lapa", P, "lapa", "parsing_lapa"),
    "landmarks_300w": Task("landmarks_300w", L, "ibug300w", "align_300w"),
    "landmarks_cofw": Task("landmarks_cofw", L, "cofw", "align_cofw"),
    "landmarks_wflw": Task("landmarks_wflw", L, "wflw", "align_wflw"),
    "landmarks_aflw": Task("landmarks_aflw", L, "aflw19", "align_aflw"),
    "landmarks_lapa": Task("landmarks_lapa", L, "lapa", "align_lapa"),  # not in the paper
    # SwinFace's streams: age + gender on its AIO mix (Adience, MORPH II, WIKI, IMDB), age
    # evaluated on CLAP2015 and FG-NET (age_regression: age alone); attributes as 2-way
    # softmaxes; expression in RAF-DB's order.
    "recognition_ms1mv2": Task("recognition_ms1mv2", R, "ms1mv2", "Recognition"),
    "age_regression_adience": Task("age_regression_adience", AR, "adience", "Age"),
    "age_regression_morph2": Task("age_regression_morph2", AR, "morph2", "Age"),
    "age_regression_wiki": Task("age_regression_wiki", AR, "wiki", "Age"),
    "age_regression_imdb": Task("age_regression_imdb", AR, "imdb", "Age"),
    "age_gender_adience": Task("age_gender_adience", AG, "adience", "Age"),
    "age_gender_morph2": Task("age_gender_morph2", AG, "morph2", "Age"),
    "age_gender_wiki": Task("age_gender_wiki", AG, "wiki", "Age"),
    "age_gender_imdb": Task("age_gender_imdb", AG, "imdb", "Age"),
    "attribute_pairs_celeba": Task("attribute_pairs_celeba", TP, "celeba", "Attribute"),
    "expression_ordered_affectnet": Task(
        "expression_ordered_affectnet", EO, "affectnet", "Expression"
    ),
    "expression_ordered_rafdb": Task("expression_ordered_rafdb", EO, "rafdb", "Expression"),
}

# Faceptor-Base / Naive Faceptor train these 7; Faceptor-Full (and stage 2) the paper's 13.
BASE: tuple[str, ...] = (
    "recognition_ms1mv3",
    "age_morph2",
    "attributes_celeba",
    "expression_affectnet",
    "expression_rafdb",
    "parsing_celebamaskhq",
    "landmarks_300w",
)
FULL: tuple[str, ...] = tuple(n for n in list(TASKS)[: list(TASKS).index("landmarks_lapa")])
# What a SwinFace model serves (one task per output it has; a converted model's model.json):
# the streams configs/swinface.py evaluates (Gender is predicted among the attributes).
SWINFACE: tuple[str, ...] = (
    "recognition_ms1mv2",
    "age_gender_imdb",
    "attribute_pairs_celeba",
    "expression_ordered_rafdb",
)

# Every type, in the order the evaluation report lists their tables.
TASK_TYPES: tuple[TaskType, ...] = (R, A, E, T, P, L)


def get(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def by_original(original: str) -> Task:
    """The task the original code calls `original` (e.g. 'biattr_celeba')."""
    for t in TASKS.values():
        if t.original == original:
            return t
    valid = ", ".join(t.original for t in TASKS.values())
    raise ValueError(f"unknown original task name {original!r}; valid: {valid}")


def head_specs(names: Iterable[str]) -> tuple[HeadSpec, ...]:
    return tuple(get(n).head_spec() for n in names)


def decode(outputs: Mapping[str, Mapping[str, jax.Array]]) -> dict[str, dict]:
    """{task: raw model outputs} -> {task: outputs in user terms (raw logits kept)}."""
    return {name: get(name).type.decode(raw, get(name)) for name, raw in outputs.items()}


def transform(
    name: str,
    record: Mapping,
    rng: np.random.Generator,
    train: bool,
    size: int | None = None,
    policy: str = "original",
    dataset: str | None = None,
) -> dict[str, np.ndarray]:
    """Task `name`'s train or test transform of one raw record of `dataset` (default: the task's;
    recognition's test sets are the verification sets and IJB-C, whose protocol has its own
    transform) -> one example (numpy)."""
    crops.check_policy(policy)
    task = get(name)
    ds = dataset or task.dataset
    protocol = task.type.protocols.get(ds)  # e.g. IJB-C's alignment from its 5 points
    fn = protocol.transform if protocol else task.type.transform
    return fn(record, rng, train, size or task.input_size, datasets.get(ds), policy)
