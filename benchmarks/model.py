"""Full Faceptor forward (all 13 tasks at the Faceptor-Full recipe's per-task batch sizes): images/s
and achieved FLOP/s; optionally the original PyTorch model with the same weights in the same run.

    python benchmarks/model.py [--checkpoint DIR] [--iters 3] [--scale 1.0]
    python benchmarks/model.py --reference /path/to/Faceptor   # a checkout, never committed

FLOPs come from XLA's cost analysis of the compiled forward. `--reference DIR` imports the
original from DIR/faceptor_project at run time (`benchmarks/reference.py`: stand-ins for its
CUDA extension, timm's DropPath and `.cuda()`), builds its Faceptor-Full model with its own init,
converts those weights with our converter, and times both (PyTorch eager, `torch.no_grad`,
eval mode).
"""

import argparse
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import reference
from benchmarks.flops import matmul_flops
from faceptor_jax import tasks
from faceptor_jax.model import families
from faceptor_jax.model.faceptor import Faceptor, FaceptorConfig

# Per-GPU batch sizes of the original's Faceptor-Full (plus) config: 130 images per step.
RECIPE = {
    "recognition_ms1mv3": 64, "age_morph2": 16, "age_utkface": 4, "attributes_celeba": 16,
    "expression_affectnet": 16, "expression_rafdb": 4, "expression_ferplus": 4,
    "parsing_celebamaskhq": 1, "parsing_lapa": 1, "landmarks_300w": 1, "landmarks_cofw": 1,
    "landmarks_wflw": 1, "landmarks_aflw": 1,
}  # fmt: skip


def batch_sizes(scale: float) -> dict[str, int]:
    return {t: max(1, round(b * scale)) for t, b in RECIPE.items()}


def make_images(sizes: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        t: rng.standard_normal((b, tasks.get(t).input_size, tasks.get(t).input_size, 3)).astype(
            np.float32
        )
        for t, b in sizes.items()
    }


def timeit(fns: list, iters: int) -> list[float]:
    """Median seconds per call of each fn, calls interleaved (fair on a machine whose load
    drifts), after one warm-up call each."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [float(np.median(ts)) for ts in times]


def flops_of(model: nnx.Module, images: dict) -> tuple[float, float, object]:
    """(matmul FLOPs counted on the jaxpr, XLA's cost-analysis FLOPs, compiled forward).

    XLA's cost analysis counts a while-loop body once, so with the scanned encoder and decoder
    layers it undercounts; the jaxpr count multiplies scan bodies by their length.
    """
    graphdef, state = nnx.split(model)
    fn = lambda state, x: nnx.merge(graphdef, state)(x)
    counted = matmul_flops(jax.make_jaxpr(fn)(state, images).jaxpr)
    compiled = jax.jit(fn).lower(state, images).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return counted, float(cost.get("flops", float("nan"))), lambda x: compiled(state, x)


# --------------------------------------------------------------------------- the original
def build_reference(ref: types.SimpleNamespace, names: tuple[str, ...]):
    """The original Faceptor-Full (stage 1) model, its own random init, eval mode."""
    dims = reference.Dims()
    reference.patch_dims(ref, dims)  # no pretrained file: same architecture, random init
    backbone, heads = reference.build_backbone(ref, dims), reference.build_heads(ref, names, dims)
    return backbone.eval(), heads.eval()


def reference_forward(ref, backbone, heads, images_nchw: dict[str, object]) -> dict:
    """The original's training-time routing without losses: one backbone call per size group."""
    torch = ref.torch
    outputs = {}
    for size in sorted({x.shape[-1] for x in images_nchw.values()}):
        group = [t for t, x in images_nchw.items() if x.shape[-1] == size]
        feats = backbone(torch.cat([images_nchw[t] for t in group]))
        start = 0
        for t in group:
            n = images_nchw[t].shape[0]
            outputs[t] = {
                "backbone_output": [f[start : start + n] for f in feats],
                "task_name": tasks.get(t).original,
            }
            start += n
    renamed = {v["task_name"]: v for v in outputs.values()}
    return heads(renamed)


def reference_weights(backbone, heads) -> dict[str, np.ndarray]:
    state = {f"module.backbone_module.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"module.heads_module.{k}": v for k, v in heads.state_dict().items()}
    return {k: v.detach().numpy() for k, v in state.items()}


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", help="converted Faceptor checkpoint (default: random init)")
    ap.add_argument("--reference", help="checkout of the original Faceptor (timed side by side)")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every task's batch size")
    args = ap.parse_args()
    sizes = batch_sizes(args.scale)
    names = tuple(sizes)
    images = make_images(sizes)
    total = sum(sizes.values())
    print(
        f"device {jax.devices()[0].device_kind} x{jax.device_count()}; {total} images/step:", sizes
    )

    ref = None
    if args.reference:
        from convert.faceptor import convert_faceptor

        ref = reference.import_reference(args.reference)
        ref.torch.manual_seed(0)
        backbone, heads = build_reference(ref, names)
        cfg, params, _ = convert_faceptor(
            reference_weights(backbone, heads), "reference", "full", heads=12, decoder_heads=8
        )
        model = nnx.eval_shape(lambda: Faceptor(cfg, rngs=nnx.Rngs(0)))
        state = nnx.state(model)
        nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
        nnx.update(model, state)
    elif args.checkpoint:
        model = families.load(args.checkpoint, task_heads=True)
    else:
        cfg = FaceptorConfig(tasks=tasks.head_specs(names))
        model = nnx.jit(lambda: Faceptor(cfg, rngs=nnx.Rngs(0)))()

    x = {k: jnp.asarray(v) for k, v in images.items()}
    t0 = time.perf_counter()
    flops, xla_flops, fwd = flops_of(model, x)
    print(
        f"compile {time.perf_counter() - t0:.1f} s; {flops / 1e9:.1f} GFLOP per step in matmuls "
        f"and convs (XLA cost analysis, loop bodies once: {xla_flops / 1e9:.1f})"
    )
    run_ours = lambda: jax.block_until_ready(fwd(x))
    if ref is None:
        (ours,) = timeit([run_ours], args.iters)
    else:
        torch = ref.torch
        nchw = {k: torch.from_numpy(v.transpose(0, 3, 1, 2).copy()) for k, v in images.items()}
        with torch.no_grad():
            run_theirs = lambda: reference_forward(ref, backbone, heads, nchw)
            ours, theirs = timeit([run_ours, run_theirs], args.iters)
            out_ref = run_theirs()
    print(
        f"faceptor_jax: {ours:.3f} s/step, {total / ours:.1f} images/s, "
        f"{flops / ours / 1e9:.1f} GFLOP/s"
    )
    if ref is None:
        return
    print(f"original (PyTorch {torch.__version__}, {torch.get_num_threads()} threads): "
          f"{theirs:.3f} s/step, {total / theirs:.1f} images/s")  # fmt: skip
    print(f"speed ratio (original time / ours): {theirs / ours:.2f}x")
    out = fwd(x)
    worst = 0.0
    for t in names:
        o, r = out[t], out_ref[tasks.get(t).original]["head_output"]
        if isinstance(r, dict):  # landmarks
            got, want = np.asarray(o["heatmap"]).transpose(0, 3, 1, 2), r["heatmap"].numpy()
        elif "embedding" in o:
            got, want = np.asarray(o["embedding"]), r.numpy()
        else:
            got, want = np.asarray(o["logits"]), r.numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"max abs difference of the outputs (same weights): {worst:.2e}")


if __name__ == "__main__":
    main()
