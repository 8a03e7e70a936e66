"""The `tensorrt` and `tensorrt-rtx` runners: srx engines through numpy + TensorRT + cuda-python.

No torch anywhere on this path (a Jetson runs it with JetPack's TensorRT). The engine's
sidecar is checked against this TensorRT version and GPU before the engine is
deserialised (srx.runtime.sidecar); pass the option check_engine=False to load an engine
without a sidecar or across versions at your own risk (engines are untrusted binaries).
Timing uses CUDA events on the runner's stream, so `srx bench` measures GPU time.

Options: check_engine (default True), device_index (default 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from srx.runtime.base import Runner, Timer
from srx.runtime.trt_session import EngineSession

if TYPE_CHECKING:
    from srx.runtime.source import ModelSource


class EngineEventTimer(Timer):
    """cudaEventRecord on the engine's stream around the timed work; elapsed by cudaEventElapsedTime."""

    def __init__(self, session: EngineSession) -> None:
        super().__init__()
        self._s = session
        self._cuda = session.cuda
        self._start = self._cuda.event()
        self._stop = self._cuda.event()

    def start(self) -> None:
        self._cuda.record(self._start, self._s.stream)

    def stop(self) -> None:
        self._cuda.record(self._stop, self._s.stream)

    def elapsed_ms(self) -> float:
        try:
            return self._cuda.elapsed_ms(self._start, self._stop)
        finally:
            self._cuda.destroy_event(self._start)
            self._cuda.destroy_event(self._stop)


class TensorRTRunner(Runner):
    """A prebuilt engine (`srx build-engine`), enterprise TensorRT 8.6 / 10.x / 11.x."""

    name = "tensorrt"
    precision = "engine"
    backend = "tensorrt"

    def __init__(self, source: ModelSource, device: str = "cuda", **options: Any) -> None:
        super().__init__(source, device, **options)
        # The engine's precision is a property of the file (its sidecar), not of the backend.
        self.precision = source.precision  # type: ignore[misc]

    def _activate(self) -> None:
        self._session = EngineSession(
            self.source.engine_path(),
            backend=self.backend,
            device_index=int(self.options.get("device_index", 0)),
            check=bool(self.options.get("check_engine", True)),
        )
        self._session.open()

    def _deactivate(self) -> None:
        self._session.close()

    def run(self, lr: Any) -> np.ndarray:
        # One input buffer, reused: `stage` below keeps a buffer per staged input.
        if not self.active:
            raise RuntimeError(f"{self.name} runner used outside its 'with' block")
        x = self.check_input(lr)
        return self.check_output(self._session.run(x), x.shape)

    def stage(self, lr: np.ndarray) -> Any:
        # A device buffer per staged input: `srx bench` stages every input before timing,
        # and each timed run must read its own (a single shared buffer would hold the last).
        return self._session.stage_copy(lr)

    def execute(self, staged: Any) -> Any:
        self._session.execute(staged)
        return staged[1]

    def fetch(self, out: Any) -> np.ndarray:
        return self._session.fetch()

    def synchronize(self) -> None:
        self._session.synchronize()

    def timer(self) -> Timer:
        return EngineEventTimer(self._session)

    def mode(self) -> str:
        return f"{self.backend} engine"

    def staged_device_bytes(self, staged: Any) -> int:
        return int(np.prod(staged[1])) * 4

    def unsupported_batch(self, batch: int) -> str:
        """An engine runs the batch sizes of its optimisation profile (from its sidecar)."""
        from srx.runtime.profile import Profile
        from srx.runtime.sidecar import read_sidecar

        try:
            prof = read_sidecar(self.source.engine_path()).get("profile")
            lo, _opt, hi = Profile.from_dict(prof).batch if prof else (1, 1, 10**9)
        except Exception:  # a missing or bad sidecar is reported when the engine is opened
            return ""
        if lo <= batch <= hi:
            return ""
        built = f"batch {lo}" if lo == hi else f"batches {lo} to {hi}"
        return f"this engine was built for {built}: rebuild it with srx build-engine --batch {batch} (or MIN:OPT:MAX)"

    def describe(self) -> dict[str, Any]:
        s = self._session
        side = s.sidecar
        return {
            "engine": str(s.path),
            "engine_precision": side.get("precision"),
            "backend_version": s.backend_version,
            "built_with": side.get("backend_version"),
            "profile": side.get("profile"),
            "device": s.device.to_dict() if s.device is not None else None,
            "engine_checked": s.check,
        }


class TensorRTRTXRunner(TensorRTRunner):
    """A TensorRT-RTX engine (RTX GPUs; specialised for the GPU on first run)."""

    name = "tensorrt-rtx"
    backend = "tensorrt-rtx"
