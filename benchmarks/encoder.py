"""Encoder forward speed: images/s and achieved FLOP/s, optionally side by side with the original.

    python benchmarks/encoder.py                            # random ViT-B/16, 112 b32 + 512 b4
    python benchmarks/encoder.py --checkpoint DIR           # a converted FaRL checkpoint
    python benchmarks/encoder.py --reference ~/src/Faceptor # + the original PyTorch encoder

With `--reference DIR` (a checkout of lxq1000/Faceptor; never part of this repo) the original's
`FaRLVisualFeatures` is built from a FaRL-format file holding the same weights as ours (written
from the original model's own random init and converted with `python -m convert farl`), and both
are timed in this process on the same inputs. The JAX side runs in `--dtype` (bf16 on GPU is the
fast path); the original in fp32, or fp16 autocast on a GPU (`--ref_fp16`).
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

from benchmarks import flops as flops_lib
from faceptor_jax.model import families
from faceptor_jax.model.vit import ViTConfig, ViTEncoder


def _time(fn, iters: int, warmup: int = 2) -> float:
    """Median seconds per call of `fn` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _load_original(root: str):
    """The original's farl_vit module (with the stand-ins of benchmarks/reference.py)."""
    from benchmarks import reference

    return reference.import_reference(root).farl_vit


def _random_farl_file(original, directory: str) -> str:
    """A FaRL-format .pth with the original ViT-B/16's own random init."""
    import torch

    torch.manual_seed(0)
    vt = original.VisualTransformer(
        input_resolution=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512
    )
    path = os.path.join(directory, "farl_random.pth")
    torch.save({"state_dict": {f"visual.{k}": v for k, v in vt.state_dict().items()}}, path)
    return path


def _convert(farl_file: str, directory: str) -> str:
    from convert.__main__ import convert_farl_file

    dst = os.path.join(directory, "converted")
    convert_farl_file(farl_file, dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="converted FaRL checkpoint (default: random ViT-B/16)")
    parser.add_argument("--reference", help="checkout of the original Faceptor, to time it too")
    parser.add_argument("--sizes", default="112,512")
    parser.add_argument("--batch", default="112=32,512=4", help="batch per size, e.g. 112=32,512=4")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--attention", default=None, choices=["xla", "per_head", "cudnn"])
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--ref_fp16", action="store_true", help="original under fp16 autocast")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    batch = {int(k): int(v) for k, v in (kv.split("=") for kv in args.batch.split(","))}
    overrides = {"dtype": args.dtype, "attention_impl": args.attention}

    tmp = tempfile.TemporaryDirectory()
    original = farl_file = None
    if args.reference:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        original = _load_original(os.path.abspath(args.reference))
        farl_file = _random_farl_file(original, tmp.name)
        args.checkpoint = args.checkpoint or _convert(farl_file, tmp.name)
    if args.checkpoint:
        model = families.get("farl_vit").load(args.checkpoint, **overrides)
    else:
        model = ViTEncoder(ViTConfig(**overrides), rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))

    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, dtype {args.dtype}")
    ref_model = None
    if original is not None:
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        ref_model = original.FaRLVisualFeatures("base", farl_file, 0.0, 512).eval().to(dev)
        print(f"reference: original FaRLVisualFeatures on {dev}, fp16 autocast={args.ref_fp16}")
    for size in sizes:
        b = batch.get(size, 8)
        x = jax.random.normal(jax.random.key(0), (b, size, size, 3), jnp.float32)
        compiled = forward.lower(state, x).compile()
        flops = flops_lib.count(forward, state, x)  # XLA's cost analysis counts one scanned layer
        sec = _time(lambda c=compiled, x=x: jax.block_until_ready(c(state, x)), args.iters)
        line = (
            f"{size}px batch {b}: JAX {b / sec:8.1f} img/s  {flops / sec / 1e9:8.1f} GFLOP/s "
            f"({sec * 1e3:.1f} ms/step, {flops / b / 1e9:.2f} GFLOP/img)"
        )
        if ref_model is not None:
            import torch

            xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(dev)

            def run_ref(xt=xt):
                with (
                    torch.no_grad(),
                    torch.autocast(dev, dtype=torch.float16, enabled=args.ref_fp16),
                ):
                    out = ref_model(xt)
                if dev == "cuda":
                    torch.cuda.synchronize()
                return out

            ref_sec = _time(run_ref, args.iters)
            line += f" | original {b / ref_sec:8.1f} img/s | JAX/original {ref_sec / sec:.2f}x"
        print(line, flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
