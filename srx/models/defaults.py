"""The networks srx ships, and the names `--weights` accepts for them.

    default   the embedded default: a paper SAFMN trained by `srx train`, labelled
              "srx default (trained on T91+BSD200)", at x2, x3 and x4 (x2 / x3 from
              the x4 body); at a scale with none, the seeded untrained paper SAFMN
    seeded    the seeded, untrained paper SAFMN (any scale), for latency work
    team15    the NTIRE 2023 ESR SAFMN x4 (Apache-2.0; see weights/NOTICE)

`srx bench`, `srx export` and `srx eval --model default` use `default` (the paper
architecture, whose LayerNorm srx's kernels fuse); `srx upscale` without --weights uses
the shipped model of the scale with the best Set5 score (`best_model`) and says which.
Weights are read as any checkpoint is (safetensors, strict loading, finite values).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from srx.modelref import is_shipped
from srx.models import DEFAULT_SEED

WEIGHTS = Path(__file__).with_name("weights")
TRAINED_DEFAULT = "srx default (trained on T91+BSD200)"


@dataclass(frozen=True)
class Shipped:
    """A network in srx/models/weights, with its Set5 and Set14 Y-PSNR at its scale from
    `srx eval` (`evidence`, `set14_evidence`: the committed results; tests/test_defaults.py
    checks that they agree)."""

    name: str
    scale: int
    file: str
    label: str
    set5_psnr_y: float
    evidence: str
    set14_psnr_y: float
    set14_evidence: str

    @property
    def scores(self) -> str:
        return f"srx eval x{self.scale}: Set5 PSNR-Y {self.set5_psnr_y:.2f} dB, Set14 {self.set14_psnr_y:.2f} dB"


SHIPPED: tuple[Shipped, ...] = (
    Shipped(
        "default",
        2,
        "safmn_x2.safetensors",
        TRAINED_DEFAULT,
        37.3691,
        "bench/results/2026-12-06-cpu-train/default-x2.best.Set5.json",
        32.9546,
        "bench/results/2026-12-06-cpu-train/default-x2.best.Set14.json",
    ),
    Shipped(
        "default",
        3,
        "safmn_x3.safetensors",
        TRAINED_DEFAULT,
        33.6466,
        "bench/results/2026-12-06-cpu-train/default-x3.best.Set5.json",
        29.7993,
        "bench/results/2026-12-06-cpu-train/default-x3.best.Set14.json",
    ),
    Shipped(
        "default",
        4,
        "safmn_x4.safetensors",
        TRAINED_DEFAULT,
        31.3493,
        "bench/results/2026-12-06-cpu-train/default-x4-stage3b.best.Set5.json",
        28.0594,
        "bench/results/2026-12-06-cpu-train/default-x4-stage3b.best.Set14.json",
    ),
    Shipped(
        "team15",
        4,
        "team15_SAFMN_x4.safetensors",
        "team15 (NTIRE 2023 SAFMN, Apache-2.0)",
        32.1427,
        "bench/results/2026-11-21-cpu-eval/raw/Set5-x4-team15_SAFMN-matlab-uint8.json",
        28.6226,
        "bench/results/2026-11-21-cpu-eval/raw/Set14-x4-team15_SAFMN-matlab-uint8.json",
    ),
)


def shipped(name: str, scale: int) -> Shipped | None:
    return next((s for s in SHIPPED if s.name == name and s.scale == scale), None)


def seeded_model(scale: int = 4) -> nn.Module:
    """The seeded, untrained paper SAFMN (dim 36, 8 blocks): reproducible noise, for latency only."""
    from srx.models import build_model

    return build_model(
        "safmn", scale, seed=DEFAULT_SEED, trained=False, source=f"embedded default x{scale} (seed {DEFAULT_SEED})"
    )


def load_shipped(entry: Shipped) -> nn.Module:
    from srx.models import load_model

    model = load_model(WEIGHTS / entry.file)
    spec = model.spec  # type: ignore[union-attr]
    model.spec = dataclasses.replace(  # type: ignore[assignment]
        spec, source=f"shipped with srx: {entry.file}", extra={**spec.extra, "name": entry.label}
    )
    return model


def default_model(scale: int = 4) -> nn.Module:
    """The embedded default: the trained paper SAFMN where one ships for `scale`, else seeded."""
    entry = shipped("default", scale)
    return load_shipped(entry) if entry is not None else seeded_model(scale)


def best_model(scale: int = 4) -> nn.Module:
    """The shipped network with the best Set5 score at `scale` (upscale's default), else default_model."""
    candidates = [s for s in SHIPPED if s.scale == scale]
    if not candidates:
        return default_model(scale)
    return load_shipped(max(candidates, key=lambda s: s.set5_psnr_y))


def is_name(value: str | Path) -> bool:
    """Whether --weights names a shipped network rather than a file (srx.modelref decides)."""
    return is_shipped(value)


def named_model(name: str, scale: int | None) -> nn.Module:
    """`--weights default|seeded|team15`."""
    from srx.errors import BadInput

    s = scale or 4
    if name == "seeded":
        return seeded_model(s)
    if name == "default":
        return default_model(s)
    entry = shipped(name, s)
    if entry is None:
        have = sorted({f"x{e.scale}" for e in SHIPPED if e.name == name})
        raise BadInput(
            f"--weights {name} is shipped at {', '.join(have)} only, not x{s}: drop --scale or use --scale 4"
        )
    return load_shipped(entry)
