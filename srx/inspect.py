"""`srx info`: what a checkpoint, ONNX model or engine holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.filekinds import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, file_kind


def describe(path: str | Path, *, param_key: str | None = None, scale: int | None = None) -> dict[str, Any]:
    from srx.modelref import is_shipped

    if is_shipped(path):
        return describe_shipped(str(path), param_key, scale or 4)
    if scale is not None:
        raise BadInput(
            "--scale picks a shipped network's scale (srx info default --scale 2); a file has its own: drop it"
        )
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{p} does not exist: check the path")
    if p.is_dir() and file_kind(p) is None:
        raise BadInput(f"{p} is a folder: give a checkpoint, ONNX model or engine file in it")
    kind = file_kind(p)
    if kind == "checkpoint":
        return describe_checkpoint(p, param_key)
    if kind == "onnx":
        if param_key is not None:
            raise BadInput("--param-key applies to checkpoints, not to ONNX files: drop it")
        return describe_onnx(p)
    if kind == "engine":
        from srx.runtime.sidecar import describe_engine

        return describe_engine(p)
    raise BadInput(
        f"{p}: unknown file type {p.suffix or '(none)'}; srx info reads checkpoints "
        f"({', '.join(CHECKPOINT_SUFFIXES)}), ONNX models (.onnx) and engines ({', '.join(ENGINE_SUFFIXES)}): "
        "give one of those"
    )


def describe_checkpoint(p: Path, param_key: str | None) -> dict[str, Any]:
    from srx.fileio import sha256_file
    from srx.models import model_from_state_dict
    from srx.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(p, param_key)
    model = model_from_state_dict(ckpt.state_dict, origin=str(p), source=p.name, source_sha256=sha256_file(p))
    out = {
        "file": str(p),
        "kind": "checkpoint",
        "format": ckpt.format,
        "param_key": ckpt.param_key,
        "available_keys": list(ckpt.available_keys) if ckpt.param_key else [],
        "spec": model.spec.to_dict(),
    }
    provenance = _safetensors_provenance(p) if ckpt.format == "safetensors" else None
    if provenance:
        out["provenance"] = provenance
        out["details"] = {}
        if "srx.shipped" in provenance:
            sh = provenance["srx.shipped"]
            out["details"]["shipped"] = (
                f"with srx, from {sh.get('source', '?')} (sha256 {str(sh.get('source_sha256', '?'))[:16]}...)"
                + (f"; {sh['license']}" if sh.get("license") else "")
            )
            if sh.get("trained_by"):
                val = sh.get("val") or {}
                out["details"]["trained"] = f"{sh['trained_by']}, {sh.get('iteration')} iterations" + (
                    f"; Set5 (--val) PSNR-Y {val['psnr_y']:.3f} dB" if val.get("psnr_y") else ""
                )
        if "srx.train" in provenance:
            t = provenance["srx.train"]
            best = (t.get("scores") or {}).get("best")
            out["details"]["trained"] = f"srx train, iteration {t.get('iteration')} of {t.get('iters')}" + (
                f"; best --val PSNR-Y {best['psnr_y']:.3f} dB at {best['iteration']}" if best else ""
            )
    return out


def describe_shipped(name: str, param_key: str | None, scale: int) -> dict[str, Any]:
    """A shipped network's file, with its committed srx eval scores and the scales it ships at."""
    from srx.models.defaults import SHIPPED, WEIGHTS, shipped

    entry = shipped(name, scale)
    scales = sorted(e.scale for e in SHIPPED if e.name == name)
    if entry is None and scales and name != "default":
        raise BadInput(f"'{name}' is shipped at {', '.join(f'x{s}' for s in scales)} only, not x{scale}: drop --scale")
    if entry is None:
        # srx info describes files; the seeded network (and the default where none is trained) is not one.
        trained = f" (a trained '{name}' ships at {', '.join(f'x{s}' for s in scales)})" if scales else ""
        raise BadInput(
            f"'{name}' at x{scale} is built from a seed, not read from a file, so srx info has nothing to read"
            f"{trained}: use srx bench --weights {name} --scale {scale} to run it"
        )
    d = describe_checkpoint(WEIGHTS / entry.file, param_key)
    d["spec"]["extra"] = {**d["spec"].get("extra", {}), "name": entry.label}
    d["shipped"] = {
        "name": name,
        "scale": entry.scale,
        "set5_psnr_y": entry.set5_psnr_y,
        "set14_psnr_y": entry.set14_psnr_y,
        "evidence": [entry.evidence, entry.set14_evidence],
        "scales": scales,
    }
    d.setdefault("details", {})["scores"] = f"{entry.scores} ({Path(entry.evidence).parent}/)"
    if len(scales) > 1:
        d["details"]["scales"] = f"'{name}' ships at {', '.join(f'x{s}' for s in scales)} (srx info {name} --scale N)"
    return d


def _safetensors_provenance(p: Path) -> dict[str, Any]:
    """srx's JSON in a safetensors header (srx train's run record, a shipped network's source)."""
    import json

    from safetensors import safe_open

    with safe_open(str(p), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
    out = {}
    for key in ("srx.train", "srx.shipped"):
        try:
            value = json.loads(meta[key]) if key in meta else None
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            out[key] = value
    return out


def describe_onnx(p: Path) -> dict[str, Any]:
    from srx.export.metadata import (
        META_SOURCE,
        META_SOURCE_SHA256,
        META_VERSION,
        META_WEIGHTS_SHA256,
        NotSrxModel,
        read_onnx,
        srx_onnx_from_model,
    )

    proto = read_onnx(p)
    try:
        info = srx_onnx_from_model(proto, origin=str(p), path=p, keep_model=False)
    except NotSrxModel:
        return describe_foreign_onnx(p, proto)
    meta = info.metadata
    dims = [d for d in info.input_dims if isinstance(d, str)]
    out = {
        "file": str(p),
        "kind": "onnx",
        "format": f"ONNX opset {info.opset}, IR version {info.ir_version}",
        "spec": info.spec.to_dict(),
        "onnx": {
            "opset": info.opset,
            "ir_version": info.ir_version,
            "precision": info.precision,
            "dynamic": info.dynamic,
            "dynamic_dims": dims,
            "input": {"name": "lr", "dims": info.input_dims},
            "output": {"name": "sr", "dims": info.output_dims},
            "nodes": info.nodes,
            "op_counts": info.op_counts,
            "bytes": info.file_bytes,
            "metadata": meta,
        },
        "details": {
            "precision": info.precision,
            "shapes": f"lr {_dims(info.input_dims)} -> sr {_dims(info.output_dims)}",
            "dynamic": ", ".join(dims) if dims else "no (static shapes)",
            "opset": f"{info.opset} (IR version {info.ir_version})",
            "nodes": f"{info.nodes:,} ({', '.join(f'{k} {v}' for k, v in list(info.op_counts.items())[:6])}, ...)",
            "exported": f"srx {meta.get(META_VERSION, '?')}",
            "source": meta.get(META_SOURCE) or "-",
            "source sha": meta.get(META_SOURCE_SHA256) or "-",
            "weights": f"sha256 {meta.get(META_WEIGHTS_SHA256) or '-'}",
        },
    }
    from srx.precision.graph import precision_details

    out["details"].update(precision_details(meta))
    out["backends"] = onnx_backends(info.spec, p, info.precision)
    ready = [name for name, why in out["backends"].items() if not why]
    out["details"]["backends"] = f"{', '.join(ready) or 'none'} can run it here (srx upscale / eval / bench --backend)"
    return out


def onnx_backends(spec: Any, path: Path, precision: str) -> dict[str, str]:
    """Each backend that runs ONNX files -> '' if it can run this one here, else why not."""
    from srx.runtime import ModelSource, check_backend
    from srx.runtime.registry import BACKENDS

    source = ModelSource(spec, onnx_path=path, origin=str(path), precision=precision)
    return {
        b.name: check_backend(b.name, b.runs_on("cpu"), source).reason for b in BACKENDS.values() if b.needs == "onnx"
    }


def describe_foreign_onnx(p: Path, proto: Any) -> dict[str, Any]:
    """What srx can say about an ONNX it did not write: its interface, opset, ops, producer."""
    from collections import Counter

    import onnx

    from srx.export import INPUT_NAME, OUTPUT_NAME
    from srx.export.metadata import META_SPEC, io_signature, metadata, opset_of

    init = {i.name for i in proto.graph.initializer}
    sig = dict(io_signature(proto))

    def tensors(values: Any) -> list[dict[str, Any]]:
        kinds = onnx.TensorProto.DataType
        return [
            {"name": v.name, "type": kinds.Name(v.type.tensor_type.elem_type).lower(), "dims": sig.get(v.name, [])}
            for v in values
            if v.name not in init
        ]

    ins, outs = tensors(proto.graph.input), tensors(proto.graph.output)
    ops = dict(Counter(n.op_type for n in proto.graph.node).most_common())
    producer = f"{proto.producer_name} {proto.producer_version}".strip() or "unknown"
    opset, meta = opset_of(proto), metadata(proto)
    missing = [] if META_SPEC in meta else [f"no {META_SPEC} metadata"]
    if [t["name"] for t in ins] != [INPUT_NAME] or [t["name"] for t in outs] != [OUTPUT_NAME]:
        missing.append(f"not one '{INPUT_NAME}' input and one '{OUTPUT_NAME}' output")
    onnx_facts = {"opset": opset, "ir_version": proto.ir_version, "inputs": ins, "outputs": outs}
    onnx_facts.update(nodes=len(proto.graph.node), op_counts=ops, producer=producer, metadata=meta)

    def listed(ts: list[dict[str, Any]]) -> str:
        return "; ".join(f"{t['name']} {t['type']} {_dims(t['dims'])}" for t in ts) or "none"

    return {
        "file": str(p),
        "kind": "onnx",
        "format": f"ONNX opset {opset}, IR version {proto.ir_version}; not an srx model",
        "srx_model": False,
        "onnx": onnx_facts,
        "details": {
            "inputs": listed(ins),
            "outputs": listed(outs),
            "opset": f"{opset} (IR version {proto.ir_version})",
            "nodes": f"{len(proto.graph.node):,} (" + ", ".join(f"{k} {v}" for k, v in list(ops.items())[:6]) + ")",
            "producer": producer,
            "srx": f"cannot run it ({'; '.join(missing)}): srx runs the ONNX files 'srx export' writes",
        },
    }


def _dims(dims: list[Any]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def format_description(d: dict[str, Any]) -> str:
    spec = d.get("spec", {})
    lines = [f"{d['file']}: {d['kind']} ({d.get('format', '')})"]
    if spec:
        from srx.spec import ModelSpec

        s = ModelSpec.from_dict(spec)
        lines += [
            f"  model      {s.label}",
            f"  arch       {s.arch}",
            f"  scale      x{s.scale}",
            f"  config     dim {s.dim}, n_blocks {s.n_blocks}, ffn_scale {s.ffn_scale:g}",
            f"  params     {s.params:,}",
            f"  input      RGB float in [{s.value_range[0]:g}, {s.value_range[1]:g}], "
            f"at least {s.min_size}x{s.min_size}" + (f", multiple of {s.size_multiple}" if s.size_multiple > 1 else ""),
        ]
    if d.get("param_key"):
        lines.append(f"  weights    '{d['param_key']}' (file has: {', '.join(d['available_keys'])})")
    for key, value in d.get("details", {}).items():
        lines.append(f"  {key:<10} {value}")
    return "\n".join(lines)
