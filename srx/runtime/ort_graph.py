"""Graph rewrites that make onnxruntime's CPU execution provider faster on srx's exports.

srx's export mirrors PyTorch op for op (docs/export.md), which keeps the file portable
(TensorRT, any runtime) and exact. onnxruntime's own optimiser then fuses what it
recognises, but not everything: the exact GELU is written in PyTorch's CPU order,
`(x * 0.5) * (1 + Erf(x * M_SQRT1_2))`, which onnxruntime's GeluFusion does not match, so
it runs as five element-wise passes over the feature map. This module rewrites such
subgraphs into onnxruntime's contrib op `com.microsoft.Gelu` (y = 0.5 x (1 + erf(x / sqrt 2)),
the same function, one vectorised pass; outputs differ from the unfused graph by float
rounding only). The rewrite runs on the model in memory for the onnxruntime session; the
file on disk is never changed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

CONTRIB_DOMAIN = "com.microsoft"
_SQRT1_2 = math.sqrt(0.5)


@dataclass(frozen=True)
class RewriteReport:
    gelu: int  # exact-GELU subgraphs replaced by com.microsoft.Gelu

    def to_dict(self) -> dict[str, int]:
        return {"gelu": self.gelu}


class _Graph:
    """Producers, consumers and scalar constants of one ONNX graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers[inp].append(node)
        self.outputs = {o.name for o in graph.output}
        self.scalars: dict[str, float] = {}
        for init in graph.initializer:
            self._scalar(init.name, init)
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self._scalar(node.output[0], node.attribute[0].t)

    def _scalar(self, name: str, tensor: onnx.TensorProto) -> None:
        if int(np.prod(tensor.dims)) == 1 and tensor.data_type == onnx.TensorProto.FLOAT:
            self.scalars[name] = float(numpy_helper.to_array(tensor).reshape(()))

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def other_input(self, node: onnx.NodeProto, tensor: str) -> str | None:
        ins = list(node.input)
        if len(ins) != 2 or tensor not in ins:
            return None
        return ins[1] if ins[0] == tensor else ins[0]

    def is_scalar(self, tensor: str | None, value: float, rel: float = 1e-6) -> bool:
        return tensor in self.scalars and math.isclose(self.scalars[tensor], value, rel_tol=rel)


def _match_gelu(g: _Graph, erf: onnx.NodeProto) -> tuple[str, list[onnx.NodeProto]] | None:
    """Erf(x * 1/sqrt2 or x / sqrt2) -> + 1 -> * (x * 0.5): return x and the five nodes."""
    scaled = g.producer.get(erf.input[0])
    if scaled is None or g.only_consumer(scaled.output[0]) is not erf:
        return None
    if scaled.op_type == "Mul":
        x = next((c for c in scaled.input if g.is_scalar(g.other_input(scaled, c), _SQRT1_2)), None)
    elif scaled.op_type == "Div" and g.is_scalar(scaled.input[1], math.sqrt(2.0)):
        x = scaled.input[0]
    else:
        x = None
    if x is None:
        return None
    plus1 = g.only_consumer(erf.output[0])
    if plus1 is None or plus1.op_type != "Add" or not g.is_scalar(g.other_input(plus1, erf.output[0]), 1.0):
        return None
    final = g.only_consumer(plus1.output[0])
    if final is None or final.op_type != "Mul":
        return None
    half = g.producer.get(g.other_input(final, plus1.output[0]) or "")
    if (
        half is None
        or half.op_type != "Mul"
        or x not in half.input
        or not g.is_scalar(g.other_input(half, x), 0.5)
        or g.only_consumer(half.output[0]) is not final
    ):
        return None
    return x, [scaled, erf, plus1, half, final]


def fuse_for_onnxruntime(model: onnx.ModelProto) -> tuple[onnx.ModelProto, RewriteReport]:
    """A copy of `model` with srx's exact-GELU subgraphs replaced by com.microsoft.Gelu.

    Only subgraphs whose intermediate tensors have no other consumer are replaced, so the
    rewrite never changes what any other node sees.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = _Graph(out.graph)
    replace: dict[str, onnx.NodeProto] = {}  # name of the pattern's last node -> fused node
    drop: set[str] = set()  # first outputs of the nodes folded into a fused node (unique in a valid graph)
    for node in out.graph.node:
        if node.op_type != "Erf":
            continue
        found = _match_gelu(g, node)
        if found is None:
            continue
        x, nodes = found
        final = nodes[-1]
        name = (final.name or final.output[0]) + "/Gelu"
        replace[final.output[0]] = helper.make_node("Gelu", [x], [final.output[0]], name=name, domain=CONTRIB_DOMAIN)
        drop.update(n.output[0] for n in nodes[:-1])
    if not replace:
        return out, RewriteReport(gelu=0)
    kept = []
    for node in out.graph.node:
        first = node.output[0] if node.output else ""
        if first in drop:
            continue
        kept.append(replace.get(first, node) if node.op_type == "Mul" else node)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    if not any(o.domain == CONTRIB_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return out, RewriteReport(gelu=len(replace))
