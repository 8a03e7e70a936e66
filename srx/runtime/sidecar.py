"""Engine sidecars and the engine guard.

A TensorRT engine is an opaque binary tied to the TensorRT version and the GPU that
built it. srx writes `NAME.engine.json` next to every engine: the ModelSpec, precision,
profile, backend and version, the device (name and compute capability; for TensorRT-RTX
built on a CPU, the ahead-of-time targets), the sha256 of the engine and of the ONNX it
was built from, and the srx version. Both files are written atomically as a pair.

Before deserialising, `check_engine` compares the sidecar with the running TensorRT and
GPU and fails with one line saying what to rebuild: deserialising a foreign engine
either fails deep inside TensorRT or, worse, loads and misbehaves. Engines are untrusted
binary blobs (a plan can carry plugin and host code); the sidecar is a consistency check,
not a signature: only load engines you built or trust.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.fileio import atomic_path, check_writable, sha256_file
from srx.runtime.trt import parse_version
from srx.spec import ModelSpec

FORMAT = "srx-engine"
FORMAT_VERSION = 1


def sidecar_path(engine: str | Path) -> Path:
    p = Path(engine)
    return p.with_name(p.name + ".json")


def write_engine_pair(engine: str | Path, data: bytes, sidecar: dict[str, Any]) -> None:
    """Write the engine and its sidecar; on any failure neither is left behind (as new files)."""
    engine = Path(engine)
    side = sidecar_path(engine)
    check_writable(engine)
    check_writable(side)
    text = json.dumps(sidecar, indent=2) + "\n"
    # Both go to temporary files first; the engine is renamed into place, then the sidecar
    # (a rename within one folder). An interruption before that leaves neither.
    with atomic_path(side) as tmp_side, atomic_path(engine) as tmp_engine:
        _write(tmp_engine, data, engine)
        _write(tmp_side, text.encode(), side)


def _write(tmp: Path, data: bytes, dest: Path) -> None:
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise BadInput(f"cannot write {dest}: {e.strerror or e}; free some space or choose another -o") from e


def read_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar of `engine`; BadInput if it is missing or not an srx sidecar."""
    p = Path(engine)
    side = sidecar_path(p)
    if not side.is_file():
        raise BadInput(
            f"{p} has no sidecar {side.name} next to it: srx refuses engines it cannot check (device, TensorRT "
            "version); rebuild it with 'srx build-engine', which writes both"
        )
    try:
        d = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"{side} is not readable JSON ({e}): rebuild the engine with 'srx build-engine'") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise BadInput(f"{side} is not an srx engine sidecar: rebuild the engine with 'srx build-engine'")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise BadInput(f"{side} was written by a newer srx (format {d.get('format_version')}): upgrade srx")
    return d


def spec_of(sidecar: dict[str, Any]) -> ModelSpec:
    return ModelSpec.from_dict(sidecar.get("spec") or {})


def check_engine(
    engine: str | Path,
    sidecar: dict[str, Any],
    *,
    backend: str,
    backend_version: str,
    device: Any | None,
) -> None:
    """Refuse an engine that was not built for this backend, TensorRT version and GPU.

    `device` is a srx.runtime.cudart.DeviceInfo (or None when unknown); BadInput on any
    mismatch, naming both sides and what to do.
    """
    p = Path(engine)
    rebuild = f"rebuild it here with 'srx build-engine' from the ONNX ({sidecar.get('source_onnx', 'the ONNX model')})"
    want = sidecar.get("engine_sha256")
    if want and sha256_file(p) != want:
        raise BadInput(f"{p} does not match its sidecar (the engine file was replaced or damaged): {rebuild}")
    built_backend = sidecar.get("backend")
    if built_backend != backend:
        raise BadInput(f"{p} was built with {built_backend}, not {backend}: run it with the {built_backend} backend")
    built = str(sidecar.get("backend_version", ""))
    if parse_version(built) != parse_version(backend_version):
        name = "TensorRT-RTX" if backend == "tensorrt-rtx" else "TensorRT"
        raise BadInput(
            f"{p} was built with {name} {built} but this is {name} {backend_version}; engines load only in the "
            f"version that built them: {rebuild}"
        )
    if device is None:
        return
    dev = sidecar.get("device") or {}
    if backend == "tensorrt-rtx":
        targets = dev.get("compute_capabilities")
        if isinstance(targets, list) and targets and device.compute_capability not in targets:
            raise BadInput(
                f"{p} was built for compute capabilities {', '.join(targets)}; this GPU ({device.name}) is "
                f"{device.compute_capability}: {rebuild}"
            )
        return
    cc, name = dev.get("compute_capability"), dev.get("name")
    if cc and cc != device.compute_capability:
        raise BadInput(
            f"{p} was built on {name} (compute capability {cc}); this is {device.name} "
            f"(compute capability {device.compute_capability}): {rebuild}"
        )
    if name and name != device.name:
        raise BadInput(f"{p} was built on {name}; this is {device.name}: TensorRT engines are tuned per GPU: {rebuild}")


def describe_engine(path: str | Path) -> dict[str, Any]:
    """What `srx info` shows for an engine file: its sidecar, or that it has none."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"{p} does not exist or is not a file: check the path")
    out: dict[str, Any] = {"file": str(p), "kind": "engine", "format": "TensorRT engine", "bytes": p.stat().st_size}
    try:
        side = read_sidecar(p)
    except BadInput as e:
        out["sidecar"] = None
        out["details"] = {"sidecar": str(e)}
        return out
    out["sidecar"] = side
    out["spec"] = side.get("spec", {})
    prof = side.get("profile", {})
    dev = side.get("device") or {}
    device = dev.get("name") or "none (built ahead of time)"
    if dev.get("compute_capability"):
        device += f", compute capability {dev['compute_capability']}"
    targets = dev.get("compute_capabilities")
    if targets:
        device += f"; targets {', '.join(targets) if isinstance(targets, list) else targets}"
    out["details"] = {
        "precision": side.get("precision", "?"),
        "backend": f"{side.get('backend')} {side.get('backend_version')} ({side.get('network', '')})",
        "profile": f"{prof.get('min')} .. {prof.get('max')}, opt {prof.get('opt')}, batch {prof.get('batch')}",
        "device": device,
        "target": side.get("target", "gpu")
        + (f", DLA core {side['dla_core']}" if side.get("dla_core") is not None else ""),
        "built": f"{side.get('created', '?')} by srx {side.get('srx_version', '?')} in {side.get('build_seconds', '?')} s",
        "onnx": _built_from(side),
    }
    return out


def _built_from(side: dict[str, Any]) -> str:
    """The ONNX the engine was built from: the FP16 / Q/DQ ONNX build-engine wrote, or the given one."""
    made = side.get("precision_onnx")
    if made:
        precision = str(side.get("precision", "")).upper()
        return f"{made} (sha256 {str(side.get('onnx_sha256', ''))[:12]}...), the {precision} ONNX made from {side.get('source_onnx')}"
    return f"{side.get('source_onnx')} (sha256 {str(side.get('source_onnx_sha256', ''))[:12]}...)"
