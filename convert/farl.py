"""FaRL (CLIP-layout) checkpoint -> `ViTEncoder` parameters.

Source: `{'state_dict': {...}}` with the image tower under `visual.*`. The text tower, CLIP's
`ln_post`/`proj` (unused by Faceptor) and FaRL's masked-image-modelling keys are dropped by name.
Model dims are read from the tensors; the number of heads cannot be (PyTorch packs q/k/v of all
heads into one matrix), so it defaults to FaRL/CLIP's rule width // 64.

The positional embedding is resized at conversion from FaRL's 14×14 grid (224 px) to the
`pe_grid` Faceptor trains (32×32, 512 px) with PyTorch's bicubic, exactly as Faceptor's model
construction does; the encoder resizes it again on every call to the input's grid.
"""

import re

import numpy as np
from flax import nnx

from convert.mapping import (
    Rule,
    apply_rules,
    conv_hwio,
    flatten_paths,
    mha_rules,
    mlp_rules,
    norm_rules,
    unflatten_paths,
)
from convert.torch_reader import CheckpointError
from faceptor_jax.model.vit import ViTConfig, ViTEncoder, bicubic_matrix

PREFIX = r"visual\."

# Keys that exist in FaRL/CLIP files but are deliberately not part of the encoder.
DROPPED = (
    r"visual\.proj",  # CLIP image projection: unused by Faceptor
    r"visual\.ln_post\.(weight|bias)",  # final LN of CLIP's image embedding: unused
    r"visual\.mask_token",  # FaRL masked image modelling
    r"visual\.ln_lm\..*",
    r"visual\.lm_head\..*",
    r"visual\.lm_transformer\..*",
    r"(?!visual\.).*",  # the whole text tower and logit_scale
)


def rules(cfg: ViTConfig, prefix: str = PREFIX, resize_pe: bool = True) -> list[Rule]:
    """Encoder rules for keys under `prefix` (a regex). `resize_pe`: FaRL stores a 14×14 grid
    (resized here to `cfg.pe_grid`); Faceptor checkpoints already store the trained 32×32 grid."""
    block = prefix + r"transformer\.resblocks\.(?P<layer>\d+)\."

    def pos(p: np.ndarray) -> np.ndarray:  # [1 + g², D] -> [1 + G², D], CLS row unchanged
        g = round((p.shape[0] - 1) ** 0.5)
        if g * g + 1 != p.shape[0]:
            raise ValueError(f"{p.shape[0]} rows are not 1 + a square grid")
        if not resize_pe:
            return p
        m = bicubic_matrix(g, cfg.pe_grid)
        grid = p[1:].reshape(g, g, -1).astype(np.float64)
        grid = np.einsum("oh,hwd->owd", m, grid)
        grid = np.einsum("pw,owd->opd", m, grid)
        return np.concatenate([p[:1], grid.reshape(-1, p.shape[1]).astype(p.dtype)])

    return [
        Rule(prefix + r"class_embedding", "class_embed"),
        Rule(prefix + r"positional_embedding", "pos_embed", pos),
        Rule(prefix + r"conv1\.weight", "patch_embed", conv_hwio),
        *norm_rules(prefix + r"ln_pre\.", "ln_pre"),
        *norm_rules(block + r"ln_1\.", "blocks.ln_1"),
        *norm_rules(block + r"ln_2\.", "blocks.ln_2"),
        *mha_rules(block + r"attn\.", "blocks.attn", cfg.heads),
        *mlp_rules(block + r"mlp\.c_fc\.", block + r"mlp\.c_proj\.", "blocks.mlp"),
    ]


def infer_config(
    state: dict[str, np.ndarray],
    source: str,
    heads: int | None = None,
    pe_grid: int = 32,
    prefix: str = "visual.",
) -> ViTConfig:
    """ViT dims from tensor shapes of the keys under `prefix` (a plain string). `heads`
    defaults to width // 64 (FaRL/CLIP)."""
    needed = (prefix + "class_embedding", prefix + "conv1.weight")
    absent = [k for k in needed if k not in state]
    if absent:
        sample = ", ".join(sorted(state)[:5])
        raise CheckpointError(
            f"{source}: not a FaRL/CLIP image-tower checkpoint: missing {', '.join(absent)} "
            f"(found keys like {sample})"
        )
    width = int(state[prefix + "class_embedding"].shape[0])
    patch = int(state[prefix + "conv1.weight"].shape[-1])
    block = re.escape(prefix) + r"transformer\.resblocks\.(\d+)\."
    layers = {int(m.group(1)) for k in state if (m := re.match(block, k))}
    depth = max(layers) + 1 if layers else 0
    fc = state.get(prefix + "transformer.resblocks.0.mlp.c_fc.weight")
    mlp_dim = int(fc.shape[0]) if fc is not None else 4 * width
    heads = heads or max(width // 64, 1)
    if depth == 0 or width % heads:
        raise CheckpointError(
            f"{source}: cannot build an encoder: {depth} transformer blocks, width {width}, "
            f"{heads} heads (width must be divisible by heads; pass --heads)"
        )
    return ViTConfig(
        width=width, depth=depth, heads=heads, patch=patch, mlp_dim=mlp_dim, pe_grid=pe_grid
    )


def convert_farl(
    state: dict[str, np.ndarray], source: str, heads: int | None = None, pe_grid: int = 32
) -> tuple[ViTConfig, dict]:
    """FaRL state dict -> (config, pure param dict of `ViTEncoder`)."""
    cfg = infer_config(state, source, heads, pe_grid)
    abstract = nnx.eval_shape(lambda: ViTEncoder(cfg, rngs=nnx.Rngs(0)))
    skeleton = flatten_paths(nnx.to_pure_dict(nnx.state(abstract)))
    flat = apply_rules(state, rules(cfg), DROPPED, skeleton, source)
    dtypes = {p: s.dtype for p, s in skeleton.items()}
    params = {p: np.asarray(v, dtype=dtypes[p]) for p, v in flat.items()}
    return cfg, unflatten_paths(params)
