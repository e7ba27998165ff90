"""SwinFace forward: ours vs the original PyTorch model on the same weights and batch.

    python benchmarks/swinface.py --reference ~/src/SwinFace [--batch 32] [--iters 3]

The original (a checkout of lxq1000/SwinFace; never part of this repo) is built at full size by its
own `build_model`, its weights re-drawn at trained-like scale (so that the comparison exercises the
attention bias, masks and norms), saved in the released checkpoint's container and converted with
`convert.swin`. Both run in this process on the same inputs, timed interleaved (these machines are
noisy: the ratio is the figure). Also prints the full-size parity of all 88 logits and the
embedding. fp32 on CPU (the original's autocast regions disable themselves there).
"""

import argparse
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import reference_swinface
from convert import swin as swin_convert
from faceptor_jax.model.swinface import HEADS, SwinFace


def _redraw(model, torch, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, t in model.state_dict().items():
        if name.endswith(("relative_position_index", "attn_mask", "num_batches_tracked")):
            continue
        shape = tuple(t.shape)
        if name.endswith("relative_position_bias_table"):
            a = rng.normal(0, 1, shape)
        elif name.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("running_mean"):
            a = rng.normal(0, 0.2, shape)
        elif t.ndim >= 2:
            a = rng.normal(0, 1 / np.sqrt(np.prod(shape[1:])), shape)
        elif name.endswith("weight"):
            a = 1 + rng.normal(0, 0.2, shape)
        else:
            a = rng.normal(0, 0.1, shape)
        t.copy_(torch.tensor(a, dtype=t.dtype))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", required=True, help="a checkout of lxq1000/SwinFace")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--iters", type=int, default=3)
    args = p.parse_args(argv)
    ref = reference_swinface.import_swinface(args.reference)
    torch = ref.torch
    torch.manual_seed(0)
    original = reference_swinface.build(ref)
    with torch.no_grad():
        _redraw(original, torch)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "swinface.pt")
        torch.save(reference_swinface.container(original), path)
        cfg, params = swin_convert.convert_swinface(swin_convert.read_swinface(path), path)
    model = nnx.eval_shape(lambda: SwinFace(cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    nnx.update(model, state)
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s).features(x))

    x = np.random.default_rng(1).uniform(-1, 1, (args.batch, 112, 112, 3)).astype(np.float32)
    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    original.set_output_type("List")

    def ours():
        return jax.block_until_ready(forward(state, x))

    def theirs():
        with torch.no_grad():
            return original(xt)

    got, want = ours(), theirs()  # also warms up (compiles) ours
    names = original.om.task_names
    by_name = {n: np.asarray(v) for (_, n, _), v in zip(HEADS, got["logits"], strict=True)}
    err = max(np.abs(by_name[n] - want[i].numpy()).max() for i, n in enumerate(names[:-1]))
    scale = max(np.abs(want[i].numpy()).max() for i in range(len(names) - 1))
    emb = np.abs(np.asarray(got["embedding"]) - want[-1].numpy()).max()
    print(f"full-size parity: 88 logits max abs err {err:.3g} (max |logit| {scale:.3g}); "
          f"embedding {emb:.3g} (max |x| {np.abs(want[-1].numpy()).max():.3g})")  # fmt: skip
    times = {"ours": [], "original": []}
    for _ in range(args.iters):
        for name, fn in (("ours", ours), ("original", theirs)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:9s} {v * 1e3:8.1f} ms/batch of {args.batch} | {args.batch / v:7.1f} images/s")
    print(f"ours/original images/s: {med['original'] / med['ours']:.2f}x "
          f"(medians of {args.iters} interleaved runs, {jax.default_backend()}, fp32, "
          f"torch threads {torch.get_num_threads()})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
