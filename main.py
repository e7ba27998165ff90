"""Entry point: `python main.py --config=configs/<name>.py --workdir=DIR [--mode=train|eval]`.

Training and evaluation land in later issues; today this parses the flags and the config.
"""

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train, or evaluate only.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    print(f"mode={_MODE.value} workdir={_WORKDIR.value}")
    print(config)
    raise SystemExit(
        f"--mode={_MODE.value} is not implemented yet: training and evaluation land with issue 7."
    )


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
