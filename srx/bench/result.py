"""BenchResult: what `srx bench` measured, rendered as the table and as `--json` (docs/cli.md#srx-bench).

The rows stay the records srx.bench.measure writes (one dict per backend, with keys that
differ by status and backend); the record around them is typed here. `to_json` writes the
keys in the order the schema has always had them: tests/test_bench.py reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchResult:
    srx_version: str
    timestamp: str
    command: list[str]
    model: dict[str, Any]  # label, arch, trained, source, precision, spec
    device: dict[str, Any]  # srx.runtime.device.device_info, with the load averages before and after
    input: str  # WxH
    output: str  # WxH
    batch: int
    scale: int
    runs: int
    warmup: int
    inputs: dict[str, Any]  # source, count
    timing: str
    accuracy: dict[str, Any]  # inputs, psnr, reference (None: none), note
    complexity: dict[str, Any]  # params, macs, activations
    results: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    note: str | None = None  # why the numbers are not a trained model's
    best_peer: dict[str, Any] | None = None  # backend, median_ms of the fastest row without srx
    compare: dict[str, Any] | None = None  # --compare: the change against an earlier run
    rounds: int = 1  # --rounds: the timed runs in this many rounds, the backends taking turns

    @property
    def untrained(self) -> bool:
        return not self.model["trained"]

    def rows(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == status]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "srx_version": self.srx_version,
            "timestamp": self.timestamp,
            "command": self.command,
            "model": self.model,
            "untrained": self.untrained,
            "device": self.device,
            "versions": self.versions,
            "input": self.input,
            "output": self.output,
            "batch": self.batch,
            "scale": self.scale,
            "runs": self.runs,
            "warmup": self.warmup,
            "rounds": self.rounds,
            "inputs": self.inputs,
            "timing": self.timing,
            "accuracy": self.accuracy,
            "results": self.results,
        }
        if self.note is not None:
            out["note"] = self.note
        out["complexity"] = self.complexity
        out["best_peer"] = self.best_peer
        if self.compare is not None:
            out["compare"] = self.compare
        return out

    def format(self) -> str:
        """The table `srx bench` prints, and the comparison under it (srx.bench.report)."""
        from srx.bench.report import format_compare, format_table

        text = format_table(self)
        if self.compare is not None:
            text += "\n\n" + format_compare(self.compare, self.compare["old"] or "")
        return text
