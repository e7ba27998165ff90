"""Shared building blocks: parameters with logical axes, fp32 LayerNorm, CLIP-style attention, MLP.

Parameter layouts are chosen for sharding and einsum clarity; `convert/` documents how PyTorch
tensors map onto them (e.g. PyTorch MHA's packed `in_proj_weight` [3D, D] -> `qkv` [D, 3, H, K]).
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from faceptor_jax.sharding import constrain

Initializer = Callable[..., jax.Array]


def param(
    rngs: nnx.Rngs,
    init: Initializer,
    shape: Sequence[int],
    axes: Sequence[str | None],
    dtype: jnp.dtype = jnp.float32,
) -> nnx.Param:
    """A parameter tagged with logical axis names; created unsharded, placed by `sharding`."""
    if len(axes) != len(shape):
        raise ValueError(f"axes {tuple(axes)} do not match shape {tuple(shape)}")
    return nnx.Param(
        init(rngs.params(), tuple(shape), dtype), out_sharding=tuple(axes), eager_sharding=False
    )


def einsum(eq: str, a: jax.Array, b: jax.Array, dtype: jnp.dtype) -> jax.Array:
    """einsum in `dtype` with fp32 accumulation (also the fast bf16 path on CPU)."""
    return jnp.einsum(
        eq, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32
    ).astype(dtype)


def quick_gelu(x: jax.Array) -> jax.Array:
    """CLIP's GELU approximation x·σ(1.702x) (FaRL was trained with it)."""
    return x * jax.nn.sigmoid(1.702 * x)


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis, always computed in fp32, returned in the input dtype.

    The original casts to fp32, normalises with biased variance, casts back, then applies the
    affine in the input dtype; in fp32 that is a standard LayerNorm.
    """

    def __init__(self, dim: int, *, eps: float = 1e-5, axis_name: str = "embed", rngs: nnx.Rngs):
        self.eps = eps
        self.scale = param(rngs, nnx.initializers.ones, (dim,), (axis_name,))
        self.bias = param(rngs, nnx.initializers.zeros, (dim,), (axis_name,))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = ((x32 - mean) * jax.lax.rsqrt(var + self.eps)).astype(x.dtype)
        return y * self.scale[...].astype(x.dtype) + self.bias[...].astype(x.dtype)


def _attention_one_head_at_a_time(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Like the fused form, but one head at a time and normalising after the value product.

    On CPU at long sequences (1025 tokens at 512 px) the [B, H, N, N] logits do not fit in
    cache; per-head [B, N, N] blocks do, which makes attention compute- instead of memory-bound.
    """
    scale = q.shape[-1] ** -0.5

    def one_head(qkv: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        qh, kh, vh = qkv  # [B, N, K]
        logits = jnp.einsum("bqk,bnk->bqn", qh, kh, preferred_element_type=jnp.float32) * scale
        p = jnp.exp(logits - jax.lax.stop_gradient(logits.max(-1, keepdims=True)))
        o = jnp.einsum("bqn,bnk->bqk", p.astype(vh.dtype), vh, preferred_element_type=jnp.float32)
        return (o / p.sum(-1, keepdims=True)).astype(vh.dtype)

    heads_first = [jnp.moveaxis(t, 2, 0) for t in (q, k, v)]  # [H, B, N, K]
    return jnp.moveaxis(jax.lax.map(one_head, tuple(heads_first)), 0, 2)


def dot_product_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, implementation: str | None = None
) -> jax.Array:
    """Softmax attention. q: [B, Nq, H, K], k/v: [B, Nk, H, K] -> [B, Nq, H, K].

    `implementation`: None (per_head on CPU for long sequences, else xla), "xla" (all heads in
    one fused computation), "per_head" (see above), "cudnn" (fused flash attention on NVIDIA
    GPUs; bf16/fp16 only). Softmax statistics are computed in fp32 whatever the input dtype.
    """
    if implementation is None:
        long_on_cpu = jax.default_backend() == "cpu" and k.shape[1] >= 256
        implementation = "per_head" if long_on_cpu else "xla"
    if implementation == "cudnn":
        return jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
    if implementation == "per_head":
        return _attention_one_head_at_a_time(q, k, v)
    if implementation != "xla":
        raise ValueError(f"unknown attention implementation {implementation!r}")
    scale = q.shape[-1] ** -0.5
    logits = jnp.einsum("bqhk,bnhk->bhqn", q, k, preferred_element_type=jnp.float32) * scale
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqn,bnhk->bqhk", weights, v, preferred_element_type=jnp.float32).astype(
        v.dtype
    )


class MultiHeadAttention(nnx.Module):
    """PyTorch `nn.MultiheadAttention` semantics with a fused q/k/v projection.

    qkv: [D, 3, H, K] (q, k, v in that order, as PyTorch packs `in_proj_weight`), out: [H, K, D].
    Self-attention uses the fused projection; cross-attention projects q from the queries and
    k, v from the memory with slices of the same kernel.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        dtype: jnp.dtype = jnp.float32,
        attention_impl: str | None = None,
        rngs: nnx.Rngs,
    ):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim, self.dtype, self.attention_impl = (
            heads,
            dim // heads,
            dtype,
            attention_impl,
        )
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=0)
        self.qkv = param(
            rngs, init, (dim, 3, heads, self.head_dim), ("embed", "qkv", "heads", "kv")
        )
        self.qkv_bias = param(
            rngs, nnx.initializers.zeros, (3, heads, self.head_dim), ("qkv", "heads", "kv")
        )
        out_init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1)
        )
        self.out = param(rngs, out_init, (heads, self.head_dim, dim), ("heads", "kv", "embed"))
        self.out_bias = param(rngs, nnx.initializers.zeros, (dim,), ("embed",))

    def _project(self, x: jax.Array, index: slice) -> jax.Array:
        """x: [B, N, D] -> [B, N, s, H, K] for the q/k/v slots in `index`."""
        w = self.qkv[...][:, index]
        b = self.qkv_bias[...][index].astype(self.dtype)
        y = einsum("bnd,dshk->bnshk", x, w, self.dtype) + b
        return constrain(y, ("batch", "tokens", "qkv", "heads", "kv"))

    def __call__(
        self, query: jax.Array, key: jax.Array | None = None, value: jax.Array | None = None
    ) -> jax.Array:
        """query: [B, Nq, D]; key/value: [B, Nk, D] (default: self-attention) -> [B, Nq, D]."""
        if key is None and value is None:
            q, k, v = jnp.moveaxis(self._project(query, slice(0, 3)), 2, 0)
        elif value is None or key is value:
            q = self._project(query, slice(0, 1))[:, :, 0]
            k, v = jnp.moveaxis(self._project(key, slice(1, 3)), 2, 0)
        else:
            q = self._project(query, slice(0, 1))[:, :, 0]
            k = self._project(key, slice(1, 2))[:, :, 0]
            v = self._project(value, slice(2, 3))[:, :, 0]
        o = dot_product_attention(q, k, v, self.attention_impl)  # [B, Nq, H, K]
        y = einsum("bqhk,hkd->bqd", o, self.out[...], self.dtype)
        return y + self.out_bias[...].astype(self.dtype)


class Mlp(nnx.Module):
    """Linear -> activation -> Linear, with logical axes (embed -> mlp -> embed)."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        activation: Callable[[jax.Array], jax.Array],
        *,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.activation, self.dtype = activation, dtype
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
        self.fc1 = param(rngs, init, (dim, hidden), ("embed", "mlp"))
        self.fc1_bias = param(rngs, nnx.initializers.zeros, (hidden,), ("mlp",))
        self.fc2 = param(rngs, init, (hidden, dim), ("mlp", "embed"))
        self.fc2_bias = param(rngs, nnx.initializers.zeros, (dim,), ("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        h = einsum("bnd,dm->bnm", x, self.fc1[...], self.dtype)
        h = self.activation(h + self.fc1_bias[...].astype(self.dtype))
        h = constrain(h, ("batch", "tokens", "mlp"))
        y = einsum("bnm,md->bnd", h, self.fc2[...], self.dtype)
        return y + self.fc2_bias[...].astype(self.dtype)


def drop_path(x: jax.Array, rate: jax.Array | float, key: jax.Array, mode: str) -> jax.Array:
    """Stochastic depth on a residual branch x: [B, N, D], keeping expectations (÷ keep_prob).

    mode "token": one Bernoulli draw per token position shared by the whole batch — what the
    original does (timm DropPath applied to sequence-first [N, B, D] tensors). mode "sample":
    the usual per-image draw.
    """
    keep = 1.0 - rate
    shape = (1, x.shape[1], 1) if mode == "token" else (x.shape[0], 1, 1)
    mask = jax.random.bernoulli(key, keep, shape)
    # rate == 0 must be an exact identity (block 0 of the linspace schedule).
    scale = jnp.where(keep > 0, 1.0 / jnp.maximum(keep, 1e-12), 0.0)
    return jnp.where(mask, x * scale.astype(x.dtype), jnp.zeros((), x.dtype))


class Linear(nnx.Module):
    """y = x·W + b over the last axis (PyTorch `nn.Linear` with W stored [in, out])."""

    def __init__(
        self,
        din: int,
        dout: int,
        *,
        bias: bool = True,
        axes: tuple[str | None, str | None] = ("embed", "mlp"),
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.dtype = dtype
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
        self.kernel = param(rngs, init, (din, dout), axes)
        self.bias = param(rngs, nnx.initializers.zeros, (dout,), axes[1:]) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = einsum("...i,io->...o", x, self.kernel[...], self.dtype)
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)


class BatchNorm(nnx.Module):
    """PyTorch BatchNorm over the last (channel) axis of [..., C].

    eval: running statistics. train: batch statistics (biased variance) over every axis but the
    last, and the running statistics updated as PyTorch does (unbiased variance), with Flax's
    momentum convention: running = momentum·running + (1 − momentum)·batch (PyTorch 0.1 ↔ 0.9).
    Under a mesh the batch mean is global (SyncBN semantics).
    """

    def __init__(self, dim: int, *, eps: float = 1e-5, momentum: float = 0.9, rngs: nnx.Rngs):
        self.eps, self.momentum = eps, momentum
        self.scale = param(rngs, nnx.initializers.ones, (dim,), ("channels",))
        self.bias = param(rngs, nnx.initializers.zeros, (dim,), ("channels",))
        self.mean = nnx.BatchStat(jnp.zeros((dim,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((dim,), jnp.float32))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x32 = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = x32.mean(axes)
            var = jnp.square(x32 - mean).mean(axes)
            n = x32.size // x32.shape[-1]
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.mean[...] = m * self.mean[...] + (1 - m) * jax.lax.stop_gradient(mean)
            self.var[...] = m * self.var[...] + (1 - m) * jax.lax.stop_gradient(unbiased)
        else:
            mean, var = self.mean[...], self.var[...]
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)


class Conv2d(nnx.Module):
    """NHWC convolution, kernel [kh, kw, Cin, Cout] (PyTorch [Cout, Cin, kh, kw] transposed)."""

    def __init__(
        self,
        din: int,
        dout: int,
        kernel: int,
        *,
        padding: int = 0,
        bias: bool = True,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.padding, self.dtype = padding, dtype
        init = nnx.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1, 2)
        )
        self.kernel = param(rngs, init, (kernel, kernel, din, dout), (None, None, "embed", "mlp"))
        self.bias = param(rngs, nnx.initializers.zeros, (dout,), ("mlp",)) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, Cin] -> [B, H', W', Cout] (stride 1)."""
        w = self.kernel[...]
        if w.shape[0] == 1 and w.shape[1] == 1 and self.padding == 0:
            y = einsum("bhwc,co->bhwo", x, w[0, 0], self.dtype)
        else:
            p = self.padding
            y = jax.lax.conv_general_dilated(
                x.astype(self.dtype),
                w.astype(self.dtype),
                window_strides=(1, 1),
                padding=((p, p), (p, p)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                preferred_element_type=jnp.float32,
            ).astype(self.dtype)
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)


class ConvTranspose2x2(nnx.Module):
    """PyTorch `ConvTranspose2d(k=2, s=2)`: no overlap, each input pixel becomes a 2×2 block.

    out[b, 2i+di, 2j+dj, o] = bias[o] + Σ_c x[b, i, j, c]·W[di, dj, c, o]; kernel [2, 2, Cin, Cout]
    (PyTorch stores [Cin, Cout, 2, 2]).
    """

    def __init__(self, din: int, dout: int, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.dtype = dtype
        init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=2)
        self.kernel = param(rngs, init, (2, 2, din, dout), (None, None, "embed", "mlp"))
        self.bias = param(rngs, nnx.initializers.zeros, (dout,), ("mlp",))

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, Cin] -> [B, 2H, 2W, Cout]."""
        b, h, w, _ = x.shape
        y = einsum("bhwc,klco->bhkwlo", x, self.kernel[...], self.dtype)
        y = y.reshape(b, 2 * h, 2 * w, -1)
        return y + self.bias[...].astype(self.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array | None, shape: tuple | None = None):
    """Inverted dropout; identity when `key` is None (eval). `shape` broadcasts the mask
    (e.g. [B, 1, 1, C] for PyTorch's Dropout2d)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, shape or x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))
