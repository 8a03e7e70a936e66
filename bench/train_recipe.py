"""Measurements behind the recipe of the trained default (issue 14): where training starts,
and what one iteration costs on this CPU.

    python bench/train_recipe.py OUT_DIR [--rounds 6] [--threads 1] [--batch 8] [--patch 48] [--scale 4]

1. Starting points, scored on Set5 x4 with srx eval's protocol (no training):
   - the seeded random paper SAFMN with its head (to_img) fitted by least squares
   - team15's 60 matching tensors copied in (LayerNorms at identity), as is, and with the fitted head
   - --linear-start: residual branches zeroed, head fitted (srx/train/start.py)
   At --scale 2 / 3 (on Set5 at that scale): the shipped x4 default's body copied in
   (--init), with its random head and with the head fitted (--fit-head), and --linear-start.
2. Seconds per training iteration (forward, L1, backward, Adam) of the paper SAFMN x{scale} in
   four settings: float32, float32 channels_last, bfloat16 autocast, bfloat16 autocast
   channels_last. Interleaved in rounds, so load from other jobs on the shared CPU hits
   every setting alike; the 1-minute load average is recorded per round.

Writes OUT_DIR/recipe.json (recipe-x2.json, recipe-x3.json at those scales; + the log); paths
are portable (bench/portable.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see docs/bench.md

import numpy as np
import torch
import torch.nn.functional as F
from portable import log, write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))

from srx.evaluate import ResolvedModel, evaluate_model, torch_upscaler  # noqa: E402
from srx.models import build_model, load_model  # noqa: E402
from srx.train import TrainConfig  # noqa: E402
from srx.train.data import PatchSampler  # noqa: E402
from srx.train.loop import build_student  # noqa: E402
from srx.train.start import linear_start  # noqa: E402


def set5(model: torch.nn.Module, scale: int = 4) -> dict[str, float]:
    r = evaluate_model(SHARED / "data/benchmarks/Set5", ResolvedModel("m", scale, torch_upscaler(model), model.spec))
    return {"psnr_y": round(r.psnr_y, 4), "ssim_y": round(r.ssim_y, 5)}


def fit_head(model: torch.nn.Module, sampler: PatchSampler) -> None:
    """Least-squares to_img on the current features (what linear_start does, without zeroing)."""
    lr_np, hr_np, _ = sampler.batch(0, 64, stream=1)
    lr, hr = torch.from_numpy(lr_np), torch.from_numpy(hr_np)
    head = model.to_img[0]
    with torch.no_grad():
        f0 = model.to_feat(lr)
        x = model.feats(f0) + f0
        cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, x.shape[1] * 9).double()
        cols = torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], 1)
        target = F.pixel_unshuffle(hr, 4).permute(0, 2, 3, 1).reshape(-1, 48).double()
        gram = cols.T @ cols
        gram += 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        w = torch.linalg.solve(gram, cols.T @ target)
        head.weight.copy_(w[:-1].T.reshape(head.weight.shape).float())
        head.bias.copy_(w[-1].float())


def team15_copy(cfg: TrainConfig) -> torch.nn.Module:
    from srx.train.transfer import copy_matching

    model = build_student(cfg)
    report = copy_matching(model, SHARED / "weights/team15_SAFMN.pth")
    assert len(report.copied) == 60, len(report.copied)
    return model.eval()


def starting_points() -> dict[str, dict]:
    cfg = TrainConfig(data=str(SHARED / "data/train"), out="unused")
    sampler = PatchSampler(cfg.data, scale=4, patch=48, seed=cfg.seed)
    rows: dict[str, dict] = {}
    m = build_student(cfg).eval()
    fit_head(m, sampler)
    rows["seeded random, head fitted"] = set5(m)
    m = team15_copy(cfg)
    rows["team15's 60 tensors copied, LayerNorm identity"] = set5(m)
    fit_head(m, sampler)
    rows["team15's 60 tensors copied, head fitted"] = set5(m)
    m = build_student(cfg).eval()
    linear_start(m, sampler)
    rows["--linear-start (branches zeroed, head fitted)"] = set5(m)
    rows["team15 itself (for reference)"] = set5(load_model(SHARED / "weights/team15_SAFMN.pth"))
    for k, v in rows.items():
        log(f"  {k:<50} Set5 x4 {v['psnr_y']:.3f} dB / {v['ssim_y']:.4f}", flush=True)
    return rows


def transfer_starting_points(scale: int) -> dict[str, dict]:
    """Where the x2 / x3 defaults start: the x4 default's body, as `srx train --init --fit-head` builds it."""
    from srx.train.start import fit_head as srx_fit_head
    from srx.train.transfer import copy_matching

    cfg = TrainConfig(data=str(SHARED / "data/train"), out="unused", scale=scale)
    sampler = PatchSampler(cfg.data, scale=scale, patch=cfg.patch, seed=cfg.seed)
    x4 = REPO / "srx/models/weights/safmn_x4.safetensors"
    rows: dict[str, dict] = {}
    m = build_student(cfg).eval()
    report = copy_matching(m, x4)
    rows[f"x4 default's body ({len(report.copied)} tensors), random head"] = set5(m, scale)
    srx_fit_head(m, sampler)
    rows["x4 default's body, head fitted (--init --fit-head: the run's start)"] = set5(m, scale)
    m = build_student(cfg).eval()
    linear_start(m, sampler)
    rows["--linear-start (branches zeroed, head fitted)"] = set5(m, scale)
    for k, v in rows.items():
        log(f"  {k:<68} Set5 x{scale} {v['psnr_y']:.3f} dB / {v['ssim_y']:.4f}", flush=True)
    return rows


def iteration_cost(rounds: int, batch: int, patch: int, scale: int = 4) -> dict[str, dict]:
    settings = {
        "float32": (False, False),
        "float32 channels_last": (False, True),
        "bfloat16 autocast": (True, False),
        "bfloat16 autocast channels_last": (True, True),
    }
    x0, y0 = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, scale * patch, scale * patch)
    steps = {}
    for name, (bf16, cl) in settings.items():
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = build_model("safmn", scale).train().to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        x, y = x0.contiguous(memory_format=fmt), y0.contiguous(memory_format=fmt)

        def step(model=model, opt=opt, x=x, y=y, bf16=bf16) -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            F.l1_loss(out.float(), y).backward()
            opt.step()

        step()  # warm-up: allocations, oneDNN primitive creation
        steps[name] = step
    times: dict[str, list[float]] = {k: [] for k in settings}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t)
        log(f"  round {r + 1}/{rounds} (load {loads[-1]:.1f}): " + ", ".join(f"{times[k][-1]:.2f}" for k in settings))
    base = statistics.median(times["float32"])
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"median_s": round(med, 3), "min_s": round(min(ts), 3), "speedup_vs_float32": round(base / med, 2)}
        log(f"  {name:<34} median {med:.3f} s/it, min {min(ts):.3f}, {base / med:.2f}x float32", flush=True)
    return {
        "scale": scale,
        "batch": batch,
        "patch": patch,
        "rounds": rounds,
        "load_average_1min": loads,
        "settings": out,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=48)
    p.add_argument("--scale", type=int, default=4, choices=[2, 3, 4])
    p.add_argument("--skip-start", action="store_true", help="only the iteration cost")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "cpu": platform.processor() or platform.machine(),
        "threads": a.threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "nice": os.nice(0),
    }
    if not a.skip_start:
        log(f"starting points (Set5 x{a.scale}, srx eval protocol):", flush=True)
        result["starting_points"] = starting_points() if a.scale == 4 else transfer_starting_points(a.scale)
    log(
        f"seconds per training iteration, x{a.scale}, batch {a.batch} of {a.patch}-pixel LR patches, "
        f"{a.threads} thread(s):"
    )
    result["iteration_cost"] = iteration_cost(a.rounds, a.batch, a.patch, a.scale)
    write_json(a.out / ("recipe.json" if a.scale == 4 else f"recipe-x{a.scale}.json"), result)


if __name__ == "__main__":
    main()
