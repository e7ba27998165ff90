"""A training workdir's checkpoints, `<workdir>/checkpoints/<step>/{state,data}`, and what to do
with a damaged one.

A step can be damaged after orbax finalised it (a truncated or deleted file, a folder emptied by
hand, garbage bytes from a failing disk). `restore` then raises `DamagedStep` naming the step and
the reason; training moves such a step aside (`set_aside`: renamed `<step>.damaged-<time>`, never
deleted) and resumes from the newest intact one. A step that reads but does not fit the run's
state (another config) is not damage: `CheckpointError` says so and nothing is moved.
"""

import contextlib
import logging as logging_std
import os
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from faceptor_jax import checkpoint, errors
from faceptor_jax.errors import CheckpointError


def serial_host_copies() -> None:
    """On CPU, copy each array to the host whole instead of in replica slices: orbax's
    replica-parallel save slices every replicated array once per shape, ~50 ms each on a
    CPU mesh (a 700-array tiny model: 5 s per save, 33 s on a loaded machine; off: 1.2 s).
    Accelerators keep orbax's defaults (it turns this off on GPU itself)."""
    current = ocp.type_handlers.get_type_handler(jax.Array)
    if jax.default_backend() == "cpu" and getattr(current, "_use_replica_parallel", False):
        handler = ocp.type_handlers.ArrayHandler(use_replica_parallel=False)
        absl_logger = logging_std.getLogger("absl")
        level = absl_logger.level
        absl_logger.setLevel(logging_std.ERROR)  # orbax warns of any override: this is meant
        try:
            ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)
        finally:
            absl_logger.setLevel(level)


def save_message(step: int, before: int | None) -> str:
    """The line logged as a save starts: orbax writes in the background, so a kill in the next
    few seconds loses this step (the run then resumes from `before`, or from the start)."""
    fallback = f"step {before}" if before is not None else "the start"
    return (
        f"checkpoint: saving step {step} in the background; final in a few seconds "
        f"(a kill before then resumes from {fallback})"
    )


class SaveFailed(CheckpointError):
    """An asynchronous save that did not complete (a full disk, a folder that went away)."""


class DamagedStep(CheckpointError):
    """A finished step that cannot be read back."""

    def __init__(self, path: str, step: int, reason: str):
        self.path, self.step, self.reason = path, step, reason
        super().__init__(f"{path}: training step {step} is unreadable ({reason})")


def reason_of(error: BaseException) -> str:
    """One short line for a low-level read error (orbax / tensorstore / json messages are long)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def stored_shapes(step_path: str) -> list[tuple[int, ...]]:
    """Shapes of the arrays in a step's `state` item, from orbax's metadata (reads no array)."""
    tree = ocp.PyTreeCheckpointHandler().metadata(epath.Path(step_path) / "state").tree
    leaves = jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return sorted(tuple(x.shape) for x in leaves if hasattr(x, "shape"))


class TrainCheckpoints:
    """Training checkpoints in `<workdir>/checkpoints/<step>/{state,data}`: the trainer's whole
    state (params, optimizer, step, RNG) and, for a trainer that has one to save, every
    process's data-iterator position.

    Saves are asynchronous and atomic (orbax writes `<step>.orbax-checkpoint-tmp` and renames it
    when complete; unfinished ones are removed at start-up). Keeps the latest `keep` and every
    `keep_every`-th step.
    """

    def __init__(
        self, workdir: str | os.PathLike, keep: int = 3, keep_every: int = 0,
        keep_going: bool = False,
    ):  # fmt: skip
        import grain

        self._grain = grain
        policies = [ocp.checkpoint_managers.LatestN(n=max(keep, 1))]
        if keep_every:
            policies.append(ocp.checkpoint_managers.EveryNSteps(interval_steps=keep_every))
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=True,
            cleanup_tmp_directories=True,
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        )
        serial_host_copies()
        self.path = os.path.join(os.path.abspath(os.fspath(workdir)), checkpoint.TRAIN_DIR)
        self.manager = ocp.CheckpointManager(
            self.path, options=options, item_names=("state", "data")
        )
        self._saving: int | None = None  # the step of the save in flight
        self._failed = False
        self.keep_going = keep_going  # a failed save is logged once and training goes on
        self._quiet = errors.QuietOrbaxErrors()
        logging_std.getLogger("absl").addFilter(self._quiet)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any = None) -> None:
        """`state` (any pytree of global arrays) and, when given, the data iterator's position
        (a trainer whose stream restarts from the step saves none)."""
        self.check()  # the previous save's failure first, at its own step
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = self._grain.checkpoint.CheckpointSave(data_iterator)
        before = self.latest_step()
        self._saving = step
        try:
            self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        except Exception as e:
            self._fail(e)
            return
        logging.info("%s", save_message(step, before))

    def check(self) -> None:
        """Raise `SaveFailed` (once) if the save in flight has failed; the loop asks each step."""
        if self._saving is None or self._failed:
            return
        try:
            self.manager.check_for_errors()
        except Exception as e:
            self._fail(e)
            return
        if not self.manager.is_saving_in_progress():
            self._saving = None

    def _fail(self, error: BaseException) -> None:
        """Raise the failed save as `SaveFailed`, or with `keep_going` log it once and go on
        (the newest checkpoint stays the previous one)."""
        failure = self._failure(error)
        if not self.keep_going:
            raise failure from error
        logging.warning("%s", failure)
        self._failed, self._saving = False, None

    def _failure(self, error: BaseException) -> SaveFailed:
        self._failed = True
        with contextlib.suppress(Exception):
            self.manager.reload()
        newest = self.latest_step()
        if self.keep_going:
            kept = f"step {newest}" if newest else "none yet"
            then = f"going on (config.on_save_error='continue'); the newest checkpoint: {kept}"
        else:
            then = "training stopped. Free space or fix the folder and rerun the same command: " + (
                f"it resumes from step {newest}" if newest else "it starts afresh"
            )
        return SaveFailed(
            f"{self.path}: saving training step {self._saving} failed ({reason_of(error)}); {then}"
        )

    def restore(self, step: int, state: Any, shardings: Any, data_iterator: Any = None) -> Any:
        """The saved state, placed like `state` (shapes/dtypes) with `shardings`; with a
        `data_iterator`, that iterator is repositioned too (training resume). A step that cannot
        be read raises `DamagedStep`; one that reads but holds other shapes, `CheckpointError`."""
        path = os.path.join(self.path, str(step))
        try:
            have = stored_shapes(path)
        except Exception as e:  # no readable metadata: damaged
            raise DamagedStep(path, step, reason_of(e)) from e
        want = sorted(tuple(x.shape) for x in jax.tree.leaves(state))
        if have != want:
            raise CheckpointError(
                f"{path}: holds {len(have)} arrays that do not fit this config's training state "
                f"({len(want)} arrays; e.g. stored {_first_difference(have, want)}); a workdir "
                "resumes only the config that wrote it: use a new --workdir for another config"
            )
        abstract = jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
        )
        items = {"state": ocp.args.StandardRestore(abstract)}
        if data_iterator is not None:
            items["data"] = self._grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]
        except Exception as e:
            errors.ignore_closed_event_loops()
            raise DamagedStep(path, step, reason_of(e)) from e

    def set_aside(self, damaged: DamagedStep) -> str:
        """Rename a damaged step to `<step>.damaged-<time>` (kept for the user, ignored by
        orbax) and log one line; returns the new path."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = f"{damaged.path}.damaged-{stamp}"
        if jax.process_index() == 0:
            os.rename(damaged.path, aside)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"set aside {damaged.step}")
        self.manager.reload()
        logging.warning(
            "%s; moved aside to %s, resuming from the newest intact step (%s)",
            damaged, os.path.basename(aside), self.latest_step() or "none: starting afresh",
        )  # fmt: skip
        return aside

    def close(self) -> None:
        """Wait for the save in flight; its failure is raised as `SaveFailed` unless one was
        already."""
        try:
            try:
                self.manager.wait_until_finished()
            except Exception as e:
                if not self._failed:
                    self._fail(e)
            with contextlib.suppress(Exception):
                self.manager.close()
        finally:
            logging_std.getLogger("absl").removeFilter(self._quiet)


def _first_difference(have: list, want: list) -> str:
    for h, w in zip(have, want, strict=False):
        if h != w:
            return f"{h}, config {w}"
    return f"{len(have)} arrays, config {len(want)}"
