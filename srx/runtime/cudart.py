"""The few CUDA runtime calls TensorRT needs, through cuda-python (no torch, no pycuda).

cuda-python's current module is `cuda.bindings.runtime` (cuda-bindings >= 12.6); the
older `cuda.cudart` (removed in cuda-bindings 13) is accepted for JetPack 6 installs
that pin an older cuda-python. Every call returns (error, results...); `_ok` turns a
non-success error into one RuntimeError that names the call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srx.errors import MissingDependency

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError as e:
            raise MissingDependency(
                "cuda-python", "tensorrt", "TensorRT on a GPU (building and running engines)"
            ) from e
    return cudart


def native_handle(obj: Any) -> int:
    """The integer handle of a cuda-python object (a stream) for TensorRT's execute_async_v3."""
    with contextlib.suppress(ImportError, TypeError):
        from cuda.bindings.utils import get_cuda_native_handle

        return int(get_cuda_native_handle(obj))
    return int(obj)


@dataclass(frozen=True)
class DeviceInfo:
    """A CUDA device as recorded in engine sidecars."""

    name: str
    compute_capability: str  # "8.7"
    memory_mib: int
    multiprocessors: int
    jetson: bool = False
    jetson_release: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def jetson_release() -> str | None:
    """The L4T release line on a Jetson (/etc/nv_tegra_release), else None."""
    try:
        first = TEGRA_RELEASE.read_text(errors="replace").splitlines()[0].strip()
        return first.lstrip("# ").strip() or "unknown"
    except (OSError, IndexError):
        pass
    try:
        model = DEVICE_TREE_MODEL.read_bytes().decode(errors="replace").strip("\x00 \n")
    except OSError:
        return None
    return model if "jetson" in model.lower() else None


def is_jetson() -> bool:
    return jetson_release() is not None


class Cuda:
    """A thin, checked wrapper over cuda-python's runtime API."""

    def __init__(self, cudart: Any | None = None) -> None:
        self.rt = cudart or import_cudart()

    def _ok(self, result: Any, call: str) -> Any:
        if isinstance(result, tuple):
            err, rest = result[0], result[1:]
        else:
            err, rest = result, ()
        if err != self.rt.cudaError_t.cudaSuccess:
            msg = ""
            with contextlib.suppress(Exception):
                msg = self.rt.cudaGetErrorString(err)[1].decode()
            raise RuntimeError(f"CUDA {call} failed: {getattr(err, 'name', err)} {msg}".strip())
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def device_count(self) -> int:
        return int(self._ok(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))

    def set_device(self, index: int) -> None:
        self._ok(self.rt.cudaSetDevice(index), "cudaSetDevice")

    def device(self, index: int = 0) -> DeviceInfo:
        prop = self._ok(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = prop.name
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).split(b"\x00", 1)[0].decode(errors="replace")
        release = jetson_release()
        return DeviceInfo(
            name=str(name).strip(),
            compute_capability=f"{prop.major}.{prop.minor}",
            memory_mib=int(prop.totalGlobalMem) // (1 << 20),
            multiprocessors=int(prop.multiProcessorCount),
            jetson=release is not None,
            jetson_release=release,
        )

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._ok(self.rt.cudaFree(ptr), "cudaFree")

    def stream(self) -> Any:
        return self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def destroy_stream(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def synchronize(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def to_device(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync (to device)")

    def to_host(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync (to host)")

    def event(self) -> Any:
        return self._ok(self.rt.cudaEventCreate(), "cudaEventCreate")

    def record(self, event: Any, stream: Any) -> None:
        self._ok(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def elapsed_ms(self, start: Any, stop: Any) -> float:
        self._ok(self.rt.cudaEventSynchronize(stop), "cudaEventSynchronize")
        return float(self._ok(self.rt.cudaEventElapsedTime(start, stop), "cudaEventElapsedTime"))

    def destroy_event(self, event: Any) -> None:
        self._ok(self.rt.cudaEventDestroy(event), "cudaEventDestroy")
