"""Serving throughput and latency of `srx serve` on this machine, against the model in-process.

Usage: python bench/serve_load.py OUTDIR [--seconds 20] [--clients 1,4,8] [--input 320x180]
                                         [--serve-python .venv-serve/bin/python]

1. `srx export --scale 4` (the embedded default paper SAFMN x4, untrained: for latency only)
   into a scratch folder.
2. `srx serve --model x4.onnx` in the serving environment (PyTriton needs numpy<2: `make
   serve-env`), on free local ports; the time until both models are ready is recorded.
3. `python -m srx.serve.loadtest` in the same environment: the model in-process (the same
   onnxruntime runner as the server), then one phase per client count of --seconds each, FP32;
   then the UINT8 model at the largest client count. Every answer is compared with the in-process
   output. -> OUTDIR/loadtest_float32.{json,txt}, loadtest_uint8.{json,txt}
4. SIGINT to the server: exit code and seconds to stop. Server output -> OUTDIR/serve.log
5. OUTDIR/environment.json: versions in both environments, lscpu, git commit, load averages,
   the commands.

The clients, the server and the in-process runs share this machine's CPUs: on 2 cores the
client threads take CPU from the model, so these are figures for one small machine, not for
Triton's overhead on a server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portable import log, write_json, write_text

REPO = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def versions(python: str) -> dict[str, str]:
    code = (
        "import json, platform, importlib.metadata as m\n"
        "out = {'python': platform.python_version()}\n"
        "for p in ['srx', 'numpy', 'onnxruntime', 'onnx', 'nvidia-pytriton', 'tritonclient', 'torch']:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def wait_ready(url: str, models: list[str], proc: subprocess.Popen, timeout: float = 300) -> float:
    import urllib.error
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"srx serve exited with {proc.returncode} before it was ready")
        try:
            ok = all(
                urllib.request.urlopen(f"http://{url}/v2/models/{m}/ready", timeout=5).status == 200 for m in models
            )
            if ok:
                return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"srx serve not ready after {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--input", default="320x180")
    ap.add_argument("--serve-python", default=str(REPO / ".venv-serve" / "bin" / "python"))
    a = ap.parse_args()
    out: Path = a.outdir
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SRX_DEBUG", None)
    load_before = [round(x, 2) for x in os.getloadavg()]
    record: dict = {
        "command": [Path(sys.executable).name, *sys.argv],
        "loadavg_before": load_before,
        "versions_bench_env": versions(sys.executable),
        "versions_serve_env": versions(a.serve_python),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        # Uncommitted changes outside this output folder: the commit alone does not say what ran.
        "git_dirty": bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--", ".", f":(exclude){out.resolve().relative_to(REPO)}"]
                if out.resolve().is_relative_to(REPO)
                else ["git", "status", "--porcelain"],
                capture_output=True,
                text=True,
                cwd=REPO,
            ).stdout.strip()
        ),
        "lscpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
        "nproc": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="srx-serve-bench-") as scratch:
        onnx = Path(scratch) / "safmn_x4.onnx"
        export = [sys.executable, "-m", "srx", "export", "--scale", "4", "-o", str(onnx)]
        subprocess.run(export, check=True, env=env, capture_output=True)
        http, grpc, metrics = free_ports(3)
        serve_cmd = [a.serve_python, "-m", "srx", "serve", "--model", str(onnx)]
        serve_cmd += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
        record["serve_command"] = serve_cmd
        with open(out / "serve.log", "w+") as logf:
            server = subprocess.Popen(serve_cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                url = f"127.0.0.1:{http}"
                record["seconds_to_ready"] = round(wait_ready(url, ["safmn_x4", "safmn_x4_uint8"], server), 2)
                log(f"server ready after {record['seconds_to_ready']} s")
                runs = [("float32", a.clients), ("uint8", a.clients.split(",")[-1])]
                for dtype, clients in runs:
                    cmd = [a.serve_python, "-m", "srx.serve.loadtest", "--url", url, "--model", str(onnx)]
                    cmd += ["--input", a.input, "--dtype", dtype, "--clients", clients, "--seconds", str(a.seconds)]
                    cmd += ["--json", "-"]
                    record.setdefault("loadtest_commands", []).append(cmd)
                    log("running", " ".join(cmd))
                    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    write_text(out / f"loadtest_{dtype}.txt", proc.stderr)
                    if proc.returncode != 0:
                        raise SystemExit(f"load test failed ({proc.returncode}):\n{proc.stderr}")
                    write_json(out / f"loadtest_{dtype}.json", json.loads(proc.stdout))
                    log(proc.stderr)
            finally:
                t0 = time.monotonic()
                server.send_signal(signal.SIGINT)
                try:
                    record["serve_exit_code"] = server.wait(120)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    record["serve_exit_code"] = "killed after 120 s"
                record["seconds_to_stop"] = round(time.monotonic() - t0, 2)
                logf.seek(0)
                text = logf.read()
            # PyTriton's workspace lives under the home folder: name it as ~ (bench/portable.py).
            write_text(out / "serve.log", text.replace(str(Path.home()), "~"))
    record["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(out / "environment.json", record)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
