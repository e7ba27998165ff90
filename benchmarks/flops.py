"""FLOPs of a traced computation, counted on its jaxpr.

XLA's `cost_analysis()` counts a while-loop body once, so for models whose layers run under
`scan` (our encoder, the decoder) it undercounts by the number of layers; here scan bodies are
multiplied by their trip count. Counts matrix products and convolutions (2 FLOPs per MAC), which
is what MFU conventionally counts.
"""

import jax
import numpy as np


def matmul_flops(jaxpr: jax.extend.core.Jaxpr) -> float:
    """2·MACs of every dot_general / conv in a jaxpr, loop bodies times their trip count."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lc, _), (lb, _) = eqn.params["dimension_numbers"]
            lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            out = np.prod(eqn.outvars[0].aval.shape)
            total += 2.0 * out * np.prod([lhs[i] for i in lc])
            del lb, rhs
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape  # HWIO per dimension_numbers; all but O contract
            out = np.prod(eqn.outvars[0].aval.shape)
            spec = eqn.params["dimension_numbers"].rhs_spec  # (O, I, spatial...)
            total += 2.0 * out * np.prod([rhs[i] for i in spec[1:]])
        for sub in _sub_jaxprs(eqn.params):
            total += matmul_flops(sub) * (eqn.params.get("length", 1) if name == "scan" else 1)
    return total


def _sub_jaxprs(params: dict) -> list:
    out = []
    for v in params.values():
        for item in v if isinstance(v, tuple | list) else (v,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                out.append(item.jaxpr)
            elif isinstance(item, jax.extend.core.Jaxpr):
                out.append(item)
    return out


def count(fn, *args) -> float:
    """Matmul/conv FLOPs of `fn(*args)` (traced, not run)."""
    return matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)
