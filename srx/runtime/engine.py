"""ONNX -> TensorRT / TensorRT-RTX engine + sidecar (`engine_from_onnx`, `srx build-engine`).

Order of work: every input is checked first (ONNX, precision flags, backend and version,
profile, calibration folder, output paths), then the precision transform runs (FP16 pass
or INT8 calibration, srx.precision), then TensorRT parses and builds, and only then are
the precision ONNX, the engine and its sidecar written (each atomically). See
srx.runtime.trt for what each TensorRT version needs and srx.runtime.sidecar for the
guard that later refuses engines built for another GPU or TensorRT version.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srx import __version__
from srx.errors import BadInput, CheckFailed
from srx.fileio import check_writable, write_bytes_atomic
from srx.interrupt import Deferred, deferred_interrupts
from srx.precision.fp16 import fp32_layer
from srx.precision.graph import INPUT_NAME, SrxOnnx, in_norm_module, load_srx_onnx, metadata_json
from srx.precision.int8 import QuantSettings
from srx.runtime.profile import Profile, make_profile
from srx.runtime.sidecar import ENGINE_SUFFIXES, FORMAT, FORMAT_VERSION, sidecar_path, write_engine_pair
from srx.runtime.trt import (
    BuildPlan,
    builder_flag,
    import_backend,
    network_flag_bits,
    parse_version,
    plan_build,
    resolve_backend,
)

TARGETS = ("gpu", "jetson")
JETSON_WORKSPACE_MIB = 1024
# TensorRT-RTX's documented default AOT targets when none are set (cpu-engines page).
RTX_DEFAULT_TARGETS = "default (TensorRT-RTX: compute capability 8.0, 8.6, 8.9, 12.0 and later)"
RTX_TARGETS = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120", "12.1": "SM121"}


def resolve_precision(onnx_precision: str, requested: str | None, calib_dir: str | Path | None) -> str:
    """The engine precision from the flags and the ONNX's own precision (BadInput on conflicts)."""
    if requested is None:
        if calib_dir is not None:
            raise BadInput("--calib-dir is only used with --int8: add --int8 or drop --calib-dir")
        return onnx_precision
    if onnx_precision != "fp32" and requested != onnx_precision:
        raise BadInput(
            f"the ONNX is already {onnx_precision.upper()}; --{requested} needs the FP32 ONNX from 'srx export'"
        )
    if requested == "int8" and onnx_precision == "fp32" and calib_dir is None:
        raise BadInput(
            "--int8 needs calibration images: add --calib-dir DIR (a folder of training images, never an "
            "evaluation set), or give an ONNX made by 'srx quantize'"
        )
    if requested != "int8" and calib_dir is not None:
        raise BadInput("--calib-dir is only used with --int8: add --int8 or drop --calib-dir")
    if onnx_precision == "int8" and calib_dir is not None:
        raise BadInput("the ONNX is already INT8 (calibrated by 'srx quantize'): drop --calib-dir")
    return requested


def default_engine_path(onnx_path: Path, precision: str) -> Path:
    stem = onnx_path.stem
    if not stem.endswith(f".{precision}"):
        stem = f"{stem}.{precision}"
    return onnx_path.with_name(f"{stem}.engine")


def precision_onnx_path(engine: Path, precision: str) -> Path:
    """`x.engine` -> `x.fp16.onnx`; `x.fp16.engine` -> `x.fp16.onnx`."""
    stem = engine.stem if engine.stem.endswith(f".{precision}") else f"{engine.stem}.{precision}"
    return engine.with_name(f"{stem}.onnx")


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


def _cancel_on(trt: Any, interrupt: Deferred) -> Any:
    class Monitor(trt.IProgressMonitor):
        """Cancels the build (step_complete -> False) once SIGINT or SIGTERM arrived."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            pass

        def step_complete(self, phase_name: str, step: int) -> bool:
            return not interrupt.requested

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Monitor()


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0][:300] if lines else "no message"


def engine_from_onnx(
    onnx_path: str | Path,
    output: str | Path | None = None,
    *,
    precision: str | None = None,
    calib_dir: str | Path | None = None,
    backend: str = "auto",
    min_size: str | None = None,
    opt_size: str | None = None,
    max_size: str | None = None,
    batch: str | None = None,
    workspace_mib: int | None = None,
    target: str = "gpu",
    dla_core: int | None = None,
    timing_cache: str | Path | None = None,
    rtx_targets: list[str] | None = None,
    quant: QuantSettings | None = None,
    progress: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    trt_module: Any | None = None,
    device: Any | None = None,
) -> dict[str, Any]:
    """Build an engine from an srx ONNX; return the report (CLI.md `build-engine` JSON).

    `trt_module` and `device` replace the TensorRT module and the GPU description (tests).
    """
    say = progress or (lambda _m: None)
    warn = warn or (lambda _m: None)
    src_path = Path(onnx_path)
    src = load_srx_onnx(src_path)
    prec = resolve_precision(src.precision, precision, calib_dir)

    # -- outputs --------------------------------------------------------------------------
    out = Path(output) if output is not None else default_engine_path(src_path, prec)
    if out.suffix.lower() not in ENGINE_SUFFIXES:
        raise BadInput(
            f"-o {out}: an engine file name must end in {', '.join(ENGINE_SUFFIXES)}; name it like model.engine"
        )
    check_writable(out)
    check_writable(sidecar_path(out))
    prec_onnx = precision_onnx_path(out, prec) if prec != "fp32" and src.precision == "fp32" else None
    if prec_onnx is not None:
        if prec_onnx.resolve() == src_path.resolve():
            raise BadInput(
                f"-o {out} would overwrite the source ONNX {src_path} with the {prec} ONNX: choose another -o"
            )
        check_writable(prec_onnx)
    cache_path = Path(timing_cache) if timing_cache is not None else None
    if cache_path is not None:
        check_writable(cache_path, "--timing-cache")

    # -- backend, version, plan, profile ---------------------------------------------------
    if target not in TARGETS:
        raise BadInput(f"--target {target!r}: use gpu or jetson")
    if dla_core is not None and (dla_core < 0 or target != "jetson"):
        raise BadInput(
            "--dla-core N needs --target jetson and N >= 0 (Orin has DLA cores 0 and 1): add --target jetson or drop --dla-core"
        )
    if workspace_mib is not None and workspace_mib < 1:
        raise BadInput(f"--workspace {workspace_mib}: give the workspace cap in MiB, at least 1")
    name = resolve_backend(backend)
    trt = trt_module if trt_module is not None else import_backend(name)
    version = str(getattr(trt, "__version__", "0"))
    plan = plan_build(name, parse_version(version), prec, dla_core=dla_core, target=target)
    if cache_path is not None and not plan.timing_cache:
        raise BadInput("--timing-cache applies to --backend tensorrt (TensorRT-RTX has no timing cache): drop it")
    if rtx_targets and name != "tensorrt-rtx":
        raise BadInput("--rtx-targets applies to --backend tensorrt-rtx")
    for cc in rtx_targets or []:
        if cc not in RTX_TARGETS:
            raise BadInput(f"--rtx-targets {cc}: TensorRT-RTX targets are {', '.join(RTX_TARGETS)}; give some of these")
    if plan.max_opset is not None and src.opset > plan.max_opset:
        raise BadInput(
            f"TensorRT {version} parses ONNX opset <= {plan.max_opset}, this model is opset {src.opset}: "
            f"export it with 'srx export --opset {plan.max_opset}'"
        )
    if prec == "fp16" and src.precision == "fp16" and not plan.strongly_typed:
        raise BadInput(
            f"TensorRT {version} builds FP16 from the FP32 ONNX with the FP16 flag: give the FP32 ONNX with --fp16"
        )
    if prec == "int8" and src.precision == "int8":
        hp = metadata_json(src.model, "srx.int8").get("high_precision", "fp16")
        if plan.onnx == "int8-fp32" and hp != "fp32":
            raise BadInput(
                f"TensorRT {version} needs Q/DQ over the FP32 graph: quantize with 'srx quantize --high-precision fp32'"
            )
    dims = [d.dim_param or d.dim_value for d in src.model.graph.input[0].type.tensor_type.shape.dim]
    profile = make_profile(
        src.spec, dims, min_size=min_size, opt_size=opt_size, max_size=max_size, batch=batch, dla=dla_core is not None
    )
    if workspace_mib is None and target == "jetson":
        workspace_mib = JETSON_WORKSPACE_MIB
    if target == "jetson":
        from srx.runtime.cudart import is_jetson

        if not is_jetson():
            warn(
                "--target jetson but this is not a Jetson (no /etc/nv_tegra_release): engines are tied to the GPU and "
                "TensorRT version that build them; build on the Jetson itself"
            )
    if prec == "int8" and src.precision == "fp32":
        from srx.precision.calib import list_images

        n = len(list_images(calib_dir))  # type: ignore[arg-type]
        if n < 2:
            raise BadInput(
                f"--calib-dir {calib_dir} holds {n} image(s); calibration needs at least 2 (one is held back): add training images"
            )
    dev = device if device is not None else _device(name)

    # -- precision transform ---------------------------------------------------------------
    t0 = time.perf_counter()
    build_src, report_extra = _precision_model(src, plan, calib_dir, quant, say)
    data = build_src.model.SerializeToString()
    t1 = time.perf_counter()

    # -- build -----------------------------------------------------------------------------
    say(f"building a {prec.upper()} {name} {version} engine ({plan.typing})")
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flag_bits(trt, plan.network_flags))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data):
        errs = [parser.get_error(i).desc() for i in range(parser.num_errors)] or logger.errors
        raise CheckFailed(f"{name} {version} could not parse the ONNX: {_first_line(errs[0] if errs else '')}")
    if network.num_inputs != 1 or network.get_input(0).name != INPUT_NAME:
        raise CheckFailed(f"the parsed network does not have the single input '{INPUT_NAME}' srx models have")
    config = builder.create_builder_config()
    for flag in plan.builder_flags:
        config.set_flag(builder_flag(trt, flag))
    for flag in plan.clear_flags:
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))
    if workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(INPUT_NAME, *profile.shapes(src.spec.in_channels))
    config.add_optimization_profile(opt_profile)
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
    if rtx_targets:
        config.num_compute_capabilities = len(rtx_targets)
        for i, cc in enumerate(rtx_targets):
            config.set_compute_capability(getattr(trt.ComputeCapability, RTX_TARGETS[cc]), i)
    pinned = pin_fp32_layers(network, trt) if plan.pin_fp32_layers else []
    cache = None
    if cache_path is not None:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, False)
    # TensorRT calls srx's logger back during the build and swallows exceptions raised there,
    # an interrupt included: record it, cancel the build through the progress monitor, raise after.
    with deferred_interrupts() as interrupt:
        monitor = _cancel_on(trt, interrupt) if hasattr(trt, "IProgressMonitor") else None
        if monitor is not None:
            config.progress_monitor = monitor  # the local name keeps it alive during the build
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        why = _first_line(logger.errors[-1]) if logger.errors else "no error message"
        raise CheckFailed(f"{name} {version} could not build the engine: {why}")
    engine_bytes = bytes(serialized)
    t2 = time.perf_counter()

    # -- write -------------------------------------------------------------------------------
    if prec_onnx is not None and build_src is not src:
        write_bytes_atomic(prec_onnx, data)
    else:
        prec_onnx = None
    if cache is not None and cache_path is not None:
        write_bytes_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine": out.name,
        "engine_sha256": hashlib.sha256(engine_bytes).hexdigest(),
        "engine_bytes": len(engine_bytes),
        "spec": src.spec.to_dict(),
        "precision": prec,
        "precision_onnx": prec_onnx.name if prec_onnx else None,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "source_onnx": src_path.name,
        "source_onnx_sha256": _sha256(src_path),
        "profile": profile.to_dict(),
        "io": {"input": INPUT_NAME, "output": "sr", "dtype": "float32", "layout": "NCHW"},
        "backend": name,
        "backend_version": version,
        "network": plan.typing,
        "builder_flags": list(plan.builder_flags),
        "device": _device_record(name, dev, rtx_targets),
        "target": target,
        "dla_core": plan.dla_core,
        "workspace_mib": workspace_mib,
        "pinned_fp32_layers": len(pinned),
        "srx_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "build_seconds": round(t2 - t1, 3),
    }
    write_engine_pair(out, engine_bytes, sidecar)
    return {
        "engine": str(out),
        "backend": name,
        "backend_version": version,
        "precision": prec,
        "profile": profile.to_dict(),
        "precision_onnx": str(prec_onnx) if prec_onnx else None,
        "build_seconds": round(t2 - t1, 3),
        "engine_bytes": len(engine_bytes),
        "sidecar": str(sidecar_path(out)),
        "network": plan.typing,
        "device": sidecar["device"],
        "target": target,
        "dla_core": plan.dla_core,
        "workspace_mib": workspace_mib,
        "transform_seconds": round(t1 - t0, 3),
        "pinned_fp32_layers": len(pinned),
        "notes": list(plan.notes),
        "tensorrt_warnings": len(logger.warnings),
        **report_extra,
    }


def _precision_model(
    src: SrxOnnx,
    plan: BuildPlan,
    calib_dir: str | Path | None,
    quant: QuantSettings | None,
    say: Callable[[str], None],
) -> tuple[SrxOnnx, dict[str, Any]]:
    """The ONNX the builder parses for `plan.onnx`, and report fields of the transform."""
    want = plan.onnx
    if want in ("fp32", src.precision) or (want == "int8-fp32" and src.precision == "int8"):
        return src, {}
    if want == "fp16":
        from srx.precision.fp16 import fp16_from_onnx

        say("writing FP16 with FP32 normalisation islands")
        model, rep = fp16_from_onnx(src)
        return model, {"fp16": rep.to_dict()}
    from dataclasses import replace

    from srx.precision.int8 import int8_from_onnx

    settings = replace(quant or QuantSettings(), high_precision="fp32" if want == "int8-fp32" else "fp16")
    model, rep = int8_from_onnx(src, calib_dir, settings, progress=say)  # type: ignore[arg-type]
    return model, {"quantize": {k: v for k, v in rep.to_dict().items() if k != "sensitivity"}}


def _device(backend: str) -> Any | None:
    """The GPU this build is for: required for TensorRT (engines are per GPU), optional for RTX."""
    from srx.runtime.cudart import Cuda

    if backend == "tensorrt":
        cuda = Cuda()
        if cuda.device_count() < 1:
            raise BadInput("TensorRT needs a CUDA GPU to build an engine; none is visible")
        return cuda.device(0)
    try:
        cuda = Cuda()
        return cuda.device(0) if cuda.device_count() > 0 else None
    except Exception:  # no cuda-python, no driver: an ahead-of-time build on a CPU
        return None


def _device_record(backend: str, dev: Any | None, rtx_targets: list[str] | None) -> dict[str, Any]:
    rec: dict[str, Any] = dev.to_dict() if dev is not None else {"name": None, "compute_capability": None}
    if backend == "tensorrt-rtx":
        rec["compute_capabilities"] = list(rtx_targets) if rtx_targets else RTX_DEFAULT_TARGETS
        rec["built_on"] = "gpu" if dev is not None else "cpu (ahead of time)"
    return rec


def _sha256(path: Path) -> str:
    from srx.fileio import sha256_file

    return sha256_file(path)


def read_profile(sidecar: dict[str, Any]) -> Profile:
    return Profile.from_dict(sidecar["profile"])
