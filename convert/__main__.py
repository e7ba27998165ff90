"""`python -m convert <kind> --src FILE --dst DIR`: PyTorch checkpoints -> faceptor_jax checkpoints.

Kinds: `farl` (FaRL / CLIP image tower -> ViT encoder), `faceptor` (Faceptor / Naive Faceptor
training checkpoints -> `Faceptor` / `NaiveFaceptor`; the CosFace classifier is stored apart),
`swinface` (SwinFace's released / training checkpoint -> `SwinFace`; its PartialFC class-centre
shard, optimizer and scheduler states are not converted), `fra` (FRA's pretraining container ->
`FRA`, online + teacher, or its online backbone -> `ResNet`; main_fer's container and plain
torchvision ResNet-50 state dicts -> `ResNet`; optimizer and scaler states are not converted).
"""

import argparse
import os
import sys

from convert.faceptor import VARIANTS, convert_faceptor
from convert.farl import convert_farl
from convert.fra import FORMATS, PARTS, convert_checkpoint, detect_format
from convert.mapping import ConversionError
from convert.swin import convert_swinface, read_swinface, with_tasks
from convert.torch_reader import CheckpointError, load_torch_file, read_state_dict, state_dict_from
from faceptor_jax import errors
from faceptor_jax.checkpoint import save_params


def convert_farl_file(src: str, dst: str, heads: int | None = None, pe_grid: int = 32) -> None:
    """Read a FaRL .pth safely, convert strictly, write an orbax checkpoint to `dst`."""
    state = read_state_dict(src)
    cfg, params = convert_farl(state, src, heads=heads, pe_grid=pe_grid)
    save_params(dst, "farl_vit", cfg, params, extra={"source": os.path.abspath(src)})


def convert_faceptor_file(
    src: str,
    dst: str,
    variant: str,
    heads: int | None = None,
    decoder_heads: int | None = None,
) -> None:
    """Read a Faceptor .pth.tar safely, convert strictly, write model + losses to `dst`."""
    obj = load_torch_file(src)
    state = state_dict_from(obj, src)
    cfg, params, losses = convert_faceptor(state, src, variant, heads, decoder_heads)
    step = obj.get("step") if isinstance(obj, dict) else None
    extra = {"source": os.path.abspath(src), "variant": variant, "step": step}
    save_params(dst, VARIANTS[variant].kind, cfg, params, extra=extra, losses=losses)


def convert_swinface_file(src: str, dst: str) -> None:
    """Read a SwinFace checkpoint safely, convert strictly, write the model to `dst`."""
    cfg, params = convert_swinface(read_swinface(src), src)
    save_params(dst, "swinface", with_tasks(cfg), params, extra={"source": os.path.abspath(src)})


def convert_fra_file(src: str, dst: str, fmt: str = "auto", part: str = "full") -> None:
    """Read an FRA / main_fer / torchvision checkpoint safely, convert strictly, write `dst`;
    prints which format it was and what was kept."""
    obj = load_torch_file(src)
    state = state_dict_from(obj, src)
    found = detect_format(state, src) if fmt == "auto" else fmt
    kind, cfg, params, kept = convert_checkpoint(state, src, found, part)
    meta = {k: obj.get(k) for k in ("epoch", "arch", "best_acc1")} if isinstance(obj, dict) else {}
    meta = {k: v for k, v in meta.items() if isinstance(v, int | float | str)}
    extra = {"source": os.path.abspath(src), "format": found, "part": part, **meta}
    save_params(dst, kind, cfg, params, extra=extra)
    when = f", epoch {meta['epoch']}" if "epoch" in meta else ""
    how = "detected" if fmt == "auto" else "--format"
    print(f"{src}: {FORMATS[found]}{when} ({how}) -> kind {kind}: {kept}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    sub = parser.add_subparsers(dest="source", required=True)
    farl = sub.add_parser("farl", help="FaRL/CLIP image tower -> ViTEncoder checkpoint")
    farl.add_argument("--src", required=True, help="FaRL .pth file ({'state_dict': ...})")
    farl.add_argument("--dst", required=True, help="output directory (must not hold a checkpoint)")
    farl.add_argument("--heads", type=int, default=None, help="attention heads (default width//64)")
    farl.add_argument(
        "--pe_grid", type=int, default=32, help="stored positional grid (32 = 512 px, Faceptor)"
    )
    farl.set_defaults(run=lambda a: convert_farl_file(a.src, a.dst, a.heads, a.pe_grid))
    fac = sub.add_parser("faceptor", help="Faceptor / Naive Faceptor .pth.tar -> checkpoint")
    fac.add_argument("--src", required=True, help="training checkpoint ({'state_dict': ...})")
    fac.add_argument("--variant", required=True, choices=list(VARIANTS), help="what it holds")
    fac.add_argument("--dst", required=True, help="output directory (must not hold a checkpoint)")
    fac.add_argument("--heads", type=int, default=None, help="encoder heads (default width//64)")
    fac.add_argument(
        "--decoder_heads", type=int, default=None, help="decoder heads (default hidden//32)"
    )
    fac.set_defaults(
        run=lambda a: convert_faceptor_file(a.src, a.dst, a.variant, a.heads, a.decoder_heads)
    )
    swf = sub.add_parser("swinface", help="SwinFace checkpoint_step_*.pt -> checkpoint")
    swf.add_argument("--src", required=True, help="its state_dict_{backbone,fam,tss,om} file")
    swf.add_argument("--dst", required=True, help="output directory (must not hold a checkpoint)")
    swf.set_defaults(run=lambda a: convert_swinface_file(a.src, a.dst))
    fra = sub.add_parser("fra", help="FRA / main_fer / torchvision ResNet-50 -> checkpoint")
    fra.add_argument("--src", required=True, help="checkpoint.pth.tar, fer.pth.tar or a state dict")
    fra.add_argument("--dst", required=True, help="output directory (must not hold a checkpoint)")
    fra.add_argument(
        "--part",
        choices=PARTS,
        default="full",
        help="full: all the file holds (FRA: online + teacher networks and predictors; FER: "
        "ResNet + fc); backbone: the (online) ResNet encoder alone, for fine-tuning",
    )
    fra.add_argument(
        "--format", choices=["auto", *FORMATS], default="auto", help="default: from the keys"
    )
    fra.set_defaults(run=lambda a: convert_fra_file(a.src, a.dst, a.format, a.part))
    args = parser.parse_args(argv)
    try:
        with errors.quiet_orbax_tracebacks():
            args.run(args)
    except (CheckpointError, ConversionError, *errors.user_errors()) as e:
        return errors.report("python -m convert", e)
    except (OSError, ValueError) as e:  # a full disk: orbax leaves a `*-tmp` folder, no model.json
        if not errors.disk_problem(e):
            raise
        return errors.report(
            "python -m convert",
            f"writing {args.dst}: {errors.disk_problem(e)}; no model was written "
            f"(no model.json); free space, remove {args.dst} and run again",
        )
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
