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
    row: dict[str, Any] = {"backend": runner.name, "precision": runner.precision, "status": "ok"}
    meter = runner.memory_meter()
    bar = progress(runner.name, warmup + n_acc + runs)
    acc = Accuracy()
    try:
        meter.start()
        t0 = time.perf_counter()
        runner.activate()
        prepare = getattr(runner, "prepare", None)
        if prepare is not None:
            prepare(batches[0].shape)
        row["load_seconds"] = round(time.perf_counter() - t0, 3)
        staged = [runner.stage(runner.check_input(x)) for x in batches]
        for i in range(warmup):
            t1 = time.perf_counter()
            runner.execute(staged[i % len(staged)])
            runner.synchronize()
            if i == 0:
                row["first_run_seconds"] = round(time.perf_counter() - t1, 3)
            bar.update(1)
        for i in range(n_acc):
            host = runner.check_output(runner.fetch(runner.execute(staged[i])), batches[i].shape)
            if collect_ref:
                ref[i] = host
            if i in ref:
                acc.add(host, ref[i])
            bar.update(1)
        times = timed_runs(runner, staged, runs)
        bar.update(runs)
        peak = meter.peak_mb()
        if peak is not None:
            # One staged input is what a single run holds; the others only serve the rotation.
            peak -= sum(runner.staged_device_bytes(s) for s in staged[1:]) / 2**20
        row["latency_ms"] = latency_stats(times)
        row["fps"] = round(1000.0 * batches[0].shape[0] / row["latency_ms"]["median"], 3)
        row["peak_memory_mb"] = None if peak is None else round(peak, 2)
        row["memory_method"] = meter.method + (
            "; the benchmark's other staged inputs not counted" if len(staged) > 1 and runner.device == "cuda" else ""
        )
        pool = getattr(meter, "graph_pool_mb", None)
        if pool is not None:
            row["graph_pool_mb"] = round(pool, 2)
        row.update(acc.result())
        row["mode"] = runner.mode()
        row["settings"] = runner.describe()
        if profile:
            row["profile"] = _profile(runner, staged, runs, row["latency_ms"]["median"])
    except (KeyboardInterrupt, BadInput):
        raise
    except Exception as e:
        row = failed_row(runner, e)
    finally:
        bar.close()
        runner.deactivate()
    return row


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
