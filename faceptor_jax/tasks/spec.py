"""The data that describes a task type and a dataset-level task (no model code here)."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax

from faceptor_jax.model.head_spec import HeadSpec

Decode = Callable[[Mapping[str, jax.Array], "Task"], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a task's loss needs besides outputs and labels.

    image_size: side of the model's input images (512 in the recipes; smaller in CPU demos);
    mesh / num_classes / loss_params: the CosFace classifier (rows sharded over `model`)."""

    image_size: int
    mesh: Any = None
    num_classes: int = 0
    loss_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# outputs (raw, this task's), batch (this task's) -> scalar loss (jit-traced)
Loss = Callable[[Mapping[str, jax.Array], Mapping[str, jax.Array], LossContext], jax.Array]
# host numpy outputs and labels of the valid rows of one test batch, dataset, image size
Evaluate = Callable[[Mapping[str, Any], Mapping[str, Any], str, int], Any]
# accumulator, dataset -> report.Result
Summarize = Callable[[Any, str], Any]


@dataclasses.dataclass(frozen=True)
class TaskType:
    """name: ours; original: the original's prefix; kind/output: Faceptor interpreter and output
    module; decode: raw model outputs -> outputs in user terms; loss: the training loss;
    evaluate / summarize: one test batch -> metric accumulator -> the paper's numbers."""

    name: str
    original: str
    kind: str
    output: str
    decode: Decode
    loss: Loss
    evaluate: Evaluate | None = None  # None: evaluated another way (recognition: verification)
    summarize: Summarize | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset-level task: `original` is the original code's task name (checkpoint keys)."""

    name: str
    type: TaskType
    dataset: str
    input_size: int
    queries: int
    outputs: int
    original: str
    labels: tuple[str, ...] = ()  # class names where the outputs are named classes

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
