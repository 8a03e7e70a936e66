"""srx bench --video FILE: the whole pipeline (decode + model + encode) against the model alone.

For each backend, two measurements at the video's own frame size:
1. model only, with srx bench's protocol (srx.bench.measure): `warmup` untimed runs, then
   `runs` timed runs of `Runner.execute` on staged frames of the video (no copies, no
   decode, no encode);
2. the pipeline, as `srx upscale` runs it, on the first `warmup + runs` frames, writing a
   real file (the container and encoder `srx upscale` would pick for the input's suffix) to
   a scratch folder that is removed afterwards. Its steady rate starts at the first batch
   after the warm-up frames (model load, compilation and session creation excluded) and
   ends when the output is complete, the encoder's final flush included (conservative: the
   frames the encoder still holds, 40 for x264's default look-ahead, are encoded after the
   last model call, once per video; time a few hundred frames to make that small); its
   overall rate counts the whole run from opening the file.

The ratio of the steady pipeline rate to the model-only rate is what the pipeline costs:
on a GPU the stages overlap the model; on a CPU they share its cores. The per-stage busy
times (srx.video.pipeline) say where the rest goes.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from srx import __version__
from srx.bench.engine import versions
from srx.bench.measure import measure_backend
from srx.runtime.device import device_info
from srx.runtime.registry import check_backend, get_backend, runner_class
from srx.video import OUTPUT_FORMATS
from srx.video.frames import stage
from srx.video.pipeline import STAGES
from srx.video.probe import probe
from srx.video.reader import Clip, Decoded, VideoReader
from srx.video.upscale import VideoJob, VideoOptions, upscale_video

MODEL_ONLY_INPUTS = 8  # distinct frames the model-only runs cycle through (as srx bench's inputs)


def _first_frames(path: Path, count: int) -> list[np.ndarray]:
    info = probe(path)
    frames = []
    with VideoReader(info, (), Clip(frames=count)) as reader:
        for item in reader.items():
            if isinstance(item, Decoded):
                frames.append(stage(item.pixels, info.bit_depth))
    return frames


def bench_video(
    path: str | Path,
    source: Any,
    backends: list[str],
    device: str,
    *,
    runs: int,
    warmup: int,
    batch: int = 1,
    threads: int | None = None,
    encoder: dict[str, Any] | None = None,
    progress: Callable[[str, int], Any],
    frame_bar: Callable[[str, int | None], Any] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """The record of `srx bench --video` (docs/video.md lists its fields)."""
    p = Path(path)
    info = probe(p)
    load_before = _loadavg()
    frames_total = warmup * batch + runs * batch
    suffix = p.suffix.lower() if p.suffix.lower() in OUTPUT_FORMATS else ".mkv"
    spec = source.spec
    frames = _first_frames(p, min(MODEL_ONLY_INPUTS * batch, frames_total))
    batches = [np.stack(frames[i : i + batch]) for i in range(0, len(frames) - batch + 1, batch)] or [
        np.stack([frames[i % len(frames)] for i in range(batch)])
    ]
    rows = []
    for name in backends:
        avail = check_backend(name, device, source)
        if not avail.ok:
            rows.append({"backend": name, "status": "skipped", "reason": avail.reason})
            continue
        opts = {"threads": threads} if threads else {}
        model = measure_backend(
            runner_class(name)(source, get_backend(name).runs_on(device), **opts),
            batches,
            {},
            warmup=warmup,
            runs=runs,
            n_acc=0,
            profile=False,
            progress=progress,
        )
        row: dict[str, Any] = {"backend": name, "status": model["status"], "model_only": model}
        if model["status"] == "ok":
            runner = runner_class(name)(source, get_backend(name).runs_on(device), **opts)
            with tempfile.TemporaryDirectory(prefix="srx-bench-video-") as scratch, runner:
                job = VideoJob(p, Path(scratch) / f"out{suffix}")
                rec = upscale_video(
                    job,
                    runner,
                    spec,
                    VideoOptions(batch=batch, clip=Clip(frames=frames_total), **(encoder or {})),
                    progress=frame_bar,
                    mark_frame=warmup * batch,
                )
            row["pipeline"] = _pipeline_summary(rec, model)
        else:
            row["reason"] = model.get("reason", "")
        rows.append(row)
    return {
        "srx_version": __version__,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command or [],
        "video": info.to_dict(),
        "model": {"label": spec.label, "arch": spec.arch, "trained": spec.trained, "source": source.origin},
        "untrained": not spec.trained,
        "device": {**device_info(device), "load_average_before": load_before, "load_average_after": _loadavg()},
        "versions": {**versions(), **_av_versions()},
        "input": info.size,
        "output": f"{info.width * spec.scale}x{info.height * spec.scale}",
        "batch": batch,
        "runs": runs,
        "warmup": warmup,
        "results": rows,
    }


def _pipeline_summary(rec: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    pipe = rec["pipeline"]
    n, wall = rec["frames"], pipe["wall_s"]
    steady_frames = n - pipe["mark_index"]
    # To the complete file, the encoder's final flush included: conservative. The flush encodes
    # the frames the encoder still holds (x264 medium looks 40 ahead) with no model work left
    # to overlap, once per video; a run of a few hundred frames makes it a small share.
    steady_s = wall - pipe["mark_s"] if pipe["mark_s"] is not None else None
    steady_fps = steady_frames / steady_s if steady_s and steady_frames > 0 else None
    busy = rec["stages_busy_s"]
    stages = {
        s: {
            "busy_s": busy[s],
            "ms_per_frame": round(1000 * busy[s] / n, 3) if n else None,
            "share_of_wall": round(busy[s] / wall, 4) if wall else None,
        }
        for s in STAGES
    }
    model_fps = model.get("fps")
    return {
        "frames": n,
        "steady_frames": steady_frames,
        "wall_s": wall,
        "steady_s": None if steady_s is None else round(steady_s, 4),
        "steady_fps": None if steady_fps is None else round(steady_fps, 4),
        "flush_s": pipe["finish_s"],
        "overall_fps": round(n / rec["seconds"], 4) if rec["seconds"] else None,
        "vs_model_only": None if not (steady_fps and model_fps) else round(steady_fps / model_fps, 4),
        "stages": stages,
        "bottleneck": max(STAGES, key=lambda s: busy[s]),
        "encoding": rec["encoding"],
        "path": rec["path"],
        "tiling": rec["tiling"],
    }


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on a shared machine shows up here."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _av_versions() -> dict[str, str]:
    import av

    libs = {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    return {
        "av": av.__version__,
        "libavcodec": libs.get("libavcodec", ""),
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "")),
    }


def format_video_bench(result: dict[str, Any]) -> str:
    v = result["video"]
    lines = [
        f"srx bench --video {v['path']}: {result['model']['label']}",
        f"  {result['input']} -> {result['output']}, {v['codec']} {v['pix_fmt']}, batch {result['batch']}, "
        f"{result['warmup']} warm-up + {result['runs']} timed runs (frames x batch)",
    ]
    if result.get("untrained"):
        lines.append("  NOTE: embedded untrained model (for latency only); pass --weights CKPT for a trained model")
    dev = result["device"]
    lines.append(
        f"  device {dev['kind']}: {dev.get('name') or dev.get('cpu', '')}; load {dev.get('load_average_before')}"
    )
    for r in result["results"]:
        if r["status"] != "ok":
            lines.append(f"  {r['backend']}: {r['status']}: {r.get('reason', '')}")
            continue
        m, p = r["model_only"], r["pipeline"]
        e = p["encoding"]
        lines.append(
            f"  {r['backend']} ({m.get('mode', '')}), pipeline path {p['path']}, encoder {e['encoder']} {e['quality']}:"
        )
        lines.append(f"    {'stage':<10} {'ms/frame':>9} {'busy/wall':>9}")
        for s, st in p["stages"].items():
            lines.append(f"    {s:<10} {st['ms_per_frame']:>9.2f} {100 * st['share_of_wall']:>8.1f}%")
        lines.append(
            f"    model only   {m['fps']:.3f} fps (median {m['latency_ms']['median']:.2f} ms per batch, srx bench protocol)"
        )
        steady = "-" if p["steady_fps"] is None else f"{p['steady_fps']:.3f}"
        lines.append(
            f"    end to end   {steady} fps steady over {p['steady_frames']} frames; {p['overall_fps']:.3f} fps overall "
            f"({p['frames']} frames in {p['wall_s']:.1f} s incl. warm-up and the encoder's final flush, "
            f"{p['flush_s']:.1f} s)"
        )
        if p["vs_model_only"] is not None:
            lines.append(
                f"    end to end / model only: {100 * p['vs_model_only']:.1f}% (bottleneck: {p['bottleneck']})"
            )
    return "\n".join(lines)
