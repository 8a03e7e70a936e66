"""The CUDA path of the pipeline for PyTorch runners: pinned buffers, a copy stream, conversions on the GPU.

    reader thread   pixels -> pinned host buffer (a ring) -> device, on the copy stream; event
    calling thread  compute stream waits for the copy; uint8 -> float, the model, clip / scale /
                    round to uint8, all on the GPU; the copy stream waits for that and copies the
                    result into a pinned host buffer; event
    writer thread   waits for that event, copies the planes into an FFmpeg frame, frees the buffer

So the host-device copies of one frame overlap the model on others, the PCIe traffic is
uint8 (a quarter of float32), and the host does no per-pixel arithmetic. The arithmetic is
srx.video.frames' (`/ peak`, then `clip(0, 1) * peak + 0.5`, truncated) in float32 on the GPU,
so frames equal the host path's. Pinned buffers are what make `non_blocking=True` copies
asynchronous (PyTorch's "pin_memory" notes); a tensor allocated on one stream and used on
another is marked with `record_stream` so the caching allocator does not reuse it early.

Used for whole frames with runners that take device tensors (`stage_tensor`: torch,
torch-fp16, torch-fp16-graph, torch-compile*, torch-fused) on CUDA; tiled frames and the
other runners (TensorRT, onnxruntime) go through their own `run` on host arrays.

All torch.cuda calls go through `TorchCudaOps`, so the same code runs on the CPU with
`CpuStandIn` (tests/test_video_pipeline.py): every buffer, event and stream step is taken,
without the asynchrony. Not yet measured on a GPU (docs/video.md).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from srx.spec import ModelSpec
from srx.upscale import _padded as padded_side
from srx.video.avlib import require_av
from srx.video.frames import nonfinite_error, peak

RING_TIMEOUT_S = 60.0  # a free output buffer always comes back within one frame's encode; longer means a bug


class TorchCudaOps:
    """The CUDA operations the path needs (documented torch.cuda APIs)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self._local = threading.local()

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.torch.empty(shape, dtype=dtype, pin_memory=True)

    def stream(self) -> Any:
        return self.torch.cuda.Stream(self.device)

    def event(self) -> Any:
        return self.torch.cuda.Event()

    def use(self, stream: Any) -> Any:
        return self.torch.cuda.stream(stream)

    def current(self) -> Any:
        return self.torch.cuda.current_stream(self.device)

    def record_stream(self, tensor: Any, stream: Any) -> None:
        tensor.record_stream(stream)

    def enter_thread(self) -> None:
        """CUDA's current device is per thread: the reader and writer threads start on device 0."""
        if not getattr(self._local, "ready", False):
            self.torch.cuda.set_device(self.device)
            self._local.ready = True


class _NoStream:
    def wait_event(self, event: Any) -> None:
        return None


class _DoneEvent:
    def record(self, stream: Any = None) -> None:
        return None

    def synchronize(self) -> None:
        return None


class CpuStandIn(TorchCudaOps):
    """Stand-in for tests without a GPU: plain CPU tensors; streams and events do nothing."""

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.torch.empty(shape, dtype=dtype)

    def stream(self) -> Any:
        return _NoStream()

    def event(self) -> Any:
        return _DoneEvent()

    def use(self, stream: Any) -> Any:
        return contextlib.nullcontext()

    def current(self) -> Any:
        return _NoStream()

    def record_stream(self, tensor: Any, stream: Any) -> None:
        return None

    def enter_thread(self) -> None:
        return None


@dataclass
class _Staged:
    tensor: Any  # (H, W, 3) integer pixels on the device
    ready: Any  # event: the copy to the device is done


@dataclass
class _Readback:
    host: Any  # (3, H, W) pinned integer pixels
    bad: Any  # pinned count of non-finite outputs
    ready: Any  # event: the copy to the host is done
    slot: int


class CudaFrames:
    """srx.video.pipeline's Frames on a CUDA GPU for a runner with `stage_tensor`."""

    def __init__(
        self, runner: Any, spec: ModelSpec, height: int, width: int, bit_depth: int, *, batch: int, ops: Any = None
    ) -> None:
        self.runner, self.spec, self.h, self.w, self.bit_depth = runner, spec, height, width, bit_depth
        self.ops = ops or TorchCudaOps(runner.device)
        torch = self.ops.torch
        self.torch = torch
        self.ph, self.pw = padded_side(height, spec), padded_side(width, spec)
        self.peak = peak(bit_depth)
        # 16-bit samples travel as int32: torch's uint16 has few CUDA kernels.
        self.host_dtype = torch.uint8 if bit_depth <= 8 else torch.int32
        self.copy = self.ops.stream()
        n_in = 2 * batch + batch + 2  # the reader's queue, a batch in the model, and the one being filled
        self.in_ring = [(self.ops.pinned((height, width, 3), self.host_dtype), self.ops.event()) for _ in range(n_in)]
        self._next_in = 0
        s = spec.scale
        n_out = 4 * batch + 1  # two batches queued, one being read back, one being produced, one spare
        self.out_ring = [
            (self.ops.pinned((3, height * s, width * s), self.host_dtype), self.ops.pinned((1,), torch.int64))
            for _ in range(n_out)
        ]
        self.free: queue.Queue[int] = queue.Queue()
        for i in range(n_out):
            self.free.put(i)

    tiled = False

    def stage(self, pixels: np.ndarray) -> _Staged:
        """Reader thread: pixels -> pinned buffer -> device, queued on the copy stream."""
        self.ops.enter_thread()
        host, last = self.in_ring[self._next_in]
        self._next_in = (self._next_in + 1) % len(self.in_ring)
        last.synchronize()  # the buffer's previous copy to the device must be done before it is overwritten
        np.copyto(host.numpy(), pixels, casting="unsafe")
        with self.ops.use(self.copy):
            dev = host.to(self.ops.device, non_blocking=True)
            last.record(self.copy)
        return _Staged(dev, last)

    def infer(self, staged: list[_Staged]) -> list[_Readback]:
        """Calling thread: the model and the quantization on the compute stream, the copy back on the copy stream."""
        torch, ops = self.torch, self.ops
        compute = ops.current()
        for st in staged:
            compute.wait_event(st.ready)
            ops.record_stream(st.tensor, compute)
        # Contiguous NCHW, as the host path stages it: a permuted view would send the first
        # convolution down another (channels-last) kernel, off by a rounding in some pixels.
        x = (torch.stack([st.tensor for st in staged]).permute(0, 3, 1, 2).float() / self.peak).contiguous()
        if (self.ph, self.pw) != (self.h, self.w):
            x = torch.nn.functional.pad(x, (0, self.pw - self.w, 0, self.ph - self.h), mode="replicate")
        with torch.inference_mode():
            out = self.runner.execute(self.runner.stage_tensor(x))
            s = self.spec.scale
            sr = out[:, :, : self.h * s, : self.w * s].float()
            bad = (~torch.isfinite(sr)).sum(dim=(1, 2, 3))
            q = sr.clamp_(0.0, 1.0).mul_(self.peak).add_(0.5).to(self.host_dtype)
        done = ops.event()
        done.record(compute)
        results = []
        for i in range(len(staged)):
            slot = self.free.get(timeout=RING_TIMEOUT_S)
            host, host_bad = self.out_ring[slot]
            with ops.use(self.copy):
                self.copy.wait_event(done)
                ops.record_stream(q, self.copy)
                ops.record_stream(bad, self.copy)
                host.copy_(q[i], non_blocking=True)
                host_bad.copy_(bad[i : i + 1], non_blocking=True)
                ready = ops.event()
                ready.record(self.copy)
            results.append(_Readback(host, host_bad, ready, slot))
        return results

    def readback(self, rb: _Readback, width: int, height: int) -> Any:
        """Writer thread: wait for the copy, then copy the planes into a planar RGB frame."""
        av = require_av()
        self.ops.enter_thread()
        try:
            rb.ready.synchronize()
            bad = int(rb.bad.numpy()[0])
            if bad:
                raise nonfinite_error(bad)
            pixels = rb.host.numpy()
            fmt, dtype = ("gbrp", np.dtype(np.uint8)) if self.bit_depth <= 8 else ("gbrp16le", np.dtype("<u2"))
            frame = av.VideoFrame(width, height, fmt)
            for plane, channel in zip(frame.planes, (1, 2, 0), strict=True):
                rows = np.frombuffer(plane, dtype=dtype).reshape(height, plane.line_size // dtype.itemsize)
                np.copyto(rows[:, :width], pixels[channel, :height, :width], casting="unsafe")
            return frame
        finally:
            self.free.put(rb.slot)
