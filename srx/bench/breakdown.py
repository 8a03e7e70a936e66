"""Where the time goes: a runner's Trace sorted into operation kinds, in ms per run and %.

The kinds are the ones the SAFMN paper argues its bottleneck with. An operator or kernel
is placed by generic rules on its name and the module it ran in, never by what srx's own
kernels happen to be called today:

1. normalization: run inside a normalisation module (scope 'norm1', 'GRN', ...), or named
   so (layer_norm, LayerNormalization, group_norm), or a fused kernel that both averages
   and takes a square root (what a LayerNorm compiles to);
2. pooling and resize: run inside a module named for it ('pool1', 'up2': srx's export
   writes exact adaptive pooling and nearest resizing with Gather / Max nodes there), or
   named pool, upsample, interpolate, resize, nearest, bilinear;
3. convolution: conv (not 'convert'), cuDNN / CUTLASS fprop and implicit-GEMM kernels,
   gemm (a 1x1 convolution run as a matrix product);
4. copies and layout: copy, memcpy, memset, cat / concat, split / chunk / slice, reorder,
   transpose / permute, pixel shuffle / DepthToSpace, reshape and views, gather;
5. element-wise: arithmetic, activations (GELU, erf), reductions outside normalisation;
6. fused or compiled code: Triton, torch.compile regions, anything named 'fused' that
   rules 1-5 cannot place;
7. other: whatever is left (named in the per-operator list);
8. launch gaps / CPU overhead: the part of each run the profiler saw no operator in: on
   the CPU the framework and Python between operators, on a GPU the time it waited for
   the CPU to launch the next kernel (a launch-bound model shows up here).

Percentages are of the sum of the kinds (the profiled time per run). The same runs timed
by the runner's own timer (`measured_ms`) are kept next to it: a sum far from it would
mean the profiler double-counted or missed time, and srx's tests hold it within 10%.
"""

from __future__ import annotations

import re
from typing import Any

from srx.runtime.trace import OpTime, Trace

OP_KINDS = (
    ("normalization", "LayerNorm / normalization"),
    ("pooling_resize", "pooling and resize"),
    ("convolution", "convolution"),
    ("copies_layout", "copies and layout"),
    ("elementwise", "element-wise"),
    ("fused", "fused / compiled code"),
    ("other", "other"),
    ("gaps", "launch gaps / CPU overhead"),
)
LABELS = dict(OP_KINDS)
TOP_OPS = 8

_NORM_SCOPE = re.compile(r"norm|grn", re.IGNORECASE)
# A module named for pooling or resizing (the exporter's 'pool1', 'up2'): its Gather / Max /
# Slice nodes are the exact adaptive pooling and nearest resize written out of index arithmetic.
_POOL_SCOPE = re.compile(r"(pool|up|upsample|resize|interp)\d*", re.IGNORECASE)
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("normalization", re.compile(r"norm(?!al_|al\b)|grn", re.IGNORECASE)),
    ("pooling_resize", re.compile(r"pool|upsampl|interp|resize|nearest|bilinear", re.IGNORECASE)),
    ("convolution", re.compile(r"conv(?!ert)|fprop|implicit_?gemm|winograd|gemm", re.IGNORECASE)),
    (
        "copies_layout",
        re.compile(
            r"copy|memcpy|memset|\bcat\b|cat_|catarray|concat|split|chunk|slice|select|reorder|transpose|permute"
            r"|shuffle|depthtospace|reshape|view|unsqueeze|squeeze|expand|gather|contiguous|clone|identity"
            r"|nchwtonhwc|nhwctonchw",
            re.IGNORECASE,
        ),
    ),
    (
        "elementwise",
        re.compile(
            r"add|sub(?:_|\b)|mul|div|pow|sqrt|gelu|erf|relu|sigmoid|tanh|exp|neg|clamp|clip|where|maximum"
            r"|minimum|elementwise|mean|reduce|sum|\bmax\b|\bmin\b|fill|abs",
            re.IGNORECASE,
        ),
    ),
    # OpenVINO's 'Subgraph': element-wise chains it compiled into one JIT kernel.
    ("fused", re.compile(r"triton|fused|compiled|cpp_|inductor|subgraph", re.IGNORECASE)),
)
_MEAN = re.compile(r"mean|var", re.IGNORECASE)
_SQRT = re.compile(r"sqrt", re.IGNORECASE)


def categorize(op: OpTime) -> str:
    """The operation kind of one operator or kernel (see the module docstring)."""
    parts = re.split(r"[./]", op.scope) if op.scope else []
    if any(_NORM_SCOPE.search(part) for part in parts):
        return "normalization"
    if any(_POOL_SCOPE.fullmatch(part) for part in parts):
        return "pooling_resize"
    name = op.name
    if _MEAN.search(name) and _SQRT.search(name) and re.search(r"fused|triton", name, re.IGNORECASE):
        return "normalization"
    for kind, pattern in _RULES:
        if pattern.search(name):
            return kind
    return "other"


def breakdown(trace: Trace, timed_median_ms: float | None = None) -> dict[str, Any]:
    """The JSON `profile` of a result row: kinds in ms per run and %, the slowest operators."""
    runs = max(1, trace.runs)
    per_kind = {k: 0.0 for k, _ in OP_KINDS}
    for op in trace.ops:
        per_kind[categorize(op)] += op.ms
    busy = sum(per_kind.values())
    per_kind["gaps"] = max(0.0, trace.span_ms - busy)
    total = sum(per_kind.values())
    kinds = {
        k: {"ms": round(v / runs, 4), "pct": round(100.0 * v / total, 2) if total else 0.0} for k, v in per_kind.items()
    }
    # The slowest operators by name and kind (a convolution in every block is one line).
    by_name: dict[tuple[str, str], list[float]] = {}
    for op in trace.ops:
        acc = by_name.setdefault((op.name, categorize(op)), [0.0, 0])
        acc[0] += op.ms
        acc[1] += op.calls
    slowest = sorted(by_name.items(), key=lambda item: -item[1][0])[:TOP_OPS]
    top = [
        {"name": name, "kind": kind, "ms": round(ms / runs, 4), "calls_per_run": round(calls / runs, 2)}
        for (name, kind), (ms, calls) in slowest
    ]
    out: dict[str, Any] = {
        "status": "ok",
        "source": trace.source,
        "timeline": trace.timeline,
        "runs": trace.runs,
        "total_ms": round(total / runs, 4),
        "measured_ms": round(trace.measured_ms / runs, 4),
        "categories": kinds,
        "top": top,
    }
    if timed_median_ms is not None:
        out["timed_median_ms"] = timed_median_ms
    if trace.note:
        out["note"] = trace.note
    if not trace.ops:
        out["status"] = "unavailable"
        out["reason"] = trace.note or "the profiler recorded no operators"
    return out


def unavailable(reason: str) -> dict[str, Any]:
    return {"status": "unavailable", "reason": reason}


def format_profiles(results: list[dict[str, Any]]) -> str:
    """One table, kinds down and backends across (ms per run and %), then each backend's slowest operators."""
    rows = [r for r in results if r.get("status") == "ok" and r.get("profile", {}).get("status") == "ok"]
    lines = ["", "  where the time goes (--profile; ms per run and % of the profiled run)"]
    if not rows:
        lines.append("  no backend that ran could be profiled")
    else:
        head = ["kind"] + [r["backend"] for r in rows]
        table = [head]
        for k, label in OP_KINDS:
            cells = [label]
            for r in rows:
                c = r["profile"]["categories"][k]
                cells.append(f"{c['ms']:.3f} ms {c['pct']:5.1f}%" if c["ms"] else "-")
            table.append(cells)
        table.append(["total (profiled)"] + [f"{r['profile']['total_ms']:.3f} ms" for r in rows])
        table.append(["measured (same runs)"] + [f"{r['profile']['measured_ms']:.3f} ms" for r in rows])
        table.append(["timed median (above)"] + [f"{r['latency_ms']['median']:.3f} ms" for r in rows])
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        for j, row in enumerate(table):
            lines.append(
                "  "
                + "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if j == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        for r in rows:
            p = r["profile"]
            lines.append(f"\n  {r['backend']}: {p['source']}, {p['runs']} runs; slowest:")
            for op in p["top"]:
                lines.append(
                    f"    {op['ms']:9.3f} ms  {LABELS[op['kind']]:<26} {op['calls_per_run']:g}x  {_short(op['name'])}"
                )
            if p.get("note"):
                lines.append(f"    note: {p['note']}")
    for r in results:
        p = r.get("profile")
        if r.get("status") == "ok" and p and p.get("status") != "ok":
            lines.append(f"  {r['backend']:<19} profile unavailable: {p.get('reason', '')}")
    return "\n".join(lines)


def _short(name: str, width: int = 70) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."
