"""Compare a converted encoder with expected per-layer tokens (e.g. from the original model).

    python benchmarks/encoder_parity.py --checkpoint DIR --expected expected.npz

`expected.npz` holds `input_<size>` [B,3,H,W] (normalised, NCHW as PyTorch) and `tokens_<size>`
[L,B,1+N,D] for one or more sizes (the format of tests/fixtures/farl_vit/expected.npz). Prints
the max abs error per layer and overall, and the max |value| for scale.
"""

import argparse
import re
import sys

import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.model import families


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    model = families.get("farl_vit").load(args.checkpoint)
    expected = np.load(args.expected)
    forward = nnx.jit(lambda m, x: m(x))
    worst = 0.0
    for key in sorted(expected.files):
        if not (m := re.fullmatch(r"tokens_(\d+)", key)):
            continue
        size = m.group(1)
        images = jnp.asarray(expected[f"input_{size}"]).transpose(0, 2, 3, 1)
        got = np.asarray(forward(model, images))
        want = expected[key]
        per_layer = np.abs(got - want).max(axis=(1, 2, 3))
        worst = max(worst, float(per_layer.max()))
        print(
            f"{size}px {tuple(images.shape)}: max abs err {per_layer.max():.3e} "
            f"(max |value| {np.abs(want).max():.2f}); per layer "
            + " ".join(f"{e:.2e}" for e in per_layer)
        )
    verdict = "PASS" if worst <= args.tol else "FAIL"
    print(f"overall max abs error {worst:.3e} ({verdict} at {args.tol})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
