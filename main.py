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
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from data.sources import make_sources
from faceptor_jax import compile_cache, errors

PROG = "main.py"

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train, or evaluate only.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of JAX processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_COMPILE_CACHE = flags.DEFINE_string("compile_cache", compile_cache.DEFAULT, compile_cache.HELP)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a bad flag or config override as one line and exit 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:  # a malformed value, a missing flag, a config file that fails
        sys.exit(errors.report(PROG, _one_line(str(e))))
    except (AttributeError, KeyError) as e:  # config_flags: an override of a field not there
        field = str(e).strip("\"'").splitlines()[0].strip("\"'")
        given = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        named = [a for a in given if field in a.split(".")] or given
        more = " ".join(str(e).strip("\"'").splitlines()[1:])
        sys.exit(errors.report(
            PROG, f"{', '.join(named) or '--config'}: the config has no field {field!r}"
            + (f" ({more.strip()})" if more.strip() else "")
        ))  # fmt: skip


def _one_line(text: str) -> str:
    """config_flags puts a failing config file's traceback in its message: keep the first line,
    the config file's line and the error."""
    if "Traceback (most recent call last)" not in text:
        return text
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    frames = re.findall(r'File "([^"]+)", line (\d+)', text)
    mine = [f"{p}:{n}" for p, n in frames if "site-packages" not in p and "/lib/python" not in p]
    return f"{lines[0].rstrip(':')} ({mine[-1] if mine else 'the config file'}): {lines[-1]}"


@errors.exit_on_user_error(PROG)
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import jax

    compile_cache.enable(_COMPILE_CACHE.value)
    if _COORDINATOR.value or _NUM_PROCESSES.value:
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("SLURM_NTASKS", "1") != "1":
        jax.distributed.initialize()  # the cluster's environment says where the coordinator is
    from faceptor_jax import loop

    try:
        config = _CONFIG.value
        config.keys()  # a config file that did not load raises its error on first use
    except OSError as e:
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        raise errors.ConfigError(f"--config: {lines[-1]}") from e
    workdir = _WORKDIR.value
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
    app.run(main, flags_parser=parse_flags)
