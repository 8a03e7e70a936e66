"""The TensorRT side of a build: parse the ONNX, configure the builder, build, report errors.

Takes a BuildPlan (srx.runtime.trt) and the ONNX bytes; knows nothing about precision
passes or files. `trt` is the tensorrt or tensorrt_rtx module (or a test stand-in).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from srx.errors import CheckFailed, first_line
from srx.export import INPUT_NAME
from srx.interrupt import Deferred, deferred_interrupts
from srx.precision.fp16 import fp32_layer
from srx.precision.graph import in_norm_module
from srx.runtime.profile import Profile
from srx.runtime.trt import BuildPlan, builder_flag, network_flag_bits

# TensorRT-RTX's compute capability names (ComputeCapability enum) for --rtx-targets.
RTX_TARGETS = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120", "12.1": "SM121"}


@dataclass
class BuiltEngine:
    data: bytes
    pinned_fp32_layers: int
    tensorrt_warnings: int
    timing_cache: bytes | None


def onnx_op_of(layer_name: str) -> str:
    """ONNX op type from a TensorRT layer name made by the ONNX parser (`norm/ReduceL2_1` -> ReduceL2)."""
    last = layer_name.rsplit("/", 1)[-1]
    return re.sub(r"_\d+$", "", last)


def pin_fp32_layers(network: Any, trt: Any) -> list[str]:
    """Weakly typed builds: normalisation and reduction layers computed and stored in FP32.

    The same rule as the FP16 pass (srx.precision.fp16.fp32_layer), applied to TensorRT
    layer names, which the ONNX parser takes from the ONNX node names; plus every
    IReduceLayer. With OBEY_PRECISION_CONSTRAINTS TensorRT must honour these.
    """
    pinned = []
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        name = layer.name
        if not (fp32_layer(name, onnx_op_of(name)) or in_norm_module(name) or layer.type == trt.LayerType.REDUCE):
            continue
        outs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not outs:
            continue
        layer.precision = trt.float32
        for j in outs:
            layer.set_output_type(j, trt.float32)
        pinned.append(name)
    return pinned


def _logger(trt: Any) -> Any:
    class Logger(trt.ILogger):
        """Keeps TensorRT's errors so a failed build can say why in one line."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(msg)
            elif severity == trt.ILogger.Severity.WARNING:
                self.warnings.append(msg)

    return Logger()


def _monitor(trt: Any, interrupt: Deferred, on_phase: Callable[[str, int, int], None] | None) -> Any:
    class Monitor(trt.IProgressMonitor):
        """Cancels the build (step_complete -> False) once SIGINT or SIGTERM arrived, and
        reports the top-level phases (name, step, steps) to `on_phase`."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}
            self.top: set[str] = set()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.steps[phase_name] = num_steps
            if parent_phase is None:
                self.top.add(phase_name)
                if on_phase is not None:
                    on_phase(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if on_phase is not None and phase_name in self.top:
                on_phase(phase_name, step + 1, self.steps.get(phase_name, 0))
            return not interrupt.requested

        def phase_finish(self, phase_name: str) -> None:
            self.top.discard(phase_name)

    return Monitor()


def _configure(
    trt: Any,
    builder: Any,
    plan: BuildPlan,
    profile: Profile,
    in_channels: int,
    workspace_mib: int | None,
    rtx_targets: list[str] | None,
) -> Any:
    config = builder.create_builder_config()
    for flag in plan.builder_flags:
        config.set_flag(builder_flag(trt, flag))
    for flag in plan.clear_flags:
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *profile.shapes(in_channels))
    config.add_optimization_profile(opt_profile)
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
    if rtx_targets:
        config.num_compute_capabilities = len(rtx_targets)
        for i, cc in enumerate(rtx_targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, RTX_TARGETS[cc]), i)
    return config


def build_engine(
    trt: Any,
    plan: BuildPlan,
    onnx_bytes: bytes,
    profile: Profile,
    *,
    in_channels: int = 3,
    workspace_mib: int | None = None,
    rtx_targets: list[str] | None = None,
    timing_cache: bytes | None = None,
    on_phase: Callable[[str, int, int], None] | None = None,
) -> BuiltEngine:
    """Parse and build; CheckFailed with TensorRT's first error when either fails.

    `timing_cache`: the bytes of an existing cache (b"" for a new one) when the plan uses
    one; the updated cache comes back in the result."""
    name = f"{plan.backend} {getattr(trt, '__version__', '?')}"
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flag_bits(trt, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errs = [parser.get_error(i).desc() for i in range(parser.num_errors)] or logger.errors
        raise CheckFailed(f"{name} could not parse the ONNX: {first_line(errs[0] if errs else '', 300)}")
    if network.num_inputs != 1 or network.get_input(0).name != INPUT_NAME:
        raise CheckFailed(f"the parsed network does not have the single input '{INPUT_NAME}' srx models have")
    config = _configure(trt, builder, plan, profile, in_channels, workspace_mib, rtx_targets)
    pinned = pin_fp32_layers(network, trt) if plan.pin_fp32_layers else []
    cache = None
    if timing_cache is not None:
        cache = config.create_timing_cache(timing_cache)
        config.set_timing_cache(cache, False)
    # TensorRT calls srx's logger back during the build and swallows exceptions raised there,
    # an interrupt included: record it, cancel the build through the progress monitor, raise after.
    with deferred_interrupts() as interrupt:
        monitor = _monitor(trt, interrupt, on_phase) if hasattr(trt, "IProgressMonitor") else None
        if monitor is not None:
            config.progress_monitor = monitor  # the local name keeps it alive during the build
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        why = first_line(logger.errors[-1], 300) if logger.errors else "no error message"
        raise CheckFailed(f"{name} could not build the engine: {why}")
    new_cache = bytes(config.get_timing_cache().serialize()) if cache is not None else None
    return BuiltEngine(bytes(serialized), len(pinned), len(logger.warnings), new_cache)
