"""FP32 ONNX -> strongly typed FP16 ONNX with FP32 islands (`fp16_from_onnx`).

Convolutions and element-wise work run in FP16; the numerically fragile parts stay
FP32, with explicit Casts where the two meet:

* normalisation modules, found by node name (`feats.N.norm1|norm2`: the paper model's
  channel LayerNorm, y = w * (x - mean_c x) / sqrt(mean_c (x - mean_c x)^2 + 1e-6) + b, whose
  squared deviations can overflow FP16 (max 65504) and whose eps 1e-6 is below FP16's
  smallest normal 6.1e-5; `norm`: team15's GRN, g_c = ||x_c||_2 over the whole image, a
  sum of H*W squares that overflows FP16 on large inputs);
* any reduction or power wherever it appears (ReduceMean/Sum/L2/SumSquare/..., Pow,
  Sqrt, Reciprocal, Exp, Log, Softmax, *Normalization): a sum of squares can overflow;
* float arithmetic that does not carry image data (index computations derived from
  Shape, e.g. the exact nearest-resize indices) keeps FP32, because FP16 would pick
  wrong rows on large images.

The graph input `lr` and output `sr` stay FP32 (Casts right after the input and before
the output): callers, runners and engines keep one I/O contract for every precision, and
the cost is two cheap casts. The same file serves TensorRT 10.x (STRONGLY_TYPED network
flag), TensorRT 11.x (always strongly typed) and TensorRT-RTX; TensorRT < 9.1 uses the
FP32 file with the FP16 builder flag and the same islands pinned by layer name
(`fp32_layer`, see srx.engines.network).

Why an own pass rather than ModelOpt AutoCast: the graphs come from srx's own exporter,
so the fragile nodes are known by name and an exact, reviewable rule is short; AutoCast
would add nvidia-modelopt[onnx] (which pins onnx~=1.21 and pulls onnxruntime-gpu over
onnxruntime) to decide by activation magnitudes seen on sample data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from srx.errors import BadInput
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.export.metadata import META_FP16, META_PRECISION, SrxOnnx, opset_of, set_metadata, srx_onnx_from_model
from srx.precision.graph import (
    check_pass_output,
    fold_constants_to_initializers,
    import_onnx,
    in_norm_module,
    module_path,
    tensor_types,
)

if TYPE_CHECKING:
    import onnx

# Ops that sum many values, square or exponentiate: FP32 wherever they appear.
FRAGILE_OPS = frozenset(
    {
        "ReduceMean",
        "ReduceSum",
        "ReduceL1",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceProd",
        "Pow",
        "Sqrt",
        "Reciprocal",
        "Exp",
        "Log",
        "Softmax",
        "LogSoftmax",
        "LayerNormalization",
        "InstanceNormalization",
        "GroupNormalization",
        "BatchNormalization",
        "LpNormalization",
        "MeanVarianceNormalization",
    }
)

FP16_MAX = 65504.0

# Ops whose output describes a tensor's size, not its values.
SHAPE_OPS = frozenset({"Shape", "Size"})


def fp32_layer(name: str, op_type: str = "") -> bool:
    """The rule, by name and op type: True where FP32 must be kept (also used to pin TensorRT layers)."""
    return in_norm_module(name) or op_type in FRAGILE_OPS


@dataclass
class Fp16Report:
    """What the pass did: counts and the FP32 islands by module path."""

    fp16_nodes: int = 0
    fp32_nodes: int = 0
    casts: int = 0
    fp32_modules: list[str] = field(default_factory=list)
    fp32_ops: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fp16_nodes": self.fp16_nodes,
            "fp32_nodes": self.fp32_nodes,
            "casts": self.casts,
            "fp32_modules": self.fp32_modules,
            "fp32_ops": self.fp32_ops,
            "io": "float32",
        }


def fp16_from_onnx(
    src: SrxOnnx, *, keep_fp32: Callable[[onnx.NodeProto], bool] | None = None
) -> tuple[SrxOnnx, Fp16Report]:
    """A strongly typed FP16 copy of an FP32 or FP32-based Q/DQ srx model (see module docstring).

    `keep_fp32(node)` may force more nodes to FP32 (in addition to `fp32_layer`).
    """
    onnx = import_onnx()
    if src.precision == "fp16":
        raise BadInput("the model is already FP16; give the FP32 ONNX from 'srx export'")
    model = onnx.ModelProto()
    model.CopyFrom(src.graph())
    report = _convert(model, keep_fp32)
    set_metadata(
        model,
        {
            META_PRECISION: "fp16" if src.precision == "fp32" else src.precision,
            META_FP16: json.dumps(report.to_dict(), sort_keys=True),
        },
    )
    check_pass_output(model, "FP16")
    return srx_onnx_from_model(model, origin="FP16 model"), report


# -- the pass ---------------------------------------------------------------------------------


def _convert(model: onnx.ModelProto, keep_fp32: Callable[[onnx.NodeProto], bool] | None) -> Fp16Report:
    import_onnx()
    g = model.graph
    fold_constants_to_initializers(model)
    types = tensor_types(model)
    opset = opset_of(model)
    inits = {i.name: i for i in g.initializer}
    data_nodes = _data_nodes(g)
    half_nodes, report = _choose_types(g, data_nodes, opset, types, inits, keep_fp32)
    typed_nodes, half_nodes = _with_weight_dequantizers(g, data_nodes, half_nodes)
    rewrite = _Rewrite(g, types, inits, report)
    for k, node in enumerate(g.node):
        if k in typed_nodes:
            rewrite.retype(node, half=k in half_nodes, opset=opset)
        else:
            rewrite.nodes.append(node)
    rewrite.keep_output_fp32()
    del g.node[:]
    g.node.extend(rewrite.nodes)
    _drop_unused_initializers(g)
    # Old value_info entries carry stale element types; inference recomputes them.
    del g.value_info[:]
    return report


def _data_nodes(g: onnx.GraphProto) -> set[int]:
    """The nodes that carry image data: everything computed from `lr` except through
    Shape/Size (index arithmetic derived from the input's size stays FP32)."""
    data = {INPUT_NAME}
    data_nodes: set[int] = set()
    for k, node in enumerate(g.node):
        if node.op_type not in SHAPE_OPS and any(i in data for i in node.input if i):
            data_nodes.add(k)
            data.update(node.output)
    return data_nodes


def _choose_types(
    g: onnx.GraphProto,
    data_nodes: set[int],
    opset: int,
    types: dict[str, int],
    inits: dict[str, onnx.TensorProto],
    keep_fp32: Callable[[onnx.NodeProto], bool] | None,
) -> tuple[set[int], Fp16Report]:
    """A compute type per data node: the FP16 ones, and the report's counts and FP32 islands."""
    half_nodes: set[int] = set()
    report = Fp16Report()
    fp32_modules: dict[str, None] = {}
    for k, node in enumerate(g.node):
        if k not in data_nodes:
            continue  # weights, shape / index arithmetic: untouched
        follow_in, follow_out = _follow(node, opset, types)
        if follow_out is None:
            keep = True  # op with a fixed float type or unknown schema
        else:
            keep = fp32_layer(node.name, node.op_type) or bool(keep_fp32 and keep_fp32(node))
            keep = keep or any(_overflows(inits.get(node.input[i])) for i in follow_in if i < len(node.input))
        if keep:
            report.fp32_nodes += 1
            report.fp32_ops[node.op_type] = report.fp32_ops.get(node.op_type, 0) + 1
            fp32_modules[module_path(node.name) or node.name] = None
        else:
            half_nodes.add(k)
            report.fp16_nodes += 1
    report.fp32_modules = list(fp32_modules)
    return half_nodes, report


def _with_weight_dequantizers(
    g: onnx.GraphProto, data_nodes: set[int], half_nodes: set[int]
) -> tuple[set[int], set[int]]:
    """(nodes to retype, FP16 nodes) with the weight DequantizeLinear nodes of Q/DQ models:
    they take the type of the layers they feed, so TensorRT sees DQ -> Conv with no Cast
    between and can fuse them."""
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(g.node):
        for i in node.input:
            consumers.setdefault(i, []).append(k)
    typed, half = set(data_nodes), set(half_nodes)
    for k, node in enumerate(g.node):
        if k in data_nodes or node.op_type != "DequantizeLinear":
            continue
        users = consumers.get(node.output[0], [])
        typed.add(k)
        if users and all(u in half for u in users):
            half.add(k)
    return typed, half


class _Rewrite:
    """The new node list: initializers retyped, Casts inserted at island borders (one per
    tensor and type), outputs retyped; `dtype` is each float tensor's type as rewritten so far."""

    def __init__(
        self, g: onnx.GraphProto, types: dict[str, int], inits: dict[str, onnx.TensorProto], report: Fp16Report
    ) -> None:
        from onnx import TensorProto

        self.FLOAT, self.HALF = TensorProto.FLOAT, TensorProto.FLOAT16
        self.g, self.types, self.inits, self.report = g, types, inits, report
        self.dtype: dict[str, int] = {n: t for n, t in types.items() if t in (self.FLOAT, self.HALF)}
        self.nodes: list[onnx.NodeProto] = []
        self.cast_cache: dict[tuple[str, int], str] = {}
        self.half_inits: dict[str, str] = {}
        self.used_names = {n.name for n in g.node} | set(types)

    def unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.used_names:
            name, i = f"{base}_{i}", i + 1
        self.used_names.add(name)
        return name

    def as_type(self, tensor: str, want: int, consumer: onnx.NodeProto) -> str:
        """`tensor` as `want`: itself, an FP16 copy of an initializer, or a Cast's output."""
        from onnx import helper, numpy_helper

        have = self.dtype.get(tensor)
        if have is None or have == want:
            return tensor
        if tensor in self.inits and want == self.HALF:
            if tensor not in self.half_inits:
                arr = numpy_helper.to_array(self.inits[tensor]).astype("float16")
                t = numpy_helper.from_array(arr, self.unique(f"{tensor}__fp16"))
                self.g.initializer.append(t)
                self.dtype[t.name] = self.HALF
                self.half_inits[tensor] = t.name
            return self.half_inits[tensor]
        key = (tensor, want)
        if key not in self.cast_cache:
            kind = "fp16" if want == self.HALF else "fp32"
            out = self.unique(f"{tensor}__{kind}")
            where = module_path(consumer.name)
            name = self.unique(f"{where}/Cast_to_{kind}" if where else f"Cast_{out}")
            self.nodes.append(helper.make_node("Cast", [tensor], [out], name=name, to=want))
            self.dtype[out] = want
            self.cast_cache[key] = out
            self.report.casts += 1
        return self.cast_cache[key]

    def retype(self, node: onnx.NodeProto, *, half: bool, opset: int) -> None:
        """`node` computing in FP16 (`half`) or FP32: its inputs converted, its outputs typed."""
        want = self.HALF if half else self.FLOAT
        follow_in, follow_out = _follow(node, opset, self.types)
        for i in follow_in or ():
            if i < len(node.input) and node.input[i]:
                node.input[i] = self.as_type(node.input[i], want, node)
        if node.op_type == "Cast" and want == self.HALF:
            for a in node.attribute:
                if a.name == "to" and a.i == self.FLOAT:
                    a.i = self.HALF
        for i in follow_out or ():
            if i < len(node.output) and node.output[i] in self.dtype:
                self.dtype[node.output[i]] = want
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            self.dtype[node.output[0]] = to
        self.nodes.append(node)

    def keep_output_fp32(self) -> None:
        """The graph output `sr` stays FP32: a final Cast when the last node computes in FP16."""
        from onnx import helper

        if self.dtype.get(OUTPUT_NAME) != self.HALF:
            return
        inner = self.unique(f"{OUTPUT_NAME}__fp16")
        for node in self.nodes:
            node.output[:] = [inner if o == OUTPUT_NAME else o for o in node.output]
            node.input[:] = [inner if i == OUTPUT_NAME else i for i in node.input]
        self.nodes.append(helper.make_node("Cast", [inner], [OUTPUT_NAME], name="output/Cast_to_fp32", to=self.FLOAT))
        self.report.casts += 1


def _follow(node: onnx.NodeProto, opset: int, types: dict[str, int]) -> tuple[list[int] | None, list[int] | None]:
    """Indices of the inputs and outputs that share the node's float type variable.

    From the op schema: the type variable of output 0 when that output is float (e.g. 'T'
    for Conv, 'T2' for DequantizeLinear), else of input 0 ('T1' for QuantizeLinear).
    (None, None) when the node has no such variable (unknown op, fixed float type).
    """
    onnx = import_onnx()
    from onnx import TensorProto

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except Exception:
        return None, None

    def formal(params: list[Any], i: int) -> str | None:
        if i < len(params):
            return params[i].type_str
        if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
            return params[-1].type_str
        return None

    out0 = node.output[0] if node.output else ""
    if types.get(out0) in (TensorProto.FLOAT, TensorProto.FLOAT16):
        var = formal(list(schema.outputs), 0)
    else:
        var = formal(list(schema.inputs), 0)
    if var is None or var.startswith("tensor("):
        return None, None
    ins = [i for i in range(len(node.input)) if formal(list(schema.inputs), i) == var]
    outs = [i for i in range(len(node.output)) if formal(list(schema.outputs), i) == var]
    if node.op_type == "Cast":
        outs = []  # handled through the `to` attribute
    return ins, outs


def _overflows(init: onnx.TensorProto | None) -> bool:
    if init is None:
        return False
    from onnx import TensorProto, numpy_helper

    if init.data_type != TensorProto.FLOAT:
        return False
    arr = numpy_helper.to_array(init)
    return bool(arr.size) and float(abs(arr).max()) > FP16_MAX


def _drop_unused_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def half_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of FP16 tensors in a model (after type inference), for tests and `srx info`."""
    from onnx import TensorProto

    return {n for n, t in tensor_types(model).items() if t == TensorProto.FLOAT16}


def nodes_by_module(model: onnx.ModelProto, prefixes: Iterable[str]) -> list[onnx.NodeProto]:
    pre = tuple(prefixes)
    return [n for n in model.graph.node if module_path(n.name).startswith(pre)]
