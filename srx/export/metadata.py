"""srx metadata in ONNX files: writing it, and reading an srx ONNX back (no torch needed).

Keys (all values are strings): srx.spec (ModelSpec JSON), srx.version, srx.source,
srx.source_sha256 (checkpoint file), srx.weights_sha256 (the weights themselves),
srx.precision (fp32 for `srx export`), srx.dynamic (true/false), srx.opset,
srx.input_shape (e.g. "batch,3,height,width" or "1,3,180,320").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx

from srx.errors import BadInput
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.spec import ModelSpec

META_SPEC = "srx.spec"
META_VERSION = "srx.version"
META_SOURCE = "srx.source"
META_SOURCE_SHA256 = "srx.source_sha256"
META_WEIGHTS_SHA256 = "srx.weights_sha256"
META_PRECISION = "srx.precision"
META_DYNAMIC = "srx.dynamic"
META_OPSET = "srx.opset"
META_INPUT_SHAPE = "srx.input_shape"


def set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
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
    """What an srx-exported ONNX declares about itself."""

    path: str
    spec: ModelSpec
    metadata: dict[str, str]
    opset: int
    ir_version: int
    input_dims: list[int | str]
    output_dims: list[int | str]
    nodes: int
    op_counts: dict[str, int]
    precision: str
    dynamic: bool
    file_bytes: int


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


def read_srx_onnx(path: str | Path) -> SrxOnnx:
    """Load and check an ONNX file written by srx; BadInput with one line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p} does not exist or is not a file: check the path")
    check_onnx_size(p)
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        raise BadInput(
            f"{p} is not a readable ONNX file ({_first_line(e)}): it may be truncated or corrupt; export it again with srx export"
        ) from e
    if not proto.HasField("graph") or not proto.opset_import:
        raise BadInput(
            f"{p} is not an ONNX model (no graph): it may be truncated or not ONNX at all; export it again with srx export"
        )
    check_self_contained(proto, p)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise BadInput(f"{p} is a damaged ONNX model ({_first_line(e)}): export it again") from e
    meta = metadata(proto)
    ins, outs = list(proto.graph.input), list(proto.graph.output)
    if (
        META_SPEC not in meta
        or len(ins) != 1
        or len(outs) != 1
        or ins[0].name != INPUT_NAME
        or outs[0].name != OUTPUT_NAME
    ):
        raise BadInput(
            f"{p} is an ONNX model but not an srx image model (no {META_SPEC} metadata or no '{INPUT_NAME}' -> "
            f"'{OUTPUT_NAME}' interface): srx reads ONNX files written by 'srx export'"
        )
    try:
        spec = ModelSpec.from_json(meta[META_SPEC])
    except BadInput as e:
        raise BadInput(f"{p}: {e}") from e
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    sig = dict(io_signature(proto))
    return SrxOnnx(
        path=str(p),
        spec=spec,
        metadata=meta,
        opset=opset,
        ir_version=proto.ir_version,
        input_dims=sig[INPUT_NAME],
        output_dims=sig[OUTPUT_NAME],
        nodes=len(proto.graph.node),
        op_counts=dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        precision=meta.get(META_PRECISION, "unknown"),
        dynamic=any(isinstance(d, str) for d in sig[INPUT_NAME]),
        file_bytes=p.stat().st_size,
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__
