"""What a CPU benchmark records about the machine it ran on: load, and the environment record
(commit, versions, CPU flags, OpenVINO's capabilities) that bench/openvino_*.py write."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from portable import write_json


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_environment(out: Path, command: str) -> None:
    """out/environment.json: the command, the srx commit (and whether srx/ was modified),
    versions, lscpu and its vector-ISA flags, OpenVINO's CPU capabilities, the load."""
    from srx.bench.engine import versions
    from srx.runtime.openvino_runner import cpu_capabilities

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line.split(":", 1)[1].split() for line in lscpu.splitlines() if line.startswith("Flags")), [])
    git = ["git", "-C", str(Path(__file__).resolve().parents[1])]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run([*git, "status", "--porcelain", "srx"], capture_output=True, text=True).stdout)
    write_json(out / "environment.json", {
        "command": command, "commit": commit, "srx_tree_modified": dirty,
        "python": platform.python_version(), "versions": versions(), "cpu": platform.processor() or lscpu.split("\n")[0],
        "lscpu": lscpu, "isa_flags": [f for f in flags if f.startswith(("avx", "amx", "fma"))],
        "openvino_capabilities": list(cpu_capabilities()), "nproc": os.cpu_count(), "load": load(),
    })  # fmt: skip
