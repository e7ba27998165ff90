"""A trained model as a model directory: `python -m faceptor_jax.export WORKDIR OUT`.

    python -m faceptor_jax.export WORKDIR OUT                    # the newest training step
    python -m faceptor_jax.export WORKDIR/checkpoints/STEP OUT   # another one

OUT gets what `python -m convert` writes — `model.json`, `params/` (weights and BatchNorm
statistics), `losses/` (the CosFace classifier, cut to the real classes) — and the workdir's
`verification.json` when evaluation stored it for that step; so it loads wherever a converted
model does (predict, `main.py --config.init.checkpoint=OUT`), without the optimizer state and
data-iterator positions a training checkpoint carries.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from faceptor_jax import checkpoint, errors
from faceptor_jax.errors import CheckpointError
from faceptor_jax.model import families


def export(source: str | os.PathLike, out: str | os.PathLike) -> list[str]:
    """Write the model of `source` (a training workdir or one of its steps) to `out`, a new
    directory; returns notes for the user (what was and was not copied)."""
    where, step = checkpoint.locate(source)
    if step is None:
        raise CheckpointError(f"{where}: already a model directory, nothing to export")
    weights = checkpoint.step_dir(where, step)
    kind, family, cfg = families.architecture(weights)  # an unknown kind or bad config: stop
    checkpoint.save_params(
        out,
        kind,
        family.to_dict(cfg),
        checkpoint.load_params(weights),
        extra={"source": weights, "step": step},
        losses=checkpoint.load_losses(weights),
    )
    notes = [f"{weights} -> {os.path.abspath(out)}"]
    record = checkpoint.read_verification(where)
    if record is not None and record.get("step") == step:
        checkpoint.write_verification(out, record)
        notes.append(f"verification threshold {record['threshold']:.4f} (step {step}) copied")
    else:  # a threshold of other weights would be passed off as this model's
        found = "none stored" if record is None else f"the stored one is step {record.get('step')}"
        notes.append(
            f"no verification threshold for step {step} ({found}); `main.py --mode=eval "
            f"--config.init.checkpoint={out}` derives it"
        )
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faceptor_jax.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("source", help="training workdir, or WORKDIR/checkpoints/STEP")
    p.add_argument("out", help="new model directory")
    args = p.parse_args(argv)
    try:
        with errors.quiet_orbax_tracebacks():
            notes = export(args.source, args.out)
    except (*errors.user_errors(), OSError, ValueError) as e:  # ValueError: model.json
        if errors.disk_problem(e):  # a full disk: orbax leaves a `*-tmp` folder, no model.json
            e = (
                f"writing {args.out}: {errors.disk_problem(e)}; no model was written (no "
                f"model.json); free space, remove {args.out} and run again"
            )
        elif not isinstance(e, (*errors.user_errors(), ValueError)):
            raise
        return errors.report("export", e)
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
