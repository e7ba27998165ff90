"""The data that describes a task type and a dataset-level task (no model code here)."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax

from faceptor_jax.model.heads import HeadSpec

Decode = Callable[[Mapping[str, jax.Array], "Task"], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class TaskType:
    """name: ours; original: the original's prefix; kind/output: Faceptor interpreter and output
    module; decode: raw model outputs -> outputs in user terms."""

    name: str
    original: str
    kind: str
    output: str
    decode: Decode


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
