"""`srx train` (docs/cli.md#srx-train): a thin click adapter over `srx.train.loop.train`.

No torch at import time (`srx --help` must work without it).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

import click
from click.core import ParameterSource

from srx.cli.group import cli
from srx.errors import BadInput
from srx.spec import ARCHS
from srx.train.config import LossWeights, TrainConfig

# Options whose value defines the run; on --resume, those given must agree with the saved run.
_CONFIG_OPTIONS = {
    "arch": "arch",
    "scale": "scale",
    "dim": "dim",
    "blocks": "n_blocks",
    "ffn": "ffn_scale",
    "iters": "iters",
    "batch": "batch",
    "patch": "patch",
    "lr": "lr",
    "min_lr": "min_lr",
    "warmup": "warmup",
    "seed": "seed",
    "val": "val",
    "val_every": "val_every",
    "save_every": "save_every",
    "log_every": "log_every",
    "until": "until",
    "max_minutes": "max_minutes",
    "device": "device",
    "threads": "threads",
    "channels_last": "channels_last",
    "bf16": "bf16",
    "qat": "qat",
}
_WEIGHT_OPTIONS = ("pixel_weight", "fft_weight", "distill_weight", "feature_weight")


@cli.command("train", short_help="Train a paper SAFMN on a folder of HR images.")
@click.option("--data", default=None, metavar="DIR", help="Folder of HR training images (searched recursively).")
@click.option("--arch", type=click.Choice(ARCHS), default="safmn", show_default=True, help="Architecture.")
@click.option("--scale", type=int, default=4, show_default=True, help="2, 3 or 4.")
@click.option("--dim", type=int, default=None, help="Feature channels (default: the architecture's, 36).")
@click.option("--blocks", type=int, default=None, help="Feature blocks (default: the architecture's, 8).")
@click.option("--ffn", type=float, default=None, help="CCM expansion (default: the architecture's, 2).")
@click.option("--iters", type=int, default=50_000, show_default=True, help="Iterations of the whole schedule.")
@click.option("--batch", type=int, default=16, show_default=True, help="Patches per iteration.")
@click.option("--patch", type=int, default=48, show_default=True, help="LR patch side (HR: scale times more).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate (cosine to --min-lr).")
@click.option("--min-lr", type=float, default=1e-6, show_default=True, help="Learning rate at the last iteration.")
@click.option("--warmup", type=int, default=0, show_default=True, help="Iterations of linear warm-up.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation and the patches.")
@click.option("--pixel-weight", type=float, default=1.0, show_default=True, help="Weight of L1 to the HR.")
@click.option("--fft-weight", type=float, default=0.0, show_default=True, help="Weight of the FFT loss (paper: 0.05).")
@click.option("--init", "init", default=None, metavar="CKPT", help="Copy every tensor whose name and shape match.")
@click.option("--teacher", default=None, metavar="CKPT", help="Trained network to distil from (same scale).")
@click.option(
    "--distill-weight",
    type=float,
    default=None,
    help="Weight of L1 to the teacher's output (default 1 with --teacher).",
)
@click.option(
    "--feature-weight", type=float, default=0.0, show_default=True, help="Weight of per-block feature distillation."
)
@click.option("--resume", default=None, metavar="OUT", help="Continue the run in this folder (or resume.safetensors).")
@click.option("--val", default=None, metavar="DIR", help="Validation set (e.g. Set5): srx eval's PSNR/SSIM on Y.")
@click.option("--val-every", type=int, default=1000, show_default=True, help="Iterations between validations.")
@click.option("--save-every", type=int, default=500, show_default=True, help="Iterations between checkpoints.")
@click.option("--log-every", type=int, default=50, show_default=True, help="Iterations between lines in train.log.")
@click.option(
    "--until", type=int, default=None, help="Stop (resumably) after this iteration; the schedule keeps --iters."
)
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="Stop (resumably) once this session has run this long (start-up included); the schedule keeps --iters.",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch (default: all).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout for the convolutions.")
@click.option("--bf16", is_flag=True, help="Convolutions in bfloat16 under autocast (AMX CPUs, GPUs).")
@click.option(
    "--linear-start", is_flag=True, help="Start as the best linear upscaler (zeroed branches, least-squares head)."
)
@click.option(
    "--fit-head", is_flag=True, help="With --init: fit the head (to_img) by least squares on the copied body."
)
@click.option("--qat", is_flag=True, help="Quantization-aware: train through srx quantize's INT8 rounding.")
@click.option("-o", "--output", "out", default=None, metavar="OUT", help="Run folder (default: train-ARCH-xSCALE).")
@click.option(
    "--json", "json_path", default=None, metavar="PATH", help="Also write the run's JSON here ('-' = stdout)."
)
@click.pass_context
def train(ctx: click.Context, **opts: Any) -> None:
    """Train a SAFMN network on HR images (L1 / FFT / distillation, Adam, cosine schedule)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench: spinning OpenMP collapses on a busy CPU
    from srx.fileio import check_writable

    if opts["json_path"] not in (None, "-"):
        check_writable(opts["json_path"], "--json")
    given = {k for k in opts if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    config = _config(opts, given)

    from srx.train.loop import train as run

    def warn(message: str) -> None:
        click.echo(f"srx: warning: {message}", err=True)

    result = run(
        config,
        resume=opts["resume"],
        progress=sys.stderr.isatty(),
        command=shlex.join(["srx", "train", *sys.argv[2:]]) if sys.argv[1:2] == ["train"] else "",
        warn=warn,
    )
    meta = result.meta
    lines = [
        f"trained {meta['model']['arch']} x{meta['model']['scale']} to iteration {result.iteration} of {result.iters} "
        f"({meta['wall_seconds'] / 60:.1f} min of training in all); last loss {meta['loss'].get('total', float('nan')):.5f}",
        f"  wrote {result.out / 'model.safetensors'} (+ model.json, resume.safetensors, train.log)",
    ]
    best = meta["scores"]["best"]
    if best:
        lines.append(
            f"  best on {config.val}: PSNR-Y {best['psnr_y']:.3f} dB, SSIM-Y {best['ssim_y']:.4f} at iteration "
            f"{best['iteration']} ({result.out / 'best.safetensors'})"
        )
    if not result.finished:
        end = min(config.iters, config.until or config.iters)
        why = f"at --until {end}" if result.iteration >= end else f"by --max-minutes at iteration {result.iteration}"
        lines.append(f"  stopped {why}: continue with srx train --resume {result.out}")
    click.echo("\n".join(lines), err=opts["json_path"] == "-")
    if opts["json_path"] is not None:
        import json

        if opts["json_path"] == "-":
            click.echo(json.dumps(meta, indent=2))
        else:
            from srx.fileio import write_json_atomic

            write_json_atomic(opts["json_path"], meta)


def _config(opts: dict[str, Any], given: set[str]) -> TrainConfig:
    """TrainConfig from the options; on --resume, the saved run's with the given options applied."""
    if opts["resume"] is not None:
        from srx.train.checkpoint import read_resume_meta, resume_path

        for name in ("init", "teacher", "linear_start", "fit_head"):
            if name in given:
                flag = "--" + name.replace("_", "-")
                raise BadInput(f"{flag} applies when a run starts; the resumed run keeps its own (drop {flag})")
        saved = read_resume_meta(resume_path(opts["resume"]))
        overrides: dict[str, Any] = {field: opts[opt] for opt, field in _CONFIG_OPTIONS.items() if opt in given}
        if given & set(_WEIGHT_OPTIONS):
            raise BadInput("loss weights belong to the run: drop --*-weight to continue it, or start a new run")
        overrides["data"] = opts["data"] or saved["config"]["data"]
        overrides["out"] = opts["out"] or str(resume_dir(opts["resume"]))
        from srx.train.loop import resumed_config

        return resumed_config(saved["config"], overrides)
    if opts["data"] is None:
        raise BadInput("--data DIR is required: give a folder of HR training images (or --resume OUT)")
    teacher = opts["teacher"]
    distill = opts["distill_weight"] if opts["distill_weight"] is not None else (1.0 if teacher else 0.0)
    weights = LossWeights(opts["pixel_weight"], opts["fft_weight"], distill, opts["feature_weight"])
    cfg = TrainConfig(
        data=opts["data"],
        out=opts["out"] or f"train-{opts['arch']}-x{opts['scale']}",
        weights=weights,
        init=opts["init"],
        teacher=teacher,
        linear_start=opts["linear_start"],
        fit_head=opts["fit_head"],
        **{field: opts[opt] for opt, field in _CONFIG_OPTIONS.items()},
    )
    cfg.check()
    return cfg


def resume_dir(given: str) -> str:
    from pathlib import Path

    p = Path(given)
    return str(p if p.is_dir() else p.parent)
