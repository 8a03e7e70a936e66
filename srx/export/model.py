"""nn.Module -> ONNX ModelProto -> simplified, verified .onnx file."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper
from torch import nn

from srx import __version__
from srx.errors import CheckFailed
from srx.export import (
    DEFAULT_OPSET,
    DYNAMIC_DIMS,
    FP32_TOLERANCE,
    INPUT_NAME,
    OUTPUT_NAME,
    check_opset,
)
from srx.export.graph import GraphBuilder
from srx.export.metadata import (
    META_DYNAMIC,
    META_INPUT_SHAPE,
    META_OPSET,
    META_PRECISION,
    META_SOURCE,
    META_SOURCE_SHA256,
    META_SPEC,
    META_VERSION,
    META_WEIGHTS_SHA256,
    io_signature,
    metadata,
    set_metadata,
)
from srx.export.safmn import emit_safmn, emit_safmn_ntire23
from srx.export.safmnpp import emit_safmnpp, emit_safmnpp_light
from srx.export.verify import VerifyResult, verification_cases, verify_onnx
from srx.fileio import check_writable, write_bytes_atomic
from srx.models.safmn import SAFMN, SAFMNNtire23
from srx.models.safmnpp import SAFMNPP, SAFMNPPLight
from srx.resources import check_memory
from srx.sizes import Size
from srx.spec import ModelSpec

DEFAULT_INPUT = Size(320, 180)

EMITTERS: dict[type[nn.Module], Callable[[GraphBuilder, Any, str], str]] = {
    SAFMN: emit_safmn,
    SAFMNNtire23: emit_safmn_ntire23,
    SAFMNPP: emit_safmnpp,
    SAFMNPPLight: emit_safmnpp_light,
}


def model_spec(model: nn.Module) -> ModelSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError("the model has no ModelSpec (.spec): build or load it with srx.models")
    return spec


def onnx_from_model(
    model: nn.Module,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    input_size: Size | tuple[int, int] | None = None,
) -> onnx.ModelProto:
    """The exact ONNX graph of a SAFMN-family network, with srx metadata.

    dynamic=True: input `lr` is (batch, 3, height, width), valid for every height and
    width >= spec.min_size. dynamic=False: a fixed (1, 3, H, W) graph for input_size =
    (width, height), with index tensors as constants and no Shape ops.
    """
    spec = model_spec(model)
    check_opset(opset)
    emit = EMITTERS.get(type(model))
    if emit is None:
        raise TypeError(
            f"no ONNX emitter for {type(model).__name__}; srx exports {', '.join(c.__name__ for c in EMITTERS)}"
        )
    if dynamic:
        static_hw = None
    else:
        if input_size is None:
            raise ValueError("a static export needs input_size=(width, height)")
        size = Size(*input_size)
        spec.check_input_size(size.height, size.width)
        static_hw = (size.height, size.width)

    b = GraphBuilder(opset, static_hw)
    b.rename_output(emit(b, model, INPUT_NAME), OUTPUT_NAME)

    s = spec.scale
    if static_hw is None:
        in_dims: list[int | str] = [DYNAMIC_DIMS[0], spec.in_channels, DYNAMIC_DIMS[1], DYNAMIC_DIMS[2]]
        out_dims: list[int | str] = [DYNAMIC_DIMS[0], 3, f"{DYNAMIC_DIMS[1]}*{s}", f"{DYNAMIC_DIMS[2]}*{s}"]
    else:
        h, w = static_hw
        in_dims, out_dims = [1, spec.in_channels, h, w], [1, 3, h * s, w * s]
    proto = b.model(
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, in_dims)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_dims)],
        graph_name=f"{spec.arch}_x{s}",
        doc=f"{spec.label}. Input lr: RGB float in [0, 1], NCHW; output sr: x{s}.",
    )
    proto.producer_name = "srx"
    proto.producer_version = __version__
    set_metadata(
        proto,
        {
            META_SPEC: spec.to_json(),
            META_VERSION: __version__,
            META_SOURCE: spec.source,
            META_SOURCE_SHA256: spec.source_sha256,
            META_WEIGHTS_SHA256: weights_sha256(model),
            META_PRECISION: "fp32",
            META_DYNAMIC: "true" if dynamic else "false",
            META_OPSET: str(opset),
            META_INPUT_SHAPE: ",".join(str(d) for d in in_dims),
        },
    )
    return proto


def weights_sha256(model: nn.Module) -> str:
    """Identifies the weights themselves, whatever file they came from."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- simplification ------------------------------------------------------------------------


def simplify_onnx(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim with constant folding, dead-node and common-subexpression elimination.

    The hand-written graph is already close to minimal; onnxslim is a second opinion
    that must not change the interface: the dynamic dims, metadata, opset and the
    default-domain-only ops are checked afterwards (a change is a bug, not user error).
    """
    try:
        import onnxslim
    except ImportError as e:
        from srx.errors import MissingDependency

        raise MissingDependency("onnxslim", "cpu", "simplifying the ONNX export") from e
    import logging

    before = onnx.ModelProto()
    before.CopyFrom(proto)
    logging.getLogger("onnxslim").setLevel(logging.ERROR)
    # No shape inference: nothing here depends on it, and it doubles the time.
    slim = onnxslim.slim(proto, no_shape_infer=True)
    if slim is None:
        raise RuntimeError("onnxslim returned no model")
    for attr in ("ir_version", "producer_name", "producer_version", "doc_string"):
        setattr(slim, attr, getattr(before, attr))
    set_metadata(slim, metadata(before))
    _check_same_interface(before, slim)
    return slim


def _check_same_interface(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    if io_signature(before) != io_signature(after):
        raise RuntimeError(f"simplification changed the graph interface: {io_signature(after)}")
    if [(o.domain, o.version) for o in after.opset_import] != [(o.domain, o.version) for o in before.opset_import]:
        raise RuntimeError("simplification changed the opset imports")
    custom = {n.op_type for n in after.graph.node if n.domain not in ("", "ai.onnx")}
    if custom:
        raise RuntimeError(f"simplification introduced custom ops: {sorted(custom)}")


# -- the whole export ----------------------------------------------------------------------


@dataclass
class ExportReport:
    onnx: str
    spec: ModelSpec
    opset: int
    dynamic: bool
    input: Size
    nodes_before_simplify: int
    nodes: int
    simplifier: str | None
    verify: list[VerifyResult]
    tolerance: float
    onnx_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "onnx": self.onnx,
            "arch": self.spec.arch,
            "scale": self.spec.scale,
            "params": self.spec.params,
            "opset": self.opset,
            "dynamic": self.dynamic,
            "verify": [r.to_json() for r in self.verify],
            "input": str(self.input),
            "trained": self.spec.trained,
            "label": self.spec.label,
            "min_size": self.spec.min_size,
            "tolerance": self.tolerance,
            "nodes": self.nodes,
            "nodes_before_simplify": self.nodes_before_simplify,
            "simplifier": self.simplifier,
            "onnx_bytes": self.onnx_bytes,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }

    def format(self) -> str:
        """The lines `srx export` prints."""
        shape = "dynamic batch, height, width" if self.dynamic else f"static 1x3x{self.input.height}x{self.input.width}"
        simplify = (
            f"{self.simplifier}: {self.nodes_before_simplify:,} -> {self.nodes:,} nodes" if self.simplifier else "off"
        )
        lines = [
            f"exported {self.spec.label}",
            f"  onnx       {self.onnx} ({shape}; opset {self.opset}; {self.nodes:,} nodes; "
            f"{self.onnx_bytes / 1e6:.2f} MB)",
            f"  simplify   {simplify}",
            f"  verify     onnxruntime CPU vs PyTorch, max |diff| (tolerance {self.tolerance:g}):",
        ]
        for r in self.verify:
            lines.append(f"             {r.case.input:>9}  batch {r.case.batch}  {r.max_abs_diff:.2e}")
        total = sum(self.seconds.values())
        lines.append(f"  time       {total:.1f} s (verify {self.seconds.get('verify', 0):.1f} s)")
        return "\n".join(lines)


def default_onnx_name(weights: str | Path | None, arch: str, scale: int, static_size: Size | None) -> str:
    """`srx export`'s output without -o: the checkpoint's name, else the architecture and scale;
    a static export carries its size."""
    stem = Path(weights).stem if weights else f"{arch.replace('-', '_')}_x{scale}"
    return f"{stem}_{static_size}.onnx" if static_size else f"{stem}.onnx"


def export_onnx(
    model: nn.Module,
    output: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = True,
    input_size: Size = DEFAULT_INPUT,
    simplify: bool = True,
    tolerance: float = FP32_TOLERANCE,
) -> ExportReport:
    """Build, simplify and verify the ONNX; write it to `output` only if verification passes.

    Raises BadInput before any work for a bad opset, size or output path, and
    CheckFailed (nothing written) when max |ONNX - PyTorch| exceeds `tolerance`.
    """
    spec = model_spec(model)
    check_opset(opset)
    check_writable(output)
    spec.check_input_size(input_size.height, input_size.width)
    # The check runs PyTorch and onnxruntime at --input, one after the other.
    check_memory(
        2 * spec.forward_bytes(input_size.height, input_size.width),
        f"verifying the export at --input {input_size}",
        "use a smaller --input (a dynamic ONNX runs at every size; --input only sets where it is checked)",
    )
    _require("onnxruntime", "verifying the ONNX export")
    if simplify:
        _require("onnxslim", "simplifying the ONNX export")

    t0 = time.perf_counter()
    proto = onnx_from_model(model, opset=opset, dynamic=dynamic, input_size=input_size)
    nodes_before = len(proto.graph.node)
    t1 = time.perf_counter()
    simplifier = None
    if simplify:
        proto = simplify_onnx(proto)
        simplifier = f"onnxslim {_version('onnxslim')}"
    data = proto.SerializeToString()
    t2 = time.perf_counter()
    results = verify_onnx(data, model, verification_cases(spec, input_size, dynamic))
    t3 = time.perf_counter()
    failed = [r for r in results if not r.passed(tolerance)]
    if failed:
        worst = failed[0]
        what = (
            "is not finite or has the wrong shape"
            if worst.max_abs_diff != worst.max_abs_diff
            else (f"differs from PyTorch by {worst.max_abs_diff:.3g} (max |output| {worst.max_abs_ref:.3g})")
        )
        raise CheckFailed(
            f"the exported ONNX {what} at {worst.case.input} batch {worst.case.batch}, over the tolerance "
            f"{tolerance:g}; nothing was written to {output}: run again with --debug and report it"
        )
    write_bytes_atomic(output, data)
    t4 = time.perf_counter()
    return ExportReport(
        onnx=str(output),
        spec=spec,
        opset=opset,
        dynamic=dynamic,
        input=input_size,
        nodes_before_simplify=nodes_before,
        nodes=len(proto.graph.node),
        simplifier=simplifier,
        verify=results,
        tolerance=tolerance,
        onnx_bytes=len(data),
        seconds={"build": t1 - t0, "simplify": t2 - t1, "verify": t3 - t2, "write": t4 - t3},
    )


def _require(package: str, purpose: str) -> None:
    """Fail before any work when an optional package is missing (both are in srx[cpu])."""
    from importlib.util import find_spec

    try:
        found = find_spec(package) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        from srx.errors import MissingDependency

        raise MissingDependency(package, "cpu", purpose)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
