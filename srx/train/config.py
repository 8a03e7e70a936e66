"""TrainConfig: everything that defines a training run, checked before any work starts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from srx.errors import BadInput
from srx.spec import ARCHS


@dataclass(frozen=True)
class LossWeights:
    pixel: float = 1.0
    fft: float = 0.0
    distill: float = 0.0
    feature: float = 0.0

    def check(self, has_teacher: bool) -> None:
        for name, w in (("--pixel-weight", self.pixel), ("--fft-weight", self.fft)):
            if w < 0:
                raise BadInput(f"{name} {w}: cannot be negative")
        for name, w in (("--distill-weight", self.distill), ("--feature-weight", self.feature)):
            if w < 0:
                raise BadInput(f"{name} {w}: cannot be negative")
            if w > 0 and not has_teacher:
                raise BadInput(f"{name} {w} needs a teacher: give --teacher CKPT or drop {name}")
        if self.pixel == 0 and self.fft == 0 and self.distill == 0 and self.feature == 0:
            raise BadInput("every loss weight is 0, so nothing would be learned: give a positive --pixel-weight")


# What makes two runs the same run: a resumed run must agree on all of these, or it would
# not continue the run it claims to (iters may grow: a longer cosine schedule, said so).
IDENTITY = (
    "arch",
    "scale",
    "dim",
    "n_blocks",
    "ffn_scale",
    "batch",
    "patch",
    "lr",
    "min_lr",
    "warmup",
    "seed",
    "weights",
    "channels_last",
    "bf16",
    "qat",
)


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "safmn"
    scale: int = 4
    dim: int | None = None
    n_blocks: int | None = None
    ffn_scale: float | None = None
    iters: int = 50_000
    batch: int = 16
    patch: int = 48  # LR side; the HR patch is scale times larger
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup: int = 0
    seed: int = 0
    weights: LossWeights = field(default_factory=LossWeights)
    init: str | None = None
    teacher: str | None = None
    val: str | None = None
    val_every: int = 1000
    save_every: int = 500
    log_every: int = 50
    until: int | None = None  # stop (resumably) after this iteration; the schedule still spans `iters`
    max_minutes: float | None = None  # stop (resumably) once this session has run this long
    device: str = "cpu"
    threads: int | None = None
    channels_last: bool = False
    bf16: bool = False  # autocast: convolutions in bfloat16 (AMX / tensor cores), weights and loss in float32
    linear_start: bool = False  # srx/train/start.py
    fit_head: bool = False  # least-squares to_img on the --init body (srx/train/start.py)
    qat: bool = False  # fake INT8 quantization as srx quantize does it (srx/train/qat.py)

    def check(self) -> None:
        if self.arch not in ARCHS:
            raise BadInput(f"--arch {self.arch}: choose one of {', '.join(ARCHS)}")
        if self.scale not in (2, 3, 4):
            raise BadInput(f"--scale {self.scale} is not supported: use 2, 3 or 4")
        positive = {
            "--iters": self.iters,
            "--batch": self.batch,
            "--patch": self.patch,
            "--val-every": self.val_every,
            "--save-every": self.save_every,
            "--log-every": self.log_every,
        }
        for name, v in positive.items():
            if v < 1:
                raise BadInput(f"{name} {v}: must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"--threads {self.threads}: must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise BadInput(f"--lr {self.lr}: must be a positive number (the paper uses 1e-3)")
        if not (math.isfinite(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise BadInput(f"--min-lr {self.min_lr}: must be between 0 and --lr {self.lr}")
        if not 0 <= self.warmup < self.iters:
            raise BadInput(f"--warmup {self.warmup}: must be 0 or more and below --iters {self.iters}")
        if self.until is not None and self.until < 1:
            raise BadInput(f"--until {self.until}: must be at least 1")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise BadInput(f"--max-minutes {self.max_minutes}: must be a positive number of minutes")
        if self.device not in ("cpu", "cuda"):
            raise BadInput(f"--device {self.device}: use cpu or cuda")
        self.weights.check(self.teacher is not None)
        if self.qat and self.bf16:
            raise BadInput("--qat simulates INT8 on float32 activations: drop --bf16")
        if self.linear_start and self.init is not None:
            raise BadInput("--linear-start and --init both set the starting weights: give one of them")
        if self.fit_head and self.init is None:
            raise BadInput(
                "--fit-head fits the head on --init's body: give --init CKPT (--linear-start fits it already)"
            )

    def lr_at(self, iteration: int) -> float:
        """Linear warm-up, then cosine from lr to min_lr at `iters` (iteration counts from 0)."""
        if iteration < self.warmup:
            return self.lr * (iteration + 1) / self.warmup
        t = (iteration - self.warmup) / max(1, self.iters - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["weights"] = dataclasses.asdict(self.weights)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["weights"] = LossWeights(**kwargs.get("weights", {}))
        return cls(**kwargs)
