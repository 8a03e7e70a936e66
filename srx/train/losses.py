"""Training losses: L1 to the HR, the paper's FFT loss, and distillation from a teacher.

The total is a weighted sum; a weight of 0 skips its term (and its cost):

    pixel   * L1(sr, hr)
  + fft     * L1(rfft2(sr), rfft2(hr))               real and imaginary parts, as SAFMN's FFTLoss
  + distill * L1(sr, teacher(lr))                    the teacher's output as a second target
  + feature * mean_i L1(block_i(student), block_i(teacher))   per-block features

Feature distillation needs a teacher with the student's width and depth (team15 has both:
dim 36, 8 blocks); it compares the output of each feature block, where both networks
hold a (N, dim, h, w) map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srx.errors import BadInput
from srx.train.config import LossWeights


def fft_l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    a, b = torch.fft.rfft2(sr), torch.fft.rfft2(hr)
    return F.l1_loss(torch.view_as_real(a), torch.view_as_real(b))


class BlockOutputs:
    """Records the output of each `feats[i]` block of a network during its forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.outputs: list[torch.Tensor] = []
        blocks = getattr(model, "feats", None)
        if not isinstance(blocks, nn.Sequential):
            raise BadInput(f"{type(model).__name__} has no feature blocks (feats) to distil")
        self._hooks = [b.register_forward_hook(self._record) for b in blocks]

    def _record(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self.outputs.append(output)

    def take(self) -> list[torch.Tensor]:
        out, self.outputs = self.outputs, []
        return out

    def close(self) -> None:
        for h in self._hooks:
            h.remove()


def check_feature_compatible(student: nn.Module, teacher: nn.Module) -> None:
    s, t = student.spec, teacher.spec  # type: ignore[union-attr]
    if (s.dim, s.n_blocks) != (t.dim, t.n_blocks):
        raise BadInput(
            f"--feature-weight compares the blocks of student and teacher, but the teacher has dim {t.dim} and "
            f"{t.n_blocks} blocks and the student dim {s.dim} and {s.n_blocks}: use a teacher of the same width "
            "and depth, or only --distill-weight"
        )


def total_loss(
    w: LossWeights,
    sr: torch.Tensor,
    hr: torch.Tensor,
    teacher_sr: torch.Tensor | None,
    student_feats: list[torch.Tensor],
    teacher_feats: list[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss and its terms (unweighted, as floats, for the log)."""
    terms: dict[str, torch.Tensor] = {}
    if w.pixel:
        terms["pixel"] = F.l1_loss(sr, hr)
    if w.fft:
        terms["fft"] = fft_l1(sr, hr)
    if w.distill and teacher_sr is not None:
        terms["distill"] = F.l1_loss(sr, teacher_sr)
    if w.feature and teacher_feats:
        terms["feature"] = torch.stack(
            [F.l1_loss(a, b) for a, b in zip(student_feats, teacher_feats, strict=True)]
        ).mean()
    weights = {"pixel": w.pixel, "fft": w.fft, "distill": w.distill, "feature": w.feature}
    loss = sum(weights[k] * v for k, v in terms.items())
    return loss, {k: float(v.detach()) for k, v in terms.items()}  # type: ignore[return-value]
