"""The training loop of `srx train`: data -> student (+ teacher) -> loss -> Adam, with
periodic validation, checkpoints, and a clean stop on Ctrl-C.

Determinism: the batch of iteration k depends only on (seed, k) (srx/train/data.py), the
learning rate only on k, and the resume file holds the exact weights and Adam moments.
So on the CPU a run stopped at iteration k and resumed computes what it would have
computed without stopping (tests/test_train.py checks the final weights bit for bit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from srx import __version__
from srx.errors import BadInput, CheckFailed, SrxError
from srx.interrupt import Interrupted
from srx.train import checkpoint as ck
from srx.train import qat
from srx.train.config import IDENTITY, TrainConfig
from srx.train.data import PatchSampler, list_training_images
from srx.train.losses import BlockOutputs, check_feature_compatible, total_loss
from srx.train.transfer import InitReport, copy_matching, load_teacher


class TrainingStopped(SrxError):
    """Ctrl-C or SIGTERM: a resumable checkpoint was written; exit 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclass
class TrainResult:
    out: Path
    iteration: int
    iters: int
    meta: dict[str, Any]
    val: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.iteration >= self.iters


# -- stopping on a signal at an iteration boundary -----------------------------------------


class StopRequest:
    """SIGINT / SIGTERM recorded, not raised, while training: the iteration in flight
    finishes (an optimizer step cut in half would leave weights no run ever had), then the
    loop saves and stops. A second signal stops at once; the last periodic checkpoint stays."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _record(self, signum: int, _frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self._record)
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class _ValidationAbandoned(Exception):
    pass


# -- building the run ----------------------------------------------------------------------


def build_student(cfg: TrainConfig) -> nn.Module:
    """A fresh network: PyTorch's default initialisation drawn from `seed` (not the global RNG)."""
    from srx.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.arch, cfg.scale, cfg.dim, cfg.n_blocks, cfg.ffn_scale, seed=None, trained=True)
    return model


def data_fingerprint(folder: str) -> str:
    """sha256 of the image list (relative names and sizes): a resumed run must see the same data."""
    import hashlib

    root = Path(folder)
    h = hashlib.sha256()
    for p in list_training_images(root):
        h.update(f"{p.relative_to(root)}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def versions() -> dict[str, str]:
    return {
        "srx": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def resumed_config(saved: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The saved run's config with the options given on this command line; identity options
    (what the run is) must agree with the saved ones."""
    cfg = TrainConfig.from_dict(saved)
    cfg.until = cfg.max_minutes = None  # a stage's stop belongs to the session that gave it
    for key, value in overrides.items():
        old = getattr(cfg, key)
        if key in IDENTITY and value != old:
            raise BadInput(
                f"--{key.replace('_', '-')} {value} differs from the resumed run's {old}: drop it to continue "
                "that run, or start a new one with another -o"
            )
        setattr(cfg, key, value)
    return cfg


# -- the loop ------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None = None,
    progress: bool = False,
    command: str = "",
    warn: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train (or continue) a run; see the module docstring. Raises TrainingStopped on a signal."""
    threads = torch.get_num_threads()  # --threads is process-wide: given back afterwards
    try:
        return _train(cfg, resume=resume, progress=progress, command=command, warn=warn)
    finally:
        torch.set_num_threads(threads)


def _train(
    cfg: TrainConfig,
    *,
    resume: str | Path | None,
    progress: bool,
    command: str,
    warn: Callable[[str], None] | None,
) -> TrainResult:
    from tqdm import tqdm

    # --max-minutes is a session's budget, so reading data and teacher targets count too.
    started = time.perf_counter()
    cfg.check()
    out = Path(cfg.out)
    saved_meta: dict[str, Any] | None = None
    if resume is None and (out / ck.RESUME_FILE).exists():
        raise BadInput(f"-o {out} already holds a training run: continue it with --resume {out}, or choose another -o")
    if out.exists() and not out.is_dir():
        raise BadInput(f"-o {out} is a file: give a folder for the run's checkpoints")
    fingerprint = data_fingerprint(cfg.data)
    if resume is not None:
        saved_meta, model_sd, optim_sd = ck.read_resume(ck.resume_path(resume))
        if saved_meta["data"].get("fingerprint") != fingerprint and warn is not None:
            warn(f"--data {cfg.data} is not the image set the run started with (names or sizes differ)")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    device = torch.device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)

    teacher = load_teacher(cfg.teacher, cfg.scale, device) if cfg.teacher else None
    student = build_student(cfg)
    student.spec.check_input_size(cfg.patch, cfg.patch)  # type: ignore[union-attr]
    if cfg.val is not None:  # now, not after the first --val-every iterations
        from srx.evaluate import check_dataset

        check_dataset(cfg.val, cfg.scale, student.spec.min_size)  # type: ignore[union-attr]
    if teacher is not None and cfg.weights.feature:
        check_feature_compatible(student, teacher)
    init_report: InitReport | None = None
    if saved_meta is None and cfg.init is not None:
        init_report = copy_matching(student, cfg.init)
    student.to(device).train()
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    student.to(memory_format=memory_format)
    if teacher is not None:
        teacher.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.99))

    start, wall, history, sessions = 0, 0.0, [], []
    if saved_meta is not None:
        from srx.models import _load_strict

        _load_strict(student, model_sd, f"--resume {resume}")
        ck.restore_optimizer(optimizer, saved_meta, optim_sd)
        start = int(saved_meta["iteration"])
        wall = float(saved_meta.get("wall_seconds", 0.0))
        history = list(saved_meta.get("scores", {}).get("val", []))
        sessions = list(saved_meta.get("sessions", []))
    end = cfg.iters if cfg.until is None else min(cfg.iters, cfg.until)
    if start >= end:
        raise BadInput(
            f"the run in {resume} is already at iteration {start} of --iters {cfg.iters}"
            + (f" (--until {cfg.until})" if cfg.until is not None else "")
            + ": give a larger --iters (a longer schedule) or --until to train further"
        )

    files = list_training_images(cfg.data)
    reading = tqdm(
        total=len(files), desc="reading data", unit="img", file=sys.stderr, disable=not progress, leave=False
    )
    sampler = PatchSampler(cfg.data, scale=cfg.scale, patch=cfg.patch, seed=cfg.seed, progress=reading)
    reading.close()
    online_teacher = teacher is not None and cfg.weights.feature > 0
    if teacher is not None and not online_teacher:
        sampler.set_targets(_teacher_targets(teacher, sampler, device, progress))
    start_fit = None
    if saved_meta is None and (cfg.linear_start or cfg.fit_head):
        from srx.train.start import fit_head, linear_start

        student.to("cpu")
        start_fit = linear_start(student, sampler) if cfg.linear_start else fit_head(student, sampler)
        student.to(device)
    qat_ranges = None
    if cfg.qat:
        if saved_meta is not None and saved_meta.get("qat"):
            qat_ranges = saved_meta["qat"]["ranges"]  # as the run started: resuming changes nothing
        else:
            calib = torch.from_numpy(sampler.batch(0, qat.CALIBRATION_PATCHES, stream=2)[0]).to(device)
            qat_ranges = qat.calibrate(student, calib.contiguous(memory_format=memory_format), cfg.seed)
        qat.attach(student, qat_ranges)
    if sampler.summary.skipped_small and warn is not None:
        n = len(sampler.summary.skipped_small)
        warn(f"{n} of {len(files)} images are smaller than a {cfg.patch * cfg.scale}-pixel HR patch and are not used")
    out.mkdir(parents=True, exist_ok=True)

    student_blocks = BlockOutputs(student) if online_teacher else None
    teacher_blocks = BlockOutputs(teacher) if online_teacher else None
    session = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "start_iteration": start,
        "command": command,
        "threads": torch.get_num_threads(),
        "device": cfg.device,
        **ck.source_commit(),
        "versions": versions(),
    }
    base_meta = {
        "format": ck.RESUME_FORMAT,
        "config": cfg.to_dict(),
        "model": {
            k: v
            for k, v in student.spec.to_dict().items()
            if k in ("arch", "scale", "dim", "n_blocks", "ffn_scale", "params")
        },  # type: ignore[union-attr]
        "data": {**sampler.summary.to_dict(), "fingerprint": fingerprint},
        "init": saved_meta["init"] if saved_meta else (init_report.to_dict() if init_report else None),
        "linear_start": saved_meta.get("linear_start") if saved_meta else start_fit,
        "qat": qat.describe(qat_ranges) if qat_ranges is not None else None,
        "teacher_targets": "online (per batch, with block features)"
        if online_teacher
        else ("offline (whole LR images, once per session)" if teacher is not None else None),
        "teacher": saved_meta["teacher"]
        if saved_meta
        else (
            {"source": Path(cfg.teacher).name, "sha256": teacher.spec.source_sha256, "label": teacher.spec.label}  # type: ignore[union-attr]
            if teacher is not None
            else None
        ),
    }
    log = _Log(out / ck.LOG_FILE)
    log.line(
        f"session start at iteration {start}: {command or '(library call)'}; threads {session['threads']}; "
        f"commit {session['commit']}{' (modified)' if session['dirty'] else ''}; {session['versions']}"
    )

    state = {"iteration": start, "wall": wall, "last_terms": {}}
    session_start = time.perf_counter()

    def meta_now() -> dict[str, Any]:
        it = state["iteration"]
        best = max(history, key=lambda r: r["psnr_y"]) if history else None
        return {
            **base_meta,
            "iteration": it,
            "iters": cfg.iters,
            "finished": it >= cfg.iters,
            "wall_seconds": round(state["wall"] + time.perf_counter() - session_start, 1),
            "sessions": [*sessions, {**session, "end_iteration": it}],
            "scores": {"val": history, "best": best},
            "loss": state["last_terms"],
        }

    def save(with_resume: bool = True) -> None:
        meta = meta_now()
        if with_resume:
            ck.save_resume(out, student, optimizer, meta)
        ck.save_model(out, student, meta)

    def autocast() -> Any:
        # bfloat16 keeps float32's range, so no loss scaling is needed (unlike float16).
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    stop = StopRequest()
    bar = tqdm(
        total=end, initial=start, desc="train", unit="it", file=sys.stderr, disable=not progress, dynamic_ncols=True
    )
    postfix: dict[str, str] = {}
    window, last_logged = time.perf_counter(), start
    try:
        with stop.installed():
            for it in range(start, end):
                lr_now = cfg.lr_at(it)
                for g in optimizer.param_groups:
                    g["lr"] = lr_now
                lr_np, hr_np, target_np = sampler.batch(it, cfg.batch)
                lr_t = torch.from_numpy(lr_np).to(device).contiguous(memory_format=memory_format)
                hr_t = torch.from_numpy(hr_np).to(device).contiguous(memory_format=memory_format)
                teacher_sr, teacher_feats = None, []
                if target_np is not None:
                    teacher_sr = torch.from_numpy(target_np).to(device).contiguous(memory_format=memory_format)
                elif online_teacher:
                    with torch.no_grad(), autocast():
                        teacher_sr = teacher(lr_t).float()  # type: ignore[misc]
                    teacher_feats = [f.float() for f in teacher_blocks.take()]  # type: ignore[union-attr]
                with autocast():
                    sr = student(lr_t)
                sr = sr.float()
                student_feats = [f.float() for f in student_blocks.take()] if student_blocks else []
                loss, terms = total_loss(cfg.weights, sr, hr_t, teacher_sr, student_feats, teacher_feats)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise CheckFailed(
                        f"training diverged at iteration {it + 1} (loss {loss_value}): lower --lr; the last "
                        f"checkpoint in {out} is from before (resume it with --resume {out}, or start again)"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                state["iteration"] = it + 1
                state["last_terms"] = {"total": loss_value, **terms}
                bar.update(1)
                done = it + 1
                if done % cfg.log_every == 0 or done == end:
                    now = time.perf_counter()
                    per_it = (now - window) / (done - last_logged)
                    window, last_logged = now, done
                    parts = " ".join(f"{k} {v:.5f}" for k, v in state["last_terms"].items())
                    log.line(
                        f"iter {done}/{cfg.iters} {parts} lr {lr_now:.3e} {per_it:.3f} s/it "
                        f"eta {_duration(per_it * (end - done))}"
                    )
                    postfix["loss"] = f"{loss_value:.4f}"
                    bar.set_postfix(postfix, refresh=False)
                if stop.signum is None and cfg.val is not None and (done % cfg.val_every == 0 or done == end):
                    score = _validate(student, cfg, device, stop)
                    if score is not None:
                        improved = not history or score["psnr_y"] > max(r["psnr_y"] for r in history)
                        history.append({"iteration": done, **score})
                        log.line(
                            f"val {Path(cfg.val).name} iter {done}: PSNR-Y {score['psnr_y']:.3f} dB SSIM-Y "
                            f"{score['ssim_y']:.4f}{' (best)' if improved else ''}"
                        )
                        postfix["val"] = f"{score['psnr_y']:.2f}dB"
                        bar.set_postfix(postfix, refresh=False)
                        if improved:
                            ck.save_model(out, student, meta_now(), best=True)
                if stop.signum is not None:
                    break
                if cfg.max_minutes is not None and done < end and time.perf_counter() - started >= 60 * cfg.max_minutes:
                    log.line(
                        f"--max-minutes {cfg.max_minutes:g} reached at iteration {done}; resumable checkpoint written"
                    )
                    break  # the save() after the loop writes the resume state, as --until's end does
                if done % cfg.save_every == 0:
                    save()
            save()
    finally:
        bar.close()
        for rec in (student_blocks, teacher_blocks):
            if rec is not None:
                rec.close()
    meta = meta_now()
    if stop.signum is not None:
        name = signal.Signals(stop.signum).name
        log.line(f"stopped by {name} at iteration {state['iteration']}; resumable checkpoint written")
        raise TrainingStopped(
            f"interrupted by {name} at iteration {state['iteration']} of {cfg.iters}; saved a resumable checkpoint "
            f"in {out}: continue with srx train --resume {out}",
            stop.signum,
        )
    log.line(f"session end at iteration {state['iteration']} ({meta['wall_seconds']:.0f} s of training in all)")
    return TrainResult(out, state["iteration"], cfg.iters, meta, history)


def _teacher_targets(
    teacher: nn.Module, sampler: PatchSampler, device: torch.device, progress: bool
) -> list[np.ndarray]:
    """The teacher's SR of every whole training LR image, float16: offline distillation.

    Computed once per session instead of per batch (a third of an iteration's cost), and
    on whole images, as the teacher is used at test time (team15's GRN normalises over
    the whole image; a patch would change its statistics). Patches of it get the HR's
    flips and rotations; the teacher is nearly, not exactly, equivariant to them.
    """
    from tqdm import tqdm

    out = []
    for lr in tqdm(sampler.lr, desc="teacher targets", unit="img", file=sys.stderr, disable=not progress, leave=False):
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div_(255.0)[None].to(device)
        with torch.no_grad():
            y = teacher(x).clamp_(0.0, 1.0)
        out.append(y[0].permute(1, 2, 0).cpu().numpy().astype(np.float16))
    return out


def _validate(model: nn.Module, cfg: TrainConfig, device: torch.device, stop: StopRequest) -> dict[str, float] | None:
    """`srx eval`'s protocol on --val (PSNR/SSIM on Y); None if a stop was requested meanwhile."""
    from srx.evaluate import ResolvedModel, evaluate_model

    def up(lr: np.ndarray) -> np.ndarray:
        if stop.signum is not None:
            raise _ValidationAbandoned
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div_(255.0)[None].to(device)
        with torch.inference_mode():
            y = model(x)
        return y[0].permute(1, 2, 0).float().cpu().numpy()

    model.eval()
    try:
        result = evaluate_model(cfg.val, ResolvedModel("training", cfg.scale, up, model.spec))  # type: ignore[arg-type]
    except _ValidationAbandoned:
        return None
    finally:
        model.train()
    return {"psnr_y": round(result.psnr_y, 4), "ssim_y": round(result.ssim_y, 5)}


class _Log:
    """train.log in the run folder: appended, flushed per line (the file a background run is watched by)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def line(self, text: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {text}\n")
        except OSError as e:
            raise BadInput(f"cannot write {self.path} ({e.strerror or e}): free some space or choose another -o") from e


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
