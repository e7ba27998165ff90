"""The distance threshold predict's `--compare` uses: given, stored by evaluation, or a fallback."""

import os

from faceptor_jax.checkpoint import VERIFICATION_FILE, read_verification

# "Same" iff the squared L2 distance between L2-normalised flip-summed embeddings is below a
# threshold (the verification protocol's rule, `verification.py`). Used only when evaluation has
# not stored this model's 10-fold threshold beside it: insightface's usual LFW value for
# ArcFace-style embeddings, an assumption that predict reports as such.
DEFAULT_THRESHOLD = 1.4


def verification_threshold(
    checkpoint: str, given: float | None = None, step: int | None = None
) -> tuple[float, str]:
    """(threshold, where it came from): `given`, else the protocol's 10-fold threshold that
    evaluation stored in `<checkpoint>/verification.json`, else `DEFAULT_THRESHOLD`. `step`: the
    training step of a workdir's weights; a record evaluated at another step says so."""
    if given is not None:
        return float(given), "given (--threshold)"
    path = os.path.join(checkpoint, VERIFICATION_FILE)
    record = read_verification(checkpoint)
    if record is None:
        how = (
            f"--config.init.checkpoint={checkpoint}"
            if step is None
            else f"--workdir={checkpoint} --config=<its training config>"
        )
        return DEFAULT_THRESHOLD, (
            f"fallback: insightface's usual LFW value, {path} not found (`main.py --mode=eval "
            f"{how}` derives this model's)"
        )
    where = f"{record.get('dataset', '?')}, {record.get('pairs', '?')} pairs"
    other = record.get("step") != step and step is not None
    return float(record["threshold"]), (
        f"protocol: mean of the 10 folds' best thresholds ({where}, step "
        f"{record.get('step', '?')}) from {path}"
        + (f"; these weights are step {step}" if other else "")
    )
