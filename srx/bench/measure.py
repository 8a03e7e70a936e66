"""One backend, measured: warm-up, accuracy, timed runs, peak memory, and optionally a profile.

The order of a backend's runs, and what each timed run holds:

1. `warmup` untimed runs (the first one, timed by the host clock, is `first_run_seconds`:
   torch.compile compiles there, a CUDA graph is captured there);
2. the accuracy pass: untimed runs on the first batches, each output fetched to the host
   and compared with the FP32 reference;
3. `runs` timed runs, back to back, cycling through the staged inputs: a timer mark, the
   model (`Runner.execute`), a timer mark, nothing else: no copy, no cast, no host work,
   no synchronisation. GPU runners queue all of them and synchronise once at the end
   (CUDA events per run are read afterwards), as a video loop runs and as PyTorch's own
   benchmark utilities time; synchronous backends are timed by the host clock per run;
4. with `--profile`, a few more runs under the backend's profiler (srx.bench.breakdown).

With `srx bench --rounds N` step 3 is split into N rounds (`BackendTiming`): the first right
after step 2, the others once every backend has had its first, the backends taking turns.

Before srx 2026-11-28 the accuracy outputs were fetched inside the timed loop (for the
first 16 of 50 runs) and every run was synchronised on its own; docs/bench.md says why
that changed and what it did to torch-fp16 on an H200.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from srx.bench.breakdown import breakdown, unavailable
from srx.errors import BadInput, first_line

Progress = Callable[[str, int], Any]  # (description, total) -> object with update(n) and close()
CPU_PROFILE_RUNS, CUDA_PROFILE_RUNS = 3, 20


def latency_stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "mean": round(float(a.mean()), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
        "std": round(float(a.std()), 4),
    }


class Accuracy:
    """Running max |diff| and pooled squared error against reference outputs."""

    def __init__(self) -> None:
        self.max_abs = 0.0
        self.sq = 0.0
        self.count = 0
        self.nonfinite = 0

    def add(self, out: np.ndarray, ref: np.ndarray) -> None:
        if out.shape != ref.shape:
            raise ValueError(f"output shape {out.shape} differs from the reference {ref.shape}")
        finite = np.isfinite(out)
        self.nonfinite += int(out.size - finite.sum())
        diff = np.abs(np.where(finite, out, 0.0) - ref)
        self.max_abs = max(self.max_abs, float(diff.max()))
        d = np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0) - np.clip(ref, 0.0, 1.0)
        self.sq += float(np.square(d, dtype=np.float64).sum())
        self.count += out.size

    def result(self) -> dict[str, Any]:
        if self.count == 0:
            return {"max_abs_diff_vs_fp32": None, "psnr_vs_fp32": None}
        mse = self.sq / self.count
        return {
            "max_abs_diff_vs_fp32": None if self.nonfinite else float(f"{self.max_abs:.6g}"),
            "psnr_vs_fp32": None if mse == 0 else round(10 * math.log10(1.0 / mse), 3),
            "identical_to_fp32": mse == 0 and self.max_abs == 0 and not self.nonfinite,
            "nonfinite_outputs": self.nonfinite,
        }


def timed_runs(runner: Any, staged: list[Any], runs: int) -> list[float]:
    """Per-run latency in ms of `runs` runs queued back to back (step 3 above)."""
    timers = []
    for i in range(runs):
        timer = runner.timer()
        timer.start()
        out = runner.execute(staged[i % len(staged)])
        timer.stop()
        timers.append(timer)
        del out
    runner.synchronize()
    return [t.elapsed_ms() for t in timers]


def measure_backend(
    runner: Any,
    batches: list[np.ndarray],
    ref: dict[int, np.ndarray],
    *,
    warmup: int,
    runs: int,
    n_acc: int,
    profile: bool,
    progress: Progress,
    collect_ref: bool = False,
) -> dict[str, Any]:
    """The result row of one backend (docs/cli.md#srx-bench fields); `ref` is filled when `collect_ref`.

    `runner` is constructed, not activated; it is activated and always deactivated here.
    A failure while running makes a `failed` row; bad input and Ctrl-C propagate."""
    timing = BackendTiming(runner, batches, ref, warmup=warmup, n_acc=n_acc, profile=profile, collect_ref=collect_ref)
    try:
        timing.start(runs, progress)
        return timing.finish()
    finally:
        timing.close()


class BackendTiming:
    """One backend's row, measured in steps so that several backends' timed runs can take
    turns (srx bench --rounds): `start` activates the runner, warms it up, compares its
    outputs and times the first round (peak memory is read after it), `more` times another
    round, `finish` fills in the row (with the profile) and deactivates. A failure in any
    step makes a `failed` row, deactivates, and the later steps do nothing; bad input and
    Ctrl-C propagate (then `close` deactivates)."""

    def __init__(
        self,
        runner: Any,
        batches: list[np.ndarray],
        ref: dict[int, np.ndarray],
        *,
        warmup: int,
        n_acc: int,
        profile: bool,
        collect_ref: bool = False,
    ) -> None:
        self.runner, self.batches, self.ref = runner, batches, ref
        self.warmup, self.n_acc, self.profile, self.collect_ref = warmup, n_acc, profile, collect_ref
        self.row: dict[str, Any] = {"backend": runner.name, "precision": runner.precision, "status": "ok"}
        self.times: list[float] = []
        self.staged: list[Any] = []
        self.meter: Any = None
        self.peak: float | None = None
        self.accuracy: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return self.row["status"] == "ok"

    def start(self, runs: int, progress: Progress) -> None:
        bar = progress(self.runner.name, self.warmup + self.n_acc + runs)
        try:
            self._guarded(self._start, runs, bar)
        finally:
            bar.close()

    def more(self, runs: int) -> None:
        if self.ok:
            self._guarded(self._time, runs)

    def finish(self) -> dict[str, Any]:
        if self.ok:
            self._guarded(self._fill_row)
        self.close()
        return self.row

    def close(self) -> None:
        self.runner.deactivate()

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except (KeyboardInterrupt, BadInput):
            self.close()
            raise
        except Exception as e:
            self.row = failed_row(self.runner, e)
            self.close()

    def _start(self, runs: int, bar: Any) -> None:
        runner, row = self.runner, self.row
        self.meter = runner.memory_meter()
        self.meter.start()
        t0 = time.perf_counter()
        runner.activate()
        prepare = getattr(runner, "prepare", None)
        if prepare is not None:
            prepare(self.batches[0].shape)
        row["load_seconds"] = round(time.perf_counter() - t0, 3)
        self.staged = [runner.stage(runner.check_input(x)) for x in self.batches]
        for i in range(self.warmup):
            t1 = time.perf_counter()
            runner.execute(self.staged[i % len(self.staged)])
            runner.synchronize()
            if i == 0:
                row["first_run_seconds"] = round(time.perf_counter() - t1, 3)
            bar.update(1)
        self._compare(bar)
        self._time(runs)
        bar.update(runs)
        self.peak = self.meter.peak_mb()
        if self.peak is not None:
            # One staged input is what a single run holds; the others only serve the rotation.
            self.peak -= sum(runner.staged_device_bytes(s) for s in self.staged[1:]) / 2**20

    def _compare(self, bar: Any) -> None:
        acc = Accuracy()
        for i in range(self.n_acc):
            host = self.runner.check_output(
                self.runner.fetch(self.runner.execute(self.staged[i])), self.batches[i].shape
            )
            if self.collect_ref:
                self.ref[i] = host
            if i in self.ref:
                acc.add(host, self.ref[i])
            bar.update(1)
        self.accuracy = acc.result()

    def _time(self, runs: int) -> None:
        # Each round starts where the last one stopped in the rotation of staged inputs.
        done = len(self.times)
        rotated = self.staged[done % len(self.staged) :] + self.staged[: done % len(self.staged)]
        self.times += timed_runs(self.runner, rotated, runs)

    def _fill_row(self) -> None:
        runner, row, meter, staged = self.runner, self.row, self.meter, self.staged
        row["latency_ms"] = latency_stats(self.times)
        row["fps"] = round(1000.0 * self.batches[0].shape[0] / row["latency_ms"]["median"], 3)
        row["peak_memory_mb"] = None if self.peak is None else round(self.peak, 2)
        row["memory_method"] = meter.method + (
            "; the benchmark's other staged inputs not counted" if len(staged) > 1 and runner.device == "cuda" else ""
        )
        pool = getattr(meter, "graph_pool_mb", None)
        if pool is not None:
            row["graph_pool_mb"] = round(pool, 2)
        row.update(self.accuracy)
        row["mode"] = runner.mode()
        row["settings"] = runner.describe()
        if self.profile:
            row["profile"] = _profile(runner, staged, len(self.times), row["latency_ms"]["median"])


def failed_row(runner: Any, e: BaseException) -> dict[str, Any]:
    return {
        "backend": runner.name,
        "precision": runner.precision,
        "status": "failed",
        "reason": f"{type(e).__name__}: {first_line(str(e), 300)}",
    }


def _profile(runner: Any, staged: list[Any], runs: int, median_ms: float) -> dict[str, Any]:
    """The row's `profile`: a profiler failure is reported there and leaves the timing standing."""
    n = min(runs, CUDA_PROFILE_RUNS if runner.device == "cuda" else CPU_PROFILE_RUNS)
    try:
        trace = runner.profile(staged, n)
    except (KeyboardInterrupt, BadInput):
        raise
    except Exception as e:
        return {"status": "failed", "reason": f"{type(e).__name__}: {first_line(str(e), 200)}"}
    if trace is None:
        return unavailable(runner.profile_unavailable)
    return breakdown(trace, median_ms)
