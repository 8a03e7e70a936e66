"""Where a torch runner's time goes: torch.profiler over a few runs, reduced to a Trace.

On the CPU the trace is the host timeline: the operators called from Python during each
run (`aten::conv2d`, ...), each counted once at its outermost level (an `aten::conv2d`
contains `aten::convolution` and `mkldnn_convolution`; counting all three would count
the same time three times). On CUDA it is the device timeline: every kernel, copy and
memset the GPU ran, attributed to the outermost operator that launched it when the
profiler links them, otherwise known by the kernel's own name (Triton kernels, kernels
replayed from a CUDA graph). Names are kept as the profiler reports them; srx.bench.breakdown
sorts them into operation kinds by generic rules, so nothing here depends on what srx's
own kernels are called.

The SAFMN LayerNorm is written out of element-wise operators (as the official code is),
so its time would otherwise be spread over `aten::mean`, `aten::sub`, ...; for eager
models each normalisation module's forward is wrapped in a `record_function` marker
(`srx.scope:<module path>`) while profiling, and operators inside one carry that scope.
Compiled and graph-replayed models are left untouched: a hook would change what is traced.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from srx.runtime.trace import OpTime, Trace, merge_ops

RUN = "srx.run"
SCOPE = "srx.scope:"
NORM_MODULE = re.compile(r"norm|grn", re.IGNORECASE)


def _kind(event: Any) -> str:
    return str(getattr(event, "device_type", "CPU")).rsplit(".", 1)[-1]


def _us(event: Any) -> float:
    r = event.time_range
    return float(r.end - r.start)


def _is_operator(name: str) -> bool:
    """Framework operators are namespaced ('aten::add', 'mkldnn::...'); annotations are not."""
    return "::" in name


@contextlib.contextmanager
def scope_markers(model: Any) -> Iterator[int]:
    """Wrap each normalisation module's forward in a profiler marker; yields how many."""
    from torch.autograd.profiler import record_function

    handles = []
    for path, module in model.named_modules():
        if not path or not NORM_MODULE.search(type(module).__name__):
            continue
        stack: list[Any] = []

        def pre(_m: Any, _args: Any, stack: list[Any] = stack, path: str = path) -> None:
            rf = record_function(SCOPE + path)
            rf.__enter__()
            stack.append(rf)

        def post(_m: Any, _args: Any, _out: Any, stack: list[Any] = stack) -> None:
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield len(handles) // 2
    finally:
        for h in handles:
            h.remove()


def host_trace(events: Iterable[Any], runs: int, measured_ms: float) -> Trace:
    """The operators each `srx.run` marker contains, outermost level only."""
    run_events = [e for e in events if e.name == RUN and _kind(e) == "CPU"]
    ops: list[OpTime] = []
    for r in run_events:
        _collect(r.cpu_children, "", ops)
    span = sum(_us(r) for r in run_events) / 1000.0
    return Trace("torch.profiler (CPU operators)", "host", runs, measured_ms, span, merge_ops(ops))


def _collect(children: Iterable[Any], scope: str, ops: list[OpTime]) -> None:
    for c in children:
        name, us = c.name, _us(c)
        if _is_operator(name) or not c.cpu_children:
            ops.append(OpTime(name, us / 1000.0, 1, scope))
            continue
        # An annotation (an srx scope marker, a torch.compile region): look inside, and keep
        # its own time (Python in the module, compiled code not broken down) under its name.
        inner = name[len(SCOPE) :] if name.startswith(SCOPE) else scope
        _collect(c.cpu_children, inner, ops)
        own = us - sum(_us(ch) for ch in c.cpu_children)
        label = f"python in {inner}" if name.startswith(SCOPE) else f"{name} (own time)"
        ops.append(OpTime(label, max(0.0, own) / 1000.0, 1, inner))


def device_trace(events: Iterable[Any], runs: int, measured_ms: float) -> Trace:
    """Every kernel, copy and memset on the GPU during the profiled runs, attributed to the
    outermost operator that launched it (via the profiler's correlation ids) when there is one."""
    events = list(events)
    frontend = {
        e.id: e
        for e in events
        if _kind(e) == "CPU" and not getattr(e, "is_async", False) and not getattr(e, "linked_correlation_id", 0)
    }
    device = [e for e in events if _kind(e) == "CUDA"]
    if not device:
        return Trace(
            "torch.profiler (CUDA kernels)",
            "device",
            runs,
            measured_ms,
            0.0,
            note="the profiler recorded no GPU activity (is CUPTI available to this PyTorch?)",
        )
    start = min(e.time_range.start for e in device)
    end = max(e.time_range.end for e in device)
    ops = []
    for k in device:
        op, scope = _owner(frontend.get(getattr(k, "linked_correlation_id", 0)))
        if op is None:
            ops.append(OpTime(k.name, _us(k) / 1000.0, 1, scope, "kernel"))
        else:
            ops.append(OpTime(op, _us(k) / 1000.0, 1, scope))
    return Trace("torch.profiler (CUDA kernels)", "device", runs, measured_ms, (end - start) / 1000.0, merge_ops(ops))


def _owner(event: Any) -> tuple[str | None, str]:
    """(outermost operator, innermost srx scope) on the way from `event` up to its run marker."""
    op, scope = None, ""
    e = event
    while e is not None and e.name != RUN:
        if _is_operator(e.name):
            op = e.name
        elif e.name.startswith(SCOPE) and not scope:
            scope = e.name[len(SCOPE) :]
        e = getattr(e, "cpu_parent", None)
    return op, scope


def profile_runs(runner: Any, staged: list[Any], runs: int, *, markers: bool) -> Trace:
    """Run `runner.execute` `runs` times under torch.profiler; the host or device trace.

    One run first in the profiler's warm-up step (recorded, then discarded: the profiler's
    own start-up costs land there), then the profiled runs, each inside an `srx.run`
    marker, timed together by the runner's own timer."""
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    cuda = runner.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    model = getattr(runner, "model", None)
    scopes = scope_markers(model) if markers and model is not None else contextlib.nullcontext(0)
    runner.synchronize()
    with scopes, profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=1, repeat=1)) as prof:
        runner.execute(staged[0])
        runner.synchronize()
        prof.step()  # from here on, recorded: all profiled runs are one profiler step
        timer = runner.timer()
        timer.start()
        for i in range(runs):
            with record_function(RUN):
                out = runner.execute(staged[i % len(staged)])
            del out
        timer.stop()
        runner.synchronize()
    measured = timer.elapsed_ms()
    events = prof.events()
    return device_trace(events, runs, measured) if cuda else host_trace(events, runs, measured)
