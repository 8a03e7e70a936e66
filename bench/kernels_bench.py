"""GPU benchmark of srx's fused Triton kernels (issue 5). CUDA only; nothing here is a result.

    python bench/kernels_bench.py                      # default seeded paper SAFMN x4
    python bench/kernels_bench.py --weights ../shared/weights/team15_SAFMN.pth
    python bench/kernels_bench.py --sizes 320x180 --skip-compile --sweep

Measures, at each input size (WIDTHxHEIGHT, default 320x180 and 1280x720):
  * per kernel: the fused kernel against the eager PyTorch ops computing the same output
    from the same inputs (triton.testing.do_bench: CUDA events, L2 flushed before each
    run, median / p10 / p90), with the bytes it must move (srx.kernels.cost) and the
    bandwidth that implies;
  * whole model: eager FP32, eager FP16, torch.compile(mode="max-autotune") FP16, fused
    FP32 and FP16 (plain launches and CUDA graph): latency (CUDA events per run after
    warm-up, median / p90 / mean / min), peak memory, max abs difference and PSNR against
    the FP32 reference (TF32 off), analytical bytes and FLOPs, and the roofline floor
    from the H100 datasheet peaks (or --hbm-tbps / --fp32-tflops / --fp16-tflops).
Writes bench/results/<date>-<gpu>/kernels.json (device, versions, command, one row per
measurement) and kernels.log (everything printed), atomically.

--smoke runs every code path on the CPU under the Triton interpreter (TRITON_INTERPRET=1)
at a tiny size with host-clock timing, to test this script without a GPU; its numbers
mean nothing and it writes only under --out (tests/test_kernels_bench.py).
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from portable import portable  # noqa: E402

LOG: list[str] = []
DEVICE = "cuda"  # "cpu" with --smoke


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
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem,power.limit",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if smi.returncode == 0:
            info["nvidia_smi"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
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
    }


def summary_ms(times: list[float]) -> dict[str, float]:
    s = sorted(times)
    return {
        "median": statistics.median(s),
        "p90": s[min(len(s) - 1, int(0.9 * len(s)))],
        "mean": statistics.fmean(s),
        "min": s[0],
    }


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if DEVICE == "cuda" else 0.0


def bench_ms(fn, args) -> tuple[float, float, float]:
    """Median, p10, p90 in ms: triton.testing.do_bench (CUDA events, L2 flushed before each run)."""
    if DEVICE != "cuda":  # --smoke: one host-timed call
        t0 = time.perf_counter()
        fn()
        t = (time.perf_counter() - t0) * 1e3
        return t, t, t
    import triton.testing

    q = triton.testing.do_bench(fn, warmup=args.kernel_warmup, rep=args.kernel_rep, quantiles=[0.5, 0.1, 0.9])
    return q[0], q[1], q[2]


def time_model(fn, x: torch.Tensor, warmup: int, runs: int) -> dict[str, float]:
    """Per-run CUDA events on the current stream, back to back (no L2 flush): a video loop."""
    if DEVICE != "cuda":  # --smoke
        times = []
        with torch.inference_mode():
            for _ in range(runs):
                t0 = time.perf_counter()
                fn(x)
                times.append((time.perf_counter() - t0) * 1e3)
        return summary_ms(times)
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        for i in range(runs):
            starts[i].record()
            fn(x)
            ends[i].record()
        torch.cuda.synchronize()
    return summary_ms([s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)])


def peak_memory_mb(fn, x: torch.Tensor) -> float:
    sync()
    reset_peak()
    with torch.inference_mode():
        fn(x)
    sync()
    return peak_mb()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse)).item()


def natural_input(h: int, w: int, image: Path | None) -> torch.Tensor:
    """A real image crop when given (SAFMN++-style models blow up on U(0,1) noise), else smooth gradients."""
    if image is not None:
        from PIL import Image

        img = Image.open(image).convert("RGB").resize((w, h), Image.BICUBIC)
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
        return (t.permute(2, 0, 1).float() / 255.0)[None].to(DEVICE)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(9 * xx + 5 * yy + 2 * k) for k in range(3)])
    g = torch.Generator().manual_seed(0)
    return (base + 0.03 * torch.randn(3, h, w, generator=g)).clamp(0, 1)[None].to(DEVICE)


# --- per-kernel comparisons -----------------------------------------------------------


def kernel_cases(block, x: torch.Tensor) -> list[tuple[str, str, Any, Any, int]]:
    """(name, fused kernel, eager fn, fused fn, bytes the fused kernel must move) for one paper FMM."""
    from srx.kernels import cost
    from srx.kernels.ccm import ccm
    from srx.kernels.layer_norm import layer_norm, layer_norm_stats
    from srx.kernels.model import FusedAttBlock
    from srx.kernels.multiscale import lowres_dwconv, multiscale_pool
    from srx.kernels.safm_tail import safm_tail

    fb = FusedAttBlock(block).to(x.device, x.dtype)
    fs, fc = fb.safm, fb.ccm
    h, w = x.shape[-2:]
    c = x.shape[1]
    b = x.element_size()
    parts = cost.fmm_breakdown(c, fc.w1.shape[-1] / c, h, w, b, fused=True)
    stats = layer_norm_stats(x)
    with torch.inference_mode():
        u = block.norm1(x)
        low = lowres_dwconv(multiscale_pool(x, fs.pool_factors, stats, fs.ln_w, fs.ln_b), fs.low_w, fs.low_b)
        x1, stats2 = safm_tail(
            x,
            low,
            fs.dw0_w,
            fs.dw0_b,
            fs.aggr_wt,
            fs.aggr_b,
            stats=stats,
            ln_weight=fs.ln_w,
            ln_bias=fs.ln_b,
            want_stats=True,
        )
        ds = []
        chunks = u.chunk(4, dim=1)
        for i, f in enumerate(block.safm.pool_factors, start=1):
            ds.append(block.safm.mfr[i](F.adaptive_max_pool2d(chunks[i], (h // f, w // f))))

    def eager_ln():
        return block.norm1(x)

    def eager_branch():
        uu = block.norm1(x).chunk(4, dim=1)
        return [
            block.safm.mfr[i](F.adaptive_max_pool2d(uu[i], (h // f, w // f)))
            for i, f in enumerate(block.safm.pool_factors, start=1)
        ]

    def eager_tail():
        s = [block.safm.mfr[0](u[:, : c // 4])] + [F.interpolate(d, size=(h, w), mode="nearest") for d in ds]
        return block.safm.act(block.safm.aggr(torch.cat(s, dim=1))) * u + x

    def eager_ccm():
        return block.ccm(block.norm2(x1)) + x1

    ln_bytes = 2 * c * h * w * b
    return [
        ("LayerNorm2d", "layer_norm", eager_ln, lambda: layer_norm(x, fs.ln_w, fs.ln_b), ln_bytes),
        (
            "LN1 + 3 x (adaptive max pool, low-res dwconv)",
            "multiscale_pool + lowres_dwconv",
            eager_branch,
            lambda: lowres_dwconv(multiscale_pool(x, fs.pool_factors, stats, fs.ln_w, fs.ln_b), fs.low_w, fs.low_b),
            parts["multiscale_pool"] + parts["lowres_dwconv"],
        ),
        (
            "dwconv0 + 3 nearest + cat + 1x1 + GELU + * u + x",
            "safm_tail",
            eager_tail,
            lambda: safm_tail(
                x,
                low,
                fs.dw0_w,
                fs.dw0_b,
                fs.aggr_wt,
                fs.aggr_b,
                stats=stats,
                ln_weight=fs.ln_w,
                ln_bias=fs.ln_b,
                want_stats=True,
            ),
            parts["safm_tail"],
        ),
        (
            "LN2 + conv3x3 + GELU + conv1x1 + x",
            "ccm",
            eager_ccm,
            lambda: ccm(
                x1, fc.w1, fc.b1, fc.w2, fc.b2, stats=stats2, ln_weight=fc.ln_w, ln_bias=fc.ln_b, want_stats=True
            ),
            parts["ccm"],
        ),
        (
            "FMM block (AttBlock)",
            "4 fused kernels",
            lambda: block(x),
            lambda: fb.run(x, stats, want_stats=True),
            sum(parts.values()),
        ),
    ]


def bench_kernels(model, size: tuple[int, int], args, rows: list[dict[str, Any]]) -> None:
    from srx.models import build_model

    h, w = size
    spec = model.spec
    # Kernel times do not depend on weight values: a seeded paper block of the same width
    # (it has both LayerNorms, so every prologue and epilogue is timed).
    paper = build_model("safmn", 4, dim=spec.dim, n_blocks=1, ffn_scale=spec.ffn_scale, seed=0)
    for dtype in (torch.float32, torch.float16):
        block = copy.deepcopy(paper.feats[0]).to(DEVICE, dtype).eval()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(1, block.safm.aggr.weight.shape[0], h, w, generator=g).to(DEVICE, dtype)
        say(f"\nper-kernel, {w}x{h}, {str(dtype).replace('torch.', '')} (do_bench: median [p10, p90] ms, L2 flushed)")
        for name, kernel, eager, fused, nbytes in kernel_cases(block, x):
            with torch.inference_mode():
                te, tf = bench_ms(eager, args), bench_ms(fused, args)
            gbps = nbytes / (tf[0] * 1e-3) / 1e9
            say(
                f"  {kernel:34s} {tf[0]:8.4f} [{tf[1]:.4f}, {tf[2]:.4f}]  vs eager {name}: {te[0]:8.4f} "
                f"[{te[1]:.4f}, {te[2]:.4f}]  x{te[0] / tf[0]:.2f}  ({nbytes / 1e6:.2f} MB -> {gbps:.0f} GB/s)"
            )
            rows.append(
                {
                    "kind": "kernel",
                    "input": f"{w}x{h}",
                    "precision": str(dtype).replace("torch.", ""),
                    "kernel": kernel,
                    "replaces": name,
                    "fused_ms": {"median": tf[0], "p10": tf[1], "p90": tf[2]},
                    "eager_ms": {"median": te[0], "p10": te[1], "p90": te[2]},
                    "speedup": te[0] / tf[0],
                    "fused_bytes_model": nbytes,
                    "fused_achieved_gb_per_s": gbps,
                }
            )


def bench_sweep(model, size: tuple[int, int], args, rows: list[dict[str, Any]]) -> None:
    """Tile sizes of the CCM kernel (the defaults were chosen without a GPU)."""
    from srx.kernels.ccm import ccm
    from srx.kernels.layer_norm import layer_norm_stats
    from srx.kernels.model import FusedAttBlock
    from srx.models import build_model

    h, w = size
    spec = model.spec
    block = build_model("safmn", 4, dim=spec.dim, n_blocks=1, ffn_scale=spec.ffn_scale, seed=0).feats[0]
    fc = FusedAttBlock(block).to(DEVICE, torch.float16).ccm
    x = torch.randn(1, fc.w2.shape[1], h, w).to(DEVICE, torch.float16)
    stats = layer_norm_stats(x)
    say(f"\nccm tile sweep, {w}x{h} fp16 (block_p, hid_block, k_block): median ms")
    for bp in (32, 64, 128):
        for hb in (16, 32, 64, 128):
            for kb in (16, 32, 64):
                try:

                    def fn(bp=bp, hb=hb, kb=kb):
                        return ccm(
                            x,
                            fc.w1,
                            fc.b1,
                            fc.w2,
                            fc.b2,
                            stats=stats,
                            ln_weight=fc.ln_w,
                            ln_bias=fc.ln_b,
                            block_p=bp,
                            hid_block=hb,
                            k_block=kb,
                        )

                    with torch.inference_mode():
                        t = bench_ms(fn, args)[0]
                    status = "ok"
                except Exception as e:  # out of registers / shared memory on this GPU
                    t, status = float("nan"), f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                say(f"  ({bp:3d}, {hb:3d}, {kb:2d}): {t:.4f} {'' if status == 'ok' else status}")
                rows.append(
                    {
                        "kind": "sweep",
                        "kernel": "ccm",
                        "input": f"{w}x{h}",
                        "precision": "float16",
                        "block_p": bp,
                        "hid_block": hb,
                        "k_block": kb,
                        "median_ms": t,
                        "status": status,
                    }
                )


# --- whole model ------------------------------------------------------------------------


def bench_models(model, size: tuple[int, int], args, rows: list[dict[str, Any]]) -> None:
    import srx.kernels
    from srx.kernels import cost

    h, w = size
    spec = model.spec
    x32 = natural_input(h, w, args.image)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        ref = model(x32)
    torch.backends.cudnn.allow_tf32 = tf32
    m16 = copy.deepcopy(model).half()
    backends: list[tuple[str, str, Any]] = [
        ("torch", "fp32", lambda: model),
        ("torch-fp16", "fp16", lambda: m16),
    ]
    if not args.skip_compile:
        backends.append(
            ("torch-compile max-autotune", "fp16", lambda: torch.compile(m16, mode="max-autotune", dynamic=False))
        )
    fused32 = srx.kernels.fuse(model, strict=True)
    fused16 = srx.kernels.fuse(model, strict=True).half()
    backends += [
        ("torch-fused", "fp32", lambda: fused32),
        ("torch-fused", "fp16", lambda: fused16),
        ("torch-fused + CUDA graph", "fp32", lambda: srx.kernels.cuda_graph_runner(fused32, x32)),
        ("torch-fused + CUDA graph", "fp16", lambda: srx.kernels.cuda_graph_runner(fused16, x32.half())),
    ]
    peaks = {"fp32": args.fp32_tflops * 1e12, "fp16": args.fp16_tflops * 1e12}
    say(f"\nwhole model {spec.label}, {w}x{h} -> {w * spec.scale}x{h * spec.scale} (CUDA events per run)")
    for name, prec, make in backends:
        x = x32 if prec == "fp32" else x32.half()
        elem = 4 if prec == "fp32" else 2
        fused = name.startswith("torch-fused")
        traffic = cost.model_traffic(
            spec.arch, spec.scale, spec.dim, spec.n_blocks, spec.ffn_scale, h, w, elem, fused=fused
        )
        floor_ms = cost.roofline_floor_s(traffic, args.hbm_tbps * 1e12, peaks[prec]) * 1e3
        row: dict[str, Any] = {
            "kind": "model",
            "backend": name,
            "precision": prec,
            "input": f"{w}x{h}",
            "scale": spec.scale,
            "model": spec.label,
            "bytes_model": traffic.bytes,
            "flops_model": traffic.flops,
            "floor_ms_computed": floor_ms,
        }
        try:
            sync()
            reset_peak()
            t0 = time.perf_counter()
            fn = make()  # a CUDA graph is captured here, its memory pool allocated
            with torch.inference_mode():
                out = fn(x)  # torch.compile compiles here
            sync()
            row["setup_s"] = time.perf_counter() - t0
            setup_peak = peak_mb()
            lat = time_model(fn, x, args.warmup, args.runs)
            row.update(
                status="ok",
                latency_ms=lat,
                fps=1000.0 / lat["median"],
                # a graph's activations live in its private pool, allocated at capture
                peak_memory_mb=setup_peak if "graph" in name else peak_memory_mb(fn, x),
                max_abs_diff_vs_fp32=float((out.float() - ref).abs().max()),
                psnr_vs_fp32=psnr(out, ref) if spec.trained else None,
                floor_ratio=lat["median"] / floor_ms,
            )
            say(
                f"  {name:28s} {prec}  median {lat['median']:8.3f} ms  p90 {lat['p90']:8.3f}  "
                f"peak {row['peak_memory_mb']:8.1f} MB  max|d| {row['max_abs_diff_vs_fp32']:.2e}  "
                f"bytes {traffic.bytes / 1e6:8.1f} MB  floor {floor_ms:.3f} ms (x{row['floor_ratio']:.1f})"
            )
        except Exception as e:  # reported, never silently dropped
            row.update(
                status=f"failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
            )
            say(f"  {name:28s} {prec}  {row['status']}")
        rows.append(row)
        if DEVICE == "cuda":
            torch.cuda.empty_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--weights", type=Path, help="checkpoint (paper SAFMN or NTIRE 2023 SAFMN); default: seeded paper x4"
    )
    ap.add_argument("--image", type=Path, help="image to resize as the input (default: smooth synthetic gradients)")
    ap.add_argument("--sizes", default="320x180,1280x720")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--kernel-warmup", type=int, default=25, help="do_bench warm-up time (ms)")
    ap.add_argument("--kernel-rep", type=int, default=200, help="do_bench measuring time (ms)")
    ap.add_argument(
        "--skip-compile", action="store_true", help="skip torch.compile (max-autotune compiles for minutes)"
    )
    ap.add_argument("--sweep", action="store_true", help="also sweep the CCM kernel's tile sizes")
    ap.add_argument("--hbm-tbps", type=float, default=3.35, help="HBM bandwidth for the floor (H100 SXM: 3.35)")
    ap.add_argument("--fp32-tflops", type=float, default=67.0, help="FP32 non-tensor peak (H100 SXM: 67)")
    ap.add_argument("--fp16-tflops", type=float, default=990.0, help="dense FP16 tensor peak (H100 SXM: 990)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--smoke", action="store_true", help="test this script on the CPU (Triton interpreter); no results")
    args = ap.parse_args()

    global DEVICE
    if args.smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            print("kernels_bench: --smoke needs TRITON_INTERPRET=1 in the environment", file=sys.stderr)
            return 2
        DEVICE = "cpu"
        args.runs, args.warmup, args.skip_compile = 1, 0, True
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

    dev = device_info() if not args.smoke else {"name": "smoke-cpu-interpreter (not a measurement)"}
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", dev["name"]).strip("-").lower()
    out_dir = args.out / f"{dt.date.today().isoformat()}-{gpu}"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    say(f"srx kernels bench: {dev}")
    say(f"versions: {versions()}")
    say(f"command: {command}")
    if "H100" not in dev["name"] and (args.hbm_tbps, args.fp32_tflops, args.fp16_tflops) == (3.35, 67.0, 990.0):
        say("note: the floor uses H100 SXM datasheet peaks; pass --hbm-tbps/--fp32-tflops/--fp16-tflops for this GPU")

    rows: list[dict[str, Any]] = []
    for size in sizes:
        bench_kernels(model, size, args, rows)
        if args.sweep:
            bench_sweep(model, size, args, rows)
        bench_models(model, size, args, rows)

    from srx.fileio import write_json_atomic, write_text_atomic

    result = {
        "smoke_test_not_a_result": args.smoke,
        "device": dev,
        "versions": versions(),
        "command": command,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "floor_peaks": {"hbm_tbps": args.hbm_tbps, "fp32_tflops": args.fp32_tflops, "fp16_tflops": args.fp16_tflops},
        "notes": "floor_ms_computed and bytes_model are analytical (srx.kernels.cost), not measured",
        "results": rows,
    }
    write_json_atomic(out_dir / "kernels.json", portable(json.loads(json.dumps(result, default=str))))
    write_text_atomic(out_dir / "kernels.log", portable("\n".join(LOG) + "\n"))
    say(f"\nwrote {out_dir / 'kernels.json'} and {out_dir / 'kernels.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
