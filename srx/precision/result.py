"""QuantizeResult: what `srx quantize` wrote, rendered as its text and as `--json` (docs/cli.md#srx-quantize)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from srx.precision.int8 import Int8Report


@dataclass(eq=False)
class QuantizeResult:
    """The Q/DQ ONNX written and the calibration's report."""

    onnx: str
    report: Int8Report
    max_psnr_drop: float | None
    source_onnx: str

    def to_json(self) -> dict[str, Any]:
        return {"onnx": self.onnx, **self.report.to_dict(), "max_psnr_drop": self.max_psnr_drop,
                "source_onnx": self.source_onnx}  # fmt: skip

    def format(self) -> str:
        from srx.precision.int8 import format_report

        return format_report(self.to_json())
