"""CBAM channel attention and the SwinFace-style classification head built on it.

`ChannelGate` is CBAM's channel branch (SwinFace's multi-level channel attention uses the same
gate); `SwinFaceHead` is the head Naive Faceptor puts on its value-kind tasks (age, attributes,
expression): one 3×3 conv (D -> dim/levels, no bias) per selected encoder level, concatenated,
the channel gate, ReLU, global max-pool, BatchNorm (eps 2e-5), two Linear+ReLU+Dropout, then one
Linear per task (`fcs[task]`). Attribute names are checkpoint keys (`channel_attention.mlp_1`, …).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.layers import BatchNorm, Linear, dropout, param


class ChannelGate(nnx.Module):
    """CBAM channel attention: x·σ(MLP(avgpool x) + MLP(maxpool x)), shared MLP C -> C/16 -> C."""

    def __init__(self, dim: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.mlp_1 = Linear(dim, dim // 16, axes=("embed", "mlp"), dtype=dtype, rngs=rngs)
        self.mlp_2 = Linear(dim // 16, dim, axes=("mlp", "embed"), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C]."""
        mlp = lambda v: self.mlp_2(jax.nn.relu(self.mlp_1(v)))
        gate = mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2)))
        return x * jax.nn.sigmoid(gate)[:, None, None]


class SwinFaceHead(nnx.Module):
    """Selected encoder maps of one task's images -> that task's logits (see the module doc)."""

    def __init__(
        self,
        width: int,
        dim: int,
        outputs: dict[str, int],
        *,
        levels: int = 4,
        drop: float = 0.5,
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        d = jnp.dtype(dtype)
        self.drop, self.dtype = drop, d
        init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(1, 2, 3)
        )
        # one 3×3 conv (no bias) per level, stacked: [levels, 3, 3, D, dim/levels]
        self.conv = param(
            rngs, init, (levels, 3, 3, width, dim // levels), ("layers", None, None, "embed", "mlp")
        )
        self.channel_attention = ChannelGate(dim, dtype=d, rngs=rngs)
        self.norm = BatchNorm(dim, eps=2e-5, rngs=rngs)
        self.feature_1 = Linear(dim, dim, axes=("embed", "mlp"), dtype=d, rngs=rngs)
        self.feature_2 = Linear(dim, dim, axes=("mlp", "embed"), dtype=d, rngs=rngs)
        self.fcs = nnx.Dict(
            {
                t: Linear(dim, n, axes=("embed", "classes"), dtype=d, rngs=rngs)
                for t, n in outputs.items()
            }
        )

    def __call__(
        self, feats: list[jax.Array], task: str, train: bool = False, rng: jax.Array | None = None
    ) -> jax.Array:
        """feats: the selected encoder maps [B, S, S, D] -> logits [B, n]."""
        convs = [
            jax.lax.conv_general_dilated(
                f.astype(self.dtype),
                self.conv[...][i].astype(self.dtype),
                (1, 1),
                ((1, 1), (1, 1)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32,
            ).astype(self.dtype)
            for i, f in enumerate(feats)
        ]
        x = jax.nn.relu(self.channel_attention(jnp.concatenate(convs, axis=-1)))
        x = self.norm(x.max(axis=(1, 2)), train)
        keys = jax.random.split(rng, 2) if (train and rng is not None) else (None, None)
        x = dropout(jax.nn.relu(self.feature_1(x)), self.drop, keys[0])
        x = dropout(jax.nn.relu(self.feature_2(x)), self.drop, keys[1])
        return self.fcs[task](x).astype(jnp.float32)
