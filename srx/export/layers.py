"""ONNX emitters for the building blocks in srx/models/layers.py (and plain torch layers).

Each emitter takes the builder, the module path (the node-name scope), the module and
the input tensor name, and returns the output tensor name. It writes the same
arithmetic, in the same order, as the module's forward.

Index tensors. Every feature map in the SAFMN family has the LR input's height H and
width W (all convs are stride-1 "same" convs), so the pooling windows and the nearest
source indices depend only on (H or W, factor). They are computed once per (axis,
factor) from Shape(lr) with integer arithmetic and shared by every block; in a static
graph they are constants. Integer Div truncates, which is floor for the non-negative
values here.

* adaptive max pooling, o = n // f outputs along an axis of length n: window i is
  [start_i, stop_i) = [floor(i*n/o), ceil((i+1)*n/o)), and f <= stop_i - start_i <= 2f
  (docs/export.md has the proof).
  With s = MaxPool(kernel f along the axis, stride 1), s[j] = max(x[j:j+f]), and
  max(x[start:stop]) = max(s[start], s[stop - f]) because the two length-f windows
  cover [start, stop). Rows first, then columns.
* nearest resize from o back to n: src_j = min(floor(float32(j) * (float32(o) /
  float32(n))), o - 1), PyTorch's float32 formula (ONNX Resize(nearest) divides by
  n/o instead and picks another row for ~3% of sizes). The float32 quotient is built
  from integers so no runtime float division is involved (`nearest_source_indices`).

Index subgraphs are scoped `index.*`; they are shape arithmetic and must stay in
int64 / float32 under any precision pass.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto
from torch import nn

from srx.export import INPUT_NAME
from srx.export.graph import GraphBuilder
from srx.models.layers import GRN, LayerNorm2d, nearest_indices, pool_windows

AXIS_NAMES = {2: "h", 3: "w"}


# -- plain torch layers ------------------------------------------------------------------


def conv(b: GraphBuilder, path: str, m: nn.Conv2d, x: str) -> str:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"{path}: only zero padding given as numbers is exported, got {m.padding_mode}/{m.padding}")
    ph, pw = m.padding
    inputs = [x, b.weight(f"{path}.weight", m.weight.detach().numpy())]
    if m.bias is not None:
        inputs.append(b.weight(f"{path}.bias", m.bias.detach().numpy()))
    return b.op(
        path,
        "Conv",
        inputs,
        kernel_shape=list(m.kernel_size),
        strides=list(m.stride),
        dilations=list(m.dilation),
        pads=[ph, pw, ph, pw],
        group=m.groups,
    )


def gelu(b: GraphBuilder, path: str, m: nn.GELU, x: str) -> str:
    """Exact GELU as PyTorch's CPU kernel computes it: (x * 0.5) * (1 + erf(x * M_SQRT1_2)).

    Written with Erf: opset 17..19 and TensorRT 8.6 have no Gelu op.
    """
    if m.approximate != "none":
        raise ValueError(f"{path}: GELU(approximate={m.approximate!r}) is not exported; the SAFMN family uses 'none'")
    e = b.op(path, "Erf", [b.op(path, "Mul", [x, b.const(math.sqrt(0.5))])])
    return b.op(path, "Mul", [b.op(path, "Mul", [x, b.const(0.5)]), b.op(path, "Add", [e, b.const(1.0)])])


def pixel_shuffle(b: GraphBuilder, path: str, m: nn.PixelShuffle, x: str) -> str:
    # PixelShuffle takes channel c*s*s + i*s + j to (c, h*s + i, w*s + j): DepthToSpace CRD.
    return b.op(path, "DepthToSpace", [x], blocksize=m.upscale_factor, mode="CRD")


def split(b: GraphBuilder, scope: str, x: str, sizes: list[int]) -> list[str]:
    return b.op_multi(scope, "Split", [x, b.const(sizes, np.int64)], len(sizes), axis=1)


def chunk_sizes(channels: int, chunks: int) -> list[int]:
    """torch.chunk's sizes: ceil(C / chunks) each, the last one takes the rest."""
    size = -(-channels // chunks)
    sizes = [size] * (channels // size) + ([channels % size] if channels % size else [])
    if len(sizes) != chunks:
        raise ValueError(f"{channels} channels do not split into {chunks} chunks as the model expects")
    return sizes


# -- normalisations ----------------------------------------------------------------------


def layer_norm2d(b: GraphBuilder, path: str, m: LayerNorm2d, x: str) -> str:
    """Channels-first LayerNorm in PyTorch's order:
    u = mean_c(x); d = x - u; s = mean_c(d^2); y = weight * (d / sqrt(s + eps)) + bias.

    Nodes: ReduceMean, Sub, Pow, ReduceMean_1, Add, Sqrt, Div, Mul, Add_1 (the pattern
    precision passes keep in FP32).
    """
    channels = m.weight.shape[0]
    u = b.reduce(path, "ReduceMean", x, [1])
    d = b.op(path, "Sub", [x, u])
    s = b.reduce(path, "ReduceMean", b.op(path, "Pow", [d, b.const(2.0)]), [1])
    r = b.op(path, "Sqrt", [b.op(path, "Add", [s, b.const(m.eps)])])
    n = b.op(path, "Div", [d, r])
    w = b.weight(f"{path}.weight", m.weight.detach().numpy().reshape(channels, 1, 1))
    bias = b.weight(f"{path}.bias", m.bias.detach().numpy().reshape(channels, 1, 1))
    return b.op(path, "Add", [b.op(path, "Mul", [w, n]), bias])


def grn(b: GraphBuilder, path: str, m: GRN, x: str) -> str:
    """GRN: g = ||x_c||_2 over H, W; y = gamma * (x * (g / (mean_c(g) + eps))) + beta + x."""
    g = b.reduce(path, "ReduceL2", x, [2, 3])
    mean = b.reduce(path, "ReduceMean", g, [1])
    nx = b.op(path, "Div", [g, b.op(path, "Add", [mean, b.const(m.eps)])])
    y = b.op(path, "Mul", [b.weight(f"{path}.gamma", m.gamma.detach().numpy()), b.op(path, "Mul", [x, nx])])
    y = b.op(path, "Add", [y, b.weight(f"{path}.beta", m.beta.detach().numpy())])
    return b.op(path, "Add", [y, x])


# -- index tensors (shared by all blocks) ----------------------------------------------


def _side(b: GraphBuilder, axis: int) -> str:
    """Length of the LR input along `axis` as an int64 scalar (dynamic graphs only)."""

    def make() -> str:
        shape = b.memo("shape", lambda: b.op("index", "Shape", [INPUT_NAME]))
        return b.op(f"index.{AXIS_NAMES[axis]}", "Gather", [shape, b.const(axis, np.int64)], axis=0)

    return b.memo(("side", axis), make)


def _pooled_side(b: GraphBuilder, axis: int, factor: int) -> tuple[str, str]:
    """(o, o - 1) with o = n // factor, as int64 scalars."""

    def make() -> tuple[str, str]:
        scope = f"index.{AXIS_NAMES[axis]}.pool{factor}"
        o = b.op(scope, "Div", [_side(b, axis), b.const(factor, np.int64)])
        return o, b.op(scope, "Sub", [o, b.const(1, np.int64)])

    return b.memo(("pooled", axis, factor), make)


def pool_indices(b: GraphBuilder, axis: int, factor: int) -> tuple[str, str]:
    """Int64 1-D tensors `start` and `stop - factor` of PyTorch's adaptive pooling windows."""

    def make_dynamic() -> tuple[str, str]:
        scope = f"index.{AXIS_NAMES[axis]}.pool{factor}"
        n = _side(b, axis)
        o, o_minus_1 = _pooled_side(b, axis, factor)
        i = b.op(scope, "Range", [b.const(0, np.int64), o, b.const(1, np.int64)])
        start = b.op(scope, "Div", [b.op(scope, "Mul", [i, n]), o])
        upper = b.op(scope, "Mul", [b.op(scope, "Add", [i, b.const(1, np.int64)]), n])
        stop = b.op(scope, "Div", [b.op(scope, "Add", [upper, o_minus_1]), o])
        return start, b.op(scope, "Sub", [stop, b.const(factor, np.int64)])

    def make_static() -> tuple[str, str]:
        start, stop = pool_windows(_static_side(b, axis), factor)
        prefix = f"index.{AXIS_NAMES[axis]}.pool{factor}"
        return (
            b.const(start.numpy(), np.int64, name=f"{prefix}.start"),
            b.const((stop - factor).numpy(), np.int64, name=f"{prefix}.last"),
        )

    return b.memo(("pool", axis, factor), make_dynamic if b.dynamic else make_static)


def nearest_source_indices(b: GraphBuilder, axis: int, factor: int) -> str:
    """Int64 1-D tensor: PyTorch's nearest source row/column for resizing o = n // factor -> n.

    PyTorch: src_j = min(floor(float32(j) * s), o - 1) with s = float32(o) / float32(n),
    a correctly rounded float32 division. The graph does not divide floats: a runtime
    whose division is off by one ulp (fast-math GPU kernels) would pick other rows at
    most sizes, since j * s is often an exact integer. Instead s is built exactly from
    integers: o / n lies in (1 / (2f), 1 / f], so s = S * 2^-K with K = 24 + log2(f) and
    S = round-half-even(o * 2^K / n), a 24-bit integer (2^24 when n is a multiple of f).
    S comes from a two-step long division that stays below 2^31 for n <= 16384 (so it is
    also exact where a runtime narrows int64 to int32). Then float32(S) and the scaling
    by 2^-K are exact, and the one rounding left is the float32 product j * s, the same
    correctly rounded multiply PyTorch does.
    """

    def make_dynamic() -> str:
        scope = f"index.{AXIS_NAMES[axis]}.up{factor}"
        n = _side(b, axis)
        o, o_minus_1 = _pooled_side(b, axis, factor)
        k = 24 + factor.bit_length() - 1
        low_bits = 14

        def i64(v: int) -> str:
            return b.const(v, np.int64)

        def mul(x: str, y: str) -> str:
            return b.op(scope, "Mul", [x, y])

        def divmod_(x: str) -> tuple[str, str]:
            q = b.op(scope, "Div", [x, n])
            return q, b.op(scope, "Sub", [x, mul(q, n)])

        q_high, r_high = divmod_(mul(o, i64(1 << (k - low_bits))))
        q_low, r_low = divmod_(mul(r_high, i64(1 << low_bits)))
        q = b.op(scope, "Add", [mul(q_high, i64(1 << low_bits)), q_low])
        odd = b.op(scope, "Sub", [q, mul(b.op(scope, "Div", [q, i64(2)]), i64(2))])
        # Round up iff 2r + (q odd) > n, i.e. (2r + odd) // (n + 1) == 1 (it is 0 or 1).
        bump = b.op(
            scope,
            "Div",
            [b.op(scope, "Add", [mul(r_low, i64(2)), odd]), b.op(scope, "Add", [n, i64(1)])],
        )
        significand = b.op(scope, "Cast", [b.op(scope, "Add", [q, bump])], to=TensorProto.FLOAT)
        s = mul(significand, b.const(2.0**-k))
        dst = b.memo(("dst_float", axis), lambda: _float_range(b, axis))
        src = b.op(scope, "Floor", [mul(dst, s)])
        return b.op(scope, "Min", [b.op(scope, "Cast", [src], to=TensorProto.INT64), o_minus_1])

    def make_static() -> str:
        n = _static_side(b, axis)
        idx = nearest_indices(n // factor, n).numpy()
        return b.const(idx, np.int64, name=f"index.{AXIS_NAMES[axis]}.up{factor}.src")

    return b.memo(("nearest", axis, factor), make_dynamic if b.dynamic else make_static)


def _float_range(b: GraphBuilder, axis: int) -> str:
    """float32(0 .. n-1) along `axis` (exact: n <= 2^24)."""
    scope = f"index.{AXIS_NAMES[axis]}"
    j = b.op(scope, "Range", [b.const(0, np.int64), _side(b, axis), b.const(1, np.int64)])
    return b.op(scope, "Cast", [j], to=TensorProto.FLOAT)


def _static_side(b: GraphBuilder, axis: int) -> int:
    assert b.static_hw is not None
    return b.static_hw[axis - 2]


# -- pooling and resizing ------------------------------------------------------------------


def adaptive_max_pool(b: GraphBuilder, scope: str, x: str, factor: int) -> str:
    """adaptive_max_pool2d(x, (H // factor, W // factor)) with PyTorch's windows, exactly.

    In a static graph an axis whose length is a multiple of `factor` has equal windows
    [i*f, (i+1)*f): one strided MaxPool does it (both axes at once where both divide).
    """
    if not b.dynamic:
        assert b.static_hw is not None
        if all(n % factor == 0 for n in b.static_hw):
            return b.op(scope, "MaxPool", [x], kernel_shape=[factor, factor], strides=[factor, factor])
    for axis in (2, 3):
        x = _pool_axis(b, scope, x, axis, factor)
    return x


def _pool_axis(b: GraphBuilder, scope: str, x: str, axis: int, factor: int) -> str:
    kernel = [factor, 1] if axis == 2 else [1, factor]
    if not b.dynamic and _static_side(b, axis) % factor == 0:
        return b.op(scope, "MaxPool", [x], kernel_shape=kernel, strides=kernel)
    sliding = b.op(scope, "MaxPool", [x], kernel_shape=kernel, strides=[1, 1])
    start, last = pool_indices(b, axis, factor)
    first = b.op(scope, "Gather", [sliding, start], axis=axis)
    second = b.op(scope, "Gather", [sliding, last], axis=axis)
    return b.op(scope, "Max", [first, second])


def nearest_resize(b: GraphBuilder, scope: str, x: str, factor: int) -> str:
    """interpolate(x, (H, W), mode='nearest') for x of size (H // factor, W // factor), exactly.

    Static graphs whose sides are multiples of `factor` use Resize(nearest, asymmetric,
    floor) with integer scales: there src = floor(j / factor) in both formulas.
    """
    if not b.dynamic:
        assert b.static_hw is not None
        if all(n % factor == 0 for n in b.static_hw):
            scales = b.const([1.0, 1.0, float(factor), float(factor)])
            return b.op(
                scope,
                "Resize",
                [x, "", scales],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
    for axis in (2, 3):
        x = b.op(scope, "Gather", [x, nearest_source_indices(b, axis, factor)], axis=axis)
    return x


def bilinear_resize_like(b: GraphBuilder, scope: str, x: str, like: str, like_shape: list[int] | None) -> str:
    """interpolate(x, like.shape[-2:], 'bilinear', align_corners=False) as
    Resize(linear, half_pixel, sizes). ONNX divides by out/in where PyTorch multiplies by
    in/out: the results differ only by float rounding (the function is smooth)."""
    sizes = b.op(scope, "Shape", [like]) if like_shape is None else b.const(like_shape, np.int64)
    return b.op(scope, "Resize", [x, "", "", sizes], mode="linear", coordinate_transformation_mode="half_pixel")


def bilinear_upscale(b: GraphBuilder, scope: str, x: str, scale: int) -> str:
    """interpolate(x, scale_factor=s, 'bilinear', align_corners=False): both map output
    pixel j to source (j + 0.5) / s - 0.5 and both give floor(n * s) outputs."""
    scales = b.const([1.0, 1.0, float(scale), float(scale)])
    return b.op(scope, "Resize", [x, "", scales], mode="linear", coordinate_transformation_mode="half_pixel")
