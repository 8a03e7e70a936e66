"""Why did `srx bench` time eager FP16 at 10.65 ms on an H200 when two other scripts timed
the same model at 5.07 and 6.37 ms (issue 13)? One process, every protocol difference
between the three measurements switched on and off separately, interleaved over rounds.

    python bench/fp16_timing.py                      # on a GPU: about a minute on an H200
    python bench/fp16_timing.py --smoke --out DIR    # the same code paths on the CPU, tiny model; not a result

Factors (docs/bench.md, "The torch-fp16 question"), each a protocol of one of the three runs:
  * sync: the host waits for each run before the next (srx bench before 2026-11-28) or all
    runs are queued back to back and synchronised once (kernels_bench.py, the H200 compare script);
  * host: fetch and compare the output on the host after the first 16 of the timed runs
    (srx bench before 2026-11-28) or not;
  * rotate: cycle through 50 different staged inputs (srx bench) or one input (the others);
  * cudnn_benchmark: torch.backends.cudnn.benchmark (the compare script: True; kernels_bench
    and srx bench before 2026-11-28: False).
For FP32 (`torch`) and FP16 (`torch-fp16`) it runs srx's own runners (staging, execute,
CUDA-event timers) under all 16 combinations, `--rounds` times in a shuffled order, and
records the median ms per run, the mean SM clock while timing (NVML) and the kernel time
per run from torch.profiler (srx bench --profile's device timeline: GPU busy vs idle).
Writes bench/results/<date>-<gpu>/fp16_timing.json and fp16_timing.log.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import itertools
import random
import re
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from portable import portable  # noqa: E402

LOG: list[str] = []
HOST_RUNS = 16  # the old srx bench compared the first 16 timed outputs with the reference


def say(line: str = "") -> None:
    LOG.append(line)
    print(line, flush=True)


class SMClock:
    """Mean SM clock (MHz) of GPU 0 while a block runs, sampled every 1 ms through NVML."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        try:
            self._lib = ctypes.CDLL("libnvidia-ml.so.1")
            self._handle = ctypes.c_void_p()
            ok = (
                self._lib.nvmlInit_v2() == 0
                and self._lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self._handle)) == 0
            )
        except OSError:
            ok = False
        if not ok:
            self._lib = None

    def _sample(self) -> None:
        clock = ctypes.c_uint(0)
        while not self._stop.wait(0.001):
            if self._lib.nvmlDeviceGetClockInfo(self._handle, 1, ctypes.byref(clock)) == 0:  # 1: NVML_CLOCK_SM
                self.samples.append(clock.value)

    def __enter__(self) -> SMClock:
        if self._lib is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lib is not None:
            self._stop.set()
            self._thread.join()

    def mean(self) -> float | None:
        return round(statistics.fmean(self.samples), 1) if self.samples else None


def measure(
    runner: Any, staged: list[Any], refs: list[np.ndarray], combo: dict[str, bool], warmup: int, runs: int
) -> dict[str, Any]:
    from srx.bench.measure import Accuracy

    torch.backends.cudnn.benchmark = combo["cudnn_benchmark"]
    inputs = staged if combo["rotate"] else staged[:1]
    for i in range(warmup):
        runner.execute(inputs[i % len(inputs)])
    runner.synchronize()
    times: list[float] = []
    timers = []
    acc = Accuracy()
    with SMClock() as clock:
        for i in range(runs):
            timer = runner.timer()
            timer.start()
            out = runner.execute(inputs[i % len(inputs)])
            timer.stop()
            if combo["sync"]:
                times.append(timer.elapsed_ms())
            else:
                timers.append(timer)
            if combo["host"] and i < HOST_RUNS:
                acc.add(runner.fetch(out), refs[(i % len(inputs))])
            del out
        runner.synchronize()
    times += [t.elapsed_ms() for t in timers]
    return {
        "median_ms": round(statistics.median(times), 4),
        "min_ms": round(min(times), 4),
        "sm_clock_mhz": clock.mean(),
    }


def kernel_time(runner: Any, staged: list[Any], runs: int) -> dict[str, Any]:
    """srx bench --profile's breakdown of `runs` back-to-back runs: kernel (busy) time vs idle."""
    from srx.bench.breakdown import breakdown

    b = breakdown(runner.profile(staged, runs))
    cats = b.get("categories", {})
    busy = sum(v["ms"] for k, v in cats.items() if k != "gaps")
    return {
        "status": b["status"],
        "busy_ms": round(busy, 4),
        "gaps_ms": cats.get("gaps", {}).get("ms"),
        "measured_ms": b.get("measured_ms"),
        "top": b.get("top", [])[:5],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny model, 2 runs: tests this script; no results")
    args = ap.parse_args()
    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        print("fp16_timing: needs a CUDA GPU (none visible); --smoke runs the code paths on the CPU", file=sys.stderr)
        return 2

    from srx.bench.engine import make_batches, versions
    from srx.bench.inputs import synthetic_inputs
    from srx.models import build_model, default_model
    from srx.runtime.registry import runner_class
    from srx.runtime.source import ModelSource
    from srx.sizes import parse_size

    size = parse_size(args.size)
    h, w = (16, 24) if args.smoke else (size.height, size.width)
    if args.smoke:
        args.rounds, args.runs, args.warmup = 1, 2, 1
    model = build_model("safmn", 2, dim=8, n_blocks=1, seed=0) if args.smoke else default_model(4)
    source = ModelSource.from_module(model)
    images = make_batches(synthetic_inputs(h, w, 50), 1)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "smoke-cpu (not a measurement)"
    command = " ".join(["python", *sys.argv])
    say(
        f"fp16_timing: {gpu}, {model.spec.label}, {w}x{h}, {args.rounds} rounds x {args.runs} runs after {args.warmup} warm-up"
    )
    say(f"versions: {versions()}")
    say(f"command: {command}")

    factors = ("sync", "host", "rotate", "cudnn_benchmark")
    combos = [dict(zip(factors, values, strict=True)) for values in itertools.product((False, True), repeat=4)]
    rows: list[dict[str, Any]] = []
    rng = random.Random(0)
    runners = {}
    staged = {}
    refs = {}
    for name in ("torch", "torch-fp16"):
        runners[name] = runner_class(name)(source, device)
        runners[name].activate()
        staged[name] = [runners[name].stage(x) for x in images]
        refs[name] = [runners[name].fetch(runners[name].execute(s)) for s in staged[name][:HOST_RUNS]]
    try:
        for rnd in range(args.rounds):
            order = [(name, c) for name in runners for c in combos]
            rng.shuffle(order)
            for name, combo in order:
                r = measure(runners[name], staged[name], refs[name], combo, args.warmup, args.runs)
                rows.append({"round": rnd, "backend": name, **combo, **r})
        profiles = {}
        for name in runners:
            for bench_flag in (False, True):
                torch.backends.cudnn.benchmark = bench_flag
                profiles[f"{name} cudnn_benchmark={bench_flag}"] = kernel_time(
                    runners[name], staged[name], min(args.runs, 20)
                )
    finally:
        for r in runners.values():
            r.deactivate()

    say("\nmedian ms per run (median over rounds); SM clock MHz while timing")
    say(
        f"  {'backend':<11} {'sync':>5} {'host':>5} {'rotate':>6} {'cudnn.bm':>8}  {'ms':>8}  {'min ms':>8}  {'SM MHz':>7}"
    )
    for name in runners:
        for combo in combos:
            sel = [r for r in rows if r["backend"] == name and all(r[f] == combo[f] for f in factors)]
            med = statistics.median(r["median_ms"] for r in sel)
            mn = min(r["min_ms"] for r in sel)
            clocks = [r["sm_clock_mhz"] for r in sel if r["sm_clock_mhz"] is not None]
            clock = f"{statistics.fmean(clocks):7.0f}" if clocks else "      -"
            flags = " ".join(f"{'yes' if combo[f] else 'no':>{n}}" for f, n in zip(factors, (5, 5, 6, 8), strict=True))
            say(f"  {name:<11} {flags}  {med:8.3f}  {mn:8.3f}  {clock}")
    say("\nkernel time per run (torch.profiler, back to back; busy = GPU kernels, gaps = GPU idle)")
    for key, p in profiles.items():
        say(
            f"  {key:<34} {p['status']}: busy {p['busy_ms']} ms, gaps {p['gaps_ms']} ms, measured {p['measured_ms']} ms"
        )
    result = {
        "smoke_test_not_a_result": args.smoke,
        "device": gpu,
        "versions": versions(),
        "command": command,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "input": f"{w}x{h}",
        "model": model.spec.label,
        "protocol": {"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup, "host_runs": HOST_RUNS},
        "rows": rows,
        "profiles": profiles,
    }
    folder = args.out / f"{dt.date.today().isoformat()}-{re.sub(r'[^A-Za-z0-9]+', '-', gpu).strip('-').lower()}"
    folder.mkdir(parents=True, exist_ok=True)
    from srx.fileio import write_json_atomic, write_text_atomic

    write_json_atomic(folder / "fp16_timing.json", portable(result))
    write_text_atomic(folder / "fp16_timing.log", portable("\n".join(LOG) + "\n"))
    say(f"\nwrote {folder / 'fp16_timing.json'} and {folder / 'fp16_timing.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
