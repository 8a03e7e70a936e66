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
    # --max-minutes is a session's budget, so reading data and teacher targets count too.
    started = time.perf_counter()
    saved, fingerprint = _check_run(cfg, resume, warn)
    device = torch.device(cfg.device)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    models = _build_models(cfg, device, saved)
    past = _restore(models, saved, resume)
    end = _end_iteration(cfg, past.start, resume)
    sampler, n_files = _read_data(cfg, models, device, progress)
    start_fit, qat_ranges = _starting_point(cfg, models, sampler, device, saved)
    if sampler.summary.skipped_small and warn is not None:
        n = len(sampler.summary.skipped_small)
        warn(f"{n} of {n_files} images are smaller than a {cfg.patch * cfg.scale}-pixel HR patch and are not used")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    base_meta = _base_meta(cfg, models, sampler, fingerprint, saved, start_fit, qat_ranges)
    return _Session(cfg, device, models, sampler, base_meta, past, end, command, started).run(progress)


# -- the stages before the loop ------------------------------------------------------------


@dataclass
class _Saved:
    """What --resume read (all None for a new run)."""

    meta: dict[str, Any] | None = None
    model_sd: Any = None
    optim_sd: Any = None


@dataclass
class _Models:
    student: nn.Module
    teacher: nn.Module | None
    optimizer: torch.optim.Optimizer
    memory_format: torch.memory_format
    init_report: InitReport | None
    online_teacher: bool  # teacher outputs per batch, with block features (feature loss), not offline targets


@dataclass
class _Past:
    """Where a resumed run stands (zero for a new run)."""

    start: int = 0
    wall: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)


def _check_run(cfg: TrainConfig, resume: str | Path | None, warn: Callable[[str], None] | None) -> tuple[_Saved, str]:
    """The options, the output folder and the resume file, before anything is built; and the data's fingerprint."""
    cfg.check()
    out = Path(cfg.out)
    if resume is None and (out / ck.RESUME_FILE).exists():
        raise BadInput(f"-o {out} already holds a training run: continue it with --resume {out}, or choose another -o")
    if out.exists() and not out.is_dir():
        raise BadInput(f"-o {out} is a file: give a folder for the run's checkpoints")
    fingerprint = data_fingerprint(cfg.data)
    saved = _Saved()
    if resume is not None:
        saved = _Saved(*ck.read_resume(ck.resume_path(resume)))
        if saved.meta["data"].get("fingerprint") != fingerprint and warn is not None:  # type: ignore[index]
            warn(f"--data {cfg.data} is not the image set the run started with (names or sizes differ)")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu")
    return saved, fingerprint


def _build_models(cfg: TrainConfig, device: torch.device, saved: _Saved) -> _Models:
    """Teacher and student on the device, checked against each other and --val; the optimizer."""
    teacher = load_teacher(cfg.teacher, cfg.scale, device) if cfg.teacher else None
    student = build_student(cfg)
    student.spec.check_input_size(cfg.patch, cfg.patch)  # type: ignore[union-attr]
    if cfg.val is not None:  # now, not after the first --val-every iterations
        from srx.evaluate import check_dataset

        check_dataset(cfg.val, cfg.scale, student.spec.min_size)  # type: ignore[union-attr]
    if teacher is not None and cfg.weights.feature:
        check_feature_compatible(student, teacher)
    init_report: InitReport | None = None
    if saved.meta is None and cfg.init is not None:
        init_report = copy_matching(student, cfg.init)
    student.to(device).train()
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    student.to(memory_format=memory_format)
    if teacher is not None:
        teacher.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    online = teacher is not None and cfg.weights.feature > 0
    return _Models(student, teacher, optimizer, memory_format, init_report, online)


def _restore(models: _Models, saved: _Saved, resume: str | Path | None) -> _Past:
    """The resumed run's weights and Adam moments into the models; where it stands."""
    if saved.meta is None:
        return _Past()
    from srx.models import _load_strict

    _load_strict(models.student, saved.model_sd, f"--resume {resume}")
    ck.restore_optimizer(models.optimizer, saved.meta, saved.optim_sd)
    return _Past(
        int(saved.meta["iteration"]),
        float(saved.meta.get("wall_seconds", 0.0)),
        list(saved.meta.get("scores", {}).get("val", [])),
        list(saved.meta.get("sessions", [])),
    )


def _end_iteration(cfg: TrainConfig, start: int, resume: str | Path | None) -> int:
    """The iteration this session stops at (--iters, or --until); BadInput if the run is there already."""
    end = cfg.iters if cfg.until is None else min(cfg.iters, cfg.until)
    if start >= end:
        raise BadInput(
            f"the run in {resume} is already at iteration {start} of --iters {cfg.iters}"
            + (f" (--until {cfg.until})" if cfg.until is not None else "")
            + ": give a larger --iters (a longer schedule) or --until to train further"
        )
    return end


def _read_data(cfg: TrainConfig, models: _Models, device: torch.device, progress: bool) -> tuple[PatchSampler, int]:
    """The training images in memory, with the teacher's offline targets where it has them; and how many files."""
    from tqdm import tqdm

    files = list_training_images(cfg.data)
    reading = tqdm(
        total=len(files), desc="reading data", unit="img", file=sys.stderr, disable=not progress, leave=False
    )
    sampler = PatchSampler(cfg.data, scale=cfg.scale, patch=cfg.patch, seed=cfg.seed, progress=reading)
    reading.close()
    if models.teacher is not None and not models.online_teacher:
        sampler.set_targets(_teacher_targets(models.teacher, sampler, device, progress))
    return sampler, len(files)


def _starting_point(
    cfg: TrainConfig, models: _Models, sampler: PatchSampler, device: torch.device, saved: _Saved
) -> tuple[Any, Any]:
    """A new run's --linear-start / --fit-head fit, and the QAT ranges (calibrated, or as the run started)."""
    student = models.student
    start_fit = None
    if saved.meta is None and (cfg.linear_start or cfg.fit_head):
        from srx.train.start import fit_head, linear_start

        student.to("cpu")
        start_fit = linear_start(student, sampler) if cfg.linear_start else fit_head(student, sampler)
        student.to(device)
    qat_ranges = None
    if cfg.qat:
        if saved.meta is not None and saved.meta.get("qat"):
            qat_ranges = saved.meta["qat"]["ranges"]  # as the run started: resuming changes nothing
        else:
            calib = torch.from_numpy(sampler.batch(0, qat.CALIBRATION_PATCHES, stream=2)[0]).to(device)
            qat_ranges = qat.calibrate(student, calib.contiguous(memory_format=models.memory_format), cfg.seed)
        qat.attach(student, qat_ranges)
    return start_fit, qat_ranges


def _base_meta(
    cfg: TrainConfig,
    models: _Models,
    sampler: PatchSampler,
    fingerprint: str,
    saved: _Saved,
    start_fit: Any,
    qat_ranges: Any,
) -> dict[str, Any]:
    """What every checkpoint of the run records that does not change while it trains."""
    meta, teacher = saved.meta, models.teacher
    spec = models.student.spec.to_dict()  # type: ignore[union-attr]
    targets = (
        None
        if teacher is None
        else "online (per batch, with block features)"
        if models.online_teacher
        else "offline (whole LR images, once per session)"
    )
    return {
        "format": ck.RESUME_FORMAT,
        "config": cfg.to_dict(),
        "model": {k: v for k, v in spec.items() if k in ("arch", "scale", "dim", "n_blocks", "ffn_scale", "params")},
        "data": {**sampler.summary.to_dict(), "fingerprint": fingerprint},
        "init": meta["init"] if meta else (models.init_report.to_dict() if models.init_report else None),
        "linear_start": meta.get("linear_start") if meta else start_fit,
        "qat": qat.describe(qat_ranges) if qat_ranges is not None else None,
        "teacher_targets": targets,
        "teacher": meta["teacher"]
        if meta
        else (
            {"source": Path(cfg.teacher).name, "sha256": teacher.spec.source_sha256, "label": teacher.spec.label}  # type: ignore[union-attr]
            if teacher is not None
            else None
        ),
    }


# -- the loop ------------------------------------------------------------------------------


class _Session:
    """One session of a run: the iterations from where the run stands to `end`, the log, the
    checkpoints (periodic, best on --val, and at the end), and the stop on a signal."""

    def __init__(
        self,
        cfg: TrainConfig,
        device: torch.device,
        models: _Models,
        sampler: PatchSampler,
        base_meta: dict[str, Any],
        past: _Past,
        end: int,
        command: str,
        started: float,
    ) -> None:
        self.cfg, self.device, self.models, self.sampler = cfg, device, models, sampler
        self.out, self.end, self.started, self.base_meta, self.past = Path(cfg.out), end, started, base_meta, past
        self.history = past.history
        online = models.online_teacher
        self.student_blocks = BlockOutputs(models.student) if online else None
        self.teacher_blocks = BlockOutputs(models.teacher) if online else None  # type: ignore[arg-type]
        self.session = {
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "start_iteration": past.start,
            "command": command,
            "threads": torch.get_num_threads(),
            "device": cfg.device,
            **ck.source_commit(),
            "versions": versions(),
        }
        self.log = _Log(self.out / ck.LOG_FILE)
        s = self.session
        self.log.line(
            f"session start at iteration {past.start}: {command or '(library call)'}; threads {s['threads']}; "
            f"commit {s['commit']}{' (modified)' if s['dirty'] else ''}; {s['versions']}"
        )
        self.iteration, self.last_terms = past.start, {}
        self.session_start = time.perf_counter()
        self.stop = StopRequest()
        self.postfix: dict[str, str] = {}
        self.window, self.last_logged = self.session_start, past.start  # the s/it of the log lines

    def meta_now(self) -> dict[str, Any]:
        it, history = self.iteration, self.history
        best = max(history, key=lambda r: r["psnr_y"]) if history else None
        return {
            **self.base_meta,
            "iteration": it,
            "iters": self.cfg.iters,
            "finished": it >= self.cfg.iters,
            "wall_seconds": round(self.past.wall + time.perf_counter() - self.session_start, 1),
            "sessions": [*self.past.sessions, {**self.session, "end_iteration": it}],
            "scores": {"val": history, "best": best},
            "loss": self.last_terms,
        }

    def save(self, with_resume: bool = True) -> None:
        meta = self.meta_now()
        if with_resume:
            ck.save_resume(self.out, self.models.student, self.models.optimizer, meta)
        ck.save_model(self.out, self.models.student, meta)

    def run(self, progress: bool) -> TrainResult:
        from tqdm import tqdm

        cfg, start, end = self.cfg, self.past.start, self.end
        bar = tqdm(
            total=end, initial=start, desc="train", unit="it", file=sys.stderr, disable=not progress, dynamic_ncols=True
        )
        self.window, self.last_logged = time.perf_counter(), start
        try:
            with self.stop.installed():
                for it in range(start, end):
                    lr_now = self._step(it)
                    bar.update(1)
                    done = it + 1
                    if done % cfg.log_every == 0 or done == end:
                        self._log_iteration(done, lr_now, bar)
                    if self.stop.signum is None and cfg.val is not None and (done % cfg.val_every == 0 or done == end):
                        self._score_on_val(done, bar)
                    if self.stop.signum is not None or self._out_of_time(done):
                        break  # the save() after the loop writes the resume state, as --until's end does
                    if done % cfg.save_every == 0:
                        self.save()
                self.save()
        finally:
            bar.close()
            for rec in (self.student_blocks, self.teacher_blocks):
                if rec is not None:
                    rec.close()
        return self._finish()

    def _autocast(self) -> Any:
        # bfloat16 keeps float32's range, so no loss scaling is needed (unlike float16).
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _step(self, it: int) -> float:
        """One optimizer step on batch `it`; returns its learning rate."""
        cfg, models, fmt = self.cfg, self.models, self.models.memory_format
        lr_now = cfg.lr_at(it)
        for g in models.optimizer.param_groups:
            g["lr"] = lr_now
        lr_np, hr_np, target_np = self.sampler.batch(it, cfg.batch)
        lr_t = torch.from_numpy(lr_np).to(self.device).contiguous(memory_format=fmt)
        hr_t = torch.from_numpy(hr_np).to(self.device).contiguous(memory_format=fmt)
        teacher_sr, teacher_feats = None, []
        if target_np is not None:
            teacher_sr = torch.from_numpy(target_np).to(self.device).contiguous(memory_format=fmt)
        elif models.online_teacher:
            with torch.no_grad(), self._autocast():
                teacher_sr = models.teacher(lr_t).float()  # type: ignore[misc]
            teacher_feats = [f.float() for f in self.teacher_blocks.take()]  # type: ignore[union-attr]
        with self._autocast():
            sr = models.student(lr_t)
        sr = sr.float()
        student_feats = [f.float() for f in self.student_blocks.take()] if self.student_blocks else []
        loss, terms = total_loss(cfg.weights, sr, hr_t, teacher_sr, student_feats, teacher_feats)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise CheckFailed(
                f"training diverged at iteration {it + 1} (loss {loss_value}): lower --lr; the last "
                f"checkpoint in {self.out} is from before (resume it with --resume {self.out}, or start again)"
            )
        models.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        models.optimizer.step()
        self.iteration = it + 1
        self.last_terms = {"total": loss_value, **terms}
        return lr_now

    def _log_iteration(self, done: int, lr_now: float, bar: Any) -> None:
        now = time.perf_counter()
        per_it = (now - self.window) / (done - self.last_logged)
        self.window, self.last_logged = now, done
        parts = " ".join(f"{k} {v:.5f}" for k, v in self.last_terms.items())
        self.log.line(
            f"iter {done}/{self.cfg.iters} {parts} lr {lr_now:.3e} {per_it:.3f} s/it "
            f"eta {_duration(per_it * (self.end - done))}"
        )
        self.postfix["loss"] = f"{self.last_terms['total']:.4f}"
        bar.set_postfix(self.postfix, refresh=False)

    def _score_on_val(self, done: int, bar: Any) -> None:
        """Score on --val; the best model so far is written as such."""
        score = _validate(self.models.student, self.cfg, self.device, self.stop)
        if score is None:
            return
        history = self.history
        improved = not history or score["psnr_y"] > max(r["psnr_y"] for r in history)
        history.append({"iteration": done, **score})
        self.log.line(
            f"val {Path(self.cfg.val).name} iter {done}: PSNR-Y {score['psnr_y']:.3f} dB SSIM-Y "  # type: ignore[arg-type]
            f"{score['ssim_y']:.4f}{' (best)' if improved else ''}"
        )
        self.postfix["val"] = f"{score['psnr_y']:.2f}dB"
        bar.set_postfix(self.postfix, refresh=False)
        if improved:
            ck.save_model(self.out, self.models.student, self.meta_now(), best=True)

    def _out_of_time(self, done: int) -> bool:
        minutes = self.cfg.max_minutes
        if minutes is None or done >= self.end or time.perf_counter() - self.started < 60 * minutes:
            return False
        self.log.line(f"--max-minutes {minutes:g} reached at iteration {done}; resumable checkpoint written")
        return True

    def _finish(self) -> TrainResult:
        """The session's last log line, or TrainingStopped after a signal."""
        meta = self.meta_now()
        if self.stop.signum is not None:
            name = signal.Signals(self.stop.signum).name
            self.log.line(f"stopped by {name} at iteration {self.iteration}; resumable checkpoint written")
            raise TrainingStopped(
                f"interrupted by {name} at iteration {self.iteration} of {self.cfg.iters}; saved a resumable "
                f"checkpoint in {self.out}: continue with srx train --resume {self.out}",
                self.stop.signum,
            )
        self.log.line(f"session end at iteration {self.iteration} ({meta['wall_seconds']:.0f} s of training in all)")
        return TrainResult(self.out, self.iteration, self.cfg.iters, meta, self.history)


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
