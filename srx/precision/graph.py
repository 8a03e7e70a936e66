"""Small graph utilities shared by the precision passes.

srx ONNX files are read and checked by srx.export.metadata (`read_srx_onnx`, `SrxOnnx`).
Node names follow module paths (`feats.3.norm1/ReduceMean`); TorchScript-style names
(`/feats/feats.3/norm1/ReduceMean`) are understood as well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from srx.errors import MissingDependency
from srx.export.metadata import META_FP16, META_INT8

if TYPE_CHECKING:
    import onnx

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
    from srx.export.metadata import precision_report

    for key, label in ((META_FP16, "fp16"), (META_INT8, "int8")):
        d = precision_report(meta, key)
        if not d:
            continue
        if label == "fp16":
            islands = ", ".join(d.get("fp32_modules", [])) or "none"
            out["fp16"] = (
                f"{d.get('fp16_nodes')} nodes FP16, {d.get('fp32_nodes')} FP32 (islands: {islands}); I/O float32"
            )
        else:
            kept = ", ".join(d.get("kept_layers", [])) or "none"
            bits = f", {d['weight_bits']}-bit weights" if d.get("weight_bits", 8) != 8 else ""
            out["int8"] = (
                f"{d.get('int8_layers')} convolutions INT8 (Q/DQ{bits}), kept in {str(d.get('high_precision', '?')).upper()}: "
                f"{kept}; calibrated on {d.get('calibration_images')} crops, held-out drop {d.get('psnr_drop_db')} dB"
            )
    return out
