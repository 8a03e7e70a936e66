"""Accuracy of the real checkpoints on Set5 / Set14 x4, and the bicubic rows, with `srx eval`.

Runs the real CLI once per row (so the recorded command is exactly what a user types) and
keeps every JSON, the commands, the versions and a Markdown summary under
bench/results/<date>-cpu-eval/. It also measures how much MATLAB's uint8 rounding between
the two resize passes of the LR matters, by scoring each checkpoint on LR files made
without it (LR_bicubic/X4 in a temporary copy of the dataset).

    python bench/eval_checkpoints.py [--shared ../shared] [--out bench/results/DATE-cpu-eval]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from portable import log, write_json, write_text

REPO = Path(__file__).resolve().parents[1]

CHECKPOINTS = [
    ("team15_SAFMN.pth", None),
    ("team23_safmnpp.pth", None),
    ("team23_safmnpp.pth", "params_ema"),
    ("light_safmnpp.pth", None),
]

# shared/data/README.md: bridge.png is an 8-bit grayscale image at its source, expanded to RGB
# there; man.png is stored as RGB at the source (with equal channels).
GRAY_AT_SOURCE = {("Set14", "bridge")}


def run_eval(args: list[str], json_path: Path, runs: list[dict]) -> dict:
    cmd = [sys.executable, "-m", "srx", "eval", *args, "--json", str(json_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    runs.append({"command": shlex.join(["srx", "eval", *args, "--json", str(json_path)]), "rc": proc.returncode})
    if proc.returncode != 0:
        sys.exit(f"failed: {shlex.join(cmd)}\n{proc.stderr}")
    log(proc.stdout, flush=True)
    result = json.loads(json_path.read_text())
    write_json(json_path, result)  # srx eval wrote the paths it was given; the committed copy is portable
    return result


def float_lr_copy(hr_dir: Path, dest: Path, scale: int) -> Path:
    """HR/ + LR_bicubic/X{s}/ where LR is MATLAB bicubic without the uint8 rounding between passes."""
    import numpy as np
    from PIL import Image

    from srx.imresize import imresize
    from srx.metrics import mod_crop

    (dest / "HR").mkdir(parents=True)
    (dest / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    for p in sorted(hr_dir.glob("*.png")):
        (dest / "HR" / p.name).symlink_to(p)
        hr = mod_crop(np.asarray(Image.open(p).convert("RGB")), scale)
        Image.fromarray(imresize(hr, 1 / scale, uint8_passes=False)).save(dest / "LR_bicubic" / f"X{scale}" / p.name)
    return dest


def bicubic_variants(data: Path) -> list[dict]:
    """Which bicubic protocol gives the published rows: Set5 x2/x3/x4 and Set14 x4, four variants.

    rgb-uint8:  MATLAB imresize on the uint8 RGB (rounded between passes) down then up, then Y
    rgb-float:  the same without rounding between passes (as basicsr's Python port)
    y-uint8:    on the uint8 Y channel with MATLAB's uint8 rounding
    y-double:   SRCNN: Y / 255 in double, down then up, rounded once (what `srx eval --model bicubic` does)
    y-double, gray as is: also SRCNN: a grayscale image (Set14 bridge) is scored on its gray
                values, not on rgb2ycbcr Y (16..235)
    """
    import numpy as np
    from PIL import Image

    from srx.imresize import imresize
    from srx.metrics import mod_crop, psnr, rgb_to_y, shave, ssim

    def r8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x + 0.5), 0, 255)

    rows = []
    for ds, scales in (("Set5", (2, 3, 4)), ("Set14", (4,))):
        paths = sorted((data / ds / "HR").glob("*.png"))
        for s in scales:
            variants: dict[str, list[tuple[float, float]]] = {}
            for path in paths:
                hr = mod_crop(np.asarray(Image.open(path).convert("RGB")), s)
                y = rgb_to_y(hr)
                outs = {
                    "rgb-uint8": (y, rgb_to_y(imresize(imresize(hr, 1 / s), s))),
                    "rgb-float": (
                        y,
                        rgb_to_y(imresize(imresize(hr, 1 / s, uint8_passes=False), s, uint8_passes=False)),
                    ),
                    "y-uint8": (y, imresize(imresize(y, 1 / s), s)),
                    "y-double": (y, r8(imresize(imresize(y / 255.0, 1 / s), s) * 255)),
                }
                if (ds, path.stem) in GRAY_AT_SOURCE:
                    g = hr[..., 0]
                    outs["y-double, gray as is"] = (g, r8(imresize(imresize(g / 255.0, 1 / s), s) * 255))
                else:
                    outs["y-double, gray as is"] = outs["y-double"]
                for k, (a, b) in outs.items():
                    a, b = shave(a.astype(np.float64), s), shave(b.astype(np.float64), s)
                    variants.setdefault(k, []).append((psnr(a, b), ssim(a, b)))
            for k, v in variants.items():
                rows.append(
                    {
                        "dataset": ds,
                        "scale": s,
                        "variant": k,
                        "psnr_y": float(np.mean([x[0] for x in v])),
                        "ssim_y": float(np.mean([x[1] for x in v])),
                    }
                )
    return rows


def versions() -> dict:
    import numpy
    import PIL
    import torch

    import srx

    git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False)
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "srx": srx.__version__,
        "git_commit": git.stdout.strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "device": "cpu (float32)",
    }


def row(dataset: str, scale: int, model: str, param_key: str | None, lr: str, d: dict) -> dict:
    return {"dataset": dataset, "scale": scale, "model": model, "param_key": param_key, "lr": lr,
            "psnr_y": d["psnr_y"], "ssim_y": d["ssim_y"]}  # fmt: skip


def score_models(data: Path, weights: Path, raw: Path, runs: list[dict]) -> list[dict]:
    """The bicubic rows and every checkpoint on Set5 / Set14 x4, each through the CLI."""
    rows = []
    for ds, scales in (("Set5", (2, 3, 4)), ("Set14", (4,))):
        for scale in scales:
            for model in ("bicubic", "bicubic-rgb"):
                args = ["--dataset", str(data / ds), "--scale", str(scale), "--model", model]
                d = run_eval(args, raw / f"{ds}-x{scale}-{model}.json", runs)
                rows.append(row(ds, scale, model, None, "matlab-uint8", d))
    with tempfile.TemporaryDirectory() as tmp:
        for ds in ("Set5", "Set14"):
            float_ds = float_lr_copy(data / ds / "HR", Path(tmp) / ds, 4)
            for name, key in CHECKPOINTS:
                tag = f"{Path(name).stem}" + (f"-{key}" if key else "")
                extra = ["--param-key", key] if key else []
                for lr_kind, dataset in (("matlab-uint8", data / ds), ("float-passes", float_ds)):
                    args = ["--dataset", str(dataset), "--model", str(weights / name), *extra]
                    d = run_eval(args, raw / f"{ds}-x4-{tag}-{lr_kind}.json", runs)
                    rows.append(row(ds, 4, name, key or "params", lr_kind, d))
    return rows


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        cells = [f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c] if r[c] is not None else "") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("SRX_SHARED", REPO.parent / "shared")))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"{dt.date.today()}-cpu-eval")
    ap.add_argument("--variants-only", action="store_true", help="Only the bicubic protocol variants (seconds).")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    data, weights = a.shared / "data" / "benchmarks", a.shared / "weights"
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": str(dt.date.today()),
        "script": "bench/eval_checkpoints.py",
        "command": shlex.join(["python", "bench/eval_checkpoints.py", *sys.argv[1:]]),
        "versions": versions(),
    }

    variants = bicubic_variants(data)
    write_json(a.out / "bicubic_variants.json", {**meta, "rows": variants})
    write_text(a.out / "bicubic_variants.md", markdown(variants, ["dataset", "scale", "variant", "psnr_y", "ssim_y"]))
    log(markdown(variants, ["dataset", "scale", "variant", "psnr_y", "ssim_y"]), flush=True)
    if a.variants_only:
        return

    raw = a.out / "raw"
    raw.mkdir(exist_ok=True)
    runs: list[dict] = []
    rows = score_models(data, weights, raw, runs)
    write_json(a.out / "meta.json", {**meta, "runs": runs})
    write_json(a.out / "results.json", rows)
    table = markdown(rows, ["dataset", "scale", "model", "param_key", "lr", "psnr_y", "ssim_y"])
    write_text(a.out / "summary.md", table)
    log(table)


if __name__ == "__main__":
    main()
