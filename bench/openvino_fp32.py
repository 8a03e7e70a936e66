"""OpenVINO on the CPU with srx.runtime.openvino_graph.for_cpu (issue 21), timed in quiet windows.

Usage: python bench/openvino_fp32.py OUTDIR --int8 MODEL.int8.onnx [--runs 10] [--rounds 7]

Each timed step runs in a quiet window: /tmp/srx-quiet exists (other sessions hold their
heavy work), other sessions' niced processes (nice >= 10, not this script's) are paused
with SIGSTOP and always resumed with SIGCONT afterwards (also on an error or a signal);
the load average before and after, and what was paused, go into the step's record.
  1. `srx bench --input 320x180 --backends torch-compile,onnxruntime,openvino,openvino-bf16`
     (the default model's FP32 ONNX): bench_fp32.{txt,json};
  2. the same with `--weights default --model MODEL.int8.onnx --backends
     torch-compile,onnxruntime,openvino-int8` (the INT8 rows): bench_int8.{txt,json};
  3. the rewrite on and off through the runners (openvino FP32, openvino-int8) with
     torch.compile as the peer, interleaved over --rounds rounds at 320x180, batch 1:
     rewrite_ab.json.
Also environment.json (versions, CPU flags, commit). `srx bench --profile` runs outside
the quiet windows (its shares are what counts): profile_fp32.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from machine import load, write_environment
from portable import portable, write_json, write_text

QUIET = Path("/tmp/srx-quiet")
FOLDERS = re.compile(r"(?<![\w.$])/(?:[^\s/]+/)+")  # the folders of the paused commands' paths


def _mine() -> set[int]:
    """This process, its descendants and its ancestors (not the ancestors' other children)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    mine = {os.getpid()}
    grew = True
    while grew:
        children = {p for p, pp in parent.items() if pp in mine and p not in mine}
        mine |= children
        grew = bool(children)
    pid = os.getpid()
    while pid in parent and pid > 1:
        pid = parent[pid]
        mine.add(pid)
    return mine


def _niced_others() -> dict[int, str]:
    mine, found = _mine(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if int(fields[16]) >= 10 and cmd:  # field 19 of stat: nice; no cmdline: a kernel thread
                found[int(entry.name)] = cmd[:100]
    return found


def _busy(seconds: float = 3.0) -> float:
    """The machine's CPU use (all processes, 0..1) over a few seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return round(1 - (idle1 - idle0) / max(1, total1 - total0), 3)


@contextlib.contextmanager
def quiet(record: dict) -> Iterator[None]:
    """The quiet window: others' niced processes stopped (also those started during it, looked
    for every second), resumed whatever happens."""
    stopped: dict[int, str] = {}
    done = threading.Event()

    def pause_new() -> None:
        while not done.is_set():
            for pid, cmd in _niced_others().items():
                if pid not in stopped and not done.is_set():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        stopped[pid] = cmd
            done.wait(1.0)

    def resume(*_: object) -> None:
        done.set()
        for pid in list(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            stopped.pop(pid)

    def on_signal(signum: int, _frame: object) -> None:
        resume()
        QUIET.unlink(missing_ok=True)
        raise SystemExit(128 + signum)

    while QUIET.exists():  # another session is timing: wait for its window to end
        time.sleep(30)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    QUIET.touch()
    pauser = threading.Thread(target=pause_new, daemon=True)
    try:
        time.sleep(5)  # the others' pollers see the file
        pauser.start()
        time.sleep(5)
        record["load_before"] = load()
        record["machine_busy_before"] = _busy()  # others' share left: should be near 0
        t0 = time.time()
        yield
        record["seconds"] = round(time.time() - t0, 1)
        record["load_after"] = load()
        record["paused"] = sorted({FOLDERS.sub("", cmd.splitlines()[0])[:80] for cmd in stopped.values()})
    finally:
        resume()
        pauser.join(timeout=5)
        resume()  # anything the last scan stopped
        QUIET.unlink(missing_ok=True)
        for s, handler in previous.items():
            signal.signal(s, handler)


def bench(out: Path, name: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "srx", "bench", "--input", "320x180", *args, "--json", str(out / f"{name}.json")]
    record: dict = {}
    with quiet(record):
        done = subprocess.run(cmd, capture_output=True, text=True)
    text = (
        f"$ srx {' '.join(cmd[3:])}\n# quiet window: load before {record['load_before']}, after "
        f"{record['load_after']}; machine busy just before {record['machine_busy_before']:.0%}; {record['seconds']} s; "
        f"paused: {'; '.join(record['paused']) or 'nothing'}\n"
        f"{done.stdout}"
    )
    write_text(out / f"{name}.txt", portable(text + done.stderr))
    print(portable(text), flush=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def warm_up(runners: dict[str, object], x: np.ndarray) -> dict[str, np.ndarray]:
    """Activate each runner and run it twice (compiling outside any timing): its output."""
    outputs = {}
    for name, r in runners.items():
        r.activate()  # type: ignore[attr-defined]
        outputs[name] = r.run(x)  # type: ignore[attr-defined]
        r.run(x)  # type: ignore[attr-defined]
    return outputs


def peer_then_interleaved(peer: object, runners: dict[str, object], x: np.ndarray, rounds: int) -> dict[str, list]:
    """ms per run: torch.compile (`peer`) alone first (its OpenMP threads keep spinning for a
    while after a call, which would slow whatever ran next), then `runners` interleaved, the
    order reversed every other round."""
    times: dict[str, list[float]] = {"torch-compile": [], **{k: [] for k in runners}}

    def timed(name: str, r: object) -> None:
        staged = r.stage(x)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        r.execute(staged)  # type: ignore[attr-defined]
        times[name].append((time.perf_counter() - t0) * 1000)

    for _ in range(rounds):
        timed("torch-compile", peer)
    time.sleep(2)
    for i in range(rounds):
        for name, r in list(runners.items())[:: 1 if i % 2 == 0 else -1]:
            timed(name, r)
    return times


def node_kinds(runner: object, x: np.ndarray) -> dict[str, float]:
    """OpenVINO's node times per kind (ms per run, 5 runs), slowest first."""
    trace = runner.profile([x], 5)  # type: ignore[attr-defined]
    kinds: dict[str, float] = {}
    for op in trace.ops:
        kinds[op.name] = kinds.get(op.name, 0.0) + op.ms / trace.runs
    return {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}


def rewrite_ab(out: Path, int8: Path, rounds: int) -> None:
    """torch.compile, then the OpenVINO rows interleaved (`peer_then_interleaved`); then
    OpenVINO's node counters with and without the rewrite."""
    from srx.bench.inputs import synthetic_image
    from srx.runtime import ModelSource, open_runner

    x = synthetic_image(180, 320, 0)[None]
    net = ModelSource.from_weights("default")
    q = ModelSource.from_options("default", str(int8))
    peer = open_runner("torch-compile", net, "cpu")
    runners = {
        "openvino (rewrite)": open_runner("openvino", net, "cpu"),
        "openvino (as read)": open_runner("openvino", net, "cpu", rewrite=False),
        "openvino-int8 (rewrite)": open_runner("openvino-int8", q, "cpu"),
        "openvino-int8 (as read)": open_runner("openvino-int8", q, "cpu", rewrite=False),
    }
    outputs = warm_up({"torch-compile": peer, **runners}, x)
    record: dict = {}
    with quiet(record):
        times = peer_then_interleaved(peer, runners, x, rounds)
        profiles = {name: node_kinds(runners[name], x) for name in ("openvino (rewrite)", "openvino (as read)")}
    described = {name: r.describe().get("graph_rewrite") for name, r in runners.items()}
    for r in [peer, *runners.values()]:
        r.deactivate()
    base = float(np.median(times["torch-compile"]))
    rows = {
        k: {"median_ms": float(np.median(v)), "min_ms": min(v), "vs_torch_compile": base / float(np.median(v)),
            "graph_rewrite": described.get(k), "ms": v}
        for k, v in times.items()
    }  # fmt: skip
    diffs = {
        f"{kind} rewrite vs as read": float(np.abs(outputs[f"{kind} (rewrite)"] - outputs[f"{kind} (as read)"]).max())
        for kind in ("openvino", "openvino-int8")
    }
    write_json(out / "rewrite_ab.json", {
        "input": "320x180", "batch": 1, "rounds": rounds, "quiet_window": record, "rows": rows,
        "max_abs_diff_outputs": diffs, "node_ms_per_run": profiles,
    })  # fmt: skip
    for k, r in rows.items():
        print(
            f"{k:26s} median {r['median_ms']:7.1f} ms  min {r['min_ms']:7.1f}  {r['vs_torch_compile']:.2f}x torch.compile"
        )
    for name, kinds in profiles.items():
        total = sum(kinds.values())
        print(f"{name}: node times {total:.1f} ms per run")
        for kind, ms in list(kinds.items())[:12]:
            print(f"  {ms:8.2f} ms {100 * ms / total:5.1f}%  {kind}")
    print(json.dumps({"quiet_window": record, "max_abs_diff_outputs": diffs}))


def profile(out: Path) -> None:
    cmd = [sys.executable, "-m", "srx", "bench", "--input", "320x180", "--backends", "openvino", "--profile",
           "--runs", "5"]  # fmt: skip
    before = load()
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = f"$ srx {' '.join(cmd[3:])}\n# not a quiet window (the shares count): load before {before}, after {load()}\n"
    write_text(out / "profile_fp32.txt", portable(text + done.stdout + done.stderr))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--int8", type=Path, required=True, help="the Q/DQ ONNX of the default model (srx quantize)")
    ap.add_argument("--runs", default="10")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", default="bench,ab,profile", help="which of bench, ab, profile to run")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    write_environment(a.out, "python bench/openvino_fp32.py " + " ".join(sys.argv[1:]))
    steps = a.steps.split(",")
    if "bench" in steps:
        bench(a.out, "bench_fp32", "--backends", "torch-compile,onnxruntime,openvino,openvino-bf16", "--runs", a.runs)
        backends = "torch-compile,onnxruntime,openvino-int8"
        bench(a.out, "bench_int8", "--weights", "default", "--model", str(a.int8), "--backends", backends,
              "--runs", a.runs)  # fmt: skip
    if "ab" in steps:
        rewrite_ab(a.out, a.int8, a.rounds)
    if "profile" in steps:
        profile(a.out)


if __name__ == "__main__":
    main()
