"""Trainers: one recipe each, all sharing the run in `loop.py`; `config.trainer` picks one.

The loop owns what every recipe needs the same way: the mesh, the sharding rules
(`config.sharding_rules`), the step loop (jit with the state donated), checkpoints (async,
keep-N, atomic), resume, SIGTERM save-and-exit, the metrics log and progress/ETA line, the
non-finite stop, the periodic evaluation hook and `--mode=eval`. A trainer owns the rest,
through the `Trainer` protocol of `trainers/spec.py` (one line each):

    validate(config, mesh)                  config errors a user can fix, before any compute
    open_sources(config, sources) -> opened its training sources (a missing dataset fails early)
    create(config, mesh, rules)             -> (run, state, shardings): its state layout, placed
    initialize(config, state) -> state      a fresh run's weights from `config` (e.g. config.init)
    data(run, opened, mesh, start) -> Data  its stream, and whether its position is checkpointed
    run.train_step(state, batch)            -> (state, metrics): the pure update the loop jits
    nonfinite(state, metrics) -> str|None   why the run must stop now (the loop raises)
    summary(mean metrics) -> str            its part of the progress line
    description(run) -> dict|None           `<workdir>/model.json` (None: the workdir has none)
    evaluate(run, state, sources, workdir, step, model_dir) -> (results, scalars)
    config_for_model(config, directory)     `config` fitted to a saved model (eval of a release)

A checkpoint holds the trainer's whole state pytree (whatever its layout: a momentum teacher,
a second view's statistics) plus, when `Data.checkpointed`, the data iterator's position.

Adding a trainer (e.g. FRA: two views, a momentum teacher, LARS, no task heads): one file here
with a class implementing the protocol and a `Run` with its `train_step`, one line in
`TRAINERS`, a config with `trainer = "<name>"`. `tests/test_loop.py` runs a minimal one
(linear regression) through the same loop.
"""

import ml_collections

from faceptor_jax.trainers import fra, multitask
from faceptor_jax.trainers.spec import Data, Run, Trainer

__all__ = ["TRAINERS", "Data", "Run", "Trainer", "get"]

TRAINERS: dict[str, Trainer] = {
    "multitask": multitask.MultiTask(),  # supervised multi-task: Faceptor, Naive Faceptor
    "fra": fra.FRATrainer(),  # self-supervised FRA pretraining: two views, momentum teacher, LARS
}


def get(config: ml_collections.ConfigDict) -> Trainer:
    """The trainer `config.trainer` names (default "multitask")."""
    name = config.get("trainer", "multitask")
    if name not in TRAINERS:
        raise ValueError(
            f"config.trainer {name!r}: unknown trainer; valid trainers: {', '.join(TRAINERS)}"
        )
    return TRAINERS[name]
