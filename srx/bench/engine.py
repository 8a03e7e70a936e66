"""srx bench: time every backend on the same inputs, measure peak memory, compare outputs.

Protocol (the SAFMN paper's, by default): 50 LR inputs of 320x180, batch 1, x4. Each
backend gets `warmup` untimed runs, then `runs` timed runs cycling through the inputs.
Only `execute` (the model) is timed: CUDA events for torch on CUDA, the host monotonic
clock (time.perf_counter) for synchronous backends. Inputs are staged on the device
before timing and outputs fetched after each timed run, outside the timer.

Accuracy: the outputs for the first `accuracy_inputs` inputs are compared with the FP32
PyTorch eager output (TF32 off on CUDA): max |difference| on raw outputs, and PSNR over
all compared pixels on outputs clipped to [0, 1] (what an 8-bit image would hold), peak 1.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srx import __version__
from srx.bench.complexity import count_complexity
from srx.bench.inputs import DEFAULT_COUNT, INPUT_SEED, folder_inputs, synthetic_inputs
from srx.errors import BadInput, first_line
from srx.resources import check_memory
from srx.runtime.device import device_info, has_cuda
from srx.runtime.registry import backend_names, check_backend, default_backends, get_backend, runner_class
from srx.runtime.source import ModelSource
from srx.spec import UNTRAINED_LABEL

CPU_DEFAULT_RUNS, CPU_DEFAULT_WARMUP = 10, 1
CUDA_DEFAULT_RUNS, CUDA_DEFAULT_WARMUP = DEFAULT_COUNT, 10
MAX_ACCURACY_INPUTS = 16
REFERENCE_BUDGET_BYTES = 256 * 2**20  # FP32 reference outputs kept in memory at most


@dataclass
class BenchConfig:
    height: int = 180
    width: int = 320
    device: str | None = None  # None: cuda when a GPU is visible, else cpu
    backends: list[str] | None = None  # None: the default set for the device
    runs: int | None = None  # None: 50 on CUDA, 10 on CPU
    warmup: int | None = None
    images: str | None = None
    seed: int = INPUT_SEED
    threads: int | None = None
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The counts are checked where they are defined, before any model is loaded."""
        if self.runs is not None and self.runs < 1:
            raise BadInput(f"--runs {self.runs}: need at least 1 timed run")
        if self.warmup is not None and self.warmup < 0:
            raise BadInput(f"--warmup {self.warmup}: cannot be negative; use 0 or more")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"--threads {self.threads}: need at least 1; use 1 or more (default: every CPU)")

    def resolved(self) -> BenchConfig:
        device = self.device or ("cuda" if has_cuda() else "cpu")
        if device not in ("cpu", "cuda"):
            raise BadInput(f"--device {device} is not supported: use cpu or cuda")
        runs = self.runs if self.runs is not None else (CUDA_DEFAULT_RUNS if device == "cuda" else CPU_DEFAULT_RUNS)
        warmup = self.warmup
        if warmup is None:
            warmup = CUDA_DEFAULT_WARMUP if device == "cuda" else CPU_DEFAULT_WARMUP
        return BenchConfig(
            self.height,
            self.width,
            device,
            self.backends,
            runs,
            warmup,
            self.images,
            self.seed,
            self.threads,
            self.backend_options,
        )


Progress = Callable[[str, int], Any]  # (description, total) -> object with update(n) and close()


def versions() -> dict[str, str]:
    """Installed versions of everything that can change a number (no imports: metadata only)."""
    out = {"srx": __version__, "python": platform.python_version()}
    for dist in ("torch", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "tensorrt-rtx-cu13"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    for dist in ("triton", "pillow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch.version, "cuda", None):
        out["torch_cuda"] = torch.version.cuda
        if torch.backends.cudnn.is_available():
            out["cudnn"] = str(torch.backends.cudnn.version())
    return out


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


def _skipped(name: str, reason: str) -> dict[str, Any]:
    b = get_backend(name)
    return {"backend": name, "precision": b.precision, "status": "skipped", "reason": reason}


def _null_progress(desc: str, total: int) -> Any:
    class _P:
        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    return _P()


def run_bench(
    source: ModelSource,
    config: BenchConfig,
    *,
    progress: Progress = _null_progress,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Benchmark every backend on `source`; return the result record (CLI.md JSON)."""
    cfg = config.resolved()
    load_before = _loadavg()
    spec = source.spec
    spec.check_input_size(cfg.height, cfg.width)
    requested = cfg.backends if cfg.backends is not None else default_backends(cfg.device)
    for name in requested:
        get_backend(name)

    n_inputs = min(DEFAULT_COUNT, cfg.runs + cfg.warmup) if cfg.images is None else DEFAULT_COUNT
    in_bytes = 4 * 3 * cfg.height * cfg.width
    refs = min(REFERENCE_BUDGET_BYTES, MAX_ACCURACY_INPUTS * in_bytes * spec.scale**2)
    model = spec.forward_bytes(cfg.height, cfg.width) if cfg.device == "cpu" else 0
    check_memory(
        n_inputs * in_bytes + refs + model, f"benchmarking at --input {cfg.width}x{cfg.height}", "use a smaller --input"
    )
    if cfg.images is not None:
        inputs = folder_inputs(cfg.images, cfg.height, cfg.width, n_inputs)
        input_desc = {"source": str(cfg.images), "count": len(inputs)}
    else:
        inputs = synthetic_inputs(cfg.height, cfg.width, n_inputs, cfg.seed)
        input_desc = {"source": f"synthetic natural-looking images (seed {cfg.seed})", "count": len(inputs)}
    out_bytes = 4 * 3 * cfg.height * cfg.width * spec.scale**2
    n_acc = max(1, min(cfg.runs, len(inputs), MAX_ACCURACY_INPUTS, REFERENCE_BUDGET_BYTES // out_bytes))

    result: dict[str, Any] = {
        "srx_version": __version__,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command or [],
        "model": {
            "label": spec.label,
            "arch": spec.arch,
            "trained": spec.trained,
            "source": source.origin,
            "precision": source.precision,
            "spec": spec.to_dict(),
        },
        "untrained": not spec.trained,
        "device": device_info(cfg.device),
        "versions": {},
        "input": f"{cfg.width}x{cfg.height}",
        "output": f"{cfg.width * spec.scale}x{cfg.height * spec.scale}",
        "batch": 1,
        "scale": spec.scale,
        "runs": cfg.runs,
        "warmup": cfg.warmup,
        "inputs": input_desc,
        "timing": "CUDA events (torch on CUDA); time.perf_counter around synchronous calls otherwise",
        "accuracy": {
            "inputs": n_acc,
            "psnr": "RGB, outputs clipped to [0, 1], peak 1, MSE pooled over all compared pixels",
        },
        "results": [],
    }
    if not spec.trained:
        result["note"] = f"embedded default model, {UNTRAINED_LABEL}"
    if source.has_module:
        result["complexity"] = count_complexity(source.torch_module(), cfg.height, cfg.width).to_dict()
    else:
        result["complexity"] = {"params": spec.params, "macs": None, "activations": None}

    ref: dict[int, np.ndarray] = {}
    torch_supplies_ref = False
    if source.has_module:
        torch_supplies_ref = cfg.device == "cpu" and "torch" in requested and check_backend("torch", "cpu", source).ok
        result["accuracy"]["reference"] = (
            f"PyTorch eager FP32 ({cfg.device}{', TF32 off' if cfg.device == 'cuda' else ''})"
        )
        if not torch_supplies_ref:
            ref = _reference_outputs(source, cfg, inputs[:n_acc], progress)
    elif source.kind == "onnx" and check_backend("onnxruntime", "cpu", source).ok:
        result["accuracy"]["reference"] = "onnxruntime CPU on the given ONNX (no PyTorch weights given)"
        ref = _reference_outputs(source, cfg, inputs[:n_acc], progress, backend="onnxruntime")
    else:
        result["accuracy"]["reference"] = None
        result["accuracy"]["note"] = "no FP32 reference: pass --weights to compare against PyTorch"

    default_set = cfg.backends is None
    order = [n for n in requested if n == "torch"] + [n for n in requested if n != "torch"]
    for name in order:
        avail = check_backend(name, cfg.device, source)
        if not avail.ok:
            result["results"].append(_skipped(name, avail.reason))
            continue
        row = _bench_one(name, source, cfg, inputs, ref, n_acc, progress, collect_ref=torch_supplies_ref)
        result["results"].append(row)
    for name in backend_names():
        if name in requested:
            continue
        avail = check_backend(name, cfg.device, source)
        b = get_backend(name)
        if not avail.ok:
            reason = avail.reason
        elif default_set and b.not_default_reason:
            reason = (
                f"not in the default set on {cfg.device}: {b.not_default_reason}; request it with --backends {name}"
            )
        else:
            reason = f"not requested; add it to --backends to measure it ({'default' if default_set else 'chosen'} set)"
        result["results"].append(_skipped(name, reason))
    result["versions"] = versions()
    result["device"]["load_average_before"] = load_before
    result["device"]["load_average_after"] = _loadavg()
    _add_speedups(result)
    return result


def _reference_outputs(
    source: ModelSource,
    cfg: BenchConfig,
    inputs: list[np.ndarray],
    progress: Progress,
    backend: str = "torch",
) -> dict[int, np.ndarray]:
    opts: dict[str, Any] = {"exact": True} if backend == "torch" else {}
    device = cfg.device if backend == "torch" else "cpu"
    runner = runner_class(backend)(source, device, **opts)
    bar = progress("reference (FP32)", len(inputs))
    out = {}
    with runner:
        for i, x in enumerate(inputs):
            out[i] = runner.run(x)
            bar.update(1)
    bar.close()
    return out


def _bench_one(
    name: str,
    source: ModelSource,
    cfg: BenchConfig,
    inputs: list[np.ndarray],
    ref: dict[int, np.ndarray],
    n_acc: int,
    progress: Progress,
    *,
    collect_ref: bool,
) -> dict[str, Any]:
    b = get_backend(name)
    opts = dict(cfg.backend_options.get(name, {}))
    if cfg.threads and "threads" not in opts:
        opts["threads"] = cfg.threads
    runner = runner_class(name)(source, b.runs_on(cfg.device), **opts)
    row: dict[str, Any] = {"backend": name, "precision": runner.precision, "status": "ok"}
    meter = runner.memory_meter()
    bar = progress(name, cfg.warmup + cfg.runs)
    times: list[float] = []
    acc = Accuracy()
    try:
        meter.start()
        t0 = time.perf_counter()
        runner.activate()
        prepare = getattr(runner, "prepare", None)
        if prepare is not None:
            prepare(inputs[0].shape)
        row["load_seconds"] = round(time.perf_counter() - t0, 3)
        staged = [runner.stage(runner.check_input(x)) for x in inputs]
        for i in range(cfg.warmup):
            t1 = time.perf_counter()
            runner.execute(staged[i % len(staged)])
            runner.synchronize()
            if i == 0:
                row["first_run_seconds"] = round(time.perf_counter() - t1, 3)
            bar.update(1)
        for i in range(cfg.runs):
            k = i % len(staged)
            timer = runner.timer()
            timer.start()
            out = runner.execute(staged[k])
            timer.stop()
            times.append(timer.elapsed_ms())
            if i < n_acc:
                host = runner.check_output(runner.fetch(out), inputs[k].shape)
                if collect_ref and name == "torch":
                    ref[i] = host
                if i in ref:
                    acc.add(host, ref[i])
            del out
            bar.update(1)
        peak = meter.peak_mb()
        row["latency_ms"] = latency_stats(times)
        row["fps"] = round(1000.0 / row["latency_ms"]["median"], 3)
        row["peak_memory_mb"] = None if peak is None else round(peak, 2)
        row["memory_method"] = meter.method
        row.update(acc.result())
        row["settings"] = runner.describe()
    except (KeyboardInterrupt, BadInput):
        raise
    except Exception as e:
        row = {
            "backend": name,
            "precision": runner.precision,
            "status": "failed",
            "reason": f"{type(e).__name__}: {first_line(str(e), 300)}",
        }
    finally:
        bar.close()
        runner.deactivate()
    return row


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on a shared machine shows up here."""
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _add_speedups(result: dict[str, Any]) -> None:
    base = next((r for r in result["results"] if r["backend"] == "torch" and r["status"] == "ok"), None)
    if base is None:
        return
    for r in result["results"]:
        if r["status"] == "ok":
            r["speedup_vs_torch"] = round(base["latency_ms"]["median"] / r["latency_ms"]["median"], 3)
