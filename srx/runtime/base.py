"""The runner contract every backend implements (torch-free: a Jetson runs TensorRT without torch).

A runner turns LR images into SR images with one backend. Arrays are numpy float32,
NCHW, RGB in the ModelSpec's value range ([0, 1]); `run` also accepts anything numpy can
view as such (a CPU torch tensor, for instance) and always returns a new numpy array.

Lifecycle (Polygraphy's runner pattern): constructing a runner is cheap and holds no
resources; `with runner:` (or `activate()`) loads weights, builds sessions or engines and
allocates device memory; leaving the block frees them, also on errors.

    with open_runner("onnxruntime", source) as r:
        sr = r.run(lr)                        # (N, 3, H, W) float32 -> (N, 3, sH, sW) float32

For timing, `run` is split into three steps so that host/device copies stay out of the
measured part: `staged = stage(lr)` (copy the input to where the backend reads it),
`out = execute(staged)` (the model only: this is what `srx bench` times, between
`timer()` marks), `fetch(out)` (copy the result back to a numpy array). Runners whose
`execute` only queues work (CUDA) return a timer that can be read after later runs were
queued, so that `srx bench` times runs back to back and synchronises once at the end.

`profile(staged, runs)` says where the time of a few runs goes (a srx.runtime.trace.Trace)
for the backends that can; the others return None and say why in `profile_unavailable`.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from srx.errors import BadInput

if TYPE_CHECKING:
    from srx.runtime.memory import MemoryMeter
    from srx.runtime.source import ModelSource
    from srx.runtime.trace import Trace


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, why (one line saying what to do)."""

    ok: bool
    reason: str = ""

    @classmethod
    def yes(cls) -> Availability:
        return cls(True, "")

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)


class Timer:
    """Host monotonic clock around synchronous work. `start`, `stop`, then `elapsed_ms`.

    Correct only when `execute` returns after the work is done (CPU backends,
    onnxruntime's Run); CUDA runners return an event-based timer instead.
    """

    def __init__(self) -> None:
        self._t0 = 0.0
        self._t1 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self._t1 = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (self._t1 - self._t0) * 1000.0


class Runner(abc.ABC):
    """One way of running a model. Subclasses set `name` and `precision` and implement
    `_activate`, `_deactivate`, `execute` (and `stage` / `fetch` where the data lives on
    a device). Everything else (validation, context management, `run`) is shared.
    """

    name: ClassVar[str] = ""
    precision: ClassVar[str] = "fp32"
    profile_unavailable: ClassVar[str] = "srx has no profiler hook for this backend"

    def __init__(self, source: ModelSource, device: str = "cpu", **options: Any) -> None:
        self.source = source
        self.spec = source.spec
        self.device = device
        self.options = options
        self.active = False

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.active:
            self._activate()
            self.active = True

    def deactivate(self) -> None:
        if self.active:
            self.active = False
            self._deactivate()

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    # -- inference -----------------------------------------------------------------------
    def check_input(self, lr: Any) -> np.ndarray:
        """Validate `lr` against the ModelSpec and return it as a C-contiguous float32 array."""
        return validate_input(lr, self.spec)

    def check_output(self, sr: np.ndarray, lr_shape: tuple[int, ...]) -> np.ndarray:
        """Refuse an output that is not (N, 3, sH, sW) for an (N, C, H, W) input: a file whose
        metadata claims a model its graph is not (or a broken engine) would otherwise go on
        to be written, tiled or scored as if it were one."""
        n, _, h, w = lr_shape
        s = self.spec.scale
        expected = (n, 3, h * s, w * s)
        if tuple(sr.shape) != expected:
            raise BadInput(
                f"{self.source.origin} returned shape {tuple(sr.shape)} for an input of shape {tuple(lr_shape)}, "
                f"expected {expected}: it is not the x{s} model its metadata describes; export it again with srx"
            )
        return sr

    def run(self, lr: Any) -> np.ndarray:
        """LR batch -> SR batch on the host: (N, C, H, W) float32 -> (N, C, sH, sW) float32."""
        if not self.active:
            raise RuntimeError(f"{self.name} runner used outside its 'with' block")
        x = self.check_input(lr)
        return self.check_output(self.fetch(self.execute(self.stage(x))), x.shape)

    def stage(self, lr: np.ndarray) -> Any:
        """Copy a validated input to where `execute` reads it (default: it stays on the host)."""
        return lr

    @abc.abstractmethod
    def execute(self, staged: Any) -> Any:
        """Run the model on a staged input; return the output where it was produced."""

    def fetch(self, out: Any) -> np.ndarray:
        """Output of `execute` -> numpy float32 NCHW on the host."""
        return np.asarray(out, dtype=np.float32)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op for synchronous backends)."""
        return None

    def timer(self) -> Timer:
        return Timer()

    def memory_meter(self) -> MemoryMeter:
        """How this runner's peak memory is measured (see srx.runtime.memory)."""
        from srx.runtime.memory import default_meter

        return default_meter(self.device)

    def describe(self) -> dict[str, Any]:
        """Settings worth recording next to a measurement (threads, providers, flags)."""
        return {}

    def staged_device_bytes(self, staged: Any) -> int:
        """Device memory one staged input holds (0 when staged inputs stay on the host)."""
        return 0

    def mode(self) -> str:
        """How the model runs, in a few words ('eager', 'torch.compile reduce-overhead', ...)."""
        return ""

    def unsupported_batch(self, batch: int) -> str:
        """Why this runner cannot take `batch` inputs at once ('' when it can); known before activation."""
        return ""

    def profile(self, staged: list[Any], runs: int) -> Trace | None:
        """Where the time of `runs` runs over `staged` goes, or None (see `profile_unavailable`)."""
        return None


def validate_input(lr: Any, spec: Any) -> np.ndarray:
    """Check dtype, rank, channels and size against the ModelSpec; return float32 C-contiguous.

    Integer images are refused rather than silently rescaled: the network expects floats
    in spec.value_range, and an 8-bit array would be off by a factor of 255.
    """
    try:
        arr = np.asarray(lr)
    except (TypeError, ValueError, RuntimeError) as e:
        raise BadInput(f"model input must be a float32 array, got {type(lr).__name__} ({e})") from e
    if not np.issubdtype(arr.dtype, np.floating):
        raise BadInput(
            f"model input must be float32 RGB in [{spec.value_range[0]:g}, {spec.value_range[1]:g}], got {arr.dtype}: "
            "divide 8-bit images by 255"
        )
    if arr.ndim != 4:
        raise BadInput(f"model input must be NCHW (4 dimensions), got shape {tuple(arr.shape)}")
    n, c, h, w = arr.shape
    if n < 1:
        raise BadInput("model input is an empty batch")
    if c != spec.in_channels:
        raise BadInput(f"model input has {c} channels, this model takes {spec.in_channels} (RGB): shape is NCHW")
    spec.check_input_size(h, w)
    return np.ascontiguousarray(arr, dtype=np.float32)
