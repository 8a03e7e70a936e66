"""ONNX (onnxruntime CPU) against PyTorch, on natural-looking synthetic images.

Every export is verified before it is written (docs/export.md, "Verification"): at the
user's --input size, at 97x61 with a batch of 2 (not a multiple of 8: uneven pooling
windows, and the batch axis), and at a size at the model's minimum height, where the
coarsest pooling level is one pixel high. A static graph runs at its one size only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.sizes import Size
from srx.spec import ModelSpec
from srx.synthetic import natural_image

if TYPE_CHECKING:
    import onnx
    from torch import nn


@dataclass(frozen=True)
class VerifyCase:
    width: int
    height: int
    batch: int = 1
    seed: int = 0

    @property
    def input(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class VerifyResult:
    case: VerifyCase
    max_abs_diff: float  # nan when an output is not finite or the shapes differ
    max_abs_ref: float  # largest |PyTorch output|, to judge the difference

    def passed(self, tolerance: float) -> bool:
        return math.isfinite(self.max_abs_diff) and self.max_abs_diff <= tolerance

    def to_json(self) -> dict[str, Any]:
        diff = self.max_abs_diff if math.isfinite(self.max_abs_diff) else None
        return {"input": self.case.input, "batch": self.case.batch, "max_abs_diff": diff}


def verification_cases(spec: ModelSpec, input_size: Size, dynamic: bool) -> list[VerifyCase]:
    """The sizes an export is verified at (module docstring)."""
    first = VerifyCase(input_size.width, input_size.height, 1, seed=1)
    if not dynamic:
        return [first]
    m = spec.min_size
    candidates = [first, VerifyCase(97, 61, 2, seed=2), VerifyCase(2 * m + 3, m, 1, seed=3), VerifyCase(75, 43, 1, 4)]
    cases: list[VerifyCase] = []
    for c in candidates:  # three distinct cases; the last candidate stands in for a repeat
        if len(cases) < 3 and all((c.width, c.height, c.batch) != (d.width, d.height, d.batch) for d in cases):
            cases.append(c)
    return cases


def verify_onnx(
    onnx_model: onnx.ModelProto | bytes | str | Path, torch_model: nn.Module, cases: Sequence[VerifyCase]
) -> list[VerifyResult]:
    """Run both on the same natural-looking images; report max |ONNX - PyTorch| per case."""
    session = _ort_session(onnx_model)
    input_name = session.get_inputs()[0].name
    results = []
    for case in cases:
        x = natural_image(case.height, case.width, batch=case.batch, seed=case.seed)
        ref = pytorch_output(torch_model, x)
        got = session.run(None, {input_name: x})[0]
        results.append(_compare(case, got, ref))
    return results


def pytorch_output(torch_model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The reference an export is held to: the PyTorch model's output for the NCHW float32 batch `x`."""
    import torch

    with torch.inference_mode():
        return torch_model(torch.from_numpy(x)).numpy()


def _compare(case: VerifyCase, got: np.ndarray, ref: np.ndarray) -> VerifyResult:
    ref_max = float(np.max(np.abs(ref))) if ref.size else 0.0
    if got.shape != ref.shape or not np.all(np.isfinite(got)):
        return VerifyResult(case, math.nan, ref_max)
    return VerifyResult(case, float(np.max(np.abs(got.astype(np.float64) - ref))), ref_max)


def _ort_session(onnx_model: onnx.ModelProto | bytes | str | Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:
        from srx.errors import MissingDependency

        raise MissingDependency("onnxruntime", "cpu", "verifying the ONNX export") from e
    data: bytes | str
    if isinstance(onnx_model, bytes):
        data = onnx_model
    elif isinstance(onnx_model, (str, Path)):
        data = str(onnx_model)
    else:
        data = onnx_model.SerializeToString()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not actionable for users here
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
