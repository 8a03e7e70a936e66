"""Memory of `srx serve` around oversized requests: issue 25's cases, at the default --max-size.

Usage: python bench/serve_oversized.py OUTDIR [--uint8 10] [--fp32 3] [--side 8000]
                                             [--serve-python .venv-serve/bin/python]

1. `srx export --scale 4` (the embedded default paper SAFMN x4) into a scratch folder;
   `nice -n 10 srx serve --model x4.onnx` (default --max-size 1920x1080, --max-batch 8).
2. 5 good 96x64 requests, then the RSS of srx serve and everything below it and its shared
   memory in /dev/shm; --uint8 requests of a SIDExSIDE UINT8 image (192 MB at 8000) and --fp32 of a
   SIDExSIDE FP32 image (768 MB), each by tritonclient over HTTP with binary data, the answer and
   the memory after each; 5 good requests again and the memory at the end.
3. SIGTERM: exit code, seconds to stop, and whether anything of the server is left.
-> OUTDIR/oversized.json (every step), OUTDIR/serve.log, OUTDIR/environment.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from portable import log, write_json, write_text
from serve_load import free_ports, versions, wait_ready
from serve_soak import rss_mb, server_parts, shm_files, stop_and_inspect, tree

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--uint8", type=int, default=10)
    ap.add_argument("--fp32", type=int, default=3)
    ap.add_argument("--side", type=int, default=8000)
    ap.add_argument("--serve-python", default=str(REPO / ".venv-serve" / "bin" / "python"))
    a = ap.parse_args()
    out: Path = a.outdir
    out.mkdir(parents=True, exist_ok=True)
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
        "nproc": os.cpu_count(),
    }
    steps: list[dict] = []
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    with tempfile.TemporaryDirectory(prefix="srx-serve-oversized-") as scratch:
        onnx = Path(scratch) / "safmn_x4.onnx"
        subprocess.run(
            [sys.executable, "-m", "srx", "export", "--scale", "4", "-o", str(onnx)],
            check=True,
            env=env,
            capture_output=True,
        )
        http_port, grpc_port, metrics_port = free_ports(3)
        serve_cmd = ["nice", "-n", "10", a.serve_python, "-m", "srx", "serve", "--model", str(onnx)]
        serve_cmd += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
        record["serve_command"] = serve_cmd
        url = f"127.0.0.1:{http_port}"
        with open(out / "serve.log", "w+") as logf:
            server = subprocess.Popen(serve_cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                record["seconds_to_ready"] = round(wait_ready(url, ["safmn_x4", "safmn_x4_uint8"], server), 2)
                prefixes, workspaces = server_parts(server.pid)
                pids = tree(server.pid)
                client = http.InferenceServerClient(url, network_timeout=600)
                good = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)

                def send(model: str, x: np.ndarray) -> str:
                    inp = http.InferInput("lr", list(x.shape), "UINT8" if x.dtype == np.uint8 else "FP32")
                    inp.set_data_from_numpy(x)
                    try:
                        client.infer(model, [inp])
                        return "200"
                    except InferenceServerException as e:
                        return f"{e.status()} {e.message()}"

                def step(what: str, answer: str = "") -> None:
                    s = {
                        "step": what,
                        "answer": answer,
                        "rss_mb": round(rss_mb(tree(server.pid)), 1),
                        "shm_mb": round(sum(f.stat().st_size for f in shm_files(prefixes)) / 2**20, 1),
                    }
                    steps.append(s)
                    log(json.dumps(s))

                answers = [send("safmn_x4", good) for _ in range(5)]
                step("after 5 good requests", ", ".join(sorted(set(answers))))
                big8 = np.zeros((1, 3, a.side, a.side), np.uint8)
                for i in range(a.uint8):
                    step(f"UINT8 {a.side}x{a.side} #{i + 1}", send("safmn_x4_uint8", big8))
                del big8
                big32 = np.zeros((1, 3, a.side, a.side), np.float32)
                for i in range(a.fp32):
                    step(f"FP32 {a.side}x{a.side} #{i + 1}", send("safmn_x4", big32))
                del big32
                answers = [send("safmn_x4", good) for _ in range(5)]
                time.sleep(2)
                step("after 5 good requests again", ", ".join(sorted(set(answers))))
                client.close()
            finally:
                record.update(stop_and_inspect(server, pids, prefixes, workspaces))
                logf.seek(0)
                text = logf.read()
            write_text(out / "serve.log", text.replace(str(Path.home()), "~"))
    record["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    write_json(
        out / "oversized.json",
        {"steps": steps, **{k: record[k] for k in ("serve_exit_code", "seconds_to_stop", "left_after_stop")}},
    )
    write_json(out / "environment.json", record)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
