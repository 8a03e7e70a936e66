"""srx bench: time every backend on the same inputs, measure peak memory, compare outputs.

Protocol (the SAFMN paper's, by default): 50 LR inputs of 320x180, batch 1, x4. With
`batch` N the inputs are grouped N at a time and FPS counts frames. Each backend gets
`warmup` untimed runs, an untimed accuracy pass, then `runs` timed runs cycling through
the staged inputs (srx.bench.measure: what a timed run holds, and why).

Speed-ups: against eager FP32 (`torch`, the paper's baseline) and against the fastest
peer, the fastest row a user has without srx (plain PyTorch: eager, CUDA graph,
torch.compile; srx.runtime.registry's `peer`).

Accuracy: the outputs for the first `accuracy_inputs` inputs are compared with the FP32
PyTorch eager output (TF32 off on CUDA): max |difference| on raw outputs, and PSNR over
all compared pixels on outputs clipped to [0, 1] (what an 8-bit image would hold), peak 1.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srx import __version__
from srx.bench.complexity import count_complexity
from srx.bench.inputs import DEFAULT_COUNT, INPUT_SEED, folder_inputs, synthetic_inputs
from srx.bench.measure import Accuracy, BackendTiming, Progress, latency_stats
from srx.bench.result import BenchResult
from srx.errors import BadInput
from srx.resources import check_memory
from srx.runtime.device import device_info, has_cuda
from srx.runtime.registry import backend_names, check_backend, default_backends, get_backend, runner_class
from srx.runtime.source import ModelSource
from srx.spec import UNTRAINED_LABEL

__all__ = ["Accuracy", "BenchConfig", "BenchResult", "latency_stats", "make_batches", "run_bench", "versions"]

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
    batch: int = 1  # inputs per run (FPS counts frames)
    profile: bool = False  # add each backend's breakdown by operation kind (results[].profile)
    compile_mode: str | None = None  # torch.compile mode of the torch-compile rows (None: theirs)
    rounds: int = 1  # the timed runs in this many rounds, the backends taking turns (all loaded at once)

    def __post_init__(self) -> None:
        """The counts are checked where they are defined, before any model is loaded."""
        if self.runs is not None and self.runs < 1:
            raise BadInput(f"--runs {self.runs}: need at least 1 timed run")
        if self.warmup is not None and self.warmup < 0:
            raise BadInput(f"--warmup {self.warmup}: cannot be negative; use 0 or more")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"--threads {self.threads}: need at least 1; use 1 or more (default: every CPU)")
        if self.batch < 1:
            raise BadInput(f"--batch {self.batch}: need at least 1 input per run")
        if self.rounds < 1:
            raise BadInput(f"--rounds {self.rounds}: need at least 1")

    def resolved(self) -> BenchConfig:
        device = self.device or ("cuda" if has_cuda() else "cpu")
        if device not in ("cpu", "cuda"):
            raise BadInput(f"--device {device} is not supported: use cpu or cuda")
        runs = self.runs if self.runs is not None else (CUDA_DEFAULT_RUNS if device == "cuda" else CPU_DEFAULT_RUNS)
        warmup = self.warmup
        if warmup is None:
            warmup = CUDA_DEFAULT_WARMUP if device == "cuda" else CPU_DEFAULT_WARMUP
        if self.rounds > runs:
            raise BadInput(f"--rounds {self.rounds} is more than the {runs} timed runs: use --rounds {runs} or fewer")
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
            self.batch,
            self.profile,
            self.compile_mode,
            self.rounds,
        )


def versions() -> dict[str, str]:
    """Installed versions of everything that can change a number (no imports: metadata only)."""
    out = {"srx": __version__, "python": platform.python_version()}
    for dist in (
        "torch",
        "numpy",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "openvino",
        "tensorrt",
        "tensorrt-rtx-cu13",
    ):
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
) -> BenchResult:
    """Benchmark every backend on `source`; return the result (its JSON: docs/cli.md#srx-bench)."""
    cfg = config.resolved()
    load_before = _loadavg()
    source.spec.check_input_size(cfg.height, cfg.width)
    requested = cfg.backends if cfg.backends is not None else default_backends(cfg.device)
    for name in requested:
        get_backend(name)
    batches, input_desc, n_acc = _stage_inputs(cfg, source.spec)
    result = _new_result(source, cfg, input_desc, n_acc, command)
    ref, torch_supplies_ref = _reference(source, cfg, requested, batches[:n_acc], progress, result.accuracy)
    ordered = [n for n in requested if n == "torch"] + [n for n in requested if n != "torch"]
    result.results += _measure_all(ordered, source, cfg, batches, ref, n_acc, progress, torch_supplies_ref)
    result.results += [
        _skipped(name, _not_run_reason(name, source, cfg)) for name in backend_names() if name not in requested
    ]
    result.versions = versions()
    result.device["load_average_before"] = load_before
    result.device["load_average_after"] = _loadavg()
    add_speedups(result)
    return result


def _stage_inputs(cfg: BenchConfig, spec: Any) -> tuple[list[np.ndarray], dict[str, Any], int]:
    """The input batches, how they were made, and how many batches are compared with the reference."""
    n = cfg.batch
    n_images = min(DEFAULT_COUNT, (cfg.runs + cfg.warmup) * n) if cfg.images is None else DEFAULT_COUNT
    in_bytes = 4 * 3 * cfg.height * cfg.width
    out_bytes = in_bytes * spec.scale**2
    # Batches compared with the reference: the first 16 images at most, within the memory
    # budget, but at least one batch (a --batch larger than 16 compares one whole batch).
    n_acc = max(
        1, min(cfg.runs, -(-n_images // n), MAX_ACCURACY_INPUTS // n, REFERENCE_BUDGET_BYTES // (out_bytes * n))
    )
    model = spec.forward_bytes(cfg.height, cfg.width) * n if cfg.device == "cpu" else 0
    check_memory(
        2 * n_images * in_bytes + n_acc * n * out_bytes + model,
        f"benchmarking at --input {cfg.width}x{cfg.height}" + (f" --batch {n}" if n > 1 else ""),
        "use a smaller --input" + (" or --batch" if n > 1 else ""),
    )
    if cfg.images is not None:
        images = folder_inputs(cfg.images, cfg.height, cfg.width, n_images)
        input_desc = {"source": str(cfg.images), "count": len(images)}
    else:
        images = synthetic_inputs(cfg.height, cfg.width, n_images, cfg.seed)
        input_desc = {"source": f"synthetic natural-looking images (seed {cfg.seed})", "count": len(images)}
    batches = make_batches(images, n)
    return batches, input_desc, min(n_acc, len(batches))


def _new_result(
    source: ModelSource, cfg: BenchConfig, input_desc: dict[str, Any], n_acc: int, command: list[str] | None
) -> BenchResult:
    """The record before any backend ran: what is measured, on what, how."""
    spec = source.spec
    if source.has_module:
        complexity = count_complexity(source.torch_module(), cfg.height, cfg.width).to_dict()
    else:
        complexity = {"params": spec.params, "macs": None, "activations": None}
    return BenchResult(
        srx_version=__version__,
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=command or [],
        model={
            "label": spec.label,
            "arch": spec.arch,
            "trained": spec.trained,
            "source": source.origin,
            "precision": source.precision,
            "spec": spec.to_dict(),
        },
        device=device_info(cfg.device),
        input=f"{cfg.width}x{cfg.height}",
        output=f"{cfg.width * spec.scale}x{cfg.height * spec.scale}",
        batch=cfg.batch,
        scale=spec.scale,
        runs=cfg.runs,
        warmup=cfg.warmup,
        inputs=input_desc,
        timing=TIMING,
        accuracy={
            "inputs": n_acc * cfg.batch,
            "psnr": "RGB, outputs clipped to [0, 1], peak 1, MSE pooled over all compared pixels",
        },
        complexity=complexity,
        note=None if spec.trained else f"embedded default model, {UNTRAINED_LABEL}",
        rounds=cfg.rounds,
    )


def _reference(
    source: ModelSource,
    cfg: BenchConfig,
    requested: list[str],
    inputs: list[np.ndarray],
    progress: Progress,
    accuracy: dict[str, Any],
) -> tuple[dict[int, np.ndarray], bool]:
    """The FP32 outputs every row is compared with (filled in `accuracy`), and whether the
    torch row supplies them itself as it runs (on the CPU: the same computation)."""
    if source.has_module:
        torch_supplies = cfg.device == "cpu" and "torch" in requested and check_backend("torch", "cpu", source).ok
        accuracy["reference"] = f"PyTorch eager FP32 ({cfg.device}{', TF32 off' if cfg.device == 'cuda' else ''})"
        return ({} if torch_supplies else _reference_outputs(source, cfg, inputs, progress)), torch_supplies
    if source.kind == "onnx" and check_backend("onnxruntime", "cpu", source).ok:
        accuracy["reference"] = "onnxruntime CPU on the given ONNX (no PyTorch weights given)"
        return _reference_outputs(source, cfg, inputs, progress, backend="onnxruntime"), False
    accuracy["reference"] = None
    accuracy["note"] = "no FP32 reference: pass --weights to compare against PyTorch"
    return {}, False


def round_sizes(runs: int, rounds: int) -> list[int]:
    """`runs` timed runs in `rounds` rounds, as even as they come (the first ones longer)."""
    return [runs // rounds + (1 if k < runs % rounds else 0) for k in range(rounds)]


def _measure_all(
    names: list[str],
    source: ModelSource,
    cfg: BenchConfig,
    batches: list[np.ndarray],
    ref: dict[int, np.ndarray],
    n_acc: int,
    progress: Progress,
    torch_supplies_ref: bool,
) -> list[dict[str, Any]]:
    """The requested backends' rows, measured or skipped with the reason. With one round (the
    default) each backend is measured and unloaded before the next one loads. With --rounds
    N each is started (warm-up, accuracy, its first round of timed runs, peak memory) and
    stays loaded; the other rounds go to every backend in turn, the order reversed every
    other round, so that a machine whose speed drifts slows every row alike."""
    sizes = round_sizes(cfg.runs, cfg.rounds)
    entries: list[dict[str, Any] | BackendTiming] = []
    try:
        for name in names:
            runner, skipped = _startable(name, source, cfg)
            if runner is None:
                entries.append(skipped)
                continue
            timing = BackendTiming(runner, batches, ref, warmup=cfg.warmup, n_acc=n_acc, profile=cfg.profile,
                                   collect_ref=torch_supplies_ref and name == "torch")  # fmt: skip
            entries.append(timing)
            timing.start(sizes[0], progress)
            if cfg.rounds == 1:
                entries[-1] = timing.finish()
        timings = [e for e in entries if isinstance(e, BackendTiming)]
        if timings:
            _take_turns(timings, sizes[1:], progress)
        return [e.finish() if isinstance(e, BackendTiming) else e for e in entries]
    finally:
        for e in entries:
            if isinstance(e, BackendTiming):
                e.close()


def _take_turns(timings: list[BackendTiming], sizes: list[int], progress: Progress) -> None:
    """Rounds 2..N of --rounds: every backend in turn, the order reversed every other round."""
    bar = progress("turns in rounds", len(sizes) * len(timings))
    try:
        for k, n in enumerate(sizes, start=1):
            for timing in timings if k % 2 == 0 else timings[::-1]:
                timing.more(n)
                bar.update(1)
    finally:
        bar.close()


def _startable(name: str, source: ModelSource, cfg: BenchConfig) -> tuple[Any, dict[str, Any]]:
    """(runner, {}) for a backend that can run here, else (None, its skipped row)."""
    avail = check_backend(name, cfg.device, source)
    if not avail.ok:
        return None, _skipped(name, avail.reason)
    runner = _runner(name, source, cfg)
    why = runner.unsupported_batch(cfg.batch)
    return (None, _skipped(name, why)) if why else (runner, {})


def _not_run_reason(name: str, source: ModelSource, cfg: BenchConfig) -> str:
    """Why a backend that was not requested has no numbers."""
    avail = check_backend(name, cfg.device, source)
    b = get_backend(name)
    default_set = cfg.backends is None
    if not avail.ok:
        return avail.reason
    if default_set and b.not_default_reason:
        return f"not in the default set on {cfg.device}: {b.not_default_reason}; request it with --backends {name}"
    return f"not requested; add it to --backends to measure it ({'default' if default_set else 'chosen'} set)"


TIMING = (
    "CUDA events around each run on a GPU, runs queued back to back and synchronised once at the end; "
    "time.perf_counter around each synchronous call otherwise; inputs staged before, outputs compared after"
)


def make_batches(images: list[np.ndarray], n: int) -> list[np.ndarray]:
    """(1, 3, H, W) images -> (n, 3, H, W) batches of consecutive images; the last wraps around."""
    if n == 1:
        return images
    count = -(-len(images) // n)
    return [np.concatenate([images[(j * n + t) % len(images)] for t in range(n)]) for j in range(count)]


def _runner(name: str, source: ModelSource, cfg: BenchConfig) -> Any:
    opts = dict(cfg.backend_options.get(name, {}))
    if cfg.threads and "threads" not in opts:
        opts["threads"] = cfg.threads
    if cfg.compile_mode and name.startswith("torch-compile") and "compile_mode" not in opts:
        opts["compile_mode"] = cfg.compile_mode
    return runner_class(name)(source, get_backend(name).runs_on(cfg.device), **opts)


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
            # Image by image: the reference must not depend on a batch size its file may not take.
            out[i] = np.concatenate([runner.run(x[j : j + 1]) for j in range(x.shape[0])])
            bar.update(1)
    bar.close()
    return out


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on a shared machine shows up here."""
    try:
        import os

        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def add_speedups(result: BenchResult) -> None:
    """`speedup_vs_torch` (eager FP32) and `speedup_vs_best_peer` on every row that ran, and
    the fastest peer itself in `best_peer` (None when no peer ran)."""
    ok = result.rows("ok")
    base = next((r for r in ok if r["backend"] == "torch"), None)
    peers = [r for r in ok if _is_peer(r["backend"])]
    best = min(peers, key=lambda r: r["latency_ms"]["median"]) if peers else None
    result.best_peer = None if best is None else {"backend": best["backend"], "median_ms": best["latency_ms"]["median"]}
    for r in ok:
        med = r["latency_ms"]["median"]
        if base is not None:
            r["speedup_vs_torch"] = round(base["latency_ms"]["median"] / med, 3)
        if best is not None:
            r["speedup_vs_best_peer"] = round(best["latency_ms"]["median"] / med, 3)


def _is_peer(name: str) -> bool:
    try:
        return get_backend(name).peer
    except BadInput:  # a row from a backend this build does not register
        return False
