"""Starting weights and teachers: what `--init` and `--teacher` bring into a training run.

`--init CKPT` copies every tensor whose name and shape match the student's; everything
else keeps its fresh initialisation. The NTIRE 2023 SAFMN (team15) shares the paper
model's convolution names and shapes (60 tensors: to_feat, every SAFM and CCM conv,
to_img), but not its LayerNorms, biases of the inner convs, pooling levels or skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srx.errors import BadInput


@dataclass
class InitReport:
    source: str
    sha256: str
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "copied": len(self.copied),
            "kept_fresh": self.kept,
        }


def read_state_dict(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint's tensors (read as untrusted: weights_only / safetensors) and its sha256."""
    from srx.fileio import sha256_file
    from srx.models.checkpoint import read_checkpoint
    from srx.models.defaults import is_name, named_model

    if is_name(path):  # a network srx ships: --init default (e.g. to fine-tune it with --qat)
        model = named_model(str(path), None)
        return dict(model.state_dict()), model.spec.source_sha256 or str(path)  # type: ignore[union-attr]
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{what} {p} does not exist: check the path")
    ckpt = read_checkpoint(p)
    return {k: v for k, v in ckpt.state_dict.items() if isinstance(v, torch.Tensor)}, sha256_file(p)


def copy_matching(student: nn.Module, path: str | Path) -> InitReport:
    """Copy every tensor of `path` whose name and shape match the student's (--init)."""
    sd, sha = read_state_dict(path, "--init")
    own = student.state_dict()
    report = InitReport(source=Path(path).name, sha256=sha)
    with torch.no_grad():
        for name, tensor in own.items():
            src = sd.get(name)
            if src is not None and tuple(src.shape) == tuple(tensor.shape) and src.is_floating_point():
                if not bool(torch.isfinite(src).all()):
                    raise BadInput(f"--init {path}: {name} holds NaN or infinite values: use an intact checkpoint")
                tensor.copy_(src.to(tensor.dtype))
                report.copied.append(name)
            else:
                report.kept.append(name)
    if not report.copied:
        raise BadInput(
            f"--init {path} has no tensor with a name and shape of this {student.spec.label} "  # type: ignore[union-attr]
            "(is it a SAFMN-family checkpoint of the same width?): drop --init or give a matching one"
        )
    return report


def load_teacher(path: str | Path, scale: int, device: torch.device) -> nn.Module:
    """A trained SAFMN-family network to distil from, frozen, in eval mode."""
    from srx.models import load_model
    from srx.models.defaults import is_name

    p = Path(path)
    if not p.exists() and not is_name(path):
        raise BadInput(f"--teacher {p} does not exist: check the path")
    teacher = load_model(path)  # a file, or a network srx ships (--teacher team15)
    t_scale = teacher.spec.scale  # type: ignore[union-attr]
    if not teacher.spec.trained:  # type: ignore[union-attr]
        raise BadInput(f"--teacher {path} is untrained: distil from a trained network")
    if t_scale != scale:
        raise BadInput(
            f"--teacher {p} is a x{t_scale} model and this run trains x{scale}: give a x{scale} teacher or --scale {t_scale}"
        )
    teacher.requires_grad_(False)
    return teacher.to(device).eval()
