"""`python -m convert <kind> --src FILE --dst DIR`: PyTorch checkpoints -> faceptor_jax checkpoints.

Kinds: `farl` (FaRL / CLIP image tower -> ViT encoder).
"""

import argparse
import os
import sys

from convert.farl import convert_farl
from convert.mapping import ConversionError
from convert.torch_reader import CheckpointError, read_state_dict
from faceptor_jax.checkpoint import save_params


def convert_farl_file(src: str, dst: str, heads: int | None = None, pe_grid: int = 32) -> None:
    """Read a FaRL .pth safely, convert strictly, write an orbax checkpoint to `dst`."""
    state = read_state_dict(src)
    cfg, params = convert_farl(state, src, heads=heads, pe_grid=pe_grid)
    save_params(dst, "farl_vit", cfg, params, extra={"source": os.path.abspath(src)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    farl = sub.add_parser("farl", help="FaRL/CLIP image tower -> ViTEncoder checkpoint")
    farl.add_argument("--src", required=True, help="FaRL .pth file ({'state_dict': ...})")
    farl.add_argument("--dst", required=True, help="output directory (must not hold a checkpoint)")
    farl.add_argument("--heads", type=int, default=None, help="attention heads (default width//64)")
    farl.add_argument(
        "--pe_grid", type=int, default=32, help="stored positional grid (32 = 512 px, Faceptor)"
    )
    args = parser.parse_args(argv)
    try:
        if args.kind == "farl":
            convert_farl_file(args.src, args.dst, heads=args.heads, pe_grid=args.pe_grid)
    except (CheckpointError, ConversionError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
