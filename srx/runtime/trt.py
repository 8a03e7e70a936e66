"""TensorRT and TensorRT-RTX: which module, which version, and what a build must do there.

Pure decisions, no GPU: `plan_build` turns (backend, version, precision, DLA) into the
network flags, builder flags and ONNX variant, following the documented APIs:

* TensorRT 11.x: every network is strongly typed (the STRONGLY_TYPED creation flag is
  deprecated and ignored); the FP16 / INT8 / OBEY_PRECISION_CONSTRAINTS builder flags and
  the INT8 calibrators are removed, so FP16 comes from the ONNX's types and INT8 from
  explicit Q/DQ. DLA returns in 11.4.1 (Jetson AGX Orin with JetPack 7.2.2 or later).
* TensorRT 9.1 - 10.x: strongly typed with the STRONGLY_TYPED flag (same ONNX files as
  11.x). DLA builds use the weakly typed path below (DLA runs FP16 or INT8 only, and
  TensorRT 10.x selects that with builder flags).
* TensorRT 8.6 (JetPack 6.0): no strong typing. FP32 ONNX + FP16 builder flag +
  OBEY_PRECISION_CONSTRAINTS, with the normalisation layers pinned to FP32 by name;
  INT8 is Q/DQ on the FP32 graph plus the INT8 and FP16 flags. Its ONNX parser reads
  opsets up to 17.
* TensorRT-RTX: strongly typed only, builds ahead of time on a CPU; no DLA, no Jetson,
  no timing cache.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from srx.errors import BadInput, MissingDependency

# The TensorRT backends and their Python modules (srx.runtime.registry knows every backend).
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}

STRONG_TYPING_FROM = (9, 1)
ALWAYS_STRONG_FROM = (11, 0)
OLDEST = (8, 6)
DLA_STRONG_FROM = (11, 4, 1)
TRT86_MAX_OPSET = 17


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); anything unparsable -> (0,)."""
    nums = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in nums[:4]) or (0,)


def import_backend(backend: str) -> Any:
    """The Python module for `backend`, or MissingDependency saying how to get it."""
    if backend not in MODULES:
        raise BadInput(f"unknown TensorRT backend {backend!r}: use tensorrt or tensorrt-rtx")
    try:
        return importlib.import_module(MODULES[backend])
    except ImportError as e:
        if backend == "tensorrt-rtx":
            raise MissingDependency("tensorrt-rtx-cu13", "trt-rtx", "building or running TensorRT-RTX engines") from e
        raise MissingDependency("tensorrt", None, "building or running TensorRT engines") from e


def resolve_backend(requested: str) -> str:
    """'auto' -> enterprise TensorRT if importable, else TensorRT-RTX; names are checked."""
    if requested != "auto":
        if requested not in MODULES:
            raise BadInput(f"--backend {requested!r}: use auto, tensorrt or tensorrt-rtx")
        return requested
    for backend in MODULES:
        try:
            importlib.import_module(MODULES[backend])
        except ImportError:
            continue
        return backend
    raise BadInput(
        "no TensorRT is installed: pip install 'srx[trt-rtx]' (TensorRT-RTX, builds on any machine), "
        "or install NVIDIA TensorRT (JetPack on a Jetson)"
    )


@dataclass(frozen=True)
class BuildPlan:
    """What one build does. `onnx` is the ONNX variant the builder parses:
    'fp32', 'fp16' (strongly typed FP16), 'int8' (Q/DQ over the FP16 graph) or
    'int8-fp32' (Q/DQ over the FP32 graph, for weakly typed builds)."""

    backend: str
    version: tuple[int, ...]
    precision: str
    onnx: str
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    clear_flags: tuple[str, ...]
    pin_fp32_layers: bool
    dla_core: int | None
    timing_cache: bool
    max_opset: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def typing(self) -> str:
        return "strongly typed" if self.strongly_typed else "weakly typed (builder precision flags)"


def plan_build(
    backend: str, version: tuple[int, ...], precision: str, *, dla_core: int | None = None, target: str = "gpu"
) -> BuildPlan:
    """The build recipe for a backend version; BadInput for combinations that cannot work."""
    if precision not in ("fp32", "fp16", "int8"):
        raise BadInput(f"unknown precision {precision!r}: use fp32, fp16 or int8")
    v = version
    # Strongly typed, from the ONNX of this precision: what every current backend does.
    strong = BuildPlan(
        backend=backend,
        version=v,
        precision=precision,
        onnx=precision,
        strongly_typed=True,
        network_flags=("STRONGLY_TYPED",),
        builder_flags=(),
        clear_flags=("TF32",) if precision == "fp32" else (),
        pin_fp32_layers=False,
        dla_core=None,
        timing_cache=True,
    )
    if backend == "tensorrt-rtx":
        _check_rtx(dla_core, target)
        notes = ("TensorRT-RTX engines are built ahead of time and specialised for the GPU when first run",)
        return replace(strong, clear_flags=(), timing_cache=False, notes=notes)
    if backend != "tensorrt":
        raise BadInput(f"unknown TensorRT backend {backend!r}: use tensorrt or tensorrt-rtx")
    if v < OLDEST:
        raise BadInput(
            f"TensorRT {'.'.join(map(str, v))} is too old: srx supports TensorRT 8.6 (JetPack 6.0) and newer"
        )
    if dla_core is not None and precision == "fp32":
        raise BadInput("DLA runs FP16 or INT8 only: add --fp16 to use --dla-core")
    dla_flags = ("GPU_FALLBACK",) if dla_core is not None else ()
    if v >= ALWAYS_STRONG_FROM:
        if dla_core is not None and v < DLA_STRONG_FROM:
            raise BadInput(
                f"TensorRT {'.'.join(map(str, v))} has no DLA support (it returned in 11.4.1 for Jetson AGX Orin "
                "with JetPack 7.2.2): drop --dla-core"
            )
        return replace(strong, network_flags=(), builder_flags=dla_flags, dla_core=dla_core)
    if v >= STRONG_TYPING_FROM and dla_core is None:
        return strong
    return _weakly_typed(strong, precision, dla_core, dla_flags)


def _check_rtx(dla_core: int | None, target: str) -> None:
    if dla_core is not None:
        raise BadInput("TensorRT-RTX has no DLA support: drop --dla-core or use --backend tensorrt on a Jetson")
    if target == "jetson":
        raise BadInput(
            "TensorRT-RTX does not run on Jetson: on the device use the TensorRT that JetPack ships (--backend tensorrt)"
        )


def _weakly_typed(strong: BuildPlan, precision: str, dla_core: int | None, dla_flags: tuple[str, ...]) -> BuildPlan:
    """TensorRT 8.6, and DLA builds before 11.x: the FP32 (or Q/DQ-over-FP32) ONNX and builder flags."""
    if dla_core is not None and precision == "int8":
        raise BadInput(
            "INT8 on the DLA with TensorRT 10.x and older needs implicit calibration, which srx does not do: "
            "use --fp16 with --dla-core"
        )
    flags = {"fp32": (), "fp16": ("FP16", "OBEY_PRECISION_CONSTRAINTS")}.get(
        precision, ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
    )
    old = strong.version < (10, 0)
    return replace(
        strong,
        onnx="int8-fp32" if precision == "int8" else "fp32",
        strongly_typed=False,
        network_flags=("EXPLICIT_BATCH",) if old else (),
        builder_flags=flags + dla_flags,
        pin_fp32_layers=precision != "fp32",
        dla_core=dla_core,
        max_opset=TRT86_MAX_OPSET if old else None,
        notes=("weakly typed build: normalisation layers pinned to FP32 by name",) if precision != "fp32" else (),
    )


def network_flag_bits(trt: Any, names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        flag = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if flag is None:
            raise RuntimeError(f"this TensorRT has no NetworkDefinitionCreationFlag.{name}")
        bits |= 1 << int(flag)
    return bits


def builder_flag(trt: Any, name: str) -> Any:
    flag = getattr(trt.BuilderFlag, name, None)
    if flag is None:
        raise RuntimeError(f"this TensorRT has no BuilderFlag.{name}")
    return flag
