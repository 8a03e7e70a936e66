"""Run `srx bench` commands as a user runs them and keep their raw output.

Usage: python bench/cli_runs.py OUTDIR NAME "ARGS" [NAME "ARGS" ...]

    python bench/cli_runs.py bench/results/2026-11-28-cpu-profile \\
        profile "--input 320x180 --profile" batch4 "--input 320x180 --batch 4"

Each command runs in a fresh process (`python -m srx bench ARGS --json OUTDIR/NAME.json`,
plus `--plot OUTDIR/NAME.png` when ARGS has --profile) with the user's environment; its
table goes to OUTDIR/NAME.txt with the wall time, exit code and load averages around it.
OUTDIR/environment.json records versions, lscpu, the git commit and the command line.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cpu_speed import environment, loadavg
from portable import log, write_json, write_text

REPO = Path(__file__).resolve().parents[1]


def run(out: Path, name: str, args: str) -> dict[str, Any]:
    argv = [*shlex.split(args), "--json", str(out / f"{name}.json")]
    if "--profile" in argv:
        argv += ["--plot", str(out / f"{name}.png")]
    cmd = [sys.executable, "-m", "srx", "bench", *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_WAIT_POLICY", None)  # the user's environment: the CLI chooses its own default
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    after = loadavg()
    write_text(
        out / f"{name}.txt",
        f"$ srx bench {' '.join(argv)}\n\n{proc.stdout}\nwall time {wall:.1f} s (process start to exit), "
        f"exit code {proc.returncode}\nload average before {before}, after {after}\n",
    )
    log(proc.stdout, proc.stderr[-2000:], f"wall {wall:.1f} s", flush=True)
    return {"command": "srx bench " + " ".join(argv), "wall_seconds": round(wall, 1), "exit_code": proc.returncode,
            "load_before": before, "load_after": after}  # fmt: skip


def main() -> int:
    if len(sys.argv) < 4 or len(sys.argv) % 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    env = environment(sys.argv)
    env["runs"] = {}
    for name, args in zip(sys.argv[2::2], sys.argv[3::2], strict=True):
        env["runs"][name] = run(out, name, args)
        write_json(out / "environment.json", env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
