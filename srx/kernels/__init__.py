"""Fused Triton kernels for the SAFMN block (nn.Module -> fused nn.Module).

    fused = srx.kernels.fuse(model)          # paper SAFMN (any config) or NTIRE 2023 SAFMN
    run = srx.kernels.cuda_graph_runner(fused.half().cuda(), example)   # fixed shape, GPU only

Nothing here imports Triton or torch at import time: `fuse` raises MissingDependency
when Triton is absent. The kernels run on CUDA tensors; on the CPU they run only under
the Triton interpreter (TRITON_INTERPRET=1 set before the kernels are imported), which
is slow and meant for correctness tests. docs/kernels.md explains the fusion
boundaries and the bytes each block moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from torch import nn

__all__ = ["cuda_graph_runner", "fusable", "fuse"]


def _require_triton() -> None:
    try:
        import triton  # noqa: F401
    except ImportError as e:
        from srx.errors import MissingDependency

        raise MissingDependency("triton", "kernels", "fused Triton kernels (srx.kernels)") from e


def fusable(module: nn.Module) -> str | None:
    """None if `fuse` can run `module` on fused kernels, else the reason it cannot (one line)."""
    from srx.kernels.model import fusable as _fusable

    return _fusable(module)


def fuse(module: nn.Module, *, strict: bool = False, fp32_precision: str = "tf32x3") -> nn.Module:
    """The same model on fused Triton kernels; see `srx.kernels.model.fuse`."""
    _require_triton()
    from srx.kernels.model import fuse as _fuse

    return _fuse(module, strict=strict, fp32_precision=fp32_precision)


def cuda_graph_runner(
    model: nn.Module, example: torch.Tensor, *, warmup: int = 3
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function lr -> sr that replays `model(example)` captured as a CUDA graph (GPU only).

    The warm-up calls (on a side stream) compile the kernels and pick their launch
    configurations; a capture never measures. The function takes tensors of exactly
    example's shape, dtype and device (anything else: BadInput) and returns the graph's
    output buffer, which the next call overwrites: clone it to keep it. It is
    srx.runtime.cuda_graph.GraphReplay, the same replay `srx bench` times for torch-fused.
    """
    from srx.runtime.cuda_graph import GraphReplay

    return GraphReplay(model, example, warmup=warmup)
