"""srx ONNX files: the metadata srx writes, and the one reader and validator of them (no torch).

Keys (all values are strings): srx.spec (ModelSpec JSON), srx.version, srx.source,
srx.source_sha256 (checkpoint file), srx.weights_sha256 (the weights themselves),
srx.precision (fp32 for `srx export`, fp16 / int8 after the precision passes),
srx.dynamic (true/false), srx.opset, srx.input_shape (e.g. "batch,3,height,width" or
"1,3,180,320"); srx.fp16 and srx.int8 (JSON reports of the precision passes).

Every command that opens an ONNX file (info, bench, upscale, eval, quantize,
build-engine) reads it with `read_srx_onnx`, and the precision passes check what they
produce with `srx_onnx_from_model`: the same checks in the same order, so no command
accepts a file another one refuses.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from srx.errors import BadInput, first_line
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.filekinds import file_kind
from srx.spec import ModelSpec

PRECISIONS = ("fp32", "fp16", "int8")

META_SPEC = "srx.spec"
META_VERSION = "srx.version"
META_SOURCE = "srx.source"
META_SOURCE_SHA256 = "srx.source_sha256"
META_WEIGHTS_SHA256 = "srx.weights_sha256"
META_PRECISION = "srx.precision"
META_DYNAMIC = "srx.dynamic"
META_OPSET = "srx.opset"
META_INPUT_SHAPE = "srx.input_shape"
# The reports of the precision passes (srx.precision.fp16, srx.precision.int8), as JSON.
META_FP16 = "srx.fp16"
META_INT8 = "srx.int8"


HIGH_PRECISIONS = ("fp16", "fp32")  # what srx quantize keeps out of INT8 in (its report's high_precision)


def precision_report(meta: dict[str, str], key: str, origin: str = "the model") -> dict[str, Any]:
    """The JSON report a precision pass wrote under `key` (META_FP16 / META_INT8), {} when
    absent. A damaged one is refused (one line) rather than read as empty: an INT8 file whose
    report lost its `high_precision` would otherwise be built as the FP16 kind."""
    if key not in meta:
        return {}
    try:
        report = json.loads(meta[key])
    except json.JSONDecodeError:
        report = None
    redo = "srx quantize" if key == META_INT8 else "srx build-engine --fp16"
    if not isinstance(report, dict):
        raise BadInput(
            f"{origin}: its {key} metadata is damaged (not the JSON report srx writes): make it again with {redo}"
        )
    hp = report.get("high_precision")
    if key == META_INT8 and hp is not None and hp not in HIGH_PRECISIONS:
        raise BadInput(
            f"{origin}: its {key} report names high_precision {hp!r} (srx writes {' or '.join(HIGH_PRECISIONS)}): "
            f"make it again with {redo}"
        )
    return report


def set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set (or replace) metadata entries; the others are kept in their order."""
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def io_signature(proto: onnx.ModelProto) -> list[tuple[str, list[int | str]]]:
    sig = []
    for v in [*proto.graph.input, *proto.graph.output]:
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in v.type.tensor_type.shape.dim]
        sig.append((v.name, dims))
    return sig


# -- reading an srx ONNX back ---------------------------------------------------------------


@dataclass(frozen=True)
class SrxOnnx:
    """What an srx ONNX declares about itself, checked against its graph.

    `model` is the parsed graph when the caller transforms or builds from it
    (`read_srx_onnx(..., keep_model=True)`, and every pass output); None otherwise.
    `path` and `file_bytes` are None for a model that only exists in memory."""

    spec: ModelSpec
    precision: str
    metadata: dict[str, str]
    opset: int
    ir_version: int
    input_dims: list[int | str]
    output_dims: list[int | str]
    nodes: int
    op_counts: dict[str, int]
    dynamic: bool
    path: Path | None = None
    file_bytes: int | None = None
    model: onnx.ModelProto | None = None

    def report(self, key: str) -> dict[str, Any]:
        """A precision pass's report (META_FP16 / META_INT8), checked when the file was read."""
        return precision_report(self.metadata, key, str(self.path or "the model"))

    def graph(self) -> onnx.ModelProto:
        """The parsed model, for the passes and builders that need it."""
        if self.model is None:
            raise ValueError(f"{self.path} was read without its graph: read it with keep_model=True")
        return self.model


class NotSrxModel(BadInput):
    """A readable ONNX that is not an srx image model (no srx.spec, or not lr -> sr): what
    `srx info` can still describe, and what every command that runs a model refuses."""


# One protobuf message cannot exceed 2 GiB, so no single-file ONNX is larger; srx models
# are a few MB. Checked before reading: a huge file named .onnx must not be read into memory.
MAX_ONNX_BYTES = 2**31


def check_onnx_size(p: Path) -> None:
    size = p.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise BadInput(
            f"{p} is {size / 1e9:.1f} GB, larger than any single-file ONNX can be (2 GiB): "
            "it is not an srx model; export it again with srx export"
        )


def external_data_tensors(proto: onnx.ModelProto) -> list[str]:
    """Names of tensors stored outside the file (initializers, Constant nodes, subgraphs).

    srx never writes external data, and refuses it when reading: an untrusted model could
    point its `location` at any file (../../etc/passwd), and whether a runtime rejects that
    depends on its version (onnxruntime added the check in 2025).
    """
    found: list[str] = []

    def tensors(graph: onnx.GraphProto) -> None:
        for t in [*graph.initializer, *(s.values for s in graph.sparse_initializer)]:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
                found.append(t.name or "(unnamed)")
        for node in graph.node:
            for a in node.attribute:
                for t in [a.t, *a.tensors] if a.HasField("t") or a.tensors else []:
                    if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
                        found.append(f"{node.name or node.op_type}.{a.name}")
                for g in [a.g, *a.graphs] if a.HasField("g") or a.graphs else []:
                    tensors(g)

    tensors(proto.graph)
    return found


def check_self_contained(proto: onnx.ModelProto, p: Path) -> None:
    external = external_data_tensors(proto)
    if external:
        raise BadInput(
            f"{p} keeps {len(external)} tensor(s) in external data files ({', '.join(external[:3])}), which srx "
            "does not read: srx models are self-contained; export it again with srx export"
        )


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """Any ONNX file, parsed and checked (size, self-contained, onnx.checker); BadInput otherwise.

    Not yet an srx model: `srx info` shows what a foreign ONNX holds from this."""
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{p} is a folder: give an .onnx file")
    if not p.is_file():
        raise BadInput(f"{p} does not exist or is not a file: check the path")
    kind = file_kind(p)
    if kind == "checkpoint":
        raise BadInput(f"{p} is a checkpoint, not an ONNX model: export it first with 'srx export --weights {p}'")
    if kind == "engine":
        raise BadInput(f"{p} is a TensorRT engine, not an ONNX model: give the .onnx it was built from")
    check_onnx_size(p)
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        raise BadInput(
            f"{p} is not a readable ONNX file ({first_line(e)}): it may be truncated or corrupt; export it again with srx export"
        ) from e
    if not proto.HasField("graph") or not proto.opset_import:
        raise BadInput(
            f"{p} is not an ONNX model (no graph): it may be truncated or not ONNX at all; export it again with srx export"
        )
    check_self_contained(proto, p)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise BadInput(f"{p} is a damaged ONNX model ({first_line(e)}): export it again") from e
    return proto


def read_srx_onnx(path: str | Path, *, keep_model: bool = False) -> SrxOnnx:
    """Load and check an ONNX file written by srx; BadInput with one line otherwise."""
    p = Path(path)
    proto = read_onnx(p)
    return srx_onnx_from_model(proto, origin=str(p), path=p, keep_model=keep_model)


def srx_onnx_from_model(
    proto: onnx.ModelProto, *, origin: str = "the model", path: Path | None = None, keep_model: bool = True
) -> SrxOnnx:
    """Check that a parsed ONNX is an srx image model and describe it (BadInput otherwise).

    The interface: one input `lr`, a 4-D float32 (N, 3, H, W) tensor (initializers listed
    as graph inputs, as old exporters wrote them, do not count), one output `sr`, and an
    `srx.spec`. The precision is the graph's (`graph_precision`); `srx.precision`, when
    present, must say the same."""
    g = proto.graph
    init_names = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in init_names]
    outs = list(g.output)
    meta = metadata(proto)
    not_srx = (
        f"{origin} is an ONNX model but not an srx image model (no {META_SPEC} metadata or no '{INPUT_NAME}' -> "
        f"'{OUTPUT_NAME}' interface): srx reads ONNX files written by 'srx export'"
    )
    if META_SPEC not in meta or len(ins) != 1 or len(outs) != 1:
        raise NotSrxModel(not_srx)
    if ins[0].name != INPUT_NAME or outs[0].name != OUTPUT_NAME:
        raise NotSrxModel(not_srx)
    t = ins[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT or len(t.shape.dim) != 4:
        found = onnx.TensorProto.DataType.Name(t.elem_type).lower() if t.elem_type else "untyped"
        raise BadInput(
            f"{origin}: input '{INPUT_NAME}' is a {len(t.shape.dim)}-D {found} tensor; srx models take a 4-D float32 "
            "(N, 3, H, W) tensor: export it again with srx export"
        )
    try:
        spec = ModelSpec.from_json(meta[META_SPEC])
    except BadInput as e:
        raise BadInput(f"{origin}: {e}") from e
    precision = graph_precision(proto)
    declared = meta.get(META_PRECISION)
    if declared is not None and declared not in PRECISIONS:
        raise BadInput(
            f"{origin}: unknown {META_PRECISION} {declared!r} (srx writes {', '.join(PRECISIONS)}): "
            "export the model again with srx"
        )
    if declared is not None and declared != precision:
        raise BadInput(
            f"{origin} declares {META_PRECISION} {declared} but its graph is {precision} "
            f"({'Q/DQ nodes' if precision == 'int8' else 'float16 tensors' if precision == 'fp16' else 'float32 only'}): "
            "it was changed after srx wrote it; export or convert it again with srx"
        )
    for key in (META_FP16, META_INT8):
        precision_report(meta, key, origin)
    sig = dict(io_signature(proto))
    return SrxOnnx(
        spec=spec,
        precision=precision,
        metadata=meta,
        opset=opset_of(proto),
        ir_version=proto.ir_version,
        input_dims=sig[INPUT_NAME],
        output_dims=sig[OUTPUT_NAME],
        nodes=len(g.node),
        op_counts=dict(Counter(n.op_type for n in g.node).most_common()),
        dynamic=any(isinstance(d, str) for d in sig[INPUT_NAME]),
        path=path,
        file_bytes=path.stat().st_size if path is not None else None,
        model=proto if keep_model else None,
    )


def opset_of(proto: onnx.ModelProto) -> int:
    """The default-domain opset (0 when the model imports none)."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


_QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def graph_precision(proto: onnx.ModelProto) -> str:
    """'int8' for a graph with Q/DQ nodes, 'fp16' for one that holds or casts to float16,
    else 'fp32': what the graph computes in, whatever its metadata says."""
    g = proto.graph
    if any(n.op_type in _QDQ_OPS for n in g.node):
        return "int8"
    half = onnx.TensorProto.FLOAT16
    if any(t.data_type == half for t in g.initializer):
        return "fp16"
    for n in g.node:
        for a in n.attribute:
            if (n.op_type == "Cast" and a.name == "to" and a.i == half) or (a.HasField("t") and a.t.data_type == half):
                return "fp16"
    return "fp32"
