"""How the fused kernels are launched: candidate configurations, choosing one by measuring
it on the GPU, the interpreter's configuration, and recording launches without running them.

Every launcher offers a few candidate configurations (pixels per program, warps, software
pipelining stages); the first is the default. On a GPU the first call for a new key
(kernel, dtype, precision, channel widths, size class) times each candidate (CUDA events,
median of 10 back-to-back runs) and keeps the fastest for the rest of the process. That happens
during the warm-up calls that `cuda_graph_runner` makes before it captures, never inside
a capture: a key first seen while a CUDA graph is being captured gets the default.
Under the Triton interpreter the launchers use their interpreter configuration instead
(large tiles: the interpreter pays per op, not per element).

SRX_KERNEL_TUNING=off skips the measurement and always launches the default candidate
(reproducible, no start-up cost); `choices()` says what was picked (benchmarks record it).
`record()` collects the launches a forward would make, with their arguments and
candidates, without running anything: bench/kernels_sm90.py compiles exactly those for sm_90.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("srx.kernels")


@dataclass(frozen=True)
class Config:
    """One way to launch a kernel: BLOCK_P pixels per program, num_warps, num_stages."""

    block_p: int
    num_warps: int
    num_stages: int = 1

    def __str__(self) -> str:
        tile = f"BLOCK_P={self.block_p}" if self.block_p else "tiles per level"  # the pooling kernel's own
        return f"{tile} warps={self.num_warps} stages={self.num_stages}"

    def kwargs(self, kernel: Any) -> dict[str, int]:
        """Launch keyword arguments: the constexprs the kernel takes, and the compile options."""
        names = kernel.arg_names
        out = {"num_warps": self.num_warps, "num_stages": self.num_stages}
        if "BLOCK_P" in names:
            out["BLOCK_P"] = self.block_p
        if "NUM_STAGES" in names:
            out["NUM_STAGES"] = self.num_stages
        return out


@dataclass(frozen=True)
class Launch:
    """One recorded launch: what `launch` would have run, and with which candidates."""

    kernel: Any
    args: tuple[Any, ...]
    constexprs: dict[str, Any]
    candidates: tuple[Config, ...]
    key: tuple[Any, ...]


def compute_mode(dtype: torch.dtype, precision: str) -> str:
    """What the GEMMs run as: "16bit" (FP16/BF16 tensor cores), or the FP32 precision
    ("tf32x3", "tf32": tensor cores; "ieee": CUDA cores). Candidate lists are per mode,
    because the register budget is: FP32 operands are twice as wide, tf32x3 splits each
    operand in two, and CUDA-core GEMMs hold both operands in registers."""
    return precision if dtype == torch.float32 else "16bit"


_CHOSEN: dict[Hashable, Config] = {}
_RECORDING: list[Launch] | None = None


def interpreted(kernel: object) -> bool:
    """True when `kernel` was decorated under TRITON_INTERPRET=1 (runs on the CPU with numpy)."""
    return type(kernel).__name__ == "InterpretedFunction"


def tuning_enabled() -> bool:
    return os.environ.get("SRX_KERNEL_TUNING", "auto").lower() not in ("off", "0", "false", "no")


def size_class(pixels: int) -> int:
    """Inputs within a factor of two share a choice (no re-tuning for every frame size)."""
    return max(1, pixels).bit_length()


def choices() -> dict[str, str]:
    """The configuration picked for every key so far (for benchmark records)."""
    return {" / ".join(map(str, key)): str(cfg) for key, cfg in _CHOSEN.items()}


def reset() -> None:
    _CHOSEN.clear()


def recording() -> bool:
    return _RECORDING is not None


@contextmanager
def record() -> Iterator[list[Launch]]:
    """Collect launches instead of running them (outputs stay uninitialised)."""
    global _RECORDING
    outer, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = outer


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def launch(
    kernel: Any,
    key: tuple[Any, ...],
    grid: Callable[[Config], tuple[int, ...]],
    args: tuple[Any, ...],
    constexprs: dict[str, Any],
    candidates: Sequence[Config],
    *,
    interpreter: Config,
    config: Config | None = None,
) -> Config:
    """Launch `kernel` with the configuration chosen for `key` (or `config`); returns it.

    The kernel must be idempotent (the fused kernels only write their outputs), because
    measuring runs it several times per candidate.
    """
    if _RECORDING is not None:
        _RECORDING.append(Launch(kernel, args, dict(constexprs), tuple(candidates), key))
        return candidates[0]

    def run(cfg: Config) -> None:
        kernel[grid(cfg)](*args, **constexprs, **cfg.kwargs(kernel))

    if config is None and interpreted(kernel):
        config = interpreter
    if config is not None:
        run(config)
        return config
    chosen = _CHOSEN.get(key)
    if chosen is None:
        if len(candidates) == 1 or not tuning_enabled() or _capturing():
            chosen = candidates[0]
            if not _capturing():
                _CHOSEN[key] = chosen
        else:
            chosen = _CHOSEN[key] = _measure(key, candidates, run)
    run(chosen)
    return chosen


def _measure(key: Hashable, candidates: Sequence[Config], run: Callable[[Config], object]) -> Config:
    """The candidate with the lowest median time of back-to-back runs (CUDA events).

    Not triton.testing.do_bench: it allocates a 256 MB buffer to flush L2 between runs,
    which would show up in the peak memory of whatever is being benchmarked, and the
    fused kernels run back to back in a forward anyway.
    """
    timings: list[tuple[float, int, Config]] = []
    for i, cfg in enumerate(candidates):
        try:
            run(cfg)  # compiles
            torch.cuda.synchronize()
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(10)]
            for start, end in events:
                start.record()
                run(cfg)
                end.record()
            torch.cuda.synchronize()
        except Exception as e:  # a candidate that does not fit this GPU (shared memory, registers)
            log.info("srx.kernels: %s: %s does not run here (%s)", key, cfg, str(e).splitlines()[0][:200])
            continue
        ms = sorted(s.elapsed_time(e) for s, e in events)[len(events) // 2]
        timings.append((ms, i, cfg))
    if not timings:
        raise RuntimeError(f"no launch configuration of {key} runs on this GPU")
    best = min(timings)
    log.info("srx.kernels: %s: %s (%.4f ms of %d candidates)", key, best[2], best[0], len(timings))
    return best[2]
