"""A soak of `srx serve`: mixed good and bad requests for minutes, memory and latency over time,
then SIGTERM and a check that nothing is left (issue 25).

Usage: python bench/serve_soak.py OUTDIR [--seconds 600] [--input 96x64] [--clients 4]
                                         [--serve-python .venv-serve/bin/python]

1. `srx export --scale 4` (the embedded default paper SAFMN x4, untrained) into a scratch folder;
   its in-process onnxruntime outputs (the server's runner) for the few distinct good inputs.
2. `nice -n 10 srx serve --model x4.onnx --max-size 320x180` in the serving environment.
3. --clients HTTP threads and one gRPC thread send for --seconds, in a fixed cycle of kinds:
   good FP32 and UINT8 images (every answer compared with the in-process output: FP32 max |diff|
   <= 1e-5, UINT8 one level), and bad ones: below the minimum size, NaN, an image over --max-size
   (refused from its JSON header: 400), a body over the size limit (413), a wrong data type, and
   by gRPC a NaN image and a good one. A short pause after each request keeps the machine usable.
4. Every --sample seconds: the RSS of srx serve and everything below it, its shared memory in
   /dev/shm, requests by kind and outcome, and p50 / p90 / max latency of the good ones.
   -> OUTDIR/samples.csv, OUTDIR/summary.json (totals, lost good requests, first and last samples)
5. The clients stop, then SIGTERM: exit code, seconds to stop, and whether any process, shared
   memory file or workspace of the server is left. Server output -> OUTDIR/serve.log
6. OUTDIR/environment.json: versions in both environments, lscpu, git commit, load averages,
   the commands.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from portable import log, write_json, write_text
from serve_load import free_ports, versions, wait_ready

from srx.serve.env import alive, cmdline, descendants

REPO = Path(__file__).resolve().parents[1]
MAX_SIZE = (320, 180)
PAUSE_S = 0.05
KINDS = ["good", "good_uint8", "good", "small", "good", "nan", "good_uint8", "too_large", "good", "too_big", "dtype"]
GRPC_KINDS = ["grpc_good", "grpc_nan"]


def tree(pid: int) -> set[int]:
    """`pid` and every process below it now."""
    return {pid} | descendants(pid)


def stop_and_inspect(
    server: subprocess.Popen, pids: set[int], prefixes: set[str], workspaces: set[Path]
) -> dict[str, object]:
    """SIGTERM to srx serve, its exit code and time, and what of it is left 10 s later."""
    pids |= tree(server.pid) if server.poll() is None else set()
    out: dict[str, object] = {}
    t_stop = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        out["serve_exit_code"] = server.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        out["serve_exit_code"] = "killed after 120 s"
    out["seconds_to_stop"] = round(time.monotonic() - t_stop, 2)
    time.sleep(10)  # Python's resource trackers end just after their process
    out["left_after_stop"] = {
        "processes": [cmdline(p)[:2] for p in sorted(pids) if alive(p)],
        "shm_files": [f.name for f in shm_files(prefixes)],
        "workspaces": [str(ws) for ws in workspaces if ws.exists()],
    }
    return out


def rss_mb(pids: set[int]) -> float:
    total = 0
    for p in pids:
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(ln.split()[1]) for ln in lines if ln.startswith("VmRSS:"))
    return total / 1024


def server_parts(pid: int) -> tuple[set[str], set[Path]]:
    prefixes, workspaces = set(), set()
    for p in tree(pid):
        args = cmdline(p)
        if args and Path(args[0]).name == "tritonserver":
            prefixes |= {a.split("=", 1)[1] for a in args if a.startswith("python,shm-region-prefix-name=")}
            workspaces.add(Path(args[args.index("--model-repository") + 1]).parent)
    return prefixes, workspaces


def shm_files(prefixes: set[str]) -> list[Path]:
    return [f for f in Path("/dev/shm").iterdir() if any(f.name.startswith(x) for x in prefixes)]


class Soak:
    def __init__(self, url: str, grpc_url: str, onnx: Path, w: int, h: int) -> None:
        from srx.runtime.registry import open_runner
        from srx.runtime.source import ModelSource
        from srx.serve.server import runner_options

        self.url, self.grpc_url = url, grpc_url
        rng = np.random.default_rng(0)
        self.inputs = [rng.random((1, 3, h, w), dtype=np.float32) for _ in range(3)]
        self.inputs_u8 = [np.rint(x * 255).astype(np.uint8) for x in self.inputs]
        with (
            ModelSource.from_file(onnx) as source,
            open_runner("onnxruntime", source, "cpu", **runner_options("onnxruntime")) as r,
        ):
            self.ref = [r.run(x) for x in self.inputs]
            self.ref_u8 = [r.run(x.astype(np.float32) / 255.0) for x in self.inputs_u8]
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.latencies: list[float] = []  # good requests since the last sample, ms
        self.problems: list[str] = []  # a good request not answered right, a bad one accepted
        self.stop = threading.Event()

    def record(self, kind: str, outcome: str, ms: float | None = None, lost: str = "") -> None:
        with self.lock:
            self.counts[(kind, outcome)] += 1
            if ms is not None:
                self.latencies.append(ms)
            if lost:
                self.problems.append(lost)

    def http_client(self, seed: int) -> None:
        import tritonclient.http as http
        from tritonclient.utils import InferenceServerException

        client = http.InferenceServerClient(self.url, network_timeout=120)
        for i, kind in enumerate(itertools.cycle(KINDS[seed % len(KINDS) :] + KINDS[: seed % len(KINDS)])):
            if self.stop.is_set():
                break
            j = (i + seed) % len(self.inputs)
            model, x, ref = "safmn_x4", self.inputs[j], self.ref[j]
            if kind == "good_uint8":
                model, x, ref = "safmn_x4_uint8", self.inputs_u8[j], self.ref_u8[j]
            elif kind == "small":
                x = np.zeros((1, 3, 4, 4), np.float32)
            elif kind == "nan":
                x = x.copy()
                x[0, 0, 0, 0] = np.nan
            elif kind == "too_large":  # 1000x1000 UINT8: 3 MB, under the byte limit, over --max-size
                model, x = "safmn_x4_uint8", np.zeros((1, 3, 1000, 1000), np.uint8)
            elif kind == "too_big":  # 1500x1500 FP32: 27 MB, over the byte limit
                x = np.zeros((1, 3, 1500, 1500), np.float32)
            elif kind == "dtype":
                x = x.astype(np.float64)
            t0 = time.perf_counter()
            try:
                dtype = {"float32": "FP32", "uint8": "UINT8", "float64": "FP64"}[x.dtype.name]
                inp = http.InferInput("lr", list(x.shape), dtype)
                inp.set_data_from_numpy(x)
                y = client.infer(model, [inp]).as_numpy("sr")
                ms = (time.perf_counter() - t0) * 1000
                if not kind.startswith("good"):
                    self.record(kind, "accepted", lost=f"{kind} was accepted")
                elif kind == "good_uint8":
                    ok = np.abs(y.astype(int) - _quantize(ref).astype(int)).max() <= 1
                    self.record(kind, "ok" if ok else "mismatch", ms, "" if ok else "uint8 mismatch")
                else:
                    ok = float(np.abs(y - ref).max()) <= 1e-5
                    self.record(kind, "ok" if ok else "mismatch", ms, "" if ok else "fp32 mismatch")
            except InferenceServerException as e:
                outcome = str(e.status())
                self.record(
                    kind, outcome, lost=f"{kind}: {outcome} {e.message()[:120]}" if kind.startswith("good") else ""
                )
            except Exception as e:  # a connection error: the client starts again
                self.record(kind, "connection", lost=f"{kind}: {type(e).__name__}")
                client = http.InferenceServerClient(self.url, network_timeout=120)
            self.stop.wait(PAUSE_S)

    def grpc_client(self) -> None:
        import tritonclient.grpc as grpc
        from tritonclient.utils import InferenceServerException

        client = grpc.InferenceServerClient(self.grpc_url)
        for i, kind in enumerate(itertools.cycle(GRPC_KINDS)):
            if self.stop.is_set():
                break
            x, ref = self.inputs[i % 3], self.ref[i % 3]
            if kind == "grpc_nan":
                x = x.copy()
                x[0, 1, 1, 1] = np.inf
            t0 = time.perf_counter()
            try:
                inp = grpc.InferInput("lr", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                y = client.infer("safmn_x4", [inp], client_timeout=120).as_numpy("sr")
                ms = (time.perf_counter() - t0) * 1000
                if kind == "grpc_good":
                    ok = float(np.abs(y - ref).max()) <= 1e-5
                    self.record(kind, "ok" if ok else "mismatch", ms, "" if ok else "grpc mismatch")
                else:
                    self.record(kind, "accepted", lost="grpc NaN accepted")
            except InferenceServerException as e:
                outcome = str(e.status()).replace("StatusCode.", "")
                self.record(kind, outcome, lost=f"{kind}: {outcome}" if kind == "grpc_good" else "")
            self.stop.wait(PAUSE_S)


def _quantize(sr: np.ndarray) -> np.ndarray:
    from srx.images import quantize

    return quantize(sr, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--sample", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--input", default="96x64")
    ap.add_argument("--serve-python", default=str(REPO / ".venv-serve" / "bin" / "python"))
    a = ap.parse_args()
    out: Path = a.outdir
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in a.input.split("x"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SRX_DEBUG", None)
    record: dict = {
        "command": [Path(sys.executable).name, *sys.argv],
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "versions_bench_env": versions(sys.executable),
        "versions_serve_env": versions(a.serve_python),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "lscpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
        "nproc": os.cpu_count(),
    }
    samples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="srx-serve-soak-") as scratch:
        onnx = Path(scratch) / "safmn_x4.onnx"
        subprocess.run(
            [sys.executable, "-m", "srx", "export", "--scale", "4", "-o", str(onnx)],
            check=True,
            env=env,
            capture_output=True,
        )
        http_port, grpc_port, metrics_port = free_ports(3)
        serve_cmd = ["nice", "-n", "10", a.serve_python, "-m", "srx", "serve", "--model", str(onnx)]
        serve_cmd += ["--max-size", "x".join(map(str, MAX_SIZE)), "--http-port", str(http_port)]
        serve_cmd += ["--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
        record["serve_command"] = serve_cmd
        url = f"127.0.0.1:{http_port}"
        with open(out / "serve.log", "w+") as logf:
            server = subprocess.Popen(serve_cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                record["seconds_to_ready"] = round(wait_ready(url, ["safmn_x4", "safmn_x4_uint8"], server), 2)
                soak = Soak(url, f"127.0.0.1:{grpc_port}", onnx, w, h)
                prefixes, workspaces = server_parts(server.pid)
                pids = tree(server.pid)
                threads = [threading.Thread(target=soak.http_client, args=(i,)) for i in range(a.clients)]
                threads.append(threading.Thread(target=soak.grpc_client))
                t0 = time.monotonic()
                for t in threads:
                    t.start()
                while time.monotonic() - t0 < a.seconds:
                    time.sleep(min(a.sample, a.seconds - (time.monotonic() - t0)))
                    pids |= tree(server.pid)
                    with soak.lock:
                        lat, soak.latencies = soak.latencies, []
                        counts = dict(soak.counts)
                    s = {
                        "t_s": round(time.monotonic() - t0, 1),
                        "rss_mb": round(rss_mb(tree(server.pid)), 1),
                        "shm_mb": round(sum(f.stat().st_size for f in shm_files(prefixes)) / 2**20, 1),
                        "good_done": sum(n for (k, o), n in counts.items() if k.startswith(("good", "grpc_good"))),
                        "bad_done": sum(n for (k, o), n in counts.items() if not k.startswith(("good", "grpc_good"))),
                        "good_in_window": len(lat),
                        "p50_ms": round(statistics.median(lat), 1) if lat else None,
                        "p90_ms": round(statistics.quantiles(lat, n=10)[-1], 1) if len(lat) >= 2 else None,
                        "max_ms": round(max(lat), 1) if lat else None,
                        "problems_so_far": len(soak.problems),
                    }
                    samples.append(s)
                    log(json.dumps(s))
                soak.stop.set()
                for t in threads:
                    t.join(180)
            finally:
                record.update(stop_and_inspect(server, pids, prefixes, workspaces))
                logf.seek(0)
                text = logf.read()
            write_text(out / "serve.log", text.replace(str(Path.home()), "~"))
    with open(out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(samples[0]))
        writer.writeheader()
        writer.writerows(samples)
    rss = [s["rss_mb"] for s in samples]
    summary = {
        "seconds": a.seconds,
        "requests": {f"{k} {o}": n for (k, o), n in sorted(soak.counts.items())},
        "good_requests": sum(n for (k, o), n in soak.counts.items() if k.startswith(("good", "grpc_good"))),
        "bad_requests": sum(n for (k, o), n in soak.counts.items() if not k.startswith(("good", "grpc_good"))),
        "lost_good_requests": sum(
            n for (k, o), n in soak.counts.items() if k.startswith(("good", "grpc_good")) and o != "ok"
        ),
        "bad_requests_accepted": sum(n for (k, o), n in soak.counts.items() if o == "accepted"),
        "problem_examples": soak.problems[:20],
        "rss_mb_first_last_min_max": [rss[0], rss[-1], min(rss), max(rss)],
        "rss_growth_second_half_mb": round(max(rss[len(rss) // 2 :]) - min(rss[len(rss) // 2 :]), 1),
        "serve_exit_code": record["serve_exit_code"],
        "seconds_to_stop": record["seconds_to_stop"],
        "left_after_stop": record["left_after_stop"],
    }
    record["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(out / "summary.json", summary)
    write_json(out / "environment.json", record)
    log(json.dumps(summary, indent=1))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
