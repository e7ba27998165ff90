"""SwinFace: Swin-T trunk + Multi-Level Channel Attention (MLCA) + 11 task subnets + 42 heads.

`SwinFace(cfg)({task: images [B, 112, 112, 3]})` runs every image through the whole network
(the original runs one 128-image batch of all its streams; BatchNorm sees all of them) and
returns, per task, every output of that task's rows (`__call__`). Per image:
- trunk stage maps -> levels: stages 1–3 (after PatchMerging) average-pooled to the last 7×7
  grid, concatenated, then stage 4 without the final norm: [B, 7, 7, 2112] for Swin-T;
- recognition: final LayerNorm -> token mean -> Linear-BN-Linear-BN (`RecognitionHead`) -> [B, 512];
- 11 branches, each: multi-level fusion (one bias-free 3×3 conv per level slice, unequal widths
  47/93/186/186 at full size, concatenated), CBAM channel gate, ReLU, global max-pool, BN1d
  (eps 2e-5), then its task subnet Linear-ReLU-Dropout(0.5) ×2; branches are stored stacked
  ([11, ...]) and run with `nnx.vmap`;
- 42 output heads (`BRANCHES`, in the original's fc order) on their branch's row: age is one
  regression value, expression 7 logits, each binary attribute 2 logits ([no, yes]).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from faceptor_jax.layers import BatchNorm, Conv2d, Linear, dropout
from faceptor_jax.model.channel_attention import ChannelGate
from faceptor_jax.model.head_spec import HeadSpec, check_inputs, shared_inputs, specs_from_dicts
from faceptor_jax.model.interpreters import RecognitionHead
from faceptor_jax.model.swin import SwinConfig, SwinTransformer, level_maps

# branch -> its output heads (name, logits), in the original's fc order (fc k = k-th entry).
BRANCHES: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("gender", (("Gender", 2),)),
    ("age", (("Age", 1), ("Young", 2))),
    ("expression", (("Expression", 7), ("Smiling", 2))),
    ("whole_face", tuple((n, 2) for n in (
        "Attractive", "Blurry", "Chubby", "Heavy Makeup", "Oval Face", "Pale Skin"))),
    ("hair", tuple((n, 2) for n in (
        "Bald", "Bangs", "Black Hair", "Blond Hair", "Brown Hair", "Gray Hair",
        "Receding Hairline", "Straight Hair", "Wavy Hair", "Wearing Hat"))),
    ("eyes", tuple((n, 2) for n in (
        "Arched Eyebrows", "Bags Under Eyes", "Bushy Eyebrows", "Eyeglasses", "Narrow Eyes"))),
    ("nose", (("Big Nose", 2), ("Pointy Nose", 2))),
    ("cheek", tuple((n, 2) for n in (
        "High Cheekbones", "Rosy Cheeks", "Wearing Earrings", "Sideburns"))),
    ("mouth", tuple((n, 2) for n in (
        "Five O'Clock Shadow", "Big Lips", "Mouth Slightly Open", "Mustache",
        "Wearing Lipstick", "No Beard"))),
    ("chin", (("Double Chin", 2), ("Goatee", 2))),
    ("neck", (("Wearing Necklace", 2), ("Wearing Necktie", 2))),
)  # fmt: skip
HEADS: tuple[tuple[int, str, int], ...] = tuple(
    (b, name, n) for b, (_, heads) in enumerate(BRANCHES) for name, n in heads
)  # (branch, name, logits) per fc, 42 in all
# The 40 binary attributes in the original's output order (its CelebA label columns' order).
ATTRIBUTES: tuple[str, ...] = (
    "Attractive", "Blurry", "Chubby", "Heavy Makeup", "Gender", "Oval Face", "Pale Skin",
    "Smiling", "Young", "Bald", "Bangs", "Black Hair", "Blond Hair", "Brown Hair", "Gray Hair",
    "Receding Hairline", "Straight Hair", "Wavy Hair", "Wearing Hat", "Arched Eyebrows",
    "Bags Under Eyes", "Bushy Eyebrows", "Eyeglasses", "Narrow Eyes", "Big Nose", "Pointy Nose",
    "High Cheekbones", "Rosy Cheeks", "Wearing Earrings", "Sideburns", "Five O'Clock Shadow",
    "Big Lips", "Mouth Slightly Open", "Mustache", "Wearing Lipstick", "No Beard", "Double Chin",
    "Goatee", "Wearing Necklace", "Wearing Necktie",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SwinFaceConfig:
    """Full size by default. `level_out`: each level's fusion conv width (Σ = feature_dim);
    `tasks`: the tasks it serves (every task gets every output; the task type picks its own)."""

    encoder: SwinConfig = dataclasses.field(default_factory=SwinConfig)
    tasks: tuple[HeadSpec, ...] = ()
    embed_dim: int = 512  # recognition embedding
    feature_dim: int = 512  # MLCA / subnet width
    level_out: tuple[int, ...] = (47, 93, 186, 186)
    drop: float = 0.5
    dtype: str = "float32"

    def __post_init__(self):
        if sum(self.level_out) != self.feature_dim:
            raise ValueError(
                f"SwinFace level_out {self.level_out} must sum to feature_dim {self.feature_dim}"
            )
        if len(self.level_out) != len(self.encoder.depths):
            raise ValueError(
                f"SwinFace level_out {self.level_out}: one width per Swin stage "
                f"({len(self.encoder.depths)})"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SwinFaceConfig":
        d = dict(d)
        d["encoder"] = SwinConfig.from_dict(d["encoder"])
        d["level_out"] = tuple(d["level_out"])
        d["tasks"] = specs_from_dicts(d.get("tasks", ()))
        return cls(**d)


class Branch(nnx.Module):
    """One MLCA branch and its task subnet: levels [B, g, g, C_l] -> features [B, F]."""

    def __init__(self, cfg: SwinFaceConfig, *, rngs: nnx.Rngs):
        d = jnp.dtype(cfg.dtype)
        f = cfg.feature_dim
        self.drop = cfg.drop
        self.convs = nnx.List(
            [
                Conv2d(c, o, 3, padding=1, bias=False, dtype=d, rngs=rngs)
                for c, o in zip(cfg.encoder.out_widths(), cfg.level_out, strict=True)
            ]
        )
        self.channel_attention = ChannelGate(f, dtype=d, rngs=rngs)
        self.norm = BatchNorm(f, eps=2e-5, rngs=rngs)
        self.subnet_1 = Linear(f, f, axes=("embed", "mlp"), dtype=d, rngs=rngs)
        self.subnet_2 = Linear(f, f, axes=("mlp", "embed"), dtype=d, rngs=rngs)

    def attend(self, levels: tuple[jax.Array, ...], train: bool) -> jax.Array:
        """MLCA: fusion convs -> channel gate -> ReLU -> max-pool -> BN: [B, F]."""
        x = jnp.concatenate([conv(lv) for conv, lv in zip(self.convs, levels, strict=True)], -1)
        x = jax.nn.relu(self.channel_attention(x))
        return self.norm(x.max(axis=(1, 2)), train)

    def __call__(
        self, levels: tuple[jax.Array, ...], train: bool, key: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        """-> (MLCA output [B, F], subnet output [B, F]); `key` None: no dropout."""
        a = self.attend(levels, train)
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        x = dropout(jax.nn.relu(self.subnet_1(a)), self.drop, k1)
        x = dropout(jax.nn.relu(self.subnet_2(x)), self.drop, k2)
        return a, x


class SwinFace(nnx.Module):
    def __init__(self, cfg: SwinFaceConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        d = jnp.dtype(cfg.dtype)
        self.trunk = SwinTransformer(cfg.encoder, rngs=rngs)
        self.recognition = RecognitionHead(
            cfg.encoder.widths()[-1], cfg.embed_dim, dtype=cfg.dtype, rngs=rngs
        )

        @nnx.split_rngs(splits=len(BRANCHES))
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_branches(rngs: nnx.Rngs) -> Branch:
            return Branch(cfg, rngs=rngs)

        self.branches = make_branches(rngs)
        self.heads = nnx.List(
            [
                Linear(cfg.feature_dim, n, axes=("embed", "classes"), dtype=d, rngs=rngs)
                for _, _, n in HEADS
            ]
        )

    def features(
        self, images: jax.Array, *, train: bool = False, rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """images [B, 112, 112, 3] -> {"embedding" [B, E], "mlca" [11, B, F], "subnets"
        [11, B, F], "logits": the 42 heads' outputs (tuple, fc order)}."""
        keys = jax.random.split(rng, 3) if (train and rng is not None) else (None,) * 3
        stages = self.trunk(images, train=train, rng=keys[0])["stages"]
        levels = level_maps(stages)
        b, g, _, c = levels[-1].shape
        embedding = self.recognition(levels[-1].reshape(b, g * g, c), train)
        branch_keys = jax.random.split(keys[1], len(BRANCHES)) if keys[1] is not None else None

        @nnx.vmap(in_axes=(0, None, 0 if branch_keys is not None else None))
        def run(branch: Branch, levels, key):
            return branch(levels, train, key)

        mlca, subnets = run(self.branches, levels, branch_keys)
        logits = tuple(
            head(subnets[b]).astype(jnp.float32)
            for head, (b, _, _) in zip(self.heads, HEADS, strict=True)
        )
        return {"embedding": embedding, "mlca": mlca, "subnets": subnets, "logits": logits}

    def __call__(
        self,
        images: Mapping[str, jax.Array],
        *,
        train: bool = False,
        rng: jax.Array | None = None,
    ) -> dict[str, dict[str, jax.Array]]:
        """{task: images [B_t, S, S, 3]} -> {task: outputs of its rows}: "embedding" [B_t, E],
        "age" [B_t] (years, regression), "expression" [B_t, 7], "attributes" [B_t, 40, 2]
        (`ATTRIBUTES` order, [no, yes] logits). One forward over all tasks' images together.
        With `cfg.tasks` set, task names must be among them."""
        if self.cfg.tasks:
            check_inputs(self.cfg.tasks, images)
        names = list(images)
        sizes = [images[n].shape[0] for n in names]
        full = self._outputs(jnp.concatenate([images[n] for n in names]), train, rng)
        result, start = {}, 0
        for name, n in zip(names, sizes, strict=True):
            result[name] = {k: v[start : start + n] for k, v in full.items()}
            start += n
        return result

    def shared(
        self, inputs: Mapping[str, jax.Array], reads: Mapping[str, Sequence[str]]
    ) -> dict[str, dict[str, jax.Array]]:
        """Inference with every input image run once (every head reads every image), as
        `Faceptor.shared`: {task: outputs of the concatenation of its `reads`}."""
        if self.cfg.tasks:
            shared_inputs(self.cfg.tasks, inputs, reads)
        keys = list(inputs)
        full = self._outputs(jnp.concatenate([inputs[k] for k in keys]), False, None)
        starts = dict(zip(keys, np.cumsum([0] + [inputs[k].shape[0] for k in keys]), strict=False))
        rows = lambda k: slice(int(starts[k]), int(starts[k]) + inputs[k].shape[0])
        return {
            t: {n: jnp.concatenate([v[rows(k)] for k in ks]) for n, v in full.items()}
            for t, ks in reads.items()
        }

    def _outputs(self, x: jax.Array, train: bool, rng: jax.Array | None) -> dict[str, jax.Array]:
        out = self.features(x, train=train, rng=rng)
        named = {name: lg for (_, name, _), lg in zip(HEADS, out["logits"], strict=True)}
        return {
            "embedding": out["embedding"],
            "age": named["Age"][:, 0],
            "expression": named["Expression"],
            "attributes": jnp.stack([named[a] for a in ATTRIBUTES], axis=1),
        }
