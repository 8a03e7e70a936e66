"""PyTorch runners: eager FP32 (the paper's protocol), eager FP16, torch.compile, fused Triton kernels.

Each runner works on its own copy of the module, so converting to FP16 or moving it to the
GPU never changes the model other runners (and the FP32 reference) use.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from srx.runtime.base import Runner, Timer
from srx.runtime.memory import MemoryMeter


class CudaEventTimer(Timer):
    """CUDA events on the current stream: measures GPU time of the work queued between marks."""

    def __init__(self) -> None:
        super().__init__()
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> None:
        self._end.record()

    def elapsed_ms(self) -> float:
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


class TorchCudaMeter(MemoryMeter):
    method = "torch.cuda.max_memory_allocated (as the SAFMN paper)"

    def start(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self._base = torch.cuda.memory_allocated()

    def peak_mb(self) -> float | None:
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - self._base) / 2**20


@contextlib.contextmanager
def exact_fp32(enabled: bool) -> Iterator[None]:
    """Turn TF32 off for cuDNN convolutions and matmuls (PyTorch allows TF32 convs by default)."""
    if not enabled or not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class TorchRunner(Runner):
    """Eager PyTorch, FP32, PyTorch's default settings (on CUDA that lets cuDNN use TF32).

    Options: exact=True turns TF32 off (the FP32 reference does), threads=N sets
    torch.set_num_threads for the CPU, channels_last=True stores weights and activations
    NHWC (oneDNN's native layout on the CPU; default False, PyTorch's default NCHW).
    """

    name = "torch"
    precision = "fp32"
    dtype = torch.float32

    def _activate(self) -> None:
        self._device = torch.device(self.device)
        threads = self.options.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        model = copy.deepcopy(self.source.torch_module()).eval().requires_grad_(False)
        model = model.to(self._device, self.dtype)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = self._prepare(model)

    @property
    def _channels_last(self) -> bool:
        return bool(self.options.get("channels_last", False))

    def _prepare(self, model: torch.nn.Module) -> Any:
        return model

    def _deactivate(self) -> None:
        del self.model
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()

    def stage(self, lr: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(lr).to(self._device, self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def execute(self, staged: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), exact_fp32(bool(self.options.get("exact"))):
            return self.model(staged)

    def fetch(self, out: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(out.float().cpu().numpy())

    def synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def timer(self) -> Timer:
        return CudaEventTimer() if self.device == "cuda" else Timer()

    def memory_meter(self) -> MemoryMeter:
        if self.device == "cuda":
            return TorchCudaMeter()
        return super().memory_meter()

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.device == "cpu":
            d["threads"] = torch.get_num_threads()
            d["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(OpenMP default)")
        d["memory_format"] = "channels_last" if self._channels_last else "contiguous (NCHW)"
        if self.device == "cuda":
            d["tf32_convolutions"] = torch.backends.cudnn.allow_tf32 and not self.options.get("exact")
        return d


class TorchFP16Runner(TorchRunner):
    """Eager PyTorch with weights and activations in FP16 (inputs cast on staging, outputs back to FP32)."""

    name = "torch-fp16"
    precision = "fp16"
    dtype = torch.float16


class TorchCompileRunner(TorchRunner):
    """torch.compile(model, dynamic=False): compiles on the first call (a warm-up run), per input shape.

    Options: compile_mode (torch.compile's mode, default PyTorch's default), freezing
    (inductor's `freezing`: weights become constants, so convolution weights are packed
    for oneDNN once at compile time), channels_last (see TorchRunner). On the CPU both
    default to True (measured faster there, docs/bench.md); on CUDA to False.
    """

    name = "torch-compile"

    def _option(self, key: str) -> bool:
        return bool(self.options.get(key, self.device == "cpu"))

    @property
    def _channels_last(self) -> bool:
        return self._option("channels_last")

    def _prepare(self, model: torch.nn.Module) -> Any:
        return torch.compile(model, dynamic=False, mode=self.options.get("compile_mode"))

    def execute(self, staged: torch.Tensor) -> torch.Tensor:
        if not self._option("freezing"):
            return super().execute(staged)
        import torch._inductor.config as inductor_config

        # Read when a call compiles; patched on every call so that a recompilation (a new
        # input shape) sees the same setting.
        with inductor_config.patch(freezing=True):
            return super().execute(staged)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "freezing": self._option("freezing")}


class TorchFusedRunner(TorchRunner):
    """srx's fused Triton kernels (`srx.kernels.fuse`) in FP16, replayed as a CUDA graph.

    FP16 is what the kernels are for (LayerNorm statistics stay FP32 inside them). On CUDA
    the first call for an input shape captures `model(x)` as a CUDA graph and later calls
    replay it (one launch instead of ~4 per block plus the convolutions): the timed
    `execute` is a copy into the graph's input buffer and the replay. The output is the
    graph's buffer, overwritten by the next call; `fetch` copies it to the host first.

    Options: fp32=True runs the kernels in FP32; cuda_graph=False launches them directly.
    """

    name = "torch-fused"
    precision = "fp16"
    dtype = torch.float16

    def _activate(self) -> None:
        if self.options.get("fp32"):
            self.precision, self.dtype = "fp32", torch.float32  # type: ignore[misc]
        self._graphs: dict[tuple[tuple[int, ...], torch.dtype], Any] = {}
        super()._activate()

    def _prepare(self, model: torch.nn.Module) -> Any:
        from srx.kernels import fuse

        return fuse(model)

    def _deactivate(self) -> None:
        self._graphs.clear()
        super()._deactivate()

    @property
    def _use_graph(self) -> bool:
        return self.device == "cuda" and bool(self.options.get("cuda_graph", True))

    def execute(self, staged: torch.Tensor) -> torch.Tensor:
        if not self._use_graph:
            return super().execute(staged)
        key = (tuple(staged.shape), staged.dtype)
        replay = self._graphs.get(key)
        if replay is None:
            from srx.kernels import cuda_graph_runner

            replay = self._graphs[key] = cuda_graph_runner(self.model, staged)
        return replay(staged)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cuda_graph": self._use_graph}
