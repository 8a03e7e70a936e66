"""CPU speed of srx's ways to run the embedded default model (paper SAFMN x4) at 320x180.

Usage: python bench/cpu_speed.py OUTDIR [--rounds N] [--per-round N] [--no-cli] [--no-sweep]
                                         [--cold] [--no-compile]

1. `srx bench --input 320x180` exactly as a user runs it (default backends and runs for
   the CPU), in a fresh process: its wall time from start to exit (export, sessions,
   torch.compile's compilation, warm-up included), its JSON and table ->
   OUTDIR/cli_bench.json, cli_bench.txt. With --cold, first once more with an empty
   torch inductor cache (TORCHINDUCTOR_CACHE_DIR in a new temporary folder), as on a
   machine where torch.compile never ran -> cli_bench_cold.json, cli_bench_cold.txt.
2. A sweep of candidate paths in one process, interleaved: every round runs each
   configuration `--per-round` times on the same synthetic inputs, so load from other
   jobs on a shared machine hits all configurations alike. Per round it records the
   1-minute load average and the CPU time other processes used during the round (from
   /proc/stat minus this process's own CPU time, as a fraction of all CPUs): rounds with
   others below `--quiet` (default 10%) are "quiet". Before each round it waits up to
   `--wait` seconds for a quiet second. Medians over all rounds and over quiet rounds,
   and the median of per-round ratios to PyTorch eager. Accuracy of each configuration
   against PyTorch eager FP32 on the first input: max |diff| and PSNR (outputs clipped
   to [0, 1]) -> OUTDIR/sweep.json.
3. OUTDIR/environment.json: versions, lscpu, git commit, command, load averages.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from portable import log, write_json, write_text

# Before torch loads OpenMP: a spinning OpenMP pool collapses on a shared 2-core machine
# (the srx CLI sets the same default).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
H, W = 180, 320

# name -> (backend, runner options). The first is the baseline.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "torch eager (NCHW)": ("torch", {}),
    "torch eager channels_last": ("torch", {"channels_last": True}),
    "onnxruntime dynamic, dims pinned, spinning": ("onnxruntime", {"static": False, "fuse": False, "spinning": True}),
    "onnxruntime static, spinning": ("onnxruntime", {"fuse": False, "spinning": True}),
    "onnxruntime static + GELU fused, spinning": ("onnxruntime", {"spinning": True}),
    "onnxruntime dynamic pinned + GELU fused": ("onnxruntime", {"static": False}),
    "onnxruntime static + GELU fused (srx default)": ("onnxruntime", {}),
    "onnxruntime static + GELU fused, 1 thread": ("onnxruntime", {"threads": 1}),
    "torch.compile (NCHW, no freezing)": ("torch-compile", {"channels_last": False, "freezing": False}),
    "torch.compile channels_last + freezing (srx default)": ("torch-compile", {}),
}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class OthersMeter:
    """CPU time used by other processes over an interval, as a fraction of all CPUs."""

    def __init__(self) -> None:
        self.ncpu = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK")
        self.start()

    def _read(self) -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
        t = os.times()
        own = t.user + t.system
        return busy / self.tick, own, time.monotonic()

    def start(self) -> None:
        self._t0 = self._read()

    def others(self) -> float:
        busy1, own1, wall1 = self._read()
        busy0, own0, wall0 = self._t0
        wall = max(wall1 - wall0, 1e-6)
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall * self.ncpu))


def wait_for_quiet(meter: OthersMeter, quiet: float, max_wait: float) -> float:
    """Sample one-second windows until others use less than `quiet` of the CPUs (or time runs out)."""
    deadline = time.monotonic() + max_wait
    while True:
        meter.start()
        time.sleep(1.0)
        share = meter.others()
        if share < quiet or time.monotonic() >= deadline:
            return share


def run_cli(out: Path, cold: bool = False) -> dict[str, Any]:
    """`srx bench --input 320x180` in a fresh process, as a user runs it."""
    import tempfile

    name = "cli_bench_cold" if cold else "cli_bench"
    cmd = [sys.executable, "-m", "srx", "bench", "--input", f"{W}x{H}", "--json", str(out / f"{name}.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_WAIT_POLICY", None)  # the user's environment: the CLI chooses its own default
    cache = tempfile.TemporaryDirectory(prefix="srx-inductor-") if cold else None
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if cache is not None:
        cache.cleanup()
    write_text(
        out / f"{name}.txt",
        proc.stdout + f"\nwall time {wall:.1f} s (process start to exit), exit code {proc.returncode}\n"
        f"load average before {before}, after {loadavg()}\n",
    )
    log(proc.stdout, proc.stderr[-2000:], f"wall {wall:.1f} s", flush=True)
    return {
        "command": "srx " + " ".join(cmd[3:]),
        "inductor_cache": "empty (new TORCHINDUCTOR_CACHE_DIR)" if cold else "as left by earlier runs",
        "wall_seconds": round(wall, 1),
        "exit_code": proc.returncode,
        "load_before": before,
        "load_after": loadavg(),
    }


def psnr(out: np.ndarray, ref: np.ndarray) -> float | None:
    mse = float(np.mean((np.clip(out, 0, 1) - np.clip(ref, 0, 1)).astype(np.float64) ** 2))
    return None if mse == 0 else round(10 * math.log10(1 / mse), 2)


def sweep(names: list[str], rounds: int, per_round: int, quiet: float, max_wait: float) -> dict[str, Any]:
    from srx.bench.inputs import synthetic_inputs
    from srx.models import default_model
    from srx.runtime import ModelSource, open_runner

    inputs = synthetic_inputs(H, W, per_round)
    source = ModelSource.from_module(default_model(4), origin="embedded default x4")
    runners, rows = {}, {}
    ref = None
    for name in names:
        backend, opts = CONFIGS[name]
        runner = open_runner(backend, source, "cpu", **opts)
        t0 = time.perf_counter()
        runner.activate()
        y = runner.run(inputs[0])  # sessions, compilation: outside the timed runs
        setup = time.perf_counter() - t0
        if ref is None:
            ref = y
        rows[name] = {
            "backend": backend,
            "options": opts,
            "setup_and_first_run_s": round(setup, 2),
            "max_abs_diff_vs_torch_eager": float(np.abs(y - ref).max()),
            "psnr_vs_torch_eager_db": psnr(y, ref),
            "settings": runner.describe(),
            "ms": [],
            "round_medians_ms": [],
            "ratio_per_round": [],
        }
        runners[name] = runner
        log(name, {k: v for k, v in rows[name].items() if k not in ("ms", "settings")}, flush=True)
    loads, others, before = [], [], []
    base = names[0]
    meter = OthersMeter()
    for r in range(rounds):
        before.append(round(wait_for_quiet(meter, quiet, max_wait), 3))
        loads.append(loadavg())
        meter.start()
        medians = {}
        for name in names:
            runner = runners[name]
            staged = [runner.stage(runner.check_input(x)) for x in inputs]
            times = []
            for x in staged:
                t0 = time.perf_counter()
                runner.execute(x)
                times.append((time.perf_counter() - t0) * 1000)
            rows[name]["ms"] += [round(t, 1) for t in times]
            medians[name] = float(np.median(times))
            time.sleep(0.2)  # let onnxruntime's spinning workers go idle before the next configuration
        others.append(round(meter.others(), 3))
        for name in names:
            rows[name]["ratio_per_round"].append(round(medians[base] / medians[name], 3))
            rows[name]["round_medians_ms"].append(round(medians[name], 1))
        log(
            f"round {r} load {loads[-1]} others {others[-1]:.0%} (before {before[-1]:.0%})",
            {n: round(m) for n, m in medians.items()},
            flush=True,
        )
    for runner in runners.values():
        runner.deactivate()
    source.close()
    quiet_rounds = [i for i, o in enumerate(others) if o < quiet]
    for row in rows.values():
        row["median_ms"] = round(float(np.median(row["ms"])), 1)
        row["min_ms"] = round(float(np.min(row["ms"])), 1)
        row["speedup_vs_torch_eager"] = round(rows[base]["median_ms"] / row["median_ms"], 3)
        row["median_of_round_ratios"] = round(float(np.median(row["ratio_per_round"])), 3)
        if quiet_rounds:
            q = [row["round_medians_ms"][i] for i in quiet_rounds]
            row["quiet_median_ms"] = round(float(np.median(q)), 1)
            row["quiet_median_of_round_ratios"] = round(
                float(np.median([row["ratio_per_round"][i] for i in quiet_rounds])), 3
            )
    return {
        "input": f"{W}x{H}",
        "rounds": rounds,
        "runs_per_round": per_round,
        "quiet_threshold": quiet,
        "load_per_round": loads,
        "others_cpu_share_per_round": others,
        "others_cpu_share_before_round": before,
        "quiet_rounds": quiet_rounds,
        "load_after": loadavg(),
        "baseline": base,
        "configs": rows,
    }


def environment(argv: list[str]) -> dict[str, Any]:
    from srx.bench.engine import versions
    from srx.runtime.device import device_info

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    status = ["git", "status", "--porcelain", "--untracked-files=no"]  # the output folder itself is untracked
    dirty = bool(subprocess.run(status, capture_output=True, text=True, cwd=REPO).stdout)
    return {
        "command": " ".join(["python", *argv]),
        "git_commit": commit + (" (uncommitted changes)" if dirty else ""),
        "device": device_info("cpu"),
        "versions": versions(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "lscpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--no-cli", action="store_true", help="skip the `srx bench` run")
    ap.add_argument("--no-sweep", action="store_true", help="only the `srx bench` run(s)")
    ap.add_argument("--cold", action="store_true", help="also run `srx bench` with an empty inductor cache first")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile configurations")
    ap.add_argument("--only", default=None, help="comma-separated configuration names (the first is the baseline)")
    ap.add_argument("--quiet", type=float, default=0.10, help="a round is quiet below this CPU share used by others")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a quiet second before each round")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = environment(sys.argv)
    env["load_average_start"] = loadavg()
    if not args.no_cli and args.cold:
        env["cli_cold"] = run_cli(out, cold=True)
    if not args.no_cli:
        env["cli"] = run_cli(out)
    if args.no_sweep:
        env["load_average_end"] = loadavg()
        write_json(out / "environment.json", env)
        return
    names = args.only.split(",") if args.only else list(CONFIGS)
    if args.no_compile:
        names = [n for n in names if CONFIGS[n][0] != "torch-compile"]
    result = sweep(names, args.rounds, args.per_round, args.quiet, args.wait)
    write_json(out / "sweep.json", result)
    env["load_average_end"] = loadavg()
    write_json(out / "environment.json", env)
    log()
    log(format_sweep(result))


def format_sweep(result: dict[str, Any]) -> str:
    lines = [
        f"quiet rounds (others below {result['quiet_threshold']:.0%} of the CPUs): "
        f"{len(result['quiet_rounds'])} of {result['rounds']}",
        f"{'configuration':48s} {'median ms':>9s} {'min ms':>7s} {'speed-up':>8s} {'round ratio':>11s} "
        f"{'quiet ms':>8s} {'quiet ratio':>11s}  max|diff|  PSNR dB",
    ]
    for name, row in result["configs"].items():
        qm, qr = row.get("quiet_median_ms"), row.get("quiet_median_of_round_ratios")
        lines.append(
            f"{name:48s} {row['median_ms']:9.1f} {row['min_ms']:7.1f} {row['speedup_vs_torch_eager']:7.2f}x "
            f"{row['median_of_round_ratios']:10.2f}x {qm if qm is not None else '-':>8} "
            f"{(f'{qr:.2f}x') if qr is not None else '-':>11}  {row['max_abs_diff_vs_torch_eager']:.2e}  "
            f"{row['psnr_vs_torch_eager_db']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
