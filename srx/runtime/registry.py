"""The backends srx knows, what each needs, and whether it can run here (torch-free).

Every name in docs/cli.md#backends is registered here, so an unavailable backend is reported as
skipped with its reason, never dropped. A backend is a name, a precision, where it runs,
which model form it consumes, a cheap availability check and the dotted path of its
Runner class (imported only when a runner is opened). New runners plug in with
`register_backend` (or by editing their entry below):

    register_backend(Backend(
        name="tensorrt", precision="engine", device="cuda", needs="engine",
        runner="srx.runtime.tensorrt_runner:TensorRTRunner",
        check=my_check,           # (device, source) -> Availability; no heavy imports
        summary="TensorRT engine"))
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from srx.errors import BadInput, install_hint
from srx.runtime.base import Availability
from srx.runtime.device import NO_GPU, has_cuda

if TYPE_CHECKING:
    from srx.runtime.base import Runner
    from srx.runtime.source import ModelSource

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Backend:
    """name: as in docs/cli.md#backends. device: 'cpu' or 'cuda' (fixed), or 'any' (follows --device).
    needs: the model form it runs ('torch', 'onnx', 'engine'). default_on: devices whose
    default `srx bench` includes it; `not_default_reason` says why elsewhere."""

    name: str
    precision: str
    device: str
    needs: str
    runner: str
    check: Callable[[str, ModelSource | None], Availability]
    summary: str
    default_on: tuple[str, ...] = DEVICES
    not_default_reason: str = ""
    peer: bool = False

    def runs_on(self, device: str) -> str:
        return device if self.device == "any" else self.device


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing(package: str, extra: str | None) -> Availability:
    return Availability.no(f"Python package '{package}' is not installed ({install_hint(package, extra)})")


# -- availability checks: cheap, no heavy import unless the answer needs one -----------------


def _check_torch(device: str, source: ModelSource | None) -> Availability:
    if not _installed("torch"):
        return _missing("torch", None)
    if source is not None and not source.has_module:
        return Availability.no(f"runs the PyTorch model; {source.origin} is an exported file: pass --weights")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return Availability.no(
                NO_GPU if not has_cuda() else "this PyTorch build has no CUDA support: install a CUDA PyTorch"
            )
    return Availability.yes()


def _check_torch_graph(device: str, source: ModelSource | None) -> Availability:
    if device != "cuda":
        return Availability.no("CUDA graphs need a CUDA GPU; on the CPU the eager rows are torch and torch-fp16")
    return _check_torch(device, source)


def _check_torch_compile(device: str, source: ModelSource | None) -> Availability:
    base = _check_torch(device, source)
    if not base.ok or device != "cpu":
        return base
    # Inductor writes C++ for the CPU and compiles it at the first run.
    import os
    import shutil

    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return Availability.no("torch.compile on the CPU needs a C++ compiler (g++ or clang++) on PATH")
    return base


def _check_torch_fused(device: str, source: ModelSource | None) -> Availability:
    if device != "cuda":
        return Availability.no("needs a CUDA GPU and triton (the fused kernels are Triton GPU kernels)")
    base = _check_torch(device, source)
    if not base.ok:
        return base
    if not _installed("triton"):
        return _missing("triton", "kernels")
    try:
        kernels = importlib.import_module("srx.kernels")
    except ImportError as e:
        return Availability.no(f"srx.kernels cannot be imported ({e})")
    if not hasattr(kernels, "fuse"):
        return Availability.no("srx.kernels has no fuse() in this build")
    return Availability.yes()


def _check_onnx_source(source: ModelSource | None) -> Availability:
    if source is None:
        return Availability.yes()
    reason = source.onnx_unavailable_reason()
    return Availability.no(reason) if reason else Availability.yes()


def _check_ort_cpu(device: str, source: ModelSource | None) -> Availability:
    if not _installed("onnxruntime"):
        return _missing("onnxruntime", "cpu")
    return _check_onnx_source(source)


def _check_ort_cuda(device: str, source: ModelSource | None) -> Availability:
    # No GPU is the reason that matters first: installing a package would not help.
    if not has_cuda():
        return Availability.no(NO_GPU)
    if not _installed("onnxruntime"):
        return _missing("onnxruntime-gpu", "gpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return Availability.no(
            "this onnxruntime has no CUDA execution provider: pip install onnxruntime-gpu (instead of onnxruntime)"
        )
    return _check_onnx_source(source)


def _check_openvino(device: str, source: ModelSource | None) -> Availability:
    if not _installed("openvino"):
        return _missing("openvino", "openvino")
    return _check_onnx_source(source)


def _cpu_lacks(capability: str) -> bool:
    from srx.runtime.openvino_runner import cpu_capabilities

    return capability not in cpu_capabilities()


def _check_openvino_bf16(device: str, source: ModelSource | None) -> Availability:
    base = _check_openvino(device, source)
    if base.ok and _cpu_lacks("BF16"):
        return Availability.no(
            "this CPU has no native bfloat16 (AVX512_BF16 or AMX), where OpenVINO's BF16 would be emulated: use openvino"
        )
    return base


def _check_openvino_int8(device: str, source: ModelSource | None) -> Availability:
    base = _check_openvino(device, source)
    if not base.ok:
        return base
    if source is not None and source.precision != "int8":
        from srx.runtime.openvino_runner import has_int8_dot_product

        # Without VNNI an 8-bit file would run emulated here (srx.runtime.openvino_graph).
        bits = "" if has_int8_dot_product() else " --weight-bits 7 (this CPU has no VNNI)"
        return Availability.no(
            f"runs an INT8 Q/DQ ONNX: make one with srx quantize MODEL.onnx --calib-dir TRAINING_IMAGES{bits} "
            "and pass --model MODEL.int8.onnx (with --weights for the FP32 reference)"
        )
    return base


def _check_tensorrt(module: str, package: str, extra: str | None, runner_module: str) -> Callable[..., Availability]:
    def check(device: str, source: ModelSource | None) -> Availability:
        if not has_cuda():
            return Availability.no(NO_GPU)
        if not _installed(module):
            return _missing(package, extra)
        if not _installed("cuda.bindings") and not _installed("cuda.cudart"):
            return _missing("cuda-python", "gpu")
        if not _installed(runner_module):
            return Availability.no(f"the {package} runner ({runner_module}) is not in this build of srx")
        return Availability.yes()

    return check


_CPU_ONLY_DEFAULT = ("cpu",)
_CUDA_ONLY_DEFAULT = ("cuda",)

BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, *, replace: bool = False) -> None:
    if backend.name in BACKENDS and not replace:
        raise ValueError(f"backend {backend.name!r} is already registered")
    BACKENDS[backend.name] = backend


_FP16_ON_CPU = "FP16 is a GPU path (PyTorch computes FP16 convolutions on the CPU slower than FP32)"

for _b in (
    Backend(
        "torch",
        "fp32",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchRunner",
        _check_torch,
        "PyTorch eager FP32 (the paper's protocol)",
        peer=True,
    ),
    Backend(
        "torch-fp16",
        "fp16",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchFP16Runner",
        _check_torch,
        "PyTorch eager, weights and activations in FP16",
        default_on=_CUDA_ONLY_DEFAULT,
        not_default_reason=_FP16_ON_CPU,
        peer=True,
    ),
    Backend(
        "torch-fp16-graph",
        "fp16",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchFP16GraphRunner",
        _check_torch_graph,
        "PyTorch eager FP16 replayed as a CUDA graph per input shape",
        default_on=_CUDA_ONLY_DEFAULT,
        not_default_reason="CUDA graphs need a GPU",
        peer=True,
    ),
    Backend(
        "torch-compile",
        "fp32",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchCompileRunner",
        _check_torch_compile,
        "torch.compile (inductor), FP32; on the CPU channels_last + freezing",
        default_on=_CPU_ONLY_DEFAULT,
        not_default_reason="on a GPU the default compiled row is torch-compile-fp16 (FP16, reduce-overhead)",
        peer=True,
    ),
    Backend(
        "torch-compile-fp16",
        "fp16",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchCompileFP16Runner",
        _check_torch_compile,
        "torch.compile (inductor) of the FP16 model, mode reduce-overhead on CUDA",
        default_on=_CUDA_ONLY_DEFAULT,
        not_default_reason=_FP16_ON_CPU,
        peer=True,
    ),
    Backend(
        "torch-fused",
        "fp16",
        "any",
        "torch",
        "srx.runtime.torch_runner:TorchFusedRunner",
        _check_torch_fused,
        "srx's fused Triton kernels (srx.kernels.fuse), FP16, a CUDA graph per input shape",
    ),
    Backend(
        "onnxruntime",
        "fp32",
        "cpu",
        "onnx",
        "srx.runtime.ort_runner:OrtCPURunner",
        _check_ort_cpu,
        "onnxruntime, CPU execution provider",
        default_on=_CPU_ONLY_DEFAULT,
        not_default_reason="the CPU execution provider is not compared on a GPU by default",
    ),
    Backend(
        "openvino",
        "fp32",
        "cpu",
        "onnx",
        "srx.runtime.openvino_runner:OpenVINORunner",
        _check_openvino,
        "OpenVINO on the CPU, the ONNX's own precision (FP32; INT8 for a Q/DQ ONNX)",
        default_on=_CPU_ONLY_DEFAULT,
        not_default_reason="OpenVINO runs on the CPU; not compared on a GPU by default",
    ),
    Backend(
        "openvino-bf16",
        "bf16",
        "cpu",
        "onnx",
        "srx.runtime.openvino_runner:OpenVINOBF16Runner",
        _check_openvino_bf16,
        "OpenVINO on the CPU in bfloat16 (AVX512_BF16 / AMX)",
        default_on=_CPU_ONLY_DEFAULT,
        not_default_reason="OpenVINO runs on the CPU; not compared on a GPU by default",
    ),
    Backend(
        "openvino-int8",
        "int8",
        "cpu",
        "onnx",
        "srx.runtime.openvino_runner:OpenVINOINT8Runner",
        _check_openvino_int8,
        "OpenVINO on the CPU: an INT8 Q/DQ ONNX (srx quantize), the rest in bfloat16 where the CPU has it",
        default_on=_CPU_ONLY_DEFAULT,
        not_default_reason="OpenVINO runs on the CPU; not compared on a GPU by default",
    ),
    Backend(
        "onnxruntime-cuda",
        "fp32",
        "cuda",
        "onnx",
        "srx.runtime.ort_runner:OrtCUDARunner",
        _check_ort_cuda,
        "onnxruntime, CUDA execution provider",
    ),
    Backend(
        "tensorrt",
        "engine",
        "cuda",
        "engine",
        "srx.runtime.tensorrt_runner:TensorRTRunner",
        _check_tensorrt("tensorrt", "tensorrt", None, "srx.runtime.tensorrt_runner"),
        "TensorRT engine (numpy + tensorrt + cuda-python, no torch)",
    ),
    Backend(
        "tensorrt-rtx",
        "engine",
        "cuda",
        "engine",
        "srx.runtime.tensorrt_runner:TensorRTRTXRunner",
        _check_tensorrt("tensorrt_rtx", "tensorrt-rtx-cu13", "trt-rtx", "srx.runtime.tensorrt_runner"),
        "TensorRT-RTX engine (RTX GPUs)",
    ),
):
    register_backend(_b)


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BadInput(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]


def parse_backends(text: str) -> list[str]:
    """'torch,onnxruntime' -> names, checked; 'all' -> every backend."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInput("--backends is empty: give names such as torch,onnxruntime (or 'all')")
    if names == ["all"]:
        return backend_names()
    for n in names:
        get_backend(n)
    return list(dict.fromkeys(names))


def default_backends(device: str) -> list[str]:
    return [b.name for b in BACKENDS.values() if device in b.default_on]


def check_backend(name: str, device: str, source: ModelSource | None = None) -> Availability:
    """Can backend `name` run with `--device device` on `source` here? Never raises for a known name."""
    b = get_backend(name)
    where = b.runs_on(device)
    if source is not None and engine_mismatch(name, source):
        # The engine's sidecar decides; whether this backend is installed does not matter.
        return Availability.no(engine_mismatch(name, source))
    try:
        avail = b.check(where, source)
    except Exception as e:  # a broken optional install must not take the whole bench down
        return Availability.no(f"availability check failed: {type(e).__name__}: {e}")
    if not avail.ok:
        return avail
    if source is not None:
        if b.needs == "engine" and source.kind != "engine":
            return Availability.no("runs a prebuilt engine: build one with srx build-engine and pass --model ENGINE")
        if b.needs in ("onnx", "torch") and source.kind == "engine":
            return Availability.no(f"runs {'an ONNX model' if b.needs == 'onnx' else 'PyTorch weights'}, not an engine")
    if where != device:
        # It could run, but on the other device than this run measures.
        target = "the GPU" if where == "cuda" else "the CPU"
        return Availability.no(f"runs on {target}; this run is --device {device}: use --device {where}")
    return avail


def engine_mismatch(name: str, source: ModelSource) -> str:
    """Why backend `name` cannot run `source`'s engine because another backend built it ('' if it can)."""
    built = source.engine_backend
    if get_backend(name).needs != "engine" or source.kind != "engine" or built in (None, name):
        return ""
    return f"{source.origin} was built with {built}, not {name}: run it with the {built} backend"


def runner_class(name: str) -> type[Runner]:
    b = get_backend(name)
    module, _, attr = b.runner.partition(":")
    return getattr(importlib.import_module(module), attr)


def open_runner(name: str, source: ModelSource, device: str = "cpu", **options: Any) -> Runner:
    """A runner for backend `name`, checked and not yet activated: use it in a `with` block.

    Raises BadInput with the reason when the backend cannot run here.
    """
    avail = check_backend(name, device, source)
    if not avail.ok:
        raise BadInput(f"backend {name} cannot run: {avail.reason}")
    return runner_class(name)(source, get_backend(name).runs_on(device), **options)


def auto_backend(source: ModelSource, device: str, *, varied_shapes: bool = False) -> str:
    """The backend `--backend auto` picks: the fastest exact one that can run.

    On the CPU OpenVINO FP32 (outputs within 1 gray level of onnxruntime's), then
    onnxruntime: in `srx upscale` as a user runs it OpenVINO took 4.7 s against 5.4 s for one
    640x360 image, 9.9 s against 10.1 s for four images of four sizes and 49.6 s against
    56.7 s for a 1280x720 image in 256-pixel tiles (bench/upscale_backends.py,
    bench/results/2026-12-06-cpu-openvino). Not torch-compile, although faster per frame
    (docs/bench.md): it compiles again for every new image size, which costs more than it
    saves on a folder of photos. `varied_shapes`: inputs of many sizes in one process
    (a server, a dataset): onnxruntime first, whose one dynamic session takes any size,
    where OpenVINO compiles per size. PyTorch on a GPU; for an engine, the backend its
    sidecar says built it. When none can run, the last candidate, so that open_runner says why."""
    cpu = ["onnxruntime", "openvino"] if varied_shapes else ["openvino", "onnxruntime"]
    candidates = ["torch"] if device == "cuda" else [*cpu, "torch"]
    if source.kind == "engine":
        candidates = [source.engine_backend or "tensorrt"]
    elif source.kind == "onnx" and not source.has_module:
        candidates = ["onnxruntime-cuda", *cpu] if device == "cuda" else cpu
    for name in candidates:
        if check_backend(name, device, source).ok:
            return name
    return candidates[-1]
