"""srx's graphs adjusted for OpenVINO: the INT8 Q/DQ ONNX (`for_openvino`), and every
model once its input size is fixed (`for_cpu`, below).

OpenVINO 2026.4 computes SAFM's aggregation wrongly when its input is quantized: the 1x1
convolution after the concatenation of the four SAFM branches (one depthwise output and
three nearest-upsampled ones). On a Set5 crop through the default x4 Q/DQ ONNX, that
convolution's output in the first block differed from onnxruntime's by 1.5 times
onnxruntime's largest value, and the image by up to 0.13 on [0, 1]. Moving the Q/DQ pair
onto each branch before the upsampling (the same arithmetic) did not change it; without
the pair the image is within 0.007 of onnxruntime's (the file's FP16 rounding)
(bench/openvino_aggr_check.py, bench/results/2026-12-06-cpu-openvino/aggr_check.txt).
So for OpenVINO the activation Q/DQ in front of a convolution fed by a Concat is dropped:
that convolution runs in floating point with its INT8 weights dequantized (one 1x1
convolution per block, and more accurate than the file's INT8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx


@dataclass(frozen=True)
class OpenVINORewrite:
    float_inputs: tuple[str, ...]  # convolutions whose input Q/DQ was dropped
    weight_max: int  # the largest |integer| of the INT8 weights (0: no Q/DQ)

    def to_dict(self) -> dict[str, Any]:
        return {"float_input_convolutions": list(self.float_inputs), "int8_weight_max": self.weight_max}


def for_openvino(model: onnx.ModelProto) -> tuple[onnx.ModelProto, OpenVINORewrite]:
    """A copy of `model` with the activation Q/DQ removed in front of every Conv fed by a
    Concat (through that Q/DQ pair); a model without Q/DQ comes back unchanged."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = {o: n for n in out.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in out.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    changed: list[str] = []
    dropped: set[int] = set()
    for node in out.graph.node:
        if node.op_type != "Conv":
            continue
        dq = producer.get(node.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        src = producer.get(q.input[0])
        if src is None or src.op_type != "Concat":
            continue
        node.input[0] = q.input[0]
        changed.append(node.name or node.output[0])
        # The pair goes only when nothing else reads it (srx's files give each Conv its own).
        if consumers.get(dq.output[0], 0) == 1 and consumers.get(q.output[0], 0) == 1:
            dropped.update((id(q), id(dq)))
    if dropped:
        kept = [n for n in out.graph.node if id(n) not in dropped]
        del out.graph.node[:]
        out.graph.node.extend(kept)
    return out, OpenVINORewrite(tuple(changed), int8_weight_max(out))


def int8_weight_max(model: onnx.ModelProto) -> int:
    """max |q| over the INT8 weights (the DequantizeLinear nodes that read an initializer)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    top = 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            q = numpy_helper.to_array(inits[node.input[0]])
            if q.dtype == np.int8 and q.size:
                top = max(top, int(np.abs(q.astype(np.int16)).max()))
    return top


# oneDNN sums each pair of u8 x s8 products in 16 bits on x86 CPUs without VNNI: 2 x 255 x 64
# fits, 2 x 255 x 127 does not (srx.precision.int8, `weight_bits`).
NO_VNNI_WEIGHT_MAX = 64


# --- FP32 / BF16 graph rewrites on OpenVINO's own graph (`for_cpu`) --------------------------


@dataclass(frozen=True)
class CPURewrite:
    strided_pools: int  # adaptive max pools (per axis) now one MaxPool with stride = kernel
    repeats: int  # nearest upsamplings (per axis) now one Interpolate
    int8_weights: int  # INT8 weight (and zero-point) conversions left for OpenVINO's INT8 pass

    def to_dict(self) -> dict[str, int]:
        d = {"strided_max_pools": self.strided_pools, "nearest_interpolates": self.repeats}
        return {**d, "int8_weights_kept": self.int8_weights} if self.int8_weights else d


def for_cpu(model: Any, *, int8_weights: bool = False) -> CPURewrite:
    """Rewrite an OpenVINO model whose input shape is fixed (after `reshape`) in place.

    srx's ONNX writes SAFM's pooling branches in a form exact at every size with dynamic
    height and width (srx.models.layers), which OpenVINO's CPU plugin runs as many small
    nodes in a planar layout, with a layout conversion around each, once the size is known:
    * adaptive max pooling as a stride-1 max pool and two gathers per axis: where the
      windows of the fixed size are all [i*f, i*f + f) (the length divisible by f) that is a
      max pool with stride f; an axis with uneven windows keeps its form, after the even one;
    * nearest upsampling as a gather per axis: where the gather is i -> i // f it is an
      Interpolate (nearest, asymmetric, floor) by f.
    Both pick the same elements (no arithmetic changes), checked against onnxruntime in the
    tests. Tried and dropped (bench/results/2026-12-06-cpu-openvino-fp32/README.md): the
    LayerNorm as one MVN over axis 1 (the plugin splits it back into the same nodes), as MVN
    over the last axis between transposes (slower), the channel split as Slice or Gather.

    The constant folding that comes first turns an INT8 Q/DQ model's weights into FP32
    constants, and its convolutions then run in FP32 with the INT8 values (accurate, no
    faster). `int8_weights=True` leaves the weights' dequantization to OpenVINO, whose INT8
    convolutions then run; only where they are exact: on a CPU with VNNI or AMX, or weights
    within +-64 (`srx quantize --weight-bits 7`). An AVX2 CPU without VNNI ran srx's 8-bit
    file 0.76 off (on [0, 1]) in INT8 (bench/results/2026-12-06-cpu-openvino-fp32/README.md),
    and its 7-bit file as onnxruntime does (bench/results/2026-12-07-cpu-openvino-int8)."""
    kept = _keep_integer_weights(model) if int8_weights else 0
    fold_constants(model)  # the index arithmetic becomes constants
    pools = sum(_strided_pool(m) for m in _ops(model, "Maximum"))
    repeats = sum(_repeat(g) for g in _ops(model, "Gather"))
    model.validate_nodes_and_infer_types()
    return CPURewrite(pools, repeats, kept)


def fold_constants(model: Any) -> None:
    from openvino import passes

    manager = passes.Manager()
    manager.register_pass(passes.ConstantFolding())
    manager.run_passes(model)


# The runtime-info key of OpenVINO's DisableConstantFolding attribute, which its Python API
# does not expose; the tests check that INT8 convolutions still compile with it.
_NO_FOLDING = "DisableConstantFolding_0"


def _keep_integer_weights(model: Any) -> int:
    """Mark each conversion of an 8-bit constant (an INT8 weight or its zero point) so that
    constant folding leaves the dequantization pattern that OpenVINO's INT8 pass looks for."""
    import openvino as ov

    eight_bit = (ov.Type.i8, ov.Type.u8)
    kept = 0
    for convert in _ops(model, "Convert"):
        src = _src(convert, 0)
        if src.get_type_name() == "Constant" and src.get_output_element_type(0) in eight_bit:
            convert.get_rt_info()[_NO_FOLDING] = ""
            kept += 1
    return kept


def _ops(model: Any, kind: str) -> list[Any]:
    return [op for op in model.get_ordered_ops() if op.get_type_name() == kind]


def _src(node: Any, i: int) -> Any:
    return node.input_value(i).get_node()


def _const(node: Any) -> np.ndarray | None:
    return node.get_data() if node.get_type_name() == "Constant" else None


def _only_reader(node: Any) -> Any:
    readers = [t.get_node() for t in node.output(0).get_target_inputs()]
    return readers[0] if len(readers) == 1 else None


def _pool_axis(maximum: Any) -> tuple[Any, int, int, np.ndarray, np.ndarray] | None:
    """(input, axis, f, first, last) of max(gather(maxpool_f(x), first), gather(.., last))."""
    a, b = _src(maximum, 0), _src(maximum, 1)
    if a.get_type_name() != "Gather" or b.get_type_name() != "Gather":
        return None
    pool = _src(a, 0)
    if pool.get_type_name() != "MaxPool" or _src(b, 0) != pool:
        return None
    axis_a, axis_b = _const(_src(a, 2)), _const(_src(b, 2))
    first, last = _const(_src(a, 1)), _const(_src(b, 1))
    if axis_a is None or axis_b is None or first is None or last is None:
        return None
    axis = int(axis_a.ravel()[0])
    attrs = pool.get_attributes()
    kernel = list(attrs["kernel"])
    if axis != int(axis_b.ravel()[0]) or axis not in (2, 3) or len(kernel) != 2:
        return None
    if list(attrs["strides"]) != [1, 1]:
        return None
    if list(attrs["pads_begin"]) != [0, 0] or list(attrs["pads_end"]) != [0, 0]:
        return None
    if list(attrs["dilations"]) != [1, 1] or kernel[3 - axis] != 1:
        return None
    return pool.input_value(0), axis, int(kernel[axis - 2]), first.ravel(), last.ravel()


def _columns_of(rows: Any) -> Any:
    """The Maximum of the column pooling that reads only `rows` (through its MaxPool and gathers)."""
    pool = _only_reader(rows)
    if pool is None or pool.get_type_name() != "MaxPool":
        return None
    gathers = [t.get_node() for t in pool.output(0).get_target_inputs()]
    maxima = {id(_only_reader(g)): _only_reader(g) for g in gathers}
    (maximum,) = maxima.values() if len(maxima) == 1 else (None,)
    return maximum if maximum is not None and maximum.get_type_name() == "Maximum" else None


def _even(first: np.ndarray, last: np.ndarray, f: int) -> bool:
    even = np.arange(first.size) * f
    return bool(np.array_equal(first, even) and np.array_equal(last, even))


def _max_pool(x: Any, kernel: list[int], strides: list[int] | None = None, *, name: str) -> Any:
    import openvino.opset14 as ops

    pool = ops.max_pool(x, strides or kernel, [1, 1], [0, 0], [0, 0], kernel, "floor", "explicit", name=name)
    return pool.output(0)


def _strided_pool(maximum: Any) -> int:
    """One axis of an adaptive max pool with even windows -> MaxPool(kernel f, stride f), both
    axes even -> one MaxPool. The rows come first in srx's graph; where only the columns are
    even they go first, so the uneven rows' stride-1 pool and gathers run on a tensor f
    times smaller."""
    import openvino.opset14 as ops

    unit = _pool_axis(maximum)
    if unit is None or unit[1] != 2:
        return 0  # columns are handled with their rows
    x, _, f, first, last = unit
    reader = _columns_of(maximum)
    cols = _pool_axis(reader) if reader is not None else None
    if cols is not None and (cols[0].get_node() != maximum or cols[1] != 3):
        cols = None
    rows_even = _even(first, last, f)
    cols_even = cols is not None and _even(cols[3], cols[4], cols[2])
    scope = maximum.get_friendly_name().rsplit("/", 1)[0]  # profiles group nodes by it
    if rows_even and cols_even:
        reader.output(0).replace(_max_pool(x, [f, cols[2]], name=f"{scope}/MaxPool_strided"))
        return 2
    if rows_even:
        maximum.output(0).replace(_max_pool(x, [f, 1], name=f"{scope}/MaxPool_strided_rows"))
        return 1
    if not cols_even:
        return 0
    narrow = _max_pool(x, [1, cols[2]], name=f"{scope}/MaxPool_strided_columns")
    sliding = _max_pool(narrow, [f, 1], [1, 1], name=f"{scope}/MaxPool_rows")
    first_rows = ops.gather(sliding, first, 2, name=f"{scope}/Gather_rows")
    last_rows = ops.gather(sliding, last, 2, name=f"{scope}/Gather_rows_1")
    reader.output(0).replace(ops.maximum(first_rows, last_rows, name=f"{scope}/Max_rows").output(0))
    return 1


def _repeat(gather: Any) -> int:
    """gather(x, i -> i // f, axis) with f = out / in -> Interpolate(nearest) by f on that axis;
    a gather over rows feeding one over columns with the same f -> one Interpolate."""
    unit = _repeat_axis(gather)
    if unit is None:
        return 0
    x, axis, f = unit
    if axis == 3:
        previous = _repeat_axis(x.get_node()) if x.get_node().get_type_name() == "Gather" else None
        if previous is not None and previous[1] == 2 and _only_reader(x.get_node()) == gather:
            gather.output(0).replace(_interpolate(previous[0], [previous[2], f], [2, 3], gather))
            return 2
    reader = _only_reader(gather)
    if axis == 2 and reader is not None and reader.get_type_name() == "Gather" and _repeat_axis(reader) is not None:
        return 0  # the columns' gather takes both
    gather.output(0).replace(_interpolate(x, [f], [axis], gather))
    return 1


def _repeat_axis(gather: Any) -> tuple[Any, int, int] | None:
    if gather.get_type_name() != "Gather" or gather.get_attributes().get("batch_dims", 0) != 0:
        return None
    index, axis_value = _const(_src(gather, 1)), _const(_src(gather, 2))
    shape = gather.input_value(0).get_partial_shape()
    if index is None or axis_value is None or index.ndim != 1 or shape.rank.get_length() != 4 or shape.is_dynamic:
        return None
    axis = int(axis_value.ravel()[0])
    n_in = shape.to_shape()[axis] if axis in (2, 3) else 0
    if n_in == 0 or index.size % n_in != 0 or index.size == n_in:
        return None
    f = index.size // n_in
    if not np.array_equal(index, np.arange(index.size) // f):
        return None
    return gather.input_value(0), axis, f


def _interpolate(x: Any, factors: list[int], axes: list[int], replaced: Any) -> Any:
    import openvino.opset14 as ops

    scales = ops.constant(np.array(factors, np.float32))
    return ops.interpolate(
        x,
        scales,
        "nearest",
        "scales",
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        "asymmetric",
        "floor",
        axes=ops.constant(np.array(axes, np.int64)),
        name=f"{replaced.get_friendly_name().rsplit('/', 1)[0]}/Interpolate",
    ).output(0)
