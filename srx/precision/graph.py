"""Reading srx ONNX models and small graph utilities shared by the precision passes.

An srx ONNX model (CLI.md) has one input `lr` (N, 3, H, W) float, one output `sr`, and
metadata `srx.spec` (the ModelSpec as JSON) and `srx.precision`. Node names follow
module paths (`feats.3.norm1/ReduceMean`); TorchScript-style names
(`/feats/feats.3/norm1/ReduceMean`) are understood as well.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srx.errors import BadInput, MissingDependency
from srx.spec import ModelSpec

if TYPE_CHECKING:
    import onnx

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
PRECISIONS = ("fp32", "fp16", "int8")

META_SPEC = "srx.spec"
META_PRECISION = "srx.precision"

# Module names of normalisation layers in the SAFMN family: `norm1`/`norm2` (the paper
# model's channel LayerNorms) and `norm` (team15's GRN).
_NORM_MODULE = re.compile(r"^norm\d*$")


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise MissingDependency("onnx", "cpu", "reading ONNX models") from e
    return onnx


def check_pass_output(model: onnx.ModelProto, what: str) -> None:
    """A graph pass must leave a valid, fully shape-inferable model; a failure is srx's bug."""
    onnx = import_onnx()
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise RuntimeError(f"the {what} pass produced an invalid graph: {e}") from e


@dataclass
class SrxOnnx:
    """An srx ONNX model with its descriptor."""

    model: onnx.ModelProto
    spec: ModelSpec
    precision: str
    path: Path | None = None

    @property
    def opset(self) -> int:
        return opset_of(self.model)

    def metadata(self) -> dict[str, str]:
        return {p.key: p.value for p in self.model.metadata_props}


def opset_of(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def load_srx_onnx(path: str | Path) -> SrxOnnx:
    """Read an ONNX file and check it is an srx image model; BadInput with what to do otherwise."""
    onnx = import_onnx()
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{p} does not exist: check the path")
    if p.is_dir():
        raise BadInput(f"{p} is a folder: give an .onnx file")
    from srx.export.metadata import check_onnx_size, check_self_contained

    check_onnx_size(p)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise BadInput(f"{p} is not a readable ONNX model ({first}); export one with 'srx export'") from e
    check_self_contained(model, p)
    return srx_onnx_from_model(model, origin=str(p), path=p)


def srx_onnx_from_model(model: onnx.ModelProto, *, origin: str = "model", path: Path | None = None) -> SrxOnnx:
    onnx = import_onnx()
    g = model.graph
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    hint = "export it with 'srx export'"
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or len(g.output) != 1 or g.output[0].name != OUTPUT_NAME:
        names = ", ".join(i.name for i in inputs) or "none"
        raise BadInput(
            f"{origin} is not an srx image model: expected one input 'lr' and one output 'sr', found inputs {names}; {hint}"
        )
    t = inputs[0].type.tensor_type
    if t.elem_type != onnx.TensorProto.FLOAT or len(t.shape.dim) != 4:
        raise BadInput(f"{origin}: input 'lr' must be a 4-D float32 tensor (N, 3, H, W); {hint}")
    meta = {p.key: p.value for p in model.metadata_props}
    if META_SPEC not in meta:
        raise BadInput(f"{origin} has no 'srx.spec' metadata (not made by srx); {hint}")
    spec = ModelSpec.from_json(meta[META_SPEC])
    precision = meta.get(META_PRECISION, "fp32")
    if precision not in PRECISIONS:
        raise BadInput(f"{origin}: unknown srx.precision {precision!r}; re-export the model with srx")
    return SrxOnnx(model=model, spec=spec, precision=precision, path=path)


def set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


def module_path(node_name: str) -> str:
    """`feats.3.norm1/ReduceMean` -> `feats.3.norm1`; `/feats/feats.3/norm1/Pow` -> `feats.3.norm1`.

    TorchScript-style scopes repeat each parent (`/feats/feats.3/`): keep the last
    component of each nesting level that extends the previous one.
    """
    name = node_name.strip("/")
    if "/" not in name:
        return ""
    scopes = name.split("/")[:-1]
    path = ""
    for s in scopes:
        if path and s.startswith(path + "."):
            path = s
        elif path:
            path = f"{path}.{s}"
        else:
            path = s
    return path


def in_norm_module(node_name: str) -> bool:
    """True if the node belongs to a normalisation module (LayerNorm norm1/norm2 or GRN norm)."""
    path = module_path(node_name)
    return any(_NORM_MODULE.match(part) for part in path.split(".")) if path else False


def metadata_json(model: onnx.ModelProto, key: str) -> dict[str, Any]:
    for p in model.metadata_props:
        if p.key == key:
            try:
                value = json.loads(p.value)
            except json.JSONDecodeError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor name the graph knows (inputs, initializers, inferred values)."""
    onnx = import_onnx()
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=False)
    except Exception:
        inferred = model
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    return types


def fold_constants_to_initializers(model: onnx.ModelProto) -> None:
    """Turn `Constant` nodes holding a tensor into initializers (the passes retype those in place)."""
    g = model.graph
    keep = []
    for node in g.node:
        value = next((a for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is None:
            keep.append(node)
            continue
        t = type(value.t)()
        t.CopyFrom(value.t)
        t.name = node.output[0]
        g.initializer.append(t)
    del g.node[:]
    g.node.extend(keep)


def save_model_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


def precision_details(meta: dict[str, str]) -> dict[str, str]:
    """Lines for `srx info` on an FP16 / INT8 ONNX, from the passes' metadata."""
    out: dict[str, str] = {}
    for key, label in (("srx.fp16", "fp16"), ("srx.int8", "int8")):
        try:
            d = json.loads(meta.get(key, "") or "{}")
        except json.JSONDecodeError:
            continue
        if not isinstance(d, dict) or not d:
            continue
        if label == "fp16":
            islands = ", ".join(d.get("fp32_modules", [])) or "none"
            out["fp16"] = (
                f"{d.get('fp16_nodes')} nodes FP16, {d.get('fp32_nodes')} FP32 (islands: {islands}); I/O float32"
            )
        else:
            kept = ", ".join(d.get("kept_layers", [])) or "none"
            out["int8"] = (
                f"{d.get('int8_layers')} convolutions INT8 (Q/DQ), kept in {str(d.get('high_precision', '?')).upper()}: "
                f"{kept}; calibrated on {d.get('calibration_images')} crops, held-out drop {d.get('psnr_drop_db')} dB"
            )
    return out
