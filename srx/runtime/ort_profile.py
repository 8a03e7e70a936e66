"""onnxruntime's own profiler output (Chrome-trace JSON) reduced to a Trace.

With `SessionOptions.enable_profiling`, every `run` writes a `model_run` session event and
one `<node name>_kernel_time` event per node (its operator type in `args.op_name`), in
microseconds on one clock. Node names from srx's exporter carry the module path
(`feats.0.norm1/ReduceMean`), which becomes the operator's scope: that is how the
hand-written LayerNorm's ReduceMean / Sub / Pow / ... nodes are counted as LayerNorm.
Only the last `runs` model runs are kept (an earlier one warms up the arena).
"""

from __future__ import annotations

from typing import Any

from srx.runtime.trace import OpTime, Trace, merge_ops

SUFFIX = "_kernel_time"


def trace_from_events(events: list[dict[str, Any]], runs: int, measured_ms: float) -> Trace:
    model_runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"]
    )[-runs:]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    ops = []
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith(SUFFIX):
            continue
        ts = e.get("ts", -1)
        if not any(lo <= ts <= hi for lo, hi in windows):
            continue
        node = name[: -len(SUFFIX)]
        scope = node.rsplit("/", 1)[0] if "/" in node else ""
        op_type = str(e.get("args", {}).get("op_name") or node)
        ops.append(OpTime(op_type, float(e.get("dur", 0)) / 1000.0, 1, scope))
    span = sum(hi - lo for lo, hi in windows) / 1000.0
    note = "" if len(windows) == runs else f"the profile held {len(windows)} of {runs} runs"
    return Trace("onnxruntime profiler (node kernel times)", "host", runs, measured_ms, span, merge_ops(ops), note)
