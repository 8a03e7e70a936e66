"""What hardware this process can use, found without torch (ctypes on the CUDA driver).

`cuda_devices()` asks libcuda directly, so availability checks work on a Jetson or a
TensorRT-only install as well as with a CPU-only torch.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from typing import Any


@functools.lru_cache(maxsize=1)
def cuda_devices() -> tuple[str, ...]:
    """Names of the visible CUDA devices; empty when there is no driver or no device."""
    names = {"linux": ("libcuda.so.1", "libcuda.so"), "win32": ("nvcuda.dll",)}.get(sys.platform, ())
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if lib.cuInit(0) != 0:
            return ()
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return ()
        out = []
        for i in range(count.value):
            dev = ctypes.c_int(0)
            buf = ctypes.create_string_buffer(256)
            if lib.cuDeviceGet(ctypes.byref(dev), i) == 0 and lib.cuDeviceGetName(buf, 256, dev) == 0:
                out.append(buf.value.decode(errors="replace"))
        return tuple(out)
    return ()


def has_cuda() -> bool:
    return bool(cuda_devices())


NO_GPU = "needs a CUDA GPU; none is visible on this machine"


def cpu_count() -> int:
    """CPUs this process may run on (respects taskset / cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model and the SIMD / matrix features that decide which kernels run (AVX-512, VNNI, AMX)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                if model and flags:
                    break
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile")
    wanted += ("amx_bf16", "amx_int8")
    return {"model": model, "cpus": cpu_count(), "flags": [f for f in wanted if f in flags]}


def device_info(device: str) -> dict[str, Any]:
    """The `device` record of a measurement (docs/cli.md#srx-bench: device{name, ...})."""
    cpu = cpu_info()
    info: dict[str, Any] = {"kind": device, "cpu": cpu["model"], "cpus": cpu["cpus"], "cpu_flags": cpu["flags"]}
    info["os"] = f"{platform.system()} {platform.release()}"
    if device == "cuda":
        gpus = cuda_devices()
        info["name"] = gpus[0] if gpus else "no CUDA device"
        info["gpus"] = list(gpus)
        info.update(_cuda_versions())
    else:
        info["name"] = cpu["model"]
    return info


def _cuda_versions() -> dict[str, Any]:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(v)) == 0:
            return {"cuda_driver": f"{v.value // 1000}.{v.value % 1000 // 10}"}
    except OSError:
        pass
    return {}
