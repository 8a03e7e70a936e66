"""A small ONNX graph builder: node naming, initializers, shared constants.

Node names are `{scope}/{OpType}` with `_1`, `_2`, ... for repeats inside one scope,
where the scope is the module path of the nn.Module that computes the node
(`feats.3.norm1/ReduceMean_1`); nodes computed by the root module's forward have the
empty scope (`/Add`). Each single-output node's output tensor has the node's name;
multi-output nodes name theirs `{node}:{k}`. Weights keep their state-dict names;
constants are shared by value and named `const.{dtype}.{value}`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T = TypeVar("T")

_DTYPE_TAGS = {np.dtype(np.float32): "f32", np.dtype(np.int64): "i64"}


class GraphBuilder:
    """Collects the nodes and initializers of one graph, for one opset.

    `static_hw` is None for a graph with dynamic height and width; otherwise the fixed
    (height, width) the graph is built for, and index tensors become constants.
    """

    def __init__(self, opset: int, static_hw: tuple[int, int] | None = None) -> None:
        self.opset = opset
        self.static_hw = static_hw
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._names: set[str] = set()
        self._node_counts: Counter[str] = Counter()
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self._memo: dict[Hashable, Any] = {}

    @property
    def dynamic(self) -> bool:
        return self.static_hw is None

    # -- nodes -------------------------------------------------------------------------

    def node_name(self, scope: str, op_type: str) -> str:
        base = f"{scope}/{op_type}"
        k = self._node_counts[base]
        self._node_counts[base] += 1
        return base if k == 0 else f"{base}_{k}"

    def op(self, scope: str, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        """Add one single-output node; return its output tensor name (= the node name)."""
        name = self.node_name(scope, op_type)
        self._add(op_type, inputs, [name], name, attrs)
        return name

    def op_multi(self, scope: str, op_type: str, inputs: Sequence[str], n_outputs: int, **attrs: Any) -> list[str]:
        name = self.node_name(scope, op_type)
        outputs = [f"{name}:{k}" for k in range(n_outputs)]
        self._add(op_type, inputs, outputs, name, attrs)
        return outputs

    def _add(self, op_type: str, inputs: Sequence[str], outputs: list[str], name: str, attrs: dict[str, Any]) -> None:
        for out in outputs:
            self._claim(out)
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=name, **attrs))

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"ONNX name {name!r} used twice")
        self._names.add(name)

    def rename_output(self, tensor: str, new_name: str) -> str:
        """Give the tensor produced by the last node a public name (the graph output)."""
        last = self.nodes[-1]
        if list(last.output) != [tensor]:
            raise ValueError(f"{tensor!r} is not the output of the last node")
        self._claim(new_name)
        last.output[0] = new_name
        return new_name

    # -- tensors -------------------------------------------------------------------------

    def weight(self, name: str, array: np.ndarray) -> str:
        """An initializer named after its state-dict key, stored as float32."""
        self._claim(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def const(self, value: Any, dtype: type = np.float32, name: str | None = None) -> str:
        """A constant initializer, shared by every node that uses the same value.

        `name` names it where a value-derived name would be unreadable (index arrays).
        """
        arr = np.array(value, dtype=dtype)  # a C-contiguous copy; keeps 0-d scalars 0-d
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = name or _const_name(arr)
            if name in self._names:
                name = f"{name}#{len(self._consts)}"
            self._claim(name)
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def memo(self, key: Hashable, make: Callable[[], T]) -> T:
        """Build a subgraph once and share it (index tensors used by every block)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # -- opset-dependent forms -----------------------------------------------------------

    def reduce(self, scope: str, op_type: str, x: str, axes: Sequence[int], keepdims: bool = True) -> str:
        """Reduce* over `axes`: an attribute before opset 18, an input from 18 on."""
        if self.opset >= 18:
            return self.op(scope, op_type, [x, self.const(list(axes), np.int64)], keepdims=int(keepdims))
        return self.op(scope, op_type, [x], axes=list(axes), keepdims=int(keepdims))

    # -- model ---------------------------------------------------------------------------

    def model(
        self,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
        *,
        graph_name: str,
        doc: str = "",
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, list(inputs), list(outputs), initializer=self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        # The lowest IR version that carries this opset: ONNX Runtime and TensorRT
        # refuse IR versions newer than they know, and onnx's default is the newest.
        model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
        model.doc_string = doc
        return model


def _const_name(arr: np.ndarray) -> str:
    tag = _DTYPE_TAGS.get(arr.dtype, arr.dtype.name)
    flat = arr.reshape(-1)
    text = f"{flat.size}values" if flat.size > 8 else ",".join(repr(v.item()) for v in flat)
    return f"const.{tag}.{text}" if arr.ndim == 0 else f"const.{tag}.[{text}]"
