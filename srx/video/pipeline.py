"""The pipeline: decoding, staging, inference, read-back and encoding overlap.

    reader thread:   demux + decode + RGB ("decode"), model input ("stage"); copied packets -> writer ("copy")
         | queue of at most 2 x batch staged frames
    calling thread:  the model on a batch ("infer"; the runner stays on the thread that opened it)
         | queue of at most 2 batches of outputs
    writer thread:   output frames ("readback"), pixel format + encode + mux ("encode")

Bounded queues keep memory independent of the video's length: the reader cannot run more
than the queues ahead of the encoder. Each stage's busy time (waits on the queues
excluded) is summed per stage: the stage with the most busy time is the bottleneck, and
the end-to-end rate cannot beat frames / its busy time.

Failures: the first exception in any thread stops the others (every queue operation
polls a stop flag) and is raised in the calling thread; Ctrl-C (raised in the calling
thread, where Python delivers signals) stops them the same way. The caller then removes
the temporary output (srx.fileio.atomic_path), so nothing half-written is left.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from srx.video.reader import Decoded

POLL_S = 0.05  # how often a blocked queue operation looks at the stop flag
JOIN_S = 30.0  # how long a stopping thread may take to finish its current call (one frame's encode)
STAGES = ("decode", "stage", "copy", "infer", "readback", "encode")


class Frames(Protocol):
    """Model input and output on some device (srx.video.frames.HostFrames, srx.video.cuda.CudaFrames)."""

    def stage(self, pixels: Any) -> Any: ...
    def infer(self, staged: list[Any]) -> list[Any]: ...
    def readback(self, up: Any, width: int, height: int) -> Any: ...


class Sink(Protocol):
    def mux_copy(self, packet: Any) -> None: ...
    def encode(self, frame: Any, pts: int) -> None: ...
    def finish(self) -> None: ...


@dataclass
class StageClock:
    """Busy seconds per stage, and frames through each; thread-safe adds."""

    busy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.busy[stage] += seconds


@dataclass
class PipelineResult:
    frames: int
    wall_s: float
    busy_s: dict[str, float]
    mark_s: float | None  # when inference of the first batch from frame `mark_frame` on began (s after the start)
    mark_index: int  # the first frame of that batch
    submitted_s: float  # when the encoder took the last frame (s after the start)
    finish_s: float  # flushing the encoder (its look-ahead frames) and writing the trailer

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "wall_s": round(self.wall_s, 4),
            "busy_s": {k: round(v, 4) for k, v in self.busy_s.items()},
        }


class _Stopped(Exception):
    """Raised inside a thread whose pipeline is stopping because another thread failed."""


_END = object()


class Pipeline:
    def __init__(
        self,
        items: Iterable[Decoded | Any],
        frames: Frames,
        sink: Sink,
        *,
        width: int,
        height: int,
        batch: int = 1,
        progress: Callable[[int], None] | None = None,
        mark_frame: int | None = None,
    ) -> None:
        self.items, self.frames, self.sink = items, frames, sink
        self.width, self.height, self.batch = width, height, batch
        self.progress = progress
        self.mark_frame = mark_frame
        self.clock = StageClock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.q_in: queue.Queue[Any] = queue.Queue(maxsize=2 * batch)
        self.q_out: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.encoded = 0
        self._t0 = 0.0
        self._mark: float | None = None
        self._mark_index = 0
        self._submitted = 0.0
        self._finish = 0.0

    # -- queue operations that give up when the pipeline stops ---------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue
        raise _Stopped

    def _thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except _Stopped:
                pass
            except BaseException as e:  # the calling thread re-raises it
                self.errors.append(e)
                self.stop.set()

        # Daemon: a thread stuck in a C call must not keep the process alive after Ctrl-C.
        t = threading.Thread(target=run, name=f"srx-video-{name}", daemon=True)
        t.start()
        return t

    # -- the three stages ---------------------------------------------------------------------
    def _read(self) -> None:
        clock = self.clock
        it = iter(self.items)
        while True:
            t = time.perf_counter()
            item = next(it, _END)
            if item is _END:
                break
            if isinstance(item, Decoded):
                t1 = time.perf_counter()
                clock.add("decode", t1 - t)
                staged = self.frames.stage(item.pixels)
                clock.add("stage", time.perf_counter() - t1)
                self._put(self.q_in, (item.index, item.pts, staged))
            else:
                clock.add("decode", time.perf_counter() - t)  # demuxing the packet
                t1 = time.perf_counter()
                self.sink.mux_copy(item)
                clock.add("copy", time.perf_counter() - t1)
        self._put(self.q_in, _END)

    def _infer(self) -> None:
        done = False
        while not done:
            first = self._get(self.q_in)
            if first is _END:
                break
            group = [first]
            while len(group) < self.batch:
                nxt = self._get(self.q_in)
                if nxt is _END:
                    done = True
                    break
                group.append(nxt)
            if self.mark_frame is not None and self._mark is None and group[0][0] >= self.mark_frame:
                self._mark = time.perf_counter() - self._t0
                self._mark_index = group[0][0]
            t = time.perf_counter()
            outs = self.frames.infer([g[2] for g in group])
            self.clock.add("infer", time.perf_counter() - t)
            self._put(self.q_out, [(g[0], g[1], o) for g, o in zip(group, outs, strict=True)])
        self._put(self.q_out, _END)

    def _write(self) -> None:
        clock = self.clock
        while True:
            group = self._get(self.q_out)
            if group is _END:
                break
            for _index, pts, up in group:
                t = time.perf_counter()
                frame = self.frames.readback(up, self.width, self.height)
                t1 = time.perf_counter()
                self.sink.encode(frame, pts)
                clock.add("readback", t1 - t)
                clock.add("encode", time.perf_counter() - t1)
                self.encoded += 1
                self._submitted = time.perf_counter() - self._t0
                if self.progress is not None:
                    self.progress(1)
        t = time.perf_counter()
        self.sink.finish()
        self._finish = time.perf_counter() - t
        clock.add("encode", self._finish)

    def run(self) -> PipelineResult:
        """Run to the end, or raise the first failure after stopping every thread."""
        self._t0 = time.perf_counter()
        threads = [self._thread(self._read, "read"), self._thread(self._write, "write")]
        try:
            self._infer()
        except _Stopped:
            pass
        except BaseException:
            self.stop.set()
            self._join(threads)
            raise
        self._join(threads)
        if self.errors:
            raise self.errors[0]
        if self.stop.is_set():  # stopped without an error: cannot happen, but never report success then
            raise RuntimeError("the video pipeline stopped without finishing")
        wall = time.perf_counter() - self._t0
        return PipelineResult(
            self.encoded, wall, dict(self.clock.busy), self._mark, self._mark_index, self._submitted, self._finish
        )

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for the reader and writer; the writer finishing normally is the end of the output."""
        deadline = time.perf_counter() + (JOIN_S if self.stop.is_set() else 1e9)
        for t in threads:
            while t.is_alive():
                t.join(timeout=POLL_S)
                if self.errors:
                    self.stop.set()
                if self.stop.is_set() and time.perf_counter() > deadline:
                    break
