"""The tasks Faceptor is trained on, as data: one line per dataset-level task.

Adding a task of an existing type is one line in `TASKS`; a new type is one file beside these
(its interpreter kind, output module and decoding) plus its lines here.
"""

from collections.abc import Iterable, Mapping

import jax

from faceptor_jax.model.head_spec import HeadSpec
from faceptor_jax.tasks import age, attributes, expression, landmarks, parsing, recognition
from faceptor_jax.tasks.parsing import CELEBAMASK_LABELS, LAPA_LABELS
from faceptor_jax.tasks.spec import LossContext, Task, TaskType

__all__ = ["TASKS", "LossContext", "Task", "TaskType", "get", "head_specs"]

R, A, T, E, P, L = (m.TYPE for m in (recognition, age, attributes, expression, parsing, landmarks))
EXPR = expression.LABELS

# name: Task(name, type, dataset, input size, queries, outputs, original name, labels)
TASKS: dict[str, Task] = {
    "recognition_ms1mv3": Task("recognition_ms1mv3", R, "MS1MV3", 112, 0, 512, "recog_ms1mv3"),
    "age_morph2": Task("age_morph2", A, "MORPH2", 112, 101, 101, "age_morph2"),
    "age_utkface": Task("age_utkface", A, "UTKFace", 112, 101, 101, "age_utkface"),
    "attributes_celeba": Task("attributes_celeba", T, "CelebA", 112, 40, 40, "biattr_celeba"),
    "expression_affectnet": Task(
        "expression_affectnet", E, "AffectNet", 112, 7, 7, "affect_affectnet", EXPR
    ),
    "expression_rafdb": Task("expression_rafdb", E, "RAF-DB", 112, 7, 7, "affect_rafdb", EXPR),
    "expression_ferplus": Task(
        "expression_ferplus", E, "FERPlus", 112, 7, 7, "affect_ferplus", EXPR
    ),
    "parsing_celebamaskhq": Task(
        "parsing_celebamaskhq",
        P,
        "CelebAMask-HQ",
        512,
        19,
        19,
        "parsing_celebam",
        CELEBAMASK_LABELS,
    ),
    "parsing_lapa": Task("parsing_lapa", P, "LaPa", 512, 11, 11, "parsing_lapa", LAPA_LABELS),
    "landmarks_300w": Task("landmarks_300w", L, "300W", 512, 68, 68, "align_300w"),
    "landmarks_cofw": Task("landmarks_cofw", L, "COFW", 512, 29, 29, "align_cofw"),
    "landmarks_wflw": Task("landmarks_wflw", L, "WFLW", 512, 98, 98, "align_wflw"),
    "landmarks_aflw": Task("landmarks_aflw", L, "AFLW-19", 512, 19, 19, "align_aflw"),
}

# Faceptor-Base / Naive Faceptor train these 7; Faceptor-Full (and stage 2) all 13.
BASE: tuple[str, ...] = (
    "recognition_ms1mv3",
    "age_morph2",
    "attributes_celeba",
    "expression_affectnet",
    "expression_rafdb",
    "parsing_celebamaskhq",
    "landmarks_300w",
)
FULL: tuple[str, ...] = tuple(TASKS)

TASK_TYPES: tuple[TaskType, ...] = (R, A, T, E, P, L)


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
