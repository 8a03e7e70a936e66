"""Record a `srx train` run under bench/results: its log and JSON, and `srx eval` of its checkpoints.

    python bench/train_record.py RUN_DIR OUT_DIR [--checkpoints best,model]

Copies RUN_DIR/train.log, model.json and best.json (paths made portable), runs the real
`srx eval` CLI on Set5 and Set14 (at the run's scale) for each checkpoint (so the recorded command is what a
user types), and writes OUT_DIR/environment.json (versions, CPU, load) and
OUT_DIR/scores.md. The checkpoints themselves stay out of git (only the shipped default
goes in, through bench/ship_weights.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from portable import log, portable, write_json, write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))
DATASETS = ("Set5", "Set14")


def srx_eval(checkpoint: Path, dataset: str, out: Path) -> dict:
    args = ["eval", "--dataset", str(SHARED / "data/benchmarks" / dataset), "--model", str(checkpoint)]
    args += ["--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "srx", *args], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        sys.exit(f"srx {shlex.join(args)} failed: {proc.stderr}")
    log(proc.stdout, flush=True)
    result = json.loads(out.read_text())
    result["command"] = portable(shlex.join(["srx", *args]))
    write_json(out, result)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--checkpoints", default="best,model")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    name = a.run.name
    for f in ("train.log", "model.json", "best.json"):
        if (a.run / f).exists():
            write_text(a.out / f"{name}.{f}", (a.run / f).read_text())
    rows = []
    for ck in a.checkpoints.split(","):
        path = a.run / f"{ck}.safetensors"
        meta = json.loads((a.run / f"{ck}.json").read_text())
        scores = {ds: srx_eval(path, ds, a.out / f"{name}.{ck}.{ds}.json") for ds in DATASETS}
        rows.append((ck, meta["iteration"], scores))
        scale = meta["model"]["scale"]
    import torch

    env = {
        "command": portable(shlex.join(["python", *sys.argv])),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    write_json(a.out / f"{name}.environment.json", env)
    lines = [
        f"# {name}: srx eval (Set5 / Set14 x{scale}, Y PSNR / SSIM)",
        "",
        "| checkpoint | iteration | Set5 | Set14 |",
        "| --- | --- | --- | --- |",
    ]
    for ck, it, s in rows:
        cells = [f"{s[ds]['psnr_y']:.2f} / {s[ds]['ssim_y']:.4f}" for ds in DATASETS]
        lines.append(f"| {ck}.safetensors | {it} | {' | '.join(cells)} |")
    write_text(a.out / f"{name}.scores.md", "\n".join(lines) + "\n")
    log("\n".join(lines))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
