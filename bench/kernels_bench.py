"""GPU benchmark of srx's fused Triton kernels against what a user could run instead. CUDA only.

    python bench/kernels_bench.py --data DIR                 # DIR: weights (*.pth) and images (*.png), optional
    python bench/kernels_bench.py --sizes 320x180 --budget-s 120 --compile-mode none
    TRITON_INTERPRET=1 python bench/kernels_bench.py --smoke --out /tmp/kb   # CPU dry run: no results

In priority order, each part skipped (and said so) once --budget-s is spent:
  1. peaks measured on this card: HBM bandwidth (a 1 GiB device copy) and FP16 tensor-core
     FLOP/s (an 8192^3 matmul), used for every roofline floor below;
  2. whole model at each size, batch 1: eager FP32 (PyTorch defaults: TF32 convolutions),
     eager FP16, eager FP16 + CUDA graph, torch.compile FP16 (mode="reduce-overhead": the
     strongest peer measured on an H200), srx fused FP16 / BF16 and FP32 in each precision
     mode (tf32x3, ieee, tf32), all replayed as CUDA graphs: latency (CUDA events per run,
     median / p10 / p90), setup time (capture, compilation, kernel tuning), peak memory
     above what was allocated before the row (the row's own weights, activations and graph
     pool; not the setup's transients such as the kernel tuning's cache-flush buffer), max
     abs difference and PSNR against eager FP32 with TF32 off, on real image crops when
     --data has images;
  3. per kernel at each size (FP16, and FP32 tf32x3): every candidate launch configuration
     (the tuning sweep) against the eager ops that compute the same output, with its bytes
     and FLOPs (srx.kernels.cost), achieved GB/s and TFLOP/s and its own roofline floor;
  4. whole model at the first size with --batch (default 4);
  5. the NTIRE 2023 checkpoint (team15_SAFMN.pth) when --data holds it: eager vs fused.
Writes <out>/<date>-<gpu>/kernels.json (device, versions, command, kernel choices, one row
per measurement; rewritten after every row, so a run cut short keeps what it measured) and
kernels.log. --smoke runs every code path on the CPU under the Triton interpreter at a tiny
size with host-clock timing, to test this script without a GPU (tests/test_kernels_bench.py).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from portable import portable  # noqa: E402

LOG: list[str] = []
DEVICE = "cuda"  # "cpu" with --smoke
T0 = time.perf_counter()


def say(line: str = "") -> None:
    print(line, flush=True)
    LOG.append(line)


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise SystemExit(f"kernels_bench: bad size {text!r}: use WIDTHxHEIGHT, e.g. 320x180")
    return int(m.group(2)), int(m.group(1))  # (height, width)


def device_info() -> dict[str, Any]:
    props = torch.cuda.get_device_properties(0)
    info: dict[str, Any] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
    }
    try:
        query = "--query-gpu=driver_version,clocks.sm,clocks.max.sm,clocks.max.mem,power.limit"
        smi = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else "unavailable"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        info["nvidia_smi"] = "unavailable"
    return info


def versions() -> dict[str, Any]:
    import triton

    import srx

    return {
        "srx": srx.__version__,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def summary_ms(times: list[float]) -> dict[str, float]:
    s = sorted(times)
    return {
        "median": statistics.median(s),
        "p10": s[int(0.1 * (len(s) - 1))],
        "p90": s[int(0.9 * (len(s) - 1))],
        "mean": statistics.fmean(s),
        "min": s[0],
    }


def time_calls(fn: Callable[[], Any], warmup: int, runs: int) -> dict[str, float]:
    """CUDA events around each call, back to back on the current stream (a video loop)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        sync()
        if DEVICE != "cuda":  # --smoke: host clock, meaningless numbers
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t) * 1e3)
            return summary_ms(times)
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
        for a, b in ev:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize()
    return summary_ms([a.elapsed_time(b) for a, b in ev])


def kernel_ms(fn: Callable[[], Any], args: argparse.Namespace) -> dict[str, float]:
    """triton.testing.do_bench: CUDA events, L2 flushed before each run; median / p10 / p90."""
    if DEVICE != "cuda":
        return time_calls(fn, 0, 1)
    import triton.testing

    q = triton.testing.do_bench(fn, warmup=args.kernel_warmup, rep=args.kernel_rep, quantiles=[0.5, 0.1, 0.9])
    return {"median": q[0], "p10": q[1], "p90": q[2]}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse)).item()


def images_in(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))


def lr_input(h: int, w: int, batch: int, images: list[Path]) -> torch.Tensor:
    """Real photo crops (resized so the crop keeps most of the scene), else smooth synthetic gradients."""
    frames = []
    for i in range(batch):
        if images:
            from PIL import Image

            img = Image.open(images[i % len(images)]).convert("RGB")
            f = max(w / img.width, h / img.height)
            img = img.resize((max(w, round(img.width * f)), max(h, round(img.height * f))), Image.BICUBIC)
            img = img.crop((0, 0, w, h))
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
            frames.append(t.permute(2, 0, 1).float() / 255.0)
        else:
            yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
            base = torch.stack([0.5 + 0.4 * torch.sin(9 * xx + 5 * yy + 2 * k + i) for k in range(3)])
            g = torch.Generator().manual_seed(i)
            frames.append((base + 0.03 * torch.randn(3, h, w, generator=g)).clamp(0, 1))
    return torch.stack(frames).to(DEVICE)


class Run:
    """Rows, the time budget, and the results file rewritten after every row."""

    def __init__(self, args: argparse.Namespace, out_dir: Path, meta: dict[str, Any]) -> None:
        self.args, self.out_dir, self.meta, self.rows = args, out_dir, meta, []

    def left_s(self) -> float:
        return self.args.budget_s - (time.perf_counter() - T0)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.save()

    def save(self) -> None:
        from srx.fileio import write_json_atomic, write_text_atomic
        from srx.kernels import tuning

        result = {**self.meta, "kernel_choices": tuning.choices(), "results": self.rows}
        write_json_atomic(self.out_dir / "kernels.json", portable(json.loads(json.dumps(result, default=str))))
        write_text_atomic(self.out_dir / "kernels.log", portable("\n".join(LOG) + "\n"))


def failure(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"failed: {type(e).__name__}: {text}"


# --- 1. peaks --------------------------------------------------------------------------------


def _copy_ms(args: argparse.Namespace) -> float:
    src = torch.empty(2**29, dtype=torch.float16, device="cuda")  # 1 GiB
    dst = torch.empty_like(src)
    return kernel_ms(lambda: dst.copy_(src), args)["median"]


def _matmul_ms(args: argparse.Namespace) -> float:
    a = torch.randn(8192, 8192, dtype=torch.float16, device="cuda")
    b = torch.randn(8192, 8192, dtype=torch.float16, device="cuda")
    return kernel_ms(lambda: a @ b, args)["median"]


def measure_peaks(run: Run) -> dict[str, float]:
    """HBM bandwidth (bytes read + written by a device copy) and dense FP16 matmul FLOP/s."""
    if DEVICE != "cuda":
        return {"hbm_bytes_per_s": 3.35e12, "tensor_fp16_flops": 990e12, "source": "smoke: datasheet placeholders"}
    copy_ms = _copy_ms(run.args)
    mm_ms = _matmul_ms(run.args)
    torch.cuda.empty_cache()
    peaks = {
        "hbm_bytes_per_s": 2 * 2**30 / (copy_ms * 1e-3),
        "tensor_fp16_flops": 2 * 8192**3 / (mm_ms * 1e-3),
        "source": "measured here: 1 GiB device-to-device copy, 8192^3 FP16 matmul (do_bench medians)",
    }
    say(
        f"peaks measured: HBM {peaks['hbm_bytes_per_s'] / 1e12:.2f} TB/s, "
        f"FP16 tensor {peaks['tensor_fp16_flops'] / 1e12:.0f} TFLOP/s"
    )
    run.add({"kind": "peaks", **peaks})
    return peaks


# --- 2, 4, 5. whole models -------------------------------------------------------------------


def model_variants(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(backend, precision, how) for each whole-model row; `how` says what the row runs."""
    rows = [
        ("torch", "fp32", "eager, PyTorch defaults (TF32 convolutions)"),
        ("torch-fp16", "fp16", "eager"),
        ("torch-fp16 + CUDA graph", "fp16", "eager captured as one CUDA graph"),
    ]
    if args.compile_mode != "none":
        rows.append(("torch-compile", "fp16", f'torch.compile(mode="{args.compile_mode}")'))
    rows += [
        ("srx fused + CUDA graph", "fp16", "srx.kernels.fuse(model).half(), cuda_graph_runner"),
        ("srx fused + CUDA graph", "bf16", "srx.kernels.fuse(model).bfloat16(), cuda_graph_runner"),
    ]
    rows += [("srx fused + CUDA graph", f"fp32-{p}", f'fuse(model, fp32_precision="{p}")') for p in args.fp32_modes]
    return rows


def make_runner(model: torch.nn.Module, backend: str, precision: str, x: torch.Tensor, args) -> Callable[[], Any]:
    import srx.kernels

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    xin = x.to(dtype)
    if backend.startswith("srx fused"):
        fp32_mode = precision.split("-", 1)[1] if precision.startswith("fp32-") else "tf32x3"
        fused = srx.kernels.fuse(model, strict=True, fp32_precision=fp32_mode).to(dtype)
        if DEVICE != "cuda":
            return lambda: fused(xin)
        replay = srx.kernels.cuda_graph_runner(fused, xin)
        return lambda: replay(xin)
    m = copy.deepcopy(model).to(dtype)
    if backend == "torch-compile":
        compiled = torch.compile(m, mode=args.compile_mode, dynamic=False)
        return lambda: compiled(xin)
    if backend.endswith("CUDA graph") and DEVICE == "cuda":
        replay = srx.kernels.cuda_graph_runner(m, xin)
        return lambda: replay(xin)
    return lambda: m(xin)


def bench_model_rows(
    run: Run, model: torch.nn.Module, label: str, size: tuple[int, int], batch: int, only: set | None = None
) -> None:
    args = run.args
    h, w = size
    x = lr_input(h, w, batch, args.images)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        ref = model(x).float()
    torch.backends.cudnn.allow_tf32 = tf32
    say(f"\nwhole model {label}, {w}x{h} batch {batch} (CUDA events per run; accuracy vs eager FP32, TF32 off)")
    for backend, precision, how in model_variants(args):
        if only is not None and (backend, precision) not in only:
            continue
        row: dict[str, Any] = {
            "kind": "model",
            "model": label,
            "backend": backend,
            "precision": precision,
            "how": how,
            "input": f"{w}x{h}",
            "batch": batch,
        }
        if run.left_s() < args.reserve_s:
            row["status"] = "skipped: time budget"
            say(f"  {backend:28s} {precision:12s} {row['status']}")
            run.add(row)
            continue
        try:
            sync()
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            fn = make_runner(model, backend, precision, x, args)
            with torch.inference_mode():
                out = fn()  # compiles, tunes the kernels, captures the graph
                out = fn().float()
            sync()
            row["setup_s"] = round(time.perf_counter() - t, 2)
            if DEVICE == "cuda":  # what stays allocated (weights, a graph's pool) and what the runs add,
                torch.cuda.reset_peak_memory_stats()  # not the setup's transients (kernel tuning)
            lat = time_calls(fn, args.warmup, args.runs if h * w <= 320 * 180 else max(20, args.runs // 6))
            peak = (torch.cuda.max_memory_allocated() - before) / 2**20 if DEVICE == "cuda" else None
            err = float((out - ref).abs().max())
            row.update(
                status="ok",
                latency_ms=lat,
                fps=1000.0 * batch / lat["median"],
                peak_memory_mb_above_baseline=peak,
                max_abs_diff_vs_fp32=err,
                psnr_vs_fp32=psnr(out, ref),
            )
            say(
                f"  {backend:28s} {precision:12s} median {lat['median']:8.3f} ms  p90 {lat['p90']:8.3f}  "
                f"fps {row['fps']:8.1f}  peak {peak if peak is not None else float('nan'):8.1f} MB  "
                f"max|d| {err:.2e}  PSNR {row['psnr_vs_fp32']:.1f} dB  setup {row['setup_s']} s"
            )
            del fn, out
        except Exception as e:  # a row that fails is reported, never dropped
            row["status"] = failure(e)
            say(f"  {backend:28s} {precision:12s} {row['status']}")
        run.add(row)


# --- 3. per kernel ---------------------------------------------------------------------------


def kernel_cases(block_model: torch.nn.Module, x: torch.Tensor, fp32_mode: str) -> list[dict[str, Any]]:
    """Each fused kernel of a paper model as (name, eager equivalent, fused launch per config)."""
    from srx.kernels import ccm as ccm_mod
    from srx.kernels import conv, multiscale, safm_tail, tuning
    from srx.kernels._common import to_nhwc
    from srx.kernels.model import FusedSAFMN

    m = block_model
    block = m.feats[0]
    mode = tuning.compute_mode(x.dtype, fp32_mode)
    fused = FusedSAFMN(m, fp32_mode).to(x.device, x.dtype)
    fb = fused.blocks[0]
    c = fused.dim
    h, w = x.shape[-2:]
    with torch.inference_mode():
        feat = m.to_feat(x)
        u = block.norm1(feat)
        chunks = u.chunk(4, dim=1)
        pooled = [F.adaptive_max_pool2d(chunks[i], (h // f, w // f)) for i, f in enumerate((2, 4, 8), start=1)]
        x1 = block.safm(u) + feat
        u2 = block.norm2(x1)
        xs, us, x1s, u2s = (to_nhwc(t) for t in (feat, u, x1, u2))
        low = multiscale.multiscale_pool(us, c, fb.pool_factors)
    safm_p = {k[5:]: v for k, v in fb._buffers.items() if k.startswith("safm_")}
    ccm_p = {k[4:]: v for k, v in fb._buffers.items() if k.startswith("ccm_")}
    ln1 = fb.ln1()
    ln2 = (fb.norm2_w, fb.norm2_b, fb.eps)

    def eager_tail():
        s = [block.safm.mfr[0](chunks[0])]
        s += [F.interpolate(block.safm.mfr[i](pooled[i - 1]), size=(h, w)) for i in (1, 2, 3)]
        y = block.safm.act(block.safm.aggr(torch.cat(s, dim=1))) * u + feat
        return block.norm2(y)

    kernels = {
        "conv_head": (
            "to_feat conv3x3 + LayerNorm2d",
            lambda: block.norm1(m.to_feat(x)),
            conv.HEAD_CONFIGS[mode],
            lambda cfg: conv.conv_head(x, fused.head_w, fused.head_b, c, ln=ln1, fp32_precision=fp32_mode, config=cfg),
            "conv_head",
        ),
        "multiscale_pool": (
            "3 adaptive max pools",
            lambda: [F.adaptive_max_pool2d(chunks[i], (h // f, w // f)) for i, f in enumerate((2, 4, 8), start=1)],
            (multiscale.POOL_CONFIG,),
            lambda cfg: multiscale.multiscale_pool(us, c, fb.pool_factors),
            "multiscale_pool",
        ),
        "safm_tail": (
            "4 dwconv3x3 + 3 nearest + cat + 1x1 + GELU + * u + x + LayerNorm2d",
            eager_tail,
            safm_tail.SAFM_CONFIGS[mode],
            lambda cfg: safm_tail.safm_tail(xs, us, low, safm_p, c, ln_out=ln2, fp32_precision=fp32_mode, config=cfg),
            "safm_tail",
        ),
        "ccm": (
            "conv3x3 + GELU + conv1x1 + x + LayerNorm2d",
            lambda: block.norm1(block.ccm(u2) + x1),
            ccm_mod.candidate_configs(x.dtype, fp32_mode, ccm_p["w1"].shape[1]),
            lambda cfg: ccm_mod.ccm(x1s, u2s, ccm_p, c, ln_out=ln1, fp32_precision=fp32_mode, config=cfg),
            "ccm",
        ),
        "conv_tail": (
            "to_img conv3x3 + PixelShuffle",
            lambda: m.to_img(x1),
            conv.TAIL_CONFIGS[mode],
            lambda cfg: conv.conv_tail(
                x1s, fused.tail_w, fused.tail_b, c, m.spec.scale, fp32_precision=fp32_mode, config=cfg
            ),
            "conv_tail",
        ),
        "block (pool + safm_tail + ccm)": (
            "AttBlock",
            lambda: block(feat),
            (None,),
            lambda cfg: fb.run(xs, us, ln_next=ln1),
            None,
        ),
    }
    return [
        {"kernel": k, "replaces": v[0], "eager": v[1], "configs": v[2], "fused": v[3], "cost": v[4]}
        for k, v in kernels.items()
    ]


def bench_kernel_rows(run: Run, size: tuple[int, int], dtype: torch.dtype, fp32_mode: str, peaks) -> None:
    from srx.kernels import cost
    from srx.models import build_model

    args = run.args
    h, w = size
    precision = "fp16" if dtype == torch.float16 else f"fp32-{fp32_mode}"
    model = build_model("safmn", 4, n_blocks=1, seed=0).to(DEVICE, dtype).eval()
    x = lr_input(h, w, 1, args.images).to(dtype)
    costs = cost.fused_kernel_costs(36, 2.0, h, w, x.element_size(), 4)
    say(f"\nper kernel, {w}x{h} {precision} (do_bench, L2 flushed: median [p10, p90] ms)")
    for case in kernel_cases(model, x, fp32_mode):
        if run.left_s() < args.reserve_s:
            run.add({"kind": "kernel", "kernel": case["kernel"], "input": f"{w}x{h}", "status": "skipped: time budget"})
            say(f"  {case['kernel']:32s} skipped: time budget")
            continue
        base = {"kind": "kernel", "kernel": case["kernel"], "replaces": case["replaces"], "input": f"{w}x{h}"}
        base["precision"] = precision
        try:
            with torch.inference_mode():
                eager = kernel_ms(case["eager"], args)
        except Exception as e:
            eager = None
            say(f"  eager {case['replaces']}: {failure(e)}")
        for cfg in case["configs"][: 1 if args.smoke else None]:
            row = {**base, "config": str(cfg) if cfg is not None else "tuned", "eager_ms": eager}
            try:
                with torch.inference_mode():
                    t = kernel_ms(lambda cfg=cfg, fused=case["fused"]: fused(cfg), args)
                row.update(status="ok", fused_ms=t, speedup=(eager["median"] / t["median"]) if eager else None)
                extra = ""
                if case["cost"] is not None:
                    nbytes, flops = costs[case["cost"]]
                    floor_ms = 1e3 * max(nbytes / peaks["hbm_bytes_per_s"], flops / peaks["tensor_fp16_flops"])
                    row.update(
                        bytes_model=nbytes,
                        flops_model=flops,
                        achieved_gb_per_s=nbytes / (t["median"] * 1e-3) / 1e9,
                        achieved_tflops=flops / (t["median"] * 1e-3) / 1e12,
                        floor_ms=floor_ms,
                        floor_ratio=t["median"] / floor_ms,
                    )
                    extra = f"  {row['achieved_gb_per_s']:6.0f} GB/s  x{row['floor_ratio']:.1f} floor"
                vs = f"eager {eager['median']:.4f} x{row['speedup']:.2f}" if eager else "eager n/a"
                say(
                    f"  {case['kernel']:32s} {row['config']:34s} {t['median']:.4f} [{t['p10']:.4f}, {t['p90']:.4f}]  "
                    f"{vs}{extra}"
                )
            except Exception as e:
                row["status"] = failure(e)
                say(f"  {case['kernel']:32s} {row['config']:34s} {row['status']}")
            run.add(row)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, help="folder with images (*.png, ...) and optionally team15_SAFMN.pth, anywhere in it"
    )
    ap.add_argument("--weights", type=Path, help="checkpoint for the whole-model rows (default: embedded paper x4)")
    ap.add_argument("--sizes", default="320x180,1280x720")
    ap.add_argument("--batch", type=int, default=4, help="batch of the extra whole-model rows at the first size")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--kernel-warmup", type=int, default=10, help="do_bench warm-up time (ms)")
    ap.add_argument("--kernel-rep", type=int, default=60, help="do_bench measuring time (ms)")
    ap.add_argument("--compile-mode", default="reduce-overhead", help="torch.compile mode of the peer row, or none")
    ap.add_argument("--fp32-modes", default="tf32x3,ieee,tf32", help="srx FP32 precisions to time")
    ap.add_argument("--budget-s", type=float, default=330.0, help="stop starting new rows after this many seconds")
    ap.add_argument("--reserve-s", type=float, default=15.0, help="what a row may need past the budget check")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--smoke", action="store_true", help="test this script on the CPU (Triton interpreter); no results")
    args = ap.parse_args()
    args.fp32_modes = [m for m in args.fp32_modes.split(",") if m]

    global DEVICE
    if args.smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            print("kernels_bench: --smoke needs TRITON_INTERPRET=1 in the environment", file=sys.stderr)
            return 2
        DEVICE = "cpu"
        args.runs, args.warmup, args.compile_mode, args.batch = 1, 0, "none", 2
        args.fp32_modes = args.fp32_modes[:2]
        if args.sizes == ap.get_default("sizes"):
            args.sizes = "23x17"
    elif not torch.cuda.is_available():
        print(
            "kernels_bench: needs a CUDA GPU (none visible): the fused kernels' speed can only be measured there",
            file=sys.stderr,
        )
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print("kernels_bench: needs the 'triton' package: pip install 'srx[kernels]'", file=sys.stderr)
        return 2
    import srx.kernels
    from srx.models import build_model, default_model, load_model

    args.images = images_in(args.data)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.weights:
        model = load_model(args.weights)
    elif args.smoke:  # one block keeps the interpreter run short
        model = build_model("safmn", 4, n_blocks=1, seed=0)
    else:
        model = default_model(4)
    model = model.to(DEVICE).eval()
    reason = srx.kernels.fusable(model)
    if reason is not None:
        print(f"kernels_bench: {reason}", file=sys.stderr)
        return 2
    if DEVICE == "cuda":
        torch.backends.cudnn.benchmark = True

    dev = device_info() if not args.smoke else {"name": "smoke-cpu-interpreter (not a measurement)"}
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", dev["name"]).strip("-").lower()
    out_dir = args.out / f"{dt.date.today().isoformat()}-{gpu}"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    meta = {
        "smoke_test_not_a_result": args.smoke,
        "device": dev,
        "versions": versions(),
        "command": command,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "inputs": f"{len(args.images)} images from --data" if args.images else "synthetic gradients (no --data images)",
        "notes": "bytes_model / flops_model are analytical (srx.kernels.cost); floors use the measured peaks row",
    }
    run = Run(args, out_dir, meta)
    say(f"srx kernels bench: {dev}")
    say(f"versions: {meta['versions']}")
    say(f"command: {command}")
    say(f"inputs: {meta['inputs']}")

    peaks = measure_peaks(run)
    for size in sizes:
        bench_model_rows(run, model, model.spec.label, size, 1)
    for size in sizes:
        bench_kernel_rows(run, size, torch.float16, "tf32x3", peaks)
        if not args.smoke:
            bench_kernel_rows(run, size, torch.float32, "tf32x3", peaks)
    # --smoke: the batch path once, on the reference and the fused model (the interpreter is slow)
    smoke_only = {("torch", "fp32"), ("srx fused + CUDA graph", "fp16")} if args.smoke else None
    bench_model_rows(run, model, model.spec.label, sizes[0], args.batch, smoke_only)
    team15 = next(iter(sorted(args.data.rglob("team15_SAFMN.pth"))), None) if args.data else None
    if team15 is not None:
        bench_model_rows(run, load_model(team15).to(DEVICE).eval(), "team15_SAFMN.pth", sizes[0], 1)
    run.save()
    say(f"\nwrote {out_dir / 'kernels.json'} and {out_dir / 'kernels.log'} in {time.perf_counter() - T0:.0f} s")
    run.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
