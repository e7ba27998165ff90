"""Train or evaluate Faceptor: `python main.py --config=configs/<name>.py --workdir=DIR`.

    python main.py --config=configs/tiny.py --workdir=/tmp/tiny                # train (+ eval)
    python main.py --config=configs/tiny.py --workdir=/tmp/tiny --mode=eval    # evaluate only
    python main.py --config=configs/faceptor_full.py --workdir=DIR --mode=eval \
        --config.init.checkpoint=CONVERTED_DIR                                 # a released model

Config fields can be overridden on the command line (`--config.total_steps=1000`). Multi-host:
pass --coordinator, --num_processes and --process_id (or rely on the environment a TPU pod or
SLURM provides) and every process runs the same command.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from data.sources import make_sources

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train, or evaluate only.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of JAX processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    os.path.join("~", ".cache", "faceptor_jax", "xla"),
    "Persistent XLA compilation cache: a restart (resume, eval) reuses compiled programs "
    "instead of compiling for minutes. Empty to disable.",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import jax

    if _COMPILE_CACHE.value:
        jax.config.update("jax_compilation_cache_dir", os.path.expanduser(_COMPILE_CACHE.value))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if _COORDINATOR.value or _NUM_PROCESSES.value:
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("SLURM_NTASKS", "1") != "1":
        jax.distributed.initialize()  # the cluster's environment says where the coordinator is
    from faceptor_jax import loop

    config, workdir = _CONFIG.value, _WORKDIR.value
    logging.info(
        "process %d/%d, devices %s", jax.process_index(), jax.process_count(), jax.devices()
    )
    sources = make_sources(config)
    if _MODE.value == "train":
        loop.train_and_evaluate(config, workdir, sources)
    else:
        loop.evaluate_only(config, workdir, sources)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
