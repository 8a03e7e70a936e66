"""The video pipeline on this CPU (issue 15): `srx bench --video` (end to end against the model
alone) and the memory of `srx upscale` on a long 1080p input, as a user runs them.

Usage: python bench/video_cpu.py OUTDIR [--frames 120] [--rounds 2] [--presets default,veryfast]
                                         [--model-runs 50] [--memory-frames 24,96,192]

1. Speed. A 320x180 H.264 + AAC video (10 s, 24 fps) is made from the real photos in
   ../shared/data/real_lr (a slow pan over each, as a camera would film it). Each round runs
   `srx bench --video IN.mp4 --runs N --warmup 2` (embedded default x4 model, backend auto:
   onnxruntime on the CPU; the pipeline writes H.264 crf 18 with the audio copied, as
   `srx upscale` does), once with x264's default preset (medium) and once per other
   --presets, and, for a cross-check of the model-only rate on srx bench's own synthetic
   inputs, `srx bench --input 320x180 --backends onnxruntime --runs M --warmup 2`.
2. Memory. A 1080p H.264 + AAC video of 2 minutes (2880 frames) is made the same way.
   `srx upscale LONG.mp4 -o OUT.mp4 --duration D` runs for D giving each of --memory-frames
   frames, with a 1.7k-parameter SAFMN x2 checkpoint standing in for the model (the default
   x4 model takes about a minute per 1080p frame on this CPU; the pipeline's own memory,
   which is what grows with a video's length if anything does, does not depend on the model):
   1080p -> 2160p (4K) H.264, frames tiled (above 1 megapixel). The peak resident set size
   of each run comes from getrusage in a wrapper process (exact), the RSS timeline from
   /proc every 0.25 s (OUTDIR/memory_N_frames_rss.csv).

Every run's command, stdout, wall time and load averages are written to OUTDIR, srx's own
--json record beside them (its paths made portable, as in every committed record), and
summary.md is rewritten after each run, so a run stopped part-way still leaves its summary.
The input videos are made in a scratch folder and described (how, size, sha256), not committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from cpu_speed import environment, loadavg
from PIL import Image
from portable import log, portable, write_json, write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))
PHOTOS = sorted((SHARED / "data" / "real_lr").glob("*.png"))
RATE = 24


def make_video(path: Path, width: int, height: int, frames: int, crf: int, preset: str) -> dict[str, Any]:
    """Pan a width x height window across each photo (resized to 1.5x the window), 60 frames a
    photo, with a 440 Hz AAC tone the length of the video."""
    import av

    t0 = time.perf_counter()
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=RATE)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = Fraction(1, RATE)
        vs.options = {"crf": str(crf), "preset": preset}
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        big = None
        for i in range(frames):
            k, j = divmod(i, 60)
            if j == 0:
                im = Image.open(PHOTOS[k % len(PHOTOS)]).convert("RGB")
                big = np.asarray(im.resize((width * 3 // 2, height * 3 // 2), Image.Resampling.LANCZOS))
            dx, dy = (j * (width // 2)) // 59, (j * (height // 2)) // 59
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[dy : dy + height, dx : dx + width]), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, RATE)
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        total, t = 48000 * frames // RATE, 0
        while t < total:
            n = min(1024, total - t)
            x = (0.2 * np.sin(2 * np.pi * 440 * np.arange(t, t + n) / 48000)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            out.mux(a.encode(af))
            t += n
        out.mux(a.encode(None))
    return {
        "made_by": f"bench/video_cpu.py make_video: {width}x{height}, {frames} frames at {RATE} fps, libx264 crf {crf} "
        f"preset {preset}, AAC 48 kHz stereo; a pan over each of {len(PHOTOS)} photos in ../shared/data/real_lr",
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "seconds_to_make": round(time.perf_counter() - t0, 1),
    }


def run(out: Path, name: str, argv: list[str], *, sample_rss: bool = False) -> dict[str, Any]:
    """`python -m srx ARGV` in a fresh process under a wrapper that reports its exact peak RSS."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:])\n"
        "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(p.returncode)\n"
    )
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "srx", *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OMP_WAIT_POLICY", None)  # the user's environment: the CLI chooses its own default
    before = loadavg()
    t0 = time.perf_counter()
    timeline: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as stdout_f, tempfile.TemporaryFile() as stderr_f:
        proc = subprocess.Popen(cmd, stdout=stdout_f, stderr=stderr_f, env=env, cwd=REPO)
        while proc.poll() is None:
            if sample_rss:
                rss = _child_rss_mb(proc.pid)
                if rss is not None:
                    timeline.append((round(time.perf_counter() - t0, 2), rss))
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        after = loadavg()
        stdout_f.seek(0)
        stderr_f.seek(0)
        stdout, stderr = stdout_f.read().decode(), stderr_f.read().decode()
    peak_kb = next((int(line.split()[1]) for line in stderr.splitlines() if line.startswith("peak_rss_kb")), None)
    stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith("peak_rss_kb"))
    write_text(
        out / f"{name}.txt",
        f"$ srx {shlex.join(argv)}\n\n{stdout}\n{stderr}\nwall time {wall:.1f} s (process start to exit), "
        f"exit code {proc.returncode}, peak RSS {None if peak_kb is None else round(peak_kb / 1024, 1)} MB\n"
        f"load average before {before}, after {after}\n",
    )
    log(name, f"exit {proc.returncode}", f"wall {wall:.1f} s", stdout[-3000:], stderr[-1500:], flush=True)
    record = {
        "command": "srx " + shlex.join(argv),
        "wall_seconds": round(wall, 2),
        "exit_code": proc.returncode,
        "peak_rss_mb": None if peak_kb is None else round(peak_kb / 1024, 1),
        "load_before": before,
        "load_after": after,
    }
    json_path = out / f"{name}.json"
    if json_path.exists():
        # srx writes the paths it was given: this machine's scratch folder.
        write_json(json_path, json.loads(json_path.read_text()))
    if sample_rss:
        # Thousands of samples: a CSV of their own keeps environment.json small and readable.
        write_text(out / f"{name}_rss.csv", "seconds,rss_mb\n" + "".join(f"{t},{mb}\n" for t, mb in timeline))
        record["rss_timeline"] = f"{name}_rss.csv"
    return record


def rss_timeline(out: Path, run_: dict[str, Any]) -> list[tuple[float, float]]:
    """(seconds, MB) samples of a memory run: in its CSV, or inline in records written before
    the CSV existed (2026-11-28-cpu-video)."""
    if "rss_timeline_s_mb" in run_:
        return [(t, mb) for t, mb in run_["rss_timeline_s_mb"]]
    path = out / run_.get("rss_timeline", "")
    if not run_.get("rss_timeline") or not path.exists():
        return []
    rows = path.read_text().splitlines()[1:]
    return [(float(t), float(mb)) for t, mb in (row.split(",") for row in rows)]


def second_half(timeline: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(min, max) RSS over the second half of the work: flat when memory is bounded, rising
    when it grows with the frames, which the peak alone cannot tell. The work ends at the last
    sample holding at least half the peak; after it the process frees its buffers and exits."""
    if not timeline:
        return None
    peak = max(mb for _, mb in timeline)
    end = max(t for t, mb in timeline if mb >= peak / 2)
    half = [mb for t, mb in timeline if end / 2 <= t <= end]
    return min(half), max(half)


def save(out: Path, record: dict[str, Any]) -> None:
    write_json(out / "environment.json", record)
    write_text(out / "summary.md", summary(out, record))


def _child_rss_mb(wrapper_pid: int) -> float | None:
    """VmRSS of the srx process (the wrapper's child)."""
    try:
        children = Path(f"/proc/{wrapper_pid}/task/{wrapper_pid}/children").read_text().split()
        for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, IndexError, ValueError):
        return None
    return None


def speed(out: Path, scratch: Path, args: argparse.Namespace, record: dict[str, Any]) -> None:
    src = scratch / "pan_320x180.mp4"
    record["inputs"]["pan_320x180.mp4"] = make_video(src, 320, 180, 240, crf=18, preset="medium")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for r in range(1, args.rounds + 1):
        for preset in presets:
            name = f"round{r}_video_{preset}"
            argv = ["bench", "--video", str(src), "--runs", str(args.frames), "--warmup", "2"]
            argv += [] if preset == "default" else ["--preset", preset]
            record["runs"][name] = run(out, name, [*argv, "--json", str(out / f"{name}.json")])
            save(out, record)
        name = f"round{r}_model"
        argv = ["bench", "--input", "320x180", "--backends", "onnxruntime", "--runs", str(args.model_runs)]
        record["runs"][name] = run(out, name, [*argv, "--warmup", "2", "--json", str(out / f"{name}.json")])
        save(out, record)


def memory(out: Path, scratch: Path, counts: list[int], seconds: int, record: dict[str, Any]) -> None:
    import torch

    from srx.models import build_model

    src = scratch / "long_1080p.mp4"
    record["inputs"]["long_1080p.mp4"] = make_video(src, 1920, 1080, seconds * RATE, crf=23, preset="veryfast")
    weights = scratch / "tiny_safmn_x2.pth"
    torch.save({"params": build_model("safmn", 2, dim=8, n_blocks=1, seed=9).state_dict()}, weights)
    record["memory_model"] = "SAFMN x2, dim 8, 1 block (1.7k parameters), seed 9: a stand-in for the model"
    for n in counts:
        name = f"memory_{n}_frames"
        dst = scratch / f"out_{n}.mp4"
        # Half a frame short of n frames: the clip keeps frames shown before start + duration.
        argv = ["upscale", str(src), "-o", str(dst), "--weights", str(weights), "--duration", f"{(n - 0.5) / RATE:.4f}"]
        record["runs"][name] = run(out, name, [*argv, "--json", str(out / f"{name}.json")], sample_rss=True)
        dst.unlink(missing_ok=True)
        save(out, record)


def summary(out: Path, record: dict[str, Any]) -> str:
    lines = ["# Summary (made by bench/video_cpu.py from the files here)", ""]
    rows = []
    for name, run_ in record["runs"].items():
        path = out / f"{name}.json"
        if "_video_" not in name or not path.exists():
            continue
        res = json.loads(path.read_text())["results"][0]
        if res["status"] != "ok":
            continue
        p, m = res["pipeline"], res["model_only"]
        stages = " / ".join(f"{p['stages'][s]['ms_per_frame']:.1f}" for s in ("decode", "infer", "readback", "encode"))
        rows.append(
            f"| {name.split('_')[0]} | {p['encoding']['quality']} | {m['fps']:.3f} | {p['steady_fps']:.3f} | "
            f"**{100 * p['vs_model_only']:.1f}%** | {p['overall_fps']:.3f} | {p['flush_s']:.1f} | {stages} | "
            f"{run_['load_before'][0]} / {run_['load_after'][0]} |"
        )
    if rows:
        lines += [
            "320x180 -> 1280x720, embedded default x4 model, onnxruntime (backend auto), batch 1, "
            "H.264 + AAC in, H.264 + AAC out:",
            "",
            "| round | encoder | model only fps (srx bench protocol, the video's frames) | end to end fps (steady) | "
            "end to end / model only | end to end fps (whole run) | encoder flush s | "
            "decode / infer / readback / encode ms per frame | load before / after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    models = []
    for name, run_ in record["runs"].items():
        path = out / f"{name}.json"
        if name.endswith("_model") and path.exists():
            r = next(x for x in json.loads(path.read_text())["results"] if x["backend"] == "onnxruntime")
            if r["status"] == "ok":
                models.append(
                    f"| {name.split('_')[0]} | {r['fps']:.3f} | {r['latency_ms']['median']:.1f} | "
                    f"{run_['load_before'][0]} / {run_['load_after'][0]} |"
                )
    if models:
        lines += [
            "`srx bench --input 320x180 --backends onnxruntime` (synthetic inputs) in the same rounds:",
            "",
            "| round | fps | median ms | load before / after |",
            "| --- | --- | --- | --- |",
            *models,
            "",
        ]
    mem = [(n, r) for n, r in record["runs"].items() if n.startswith("memory_")]
    if mem:
        lines += [
            "| frames upscaled (1080p -> 2160p) | peak RSS MB | RSS over the second half MB (min - max) | wall s | "
            "load before / after |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, r in mem:
            half = second_half(rss_timeline(out, r))
            lines.append(
                f"| {name.split('_')[1]} | {r['peak_rss_mb']} | {'-' if half is None else f'{half[0]} - {half[1]}'} | "
                f"{r['wall_seconds']} | {r['load_before'][0]} / {r['load_after'][0]} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=120, help="timed frames per speed round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--presets", default="default,veryfast", help="x264 presets of the pipeline runs")
    ap.add_argument("--model-runs", type=int, default=50, help="timed runs of the srx bench --input cross-check")
    ap.add_argument("--memory-frames", default="24,96,192", help="comma-separated frame counts ('' to skip)")
    ap.add_argument("--memory-seconds", type=int, default=120, help="length of the long 1080p input")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    record = {**environment(sys.argv), "inputs": {}, "runs": {}}
    import av

    record["versions"].update(
        {"av": av.__version__, **{k: ".".join(map(str, v)) for k, v in av.library_versions.items()}}
    )
    with tempfile.TemporaryDirectory(prefix="srx-video-bench-") as tmp:
        scratch = Path(tmp)
        if not args.no_speed:
            speed(out, scratch, args, record)
        counts = [int(c) for c in args.memory_frames.split(",") if c.strip()]
        if counts:
            memory(out, scratch, counts, args.memory_seconds, record)
    save(out, record)
    log(portable(summary(out, record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
