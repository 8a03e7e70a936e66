"""Peak memory of one backend, measured the way that fits where it runs.

* torch on CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`
  (what the SAFMN paper reports: tensors only, not the allocator's cache).
* other CUDA backends: device memory in use (NVML, whole device) sampled every 2 ms by a
  thread, peak minus the value before the backend was created. Includes workspace and
  allocator pools; other processes on the same GPU would add to it.
* CPU: growth of the process's peak resident set size. Linux lets a process reset its
  high-water mark (`echo 5 > /proc/self/clear_refs`), so the peak is read from VmHWM
  with no sampling and no overhead; `malloc_trim(0)` first hands memory freed by an
  earlier backend back to the system so it is not silently reused (and under-counted).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any


class MemoryMeter:
    """`start()` before the backend is created, `peak_mb()` after the timed runs."""

    method = "not measured"

    def start(self) -> None:
        pass

    def peak_mb(self) -> float | None:
        return None


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class HostRSSMeter(MemoryMeter):
    method = "peak RSS growth (VmHWM after reset via /proc/self/clear_refs)"

    def __init__(self) -> None:
        self._base_kb: int | None = None
        self._ok = False

    def start(self) -> None:
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._ok = True
        except OSError:
            self._ok = False
        self._base_kb = _status_kb("VmRSS")

    def peak_mb(self) -> float | None:
        hwm = _status_kb("VmHWM")
        if not self._ok or hwm is None or self._base_kb is None:
            return None
        return max(0, hwm - self._base_kb) / 1024.0


class NvmlMeter(MemoryMeter):
    method = "device memory in use (NVML, sampled every 2 ms), peak minus before"

    def __init__(self, index: int = 0) -> None:
        self._index = index
        self._lib: Any = None
        self._handle: Any = None
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _used(self) -> int:
        class Info(ctypes.Structure):
            _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

        info = Info()
        self._lib.nvmlDeviceGetMemoryInfo(self._handle, ctypes.byref(info))
        return int(info.used)

    def start(self) -> None:
        try:
            self._lib = ctypes.CDLL("libnvidia-ml.so.1")
            if self._lib.nvmlInit_v2() != 0:
                self._lib = None
                return
            handle = ctypes.c_void_p()
            if self._lib.nvmlDeviceGetHandleByIndex_v2(self._index, ctypes.byref(handle)) != 0:
                self._lib = None
                return
            self._handle = handle
        except (OSError, AttributeError):
            self._lib = None
            return
        self._base = self._peak = self._used()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self._peak = max(self._peak, self._used())

    def peak_mb(self) -> float | None:
        if self._lib is None or self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._used())
        return (self._peak - self._base) / 2**20


def default_meter(device: str) -> MemoryMeter:
    return NvmlMeter() if device == "cuda" else HostRSSMeter()
