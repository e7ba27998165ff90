"""The contract of a task type and the dataset-level task (no model code here).

A `TaskType` holds everything about one kind of face task: how a raw record becomes a training or
test example, how a detected face is cropped and normalised (the same `Crop` for training and
predict), decoding, loss, evaluation, report tables, predict's output and its JSON schema, and the
weights its loss owns (`LossParams`). A `Task` pairs a type with a dataset of `datasets.DATASETS`.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from faceptor_jax import datasets, preprocess
from faceptor_jax.model.head_spec import HeadSpec

Decode = Callable[[Mapping[str, jax.Array], "Task"], dict[str, Any]]


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Crop:
    """A face crop: `align(points5 [5, 2], side) -> 3×3` similarity onto the type's template, and
    the pixel statistics `normalize` applies (uint8 or [0, 1] float -> model input)."""

    name: str  # tasks on the same crop at the same side share one image (predict)
    align: Callable[[np.ndarray, int], np.ndarray]
    mean: np.ndarray
    std: np.ndarray

    def normalize(self, image: np.ndarray) -> np.ndarray:
        return preprocess.normalize(image, self.mean, self.std)


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a task's loss needs besides outputs and labels: task, its name; image_size, the side
    of the model's input images (512 in the recipes; smaller in CPU demos); mesh; params, this
    task's own loss weights (`LossParams`, {} for none); config, the run's config (static);
    step, the training step of this update (traced int; 0 outside training)."""

    task: str
    image_size: int
    mesh: Any = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    config: Any = None
    step: Any = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LossParams:
    """Weights a task's loss owns, apart from the model (CosFace's class matrix).

    init(task, config, mesh, key) -> tree (jit-traced; rows padded to the mesh); axes: the same
    tree of logical axis names (sharding); describe(task, config) -> entries of model.json;
    export(tree, task, meta) -> the tree a model directory stores (e.g. padding cut, from
    model.json's `meta`); load(stored, tree, where) -> `tree` filled with a stored one."""

    init: Callable[[str, Any, Any, jax.Array], dict]
    axes: dict
    describe: Callable[[str, Any], dict]
    export: Callable[[dict, str, Mapping], dict]
    load: Callable[[Mapping, dict, str], dict]


@dataclasses.dataclass(frozen=True)
class FaceRef:
    """Where predict wrote one face, for its table row (`faceptor_jax/tables.py`): json, the
    input's JSON, relative to the table's folder; pointer, the face's JSON pointer in it
    (`/faces/0`, `/frames/3/faces/0`); masks, {parsing task: its PNG, relative to the table's
    folder} (photos: videos write none)."""

    json: str
    pointer: str
    masks: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def link(self, *keys: str) -> str:
        """A value of this face in the JSON: `x.jpg.json#/faces/0/<key>/<...>`."""
        return f"{self.json}#{self.pointer}/" + "/".join(keys)


# A crop's views, [B, S, S, 3] -> [B, S, S, 3] (jit).
VIEWS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "plain": lambda images: images,
    "hflip": lambda images: images[:, :, ::-1],
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictOutput:
    """What predict reports per face: `face[key][task]`.

    views: which `VIEWS` of the task's crop make the model's input, concatenated along the
    batch (recognition: the crop and its mirror); each view is encoded once per face for all
    tasks that read it (`model.shared`). essentials: decoded outputs
    -> the array the JSON needs (jit, one row per face); entry(value, matrix, task, labels, mask)
    -> the JSON value (host; `matrix` maps the original image onto the crop, `mask` the task's
    whole-image label map when `mask` is set); schema: JSON schema of `face[key]`.
    Tables (faces.csv / faces.jsonl): columns(task) -> the CSV columns this task adds;
    cells(entry, task, ref: FaceRef) -> {column: value} from the JSON value (None: empty);
    extras(entry, task) -> JSONL-only fields, too wide for a CSV (embedding, per-class values)."""

    key: str
    schema: dict
    essentials: Callable[[dict], jax.Array]
    entry: Callable[..., Any]
    views: tuple[str, ...] = ("plain",)  # `VIEWS` of its crop the model reads, concatenated
    mask: bool = False
    columns: Callable[["Task"], tuple[str, ...]] = lambda task: ()
    cells: Callable[[Any, "Task", FaceRef], dict[str, Any]] = lambda entry, task, ref: {}
    extras: Callable[[Any, "Task"], dict[str, Any]] = lambda entry, task: {}


# record, rng, train, crop side, the dataset's facts, augmentation policy -> example (numpy)
Transform = Callable[..., dict[str, np.ndarray]]
# outputs (raw, this task's), batch (this task's) -> scalar loss (jit-traced)
Loss = Callable[[Mapping[str, jax.Array], Mapping[str, jax.Array], LossContext], jax.Array]
# host numpy outputs and labels of the valid rows of one test batch, dataset, image size
Evaluate = Callable[[Mapping[str, Any], Mapping[str, Any], str, int], Any]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalProtocol:
    """A test set a type scores its own way (recognition's IJB-C templates beside its 10-fold
    pair sets): for that dataset these replace the type's transform, eval_images, eval_rows,
    evaluate and summarize; start(dataset, source, sources, size) opens what the protocol reads
    besides the test split `source` (IJB-C's template pairs) and returns the accumulator the
    batches merge into."""

    transform: Transform
    eval_images: Callable[[Mapping[str, jax.Array]], jax.Array]
    eval_rows: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    evaluate: Evaluate
    summarize: Callable[[Any, str], Any]
    start: Callable[[str, Any, Any, int], Any]


def _images(batch: Mapping[str, jax.Array]) -> jax.Array:
    return batch["image"]


def _rows(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return raw


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskType:
    """name: ours; original: the original's prefix; kind/output: Faceptor interpreter and output
    module; input_size: crop side; head(dataset) -> (queries, outputs); transform: raw record ->
    example; crop; decode: raw model outputs -> user terms; loss; evaluation: test_sets(task) (None:
    the task's dataset; a tuple: those that exist), eval_images(test batch) -> model input,
    eval_rows(outputs) -> one row per batch row, evaluate -> accumulator, summarize(acc, dataset)
    -> `report.Result` named `report`; tables(results) -> report tables; predict; loss_params;
    protocols: {dataset: EvalProtocol} for test sets scored their own way (`config.tasks.<task>
    .test_sets` may list them besides `test_sets`)."""

    name: str
    original: str
    kind: str
    output: str
    input_size: int
    head: Callable[[datasets.Dataset], tuple[int, int]]
    transform: Transform
    crop: Crop
    decode: Decode
    loss: Loss
    evaluate: Evaluate
    summarize: Callable[[Any, str], Any]
    report: str
    tables: Callable[[Sequence[Any]], list[Any]]
    predict: PredictOutput
    test_sets: Callable[["Task"], tuple[str, ...]] | None = None
    eval_images: Callable[[Mapping[str, jax.Array]], jax.Array] = _images
    eval_rows: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _rows
    loss_params: LossParams | None = None
    protocols: Mapping[str, EvalProtocol] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset-level task: `dataset` a key of `datasets.DATASETS`; `original` the original
    code's task name (checkpoint keys); input_size 0: the type's."""

    name: str
    type: TaskType
    dataset: str
    original: str
    input_size: int = 0

    def __post_init__(self):
        if not self.input_size:
            object.__setattr__(self, "input_size", self.type.input_size)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names where the outputs are named classes (parsing, expression, attributes)."""
        return datasets.get(self.dataset).labels

    @property
    def queries(self) -> int:
        return self.type.head(datasets.get(self.dataset))[0]

    @property
    def outputs(self) -> int:
        return self.type.head(datasets.get(self.dataset))[1]

    def head_spec(self) -> HeadSpec:
        return HeadSpec(
            name=self.name,
            type=self.type.name,
            kind=self.type.kind,
            input_size=self.input_size,
            queries=self.queries,
            outputs=self.outputs,
            output=self.type.output,
        )
