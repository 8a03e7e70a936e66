"""Replay a torch callable as a CUDA graph per input shape, and the memory its pools hold.

The one capture/replay of srx: `srx.kernels.cuda_graph_runner` (the kernels' API) is a
GraphReplay, and eager FP16 + CUDA graph (`torch-fp16-graph`) and srx's fused kernels
(`torch-fused`) in `srx bench` replay through GraphCache, so what the kernels' API runs is
what the benchmark times: a copy of the input into the graph's static input buffer, then
one `graph.replay()`. Written against the documented torch.cuda.CUDAGraph /
torch.cuda.graph API: warm-up on a side stream (cuDNN picks its algorithms, Triton compiles
and srx.kernels.tuning picks launch configurations before capture; nothing may allocate or
synchronise while capturing), capture on that stream, replay on the current one.

A graph's activations live in a private memory pool reserved at capture and kept for as
long as the graph lives: `torch.cuda.max_memory_allocated` sees only the bytes live at
its peak, not the blocks the pool keeps free. `private_pool_bytes` reads the allocator's
snapshot (segments whose `segment_pool_id` is not the default pool, as PyTorch's own
cudagraph trees do) so that the memory column of a graph-based row includes the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from srx.errors import BadInput

DEFAULT_POOL = (0, 0)


class GraphReplay:
    """`fn(example)` captured once as a CUDA graph; `replay(x)` copies `x` into the captured
    input and replays. Returns the graph's output buffer, which the next replay overwrites
    (fetch or clone it first). `fn` must not change after capture: its weights are read in
    place and its shapes are frozen."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, warmup: int = 3) -> None:
        check_capture_arguments(fn, example, warmup)
        if not torch.cuda.is_available() or not example.is_cuda:
            raise BadInput("a CUDA graph needs a CUDA GPU and a CUDA example tensor; run the model directly instead")
        self.static_in = example.detach().clone()
        stream = torch.cuda.Stream(device=example.device)
        stream.wait_stream(torch.cuda.current_stream(example.device))
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(warmup):
                fn(self.static_in)
        torch.cuda.current_stream(example.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph, stream=stream):
            self.static_out = fn(self.static_in)
        torch.cuda.current_stream(example.device).wait_stream(stream)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_replay_input(self.static_in, x)
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out


def check_capture_arguments(fn: object, example: object, warmup: object) -> None:
    """What GraphReplay needs before it touches the GPU (one line each)."""
    if not callable(fn):
        raise BadInput(f"a CUDA graph captures a callable (a model or function), got {type(fn).__name__}")
    if not isinstance(example, torch.Tensor):
        raise BadInput(f"a CUDA graph needs an example input tensor, got {type(example).__name__}")
    # At least one call before capture: the first call compiles and tunes, which a capture may not do.
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise BadInput(f"warmup must be a whole number of calls >= 1 before capture, got {warmup!r}")


def check_replay_input(captured: torch.Tensor, x: torch.Tensor) -> None:
    """A replay reads x through the captured buffer: any other shape, dtype or device is refused."""
    if x.shape != captured.shape or x.dtype != captured.dtype or x.device != captured.device:
        raise BadInput(
            f"this CUDA graph was captured for {tuple(captured.shape)} {captured.dtype} on {captured.device}, "
            f"got {tuple(x.shape)} {x.dtype} on {x.device}: capture another graph for that input"
        )


class GraphCache:
    """One GraphReplay per (shape, dtype, device): a video's frames all share one."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.graphs: dict[tuple[tuple[int, ...], torch.dtype, torch.device], GraphReplay] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        replay = self.graphs.get(key)
        if replay is None:
            replay = self.graphs[key] = GraphReplay(self.fn, x)
        return replay(x)

    def clear(self) -> None:
        self.graphs.clear()


@dataclass(frozen=True)
class PoolBytes:
    """Bytes held by non-default allocator pools (CUDA graphs' private pools)."""

    reserved: int
    allocated: int


def private_pool_bytes(segments: list[dict[str, Any]] | None = None, device: int | None = None) -> PoolBytes:
    """Sum the segments of every private pool in `torch.cuda.memory_snapshot()` (or `segments`)."""
    if segments is None:
        segments = torch.cuda.memory_snapshot()
    reserved = allocated = 0
    for seg in segments:
        if device is not None and seg.get("device", device) != device:
            continue
        if tuple(seg.get("segment_pool_id", DEFAULT_POOL)) == DEFAULT_POOL:
            continue
        reserved += int(seg.get("total_size", 0))
        allocated += int(seg.get("allocated_size", 0))
    return PoolBytes(reserved, allocated)


def graph_peak_bytes(
    max_allocated: int, allocated_now: int, base: int, pools_before: PoolBytes, pools_now: PoolBytes
) -> int:
    """Peak device memory of a backend that keeps CUDA graphs, above `base` (bytes allocated before).

    The larger of the allocator's peak of live tensors and the steady state the graphs
    leave: what is live outside their pools plus everything their pools reserve (the pools'
    free blocks are held too, and only a snapshot shows them).
    """
    grown_reserved = max(0, pools_now.reserved - pools_before.reserved)
    grown_allocated = max(0, pools_now.allocated - pools_before.allocated)
    steady = (allocated_now - base) - grown_allocated + grown_reserved
    return max(max_allocated - base, steady)
