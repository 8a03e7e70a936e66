"""PyTorch runners: eager FP32 (the paper's protocol), eager FP16, torch.compile, fused Triton kernels.

Each runner works on its own copy of the module, so converting to FP16 or moving it to the
GPU never changes the model other runners (and the FP32 reference) use.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from srx.runtime.base import Runner, Timer
from srx.runtime.memory import MemoryMeter

if TYPE_CHECKING:
    from srx.runtime.cuda_graph import GraphCache


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
    """Peak of `torch.cuda.max_memory_allocated` above what was allocated before the backend
    (the SAFMN paper's measure); for backends that keep CUDA graphs, at least what is live
    outside the graphs' private pools plus everything those pools reserve (srx.runtime.cuda_graph)."""

    method = "torch.cuda.max_memory_allocated (as the SAFMN paper)"

    def start(self) -> None:
        from srx.runtime.cuda_graph import private_pool_bytes

        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self._base = torch.cuda.memory_allocated()
        self._pools = private_pool_bytes()
        self.graph_pool_mb: float | None = None

    def peak_mb(self) -> float | None:
        from srx.runtime.cuda_graph import graph_peak_bytes, private_pool_bytes

        torch.cuda.synchronize()
        pools = private_pool_bytes()
        grown = pools.reserved - self._pools.reserved
        if grown > 0:
            self.graph_pool_mb = grown / 2**20
            self.method = "torch.cuda.max_memory_allocated, plus the free blocks CUDA graph pools hold"
        peak = graph_peak_bytes(
            torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated(), self._base, self._pools, pools
        )
        return peak / 2**20


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
    NHWC (oneDNN's native layout on the CPU; default False, PyTorch's default NCHW),
    cudnn_benchmark (CUDA; default True except for exact=True): cuDNN times its algorithms
    for each new input shape on the first run (a warm-up run) instead of guessing, as a
    video user with a fixed frame size would set it; cuda_graph (CUDA; default False here,
    True for torch-fp16-graph and torch-fused): replay the forward as a CUDA graph per input
    shape (srx.runtime.cuda_graph), captured on the first run of a shape.
    """

    name = "torch"
    precision = "fp32"
    dtype = torch.float32
    graph_default = False
    scope_markers = True  # eager modules: normalisation modules are marked when profiling

    def _activate(self) -> None:
        self._device = torch.device(self.device)
        threads = self.options.get("threads")
        self._saved_threads = torch.get_num_threads()  # process-wide: given back on close
        if threads:
            torch.set_num_threads(int(threads))
        self._saved_benchmark = torch.backends.cudnn.benchmark
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = self._cudnn_benchmark
        model = copy.deepcopy(self.source.torch_module()).eval().requires_grad_(False)
        model = model.to(self._device, self.dtype)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = self._prepare(model)
        self._graphs: GraphCache | None = None
        if self._use_graph:
            from srx.runtime.cuda_graph import GraphCache

            self._graphs = GraphCache(self._forward)

    @property
    def _cudnn_benchmark(self) -> bool:
        return bool(self.options.get("cudnn_benchmark", not self.options.get("exact")))

    @property
    def _use_graph(self) -> bool:
        return self.device == "cuda" and bool(self.options.get("cuda_graph", self.graph_default))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @property
    def _channels_last(self) -> bool:
        return bool(self.options.get("channels_last", False))

    def _prepare(self, model: torch.nn.Module) -> Any:
        return model

    def _deactivate(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()
        del self.model
        torch.backends.cudnn.benchmark = self._saved_benchmark
        torch.set_num_threads(self._saved_threads)
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()

    def stage(self, lr: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(lr).to(self._device, self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def stage_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """What `stage` makes of a host array, for a float32 NCHW tensor already on this
        runner's device (srx.video.cuda converts frames on the GPU)."""
        x = x.to(self._device, self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def execute(self, staged: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), exact_fp32(bool(self.options.get("exact"))):
            if self._graphs is not None:
                return self._graphs(staged)
            return self._forward(staged)

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
            d["cudnn_benchmark"] = self._cudnn_benchmark
            d["cuda_graph"] = self._use_graph
        return d

    def staged_device_bytes(self, staged: torch.Tensor) -> int:
        return staged.numel() * staged.element_size() if staged.is_cuda else 0

    def mode(self) -> str:
        words = ["eager"]
        if self._channels_last:
            words.append("channels_last")
        if self._use_graph:
            words.append("+ CUDA graph")
        return " ".join(words)

    def profile(self, staged: list[Any], runs: int) -> Any:
        from srx.runtime.torch_profile import profile_runs

        return profile_runs(self, staged, runs, markers=self.scope_markers and not self._use_graph)


class TorchFP16Runner(TorchRunner):
    """Eager PyTorch with weights and activations in FP16 (inputs cast on staging, outputs back to FP32)."""

    name = "torch-fp16"
    precision = "fp16"
    dtype = torch.float16


class TorchFP16GraphRunner(TorchFP16Runner):
    """Eager FP16 replayed as a CUDA graph per input shape: what a user gets from PyTorch
    alone by capturing the forward once (torch.cuda.graph), with no compiler and no srx kernels."""

    name = "torch-fp16-graph"
    graph_default = True


class TorchCompileRunner(TorchRunner):
    """torch.compile(model, dynamic=False): compiles on the first call (a warm-up run), per input shape.

    Options: compile_mode (torch.compile's mode: None for PyTorch's default,
    'reduce-overhead' (CUDA graphs through inductor's cudagraph trees), 'max-autotune',
    'max-autotune-no-cudagraphs'), freezing (inductor's `freezing`: weights become
    constants, so convolution weights are packed for oneDNN once at compile time),
    channels_last (see TorchRunner). On the CPU freezing and channels_last default to True
    (measured faster there, docs/bench.md); on CUDA to False. The compilation happens in
    the first warm-up run: `srx bench` reports it as `first_run_seconds`.
    """

    name = "torch-compile"
    scope_markers = False  # a hook would be traced into the compiled graph
    default_compile_mode: str | None = None

    def _option(self, key: str) -> bool:
        return bool(self.options.get(key, self.device == "cpu"))

    @property
    def _channels_last(self) -> bool:
        return self._option("channels_last")

    @property
    def compile_mode(self) -> str | None:
        mode = self.options.get("compile_mode", self.default_compile_mode if self.device == "cuda" else None)
        return None if mode in (None, "", "default") else str(mode)

    @property
    def _cudagraph_trees(self) -> bool:
        # Inductor wraps the compiled graph in CUDA graphs for these modes on CUDA.
        return self.device == "cuda" and self.compile_mode in ("reduce-overhead", "max-autotune")

    def _prepare(self, model: torch.nn.Module) -> Any:
        return torch.compile(model, dynamic=False, mode=self.compile_mode)

    def execute(self, staged: torch.Tensor) -> torch.Tensor:
        if self._cudagraph_trees:
            # Each call is a new iteration; the previous call's output buffers may be reused.
            torch.compiler.cudagraph_mark_step_begin()
        if not self._option("freezing"):
            return super().execute(staged)
        import torch._inductor.config as inductor_config

        # Read when a call compiles; patched on every call so that a recompilation (a new
        # input shape) sees the same setting.
        with inductor_config.patch(freezing=True):
            return super().execute(staged)

    def _deactivate(self) -> None:
        super()._deactivate()
        if self._cudagraph_trees:
            # Cudagraph trees keep their memory pool in process-wide state; without a reset
            # it would stay allocated under every backend measured after this one.
            torch._dynamo.reset()
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "freezing": self._option("freezing"),
            "compile_mode": self.compile_mode or "default",
        }

    def mode(self) -> str:
        extra = ", channels_last + freezing" if self._channels_last and self._option("freezing") else ""
        return f"torch.compile {self.compile_mode or 'default'}{extra}"


class TorchCompileFP16Runner(TorchCompileRunner):
    """torch.compile of the FP16 model, mode 'reduce-overhead' on CUDA by default: inductor's
    Triton kernels replayed as CUDA graphs, the strongest PyTorch-only peer measured on an
    H200 (docs/bench.md)."""

    name = "torch-compile-fp16"
    precision = "fp16"
    dtype = torch.float16
    default_compile_mode = "reduce-overhead"


class TorchFusedRunner(TorchRunner):
    """srx's fused Triton kernels (`srx.kernels.fuse`) in FP16, replayed as a CUDA graph.

    FP16 is what the kernels are for (LayerNorm statistics stay FP32 inside them). On CUDA
    the first call for an input shape captures `model(x)` as a CUDA graph and later calls
    replay it (one graph launch instead of 26 kernel launches for the default model): the timed
    `execute` is a copy into the graph's input buffer and the replay. The output is the
    graph's buffer, overwritten by the next call; `fetch` copies it to the host first.
    The graph is srx.runtime.cuda_graph's, the same as torch-fp16-graph's and as
    srx.kernels.cuda_graph_runner's.

    Options: fp32=True runs the kernels in FP32 (srx.kernels' default FP32 precision,
    tf32x3); cuda_graph=False launches them directly. The first call for a shape also picks
    each kernel's launch configuration by timing its candidates (srx.kernels.tuning).
    """

    name = "torch-fused"
    precision = "fp16"
    dtype = torch.float16
    graph_default = True
    scope_markers = False  # the fused model has no normalisation modules left to mark

    def _activate(self) -> None:
        if self.options.get("fp32"):
            self.precision, self.dtype = "fp32", torch.float32  # type: ignore[misc]
        super()._activate()

    def _prepare(self, model: torch.nn.Module) -> Any:
        from srx.kernels import fuse

        return fuse(model)

    def mode(self) -> str:
        return "srx fused Triton kernels" + (" + CUDA graph" if self._use_graph else "")
