"""What a runner's profiler saw during a few runs (torch-free): operators or kernels and their time.

Runners that can say where their time goes (`Runner.profile`) return a `Trace`;
srx.bench.breakdown turns it into the table by operation kind. A trace keeps two totals
of the same runs, measured independently, so that a consumer can tell whether the
profiler's view accounts for the time a plain timer saw:

* `measured_ms`: the runs timed outside the profiler's bookkeeping (the runner's own
  timer: the host clock around synchronous calls, CUDA events on a GPU);
* `span_ms`: the same runs as the profiler placed them on its timeline (from each run's
  first operator to its last, summed), of which `ops` cover the busy part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OpTime:
    """Time of one operator (or device kernel) summed over the profiled runs."""

    name: str  # as the backend reports it: 'aten::conv2d', 'Conv', a kernel's name
    ms: float
    calls: int = 1
    scope: str = ""  # the module it ran in when known ('feats.0.norm1'), else ''
    kind: str = "op"  # 'op': a framework operator; 'kernel': a device kernel known by name only


@dataclass
class Trace:
    source: str  # what measured it: 'torch.profiler (CPU operators)', 'onnxruntime profiler', ...
    timeline: str  # 'host' (time of operators on the CPU) or 'device' (GPU kernel time)
    runs: int
    measured_ms: float  # total over `runs`, by the runner's own timer
    span_ms: float  # total over `runs`, on the profiler's timeline
    ops: list[OpTime] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "timeline": self.timeline,
            "runs": self.runs,
            "measured_ms": self.measured_ms,
            "span_ms": self.span_ms,
            "ops": [vars(o) for o in self.ops],
            "note": self.note,
        }


def merge_ops(ops: list[OpTime]) -> list[OpTime]:
    """One entry per (name, scope, kind), times and calls summed, slowest first."""
    merged: dict[tuple[str, str, str], OpTime] = {}
    for o in ops:
        key = (o.name, o.scope, o.kind)
        if key in merged:
            merged[key].ms += o.ms
            merged[key].calls += o.calls
        else:
            merged[key] = OpTime(o.name, o.ms, o.calls, o.scope, o.kind)
    return sorted(merged.values(), key=lambda o: -o.ms)
