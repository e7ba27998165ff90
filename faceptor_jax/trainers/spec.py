"""What a trainer gives the run loop (`loop.py`); the package docstring says it in one table."""

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import jax
import ml_collections

SourceFactory = Callable[[str, str, int], Any]  # (dataset, split, image size) -> source
Rules = Sequence[tuple[str, Any]]  # logical axis -> mesh axis / axes / None (sharding.py)
State = Any  # the trainer's state pytree (global jax.Arrays)


class Run(Protocol):
    """The static side of one run (model graph, optimizer, mesh), built by `Trainer.create`."""

    def train_step(self, state: State, batch: Any) -> tuple[State, Mapping[str, jax.Array]]:
        """Pure: one update; the loop jits it with the state donated and `out_shardings`."""
        ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class Data:
    """A trainer's training stream.

    iterator: host batches, one per step.
    to_device: host batch -> the `Run.train_step` batch (global arrays on the mesh).
    checkpointed: the iterator's position is saved with every checkpoint and restored on resume
        (a grain iterator: `get_state`/`set_state`); False: the stream starts at the step it was
        given, so no data item is saved.
    """

    iterator: Iterator[Any]
    to_device: Callable[[Any], Any]
    checkpointed: bool = True


class Trainer(Protocol):
    """One recipe's side of the run; every method but `create` runs outside a mesh context."""

    def validate(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
        """Config errors a user can fix, raised before any compute."""
        ...

    def open_sources(self, config: ml_collections.ConfigDict, sources: SourceFactory) -> Any:
        """The training sources, opened (a missing dataset fails here, before any compute)."""
        ...

    def create(
        self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, rules: Rules
    ) -> tuple[Run, State, Any]:
        """(run, initial state, its shardings): every array created in its sharded place, under
        `jax.set_mesh(mesh)` and `nnx.logical_axis_rules(rules)` set by the trainer itself."""
        ...

    def initialize(self, config: ml_collections.ConfigDict, state: State) -> State:
        """A fresh run's state with the weights `config` names (e.g. `config.init`) loaded."""
        ...

    def data(self, run: Run, opened: Any, mesh: jax.sharding.Mesh, start: int) -> Data:
        """The training stream from `open_sources`' result; `start` is the step it resumes at."""
        ...

    def nonfinite(self, state: State, metrics: Sequence[Mapping[str, Any]]) -> str | None:
        """Why the run must stop (a non-finite loss: where), or None; `metrics` on the host."""
        ...

    def summary(self, mean: Mapping[str, float]) -> str:
        """The metrics part of the progress line, from the log window's mean metrics."""
        ...

    def description(self, run: Run) -> dict | None:
        """`checkpoint.write_meta`'s arguments for `<workdir>/model.json`, or None (no file)."""
        ...

    def evaluate(
        self, run: Run, state: State, sources: SourceFactory, workdir: str, step: int,
        model_dir: str | None = None,
    ) -> tuple[Any, dict[str, float]]:  # fmt: skip
        """(results, scalars for the metrics log); `model_dir`: the model directory evaluated
        when it is not a training step (step 0), for what is stored beside a model."""
        ...

    def config_for_model(
        self, config: ml_collections.ConfigDict, directory: str
    ) -> ml_collections.ConfigDict:
        """`config` fitted to the model saved in `directory` (evaluating a released model)."""
        ...
