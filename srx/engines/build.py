"""ONNX -> TensorRT / TensorRT-RTX engine + sidecar (`engine_from_onnx`, `srx build-engine`).

Order of work: every input is checked first (ONNX, precision flags, backend and version,
profile, calibration folder, output paths), then the precision transform runs (FP16 pass
or INT8 calibration, srx.precision), then TensorRT parses and builds
(srx.engines.network), and only then are the precision ONNX, the engine and its sidecar
written (each atomically). srx.runtime.trt decides what each TensorRT version needs;
srx.runtime.sidecar holds the guard that later refuses engines built for another GPU or
TensorRT version.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from srx import __version__
from srx.errors import BadInput
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.export.metadata import META_INT8, SrxOnnx, read_srx_onnx
from srx.fileio import check_writable, sha256_file, write_bytes_atomic
from srx.filekinds import ENGINE_SUFFIXES
from srx.precision.int8 import QuantSettings
from srx.progress import Progress
from srx.runtime.profile import Profile, make_profile
from srx.runtime.sidecar import FORMAT, FORMAT_VERSION, sidecar_path, write_engine_pair
from srx.runtime.trt import BuildPlan, import_backend, parse_version, plan_build, resolve_backend

TARGETS = ("gpu", "jetson")
JETSON_WORKSPACE_MIB = 1024
# TensorRT-RTX's documented default AOT targets when none are set (cpu-engines page).
RTX_DEFAULT_TARGETS = "default (TensorRT-RTX: compute capability 8.0, 8.6, 8.9, 12.0 and later)"


@dataclass(frozen=True)
class BuildOptions:
    """The `srx build-engine` flags (None: the default)."""

    precision: str | None = None
    calib_dir: str | Path | None = None
    backend: str = "auto"
    min_size: str | None = None
    opt_size: str | None = None
    max_size: str | None = None
    batch: str | None = None
    workspace_mib: int | None = None
    target: str = "gpu"
    dla_core: int | None = None
    timing_cache: Path | None = None
    rtx_targets: tuple[str, ...] = ()
    quant: QuantSettings | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class Outputs:
    engine: Path
    precision_onnx: Path | None  # the FP16 / Q/DQ ONNX written next to the engine, if any
    timing_cache: Path | None


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


def check_outputs(src_path: Path, src: SrxOnnx, prec: str, output: str | Path | None, opts: BuildOptions) -> Outputs:
    """Where the build writes, checked before any work. An existing precision ONNX (the Q/DQ
    ONNX of an earlier `srx quantize` or --int8 build, the FP16 ONNX of an earlier --fp16
    build) is not replaced without --overwrite: it may have cost minutes of calibration, and
    the user may want to build from it instead."""
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
        if prec_onnx.exists() and not opts.overwrite:
            made_by = "'srx quantize' or an earlier build" if prec == "int8" else "an earlier build"
            raise BadInput(
                f"{prec_onnx} already exists (from {made_by}): build from it with "
                f"'srx build-engine {prec_onnx}', or add --overwrite to make it again"
            )
        check_writable(prec_onnx)
    if opts.timing_cache is not None:
        check_writable(opts.timing_cache, "--timing-cache")
    return Outputs(out, prec_onnx, opts.timing_cache)


def check_options(opts: BuildOptions) -> None:
    if opts.target not in TARGETS:
        raise BadInput(f"--target {opts.target!r}: use gpu or jetson")
    if opts.dla_core is not None and (opts.dla_core < 0 or opts.target != "jetson"):
        raise BadInput(
            "--dla-core N needs --target jetson and N >= 0 (Orin has DLA cores 0 and 1): add --target jetson or drop --dla-core"
        )
    if opts.workspace_mib is not None and opts.workspace_mib < 1:
        raise BadInput(f"--workspace {opts.workspace_mib}: give the workspace cap in MiB, at least 1")


def check_plan(plan: BuildPlan, src: SrxOnnx, prec: str, version: str, opts: BuildOptions) -> None:
    """What this TensorRT version cannot do with this ONNX and these flags."""
    from srx.engines.network import RTX_TARGETS

    if opts.timing_cache is not None and not plan.timing_cache:
        raise BadInput("--timing-cache applies to --backend tensorrt (TensorRT-RTX has no timing cache): drop it")
    if opts.rtx_targets and plan.backend != "tensorrt-rtx":
        raise BadInput("--rtx-targets applies to --backend tensorrt-rtx")
    for cc in opts.rtx_targets:
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
        hp = src.report(META_INT8).get("high_precision", "fp16")
        if plan.onnx == "int8-fp32" and hp != "fp32":
            raise BadInput(
                f"TensorRT {version} needs Q/DQ over the FP32 graph: quantize with 'srx quantize --high-precision fp32'"
            )


def check_calibration(calib_dir: str | Path | None, warn: Callable[[str], None]) -> None:
    from srx.precision.calib import evaluation_set_warning, list_images

    files = list_images(calib_dir)  # type: ignore[arg-type]
    if len(files) < 2:
        raise BadInput(
            f"--calib-dir {calib_dir} holds {len(files)} image(s); calibration needs at least 2 (one is held back): "
            "add training images"
        )
    if evaluation_set_warning(calib_dir, files):  # type: ignore[arg-type]
        warn(evaluation_set_warning(calib_dir, files))  # type: ignore[arg-type]


def workspace_for(opts: BuildOptions, warn: Callable[[str], None]) -> int | None:
    """The workspace cap: the flag, else 1 GiB on a Jetson (8 GB boards run out of memory building)."""
    if opts.target != "jetson":
        return opts.workspace_mib
    from srx.runtime.cudart import is_jetson

    if not is_jetson():
        warn(
            "--target jetson but this is not a Jetson (no /etc/nv_tegra_release): engines are tied to the GPU and "
            "TensorRT version that build them; build on the Jetson itself"
        )
    return opts.workspace_mib if opts.workspace_mib is not None else JETSON_WORKSPACE_MIB


@dataclass(eq=False)
class EngineBuild:
    """What `srx build-engine` built: the text and `--json` render this one object."""

    facts: dict[str, Any]  # what the sidecar records too: backend, precision, profile, sizes, device (_record)
    engine: str
    precision_onnx: str | None  # the FP16 / Q/DQ ONNX written next to the engine, if the build wrote one
    source_onnx: str
    sidecar: str
    transform_seconds: float
    notes: list[str]
    tensorrt_warnings: list[str]
    precision_reports: dict[str, Any]  # "fp16" or "quantize": the precision transform's report

    def to_json(self) -> dict[str, Any]:
        return {
            **self.facts,
            "engine": self.engine,
            "precision_onnx": self.precision_onnx,
            "source_onnx": self.source_onnx,
            "sidecar": self.sidecar,
            "transform_seconds": self.transform_seconds,
            "notes": self.notes,
            "tensorrt_warnings": self.tensorrt_warnings,
            **self.precision_reports,
        }

    def format(self) -> str:
        return format_report(self.to_json())


def engine_from_onnx(
    onnx_path: str | Path,
    output: str | Path | None = None,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    trt_module: Any | None = None,
    device: Any | None = None,
    **options: Any,
) -> EngineBuild:
    """Build an engine from an srx ONNX; return what was built (its JSON: docs/cli.md#srx-build-engine).

    `options` are the BuildOptions fields (precision, calib_dir, backend, min_size, ...).
    `trt_module` and `device` replace the TensorRT module and the GPU description (tests).
    """
    opts = _options(options)
    progress = progress or Progress.off()
    warn = warn or (lambda _m: None)
    src_path = Path(onnx_path)
    src = read_srx_onnx(src_path, keep_model=True)
    prec = resolve_precision(src.precision, opts.precision, opts.calib_dir)
    outs = check_outputs(src_path, src, prec, output, opts)
    check_options(opts)
    name = resolve_backend(opts.backend)
    trt = trt_module if trt_module is not None else import_backend(name)
    version = str(getattr(trt, "__version__", "0"))
    plan = plan_build(name, parse_version(version), prec, dla_core=opts.dla_core, target=opts.target)
    check_plan(plan, src, prec, version, opts)
    profile = make_profile(src.spec, src.input_dims, min_size=opts.min_size, opt_size=opts.opt_size,
                           max_size=opts.max_size, batch=opts.batch, dla=opts.dla_core is not None)  # fmt: skip
    opts = replace(opts, workspace_mib=workspace_for(opts, warn))
    if prec == "int8" and src.precision == "fp32":
        check_calibration(opts.calib_dir, warn)
    dev = device if device is not None else _device(name)

    t0 = time.perf_counter()
    build_src, transform = _precision_model(src, plan, opts, progress)
    data = build_src.graph().SerializeToString()
    t1 = time.perf_counter()
    built = _build(trt, plan, data, src, profile, opts, outs, progress)
    t2 = time.perf_counter()

    written_onnx = outs.precision_onnx if build_src is not src else None
    if written_onnx is not None:
        write_bytes_atomic(written_onnx, data)
    if built.timing_cache is not None and outs.timing_cache is not None:
        write_bytes_atomic(outs.timing_cache, built.timing_cache)
    record = _record(src, prec, plan, version, profile, dev, opts, built, t2 - t1)
    sidecar = _sidecar(record, plan, outs.engine, written_onnx, src_path, src, data, built)
    write_engine_pair(outs.engine, built.data, sidecar)
    return EngineBuild(
        record,
        engine=str(outs.engine),
        precision_onnx=str(written_onnx) if written_onnx else None,
        source_onnx=str(src_path),
        sidecar=str(sidecar_path(outs.engine)),
        transform_seconds=round(t1 - t0, 3),
        notes=list(plan.notes),
        tensorrt_warnings=built.tensorrt_warnings,
        precision_reports={**transform, **_recorded_quantization(src)},
    )


def _options(options: dict[str, Any]) -> BuildOptions:
    fields = set(BuildOptions.__dataclass_fields__)
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"engine_from_onnx() got unexpected options: {', '.join(sorted(unknown))}")
    if options.get("timing_cache") is not None:
        options["timing_cache"] = Path(options["timing_cache"])
    options["rtx_targets"] = tuple(options.get("rtx_targets") or ())
    return BuildOptions(**options)


def _build(
    trt: Any,
    plan: BuildPlan,
    data: bytes,
    src: SrxOnnx,
    profile: Profile,
    opts: BuildOptions,
    outs: Outputs,
    progress: Progress,
) -> Any:
    from srx.engines.network import build_engine

    progress.note(f"building a {plan.precision.upper()} {plan.backend} engine ({plan.typing})")
    cache = None
    if outs.timing_cache is not None:
        cache = outs.timing_cache.read_bytes() if outs.timing_cache.is_file() else b""
    bars: dict[str, Any] = {}

    def on_phase(phase: str, step: int, steps: int) -> None:
        if phase not in bars:
            bars[phase] = progress.bar(phase, steps or None, "step")
        elif step:
            bars[phase].update(1)

    try:
        return build_engine(trt, plan, data, profile, in_channels=src.spec.in_channels,
                            workspace_mib=opts.workspace_mib, rtx_targets=list(opts.rtx_targets),
                            timing_cache=cache, on_phase=on_phase)  # fmt: skip
    finally:
        for bar in bars.values():
            bar.close()


def _record(
    src: SrxOnnx,
    prec: str,
    plan: BuildPlan,
    version: str,
    profile: Profile,
    dev: Any | None,
    opts: BuildOptions,
    built: Any,
    build_seconds: float,
) -> dict[str, Any]:
    """The facts of the build that both the sidecar and the report carry."""
    return {
        "backend": plan.backend,
        "backend_version": version,
        "precision": prec,
        "profile": profile.to_dict(),
        "build_seconds": round(build_seconds, 3),
        "engine_bytes": len(built.data),
        "network": plan.typing,
        "device": _device_record(plan.backend, dev, opts.rtx_targets),
        "target": opts.target,
        "dla_core": plan.dla_core,
        "workspace_mib": opts.workspace_mib,
        "pinned_fp32_layers": built.pinned_fp32_layers,
    }


def _sidecar(
    record: dict[str, Any],
    plan: BuildPlan,
    engine: Path,
    precision_onnx: Path | None,
    src_path: Path,
    src: SrxOnnx,
    data: bytes,
    built: Any,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **record,
        "engine": engine.name,
        "engine_sha256": hashlib.sha256(built.data).hexdigest(),
        "spec": src.spec.to_dict(),
        # The ONNX the engine was built from: the precision ONNX written next to it, or the
        # given file when that already had the engine's precision.
        "precision_onnx": precision_onnx.name if precision_onnx else None,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "source_onnx": src_path.name,
        "source_onnx_sha256": sha256_file(src_path),
        "io": {"input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": "float32", "layout": "NCHW"},
        "builder_flags": list(plan.builder_flags),
        "srx_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def _recorded_quantization(src: SrxOnnx) -> dict[str, Any]:
    """For an engine built from an `srx quantize` ONNX: the held-out accuracy quantize measured."""
    if src.precision != "int8":
        return {}
    q = src.report(META_INT8)
    return {"quantize": {k: q[k] for k in ("psnr_drop_db", "psnr_vs_fp32", "held_out_images") if k in q}} if q else {}


def _precision_model(
    src: SrxOnnx, plan: BuildPlan, opts: BuildOptions, progress: Progress
) -> tuple[SrxOnnx, dict[str, Any]]:
    """The ONNX the builder parses for `plan.onnx`, and report fields of the transform."""
    want = plan.onnx
    if want in ("fp32", src.precision) or (want == "int8-fp32" and src.precision == "int8"):
        return src, {}
    if want == "fp16":
        from srx.precision.fp16 import fp16_from_onnx

        progress.note("writing FP16 with FP32 normalisation islands")
        model, rep = fp16_from_onnx(src)
        return model, {"fp16": rep.to_dict()}
    from srx.precision.int8 import int8_from_onnx

    settings = replace(opts.quant or QuantSettings(), high_precision="fp32" if want == "int8-fp32" else "fp16")
    model, rep = int8_from_onnx(src, opts.calib_dir, settings, progress=progress)  # type: ignore[arg-type]
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


def _device_record(backend: str, dev: Any | None, rtx_targets: tuple[str, ...]) -> dict[str, Any]:
    rec: dict[str, Any] = dev.to_dict() if dev is not None else {"name": None, "compute_capability": None}
    if backend == "tensorrt-rtx":
        rec["compute_capabilities"] = list(rtx_targets) if rtx_targets else RTX_DEFAULT_TARGETS
        rec["built_on"] = "gpu" if dev is not None else "cpu (ahead of time)"
    return rec


def format_report(r: dict[str, Any]) -> str:
    """The lines `srx build-engine` prints for `engine_from_onnx`'s report."""
    p = r["profile"]
    lines = [
        f"wrote {r['engine']} ({r['engine_bytes'] / 2**20:.1f} MiB) and {r['sidecar']}",
        f"  backend     {r['backend']} {r['backend_version']}, {r['network']}",
        f"  precision   {r['precision']}" + (f" (built from {r['precision_onnx']})" if r["precision_onnx"] else ""),
        f"  profile     {p['min']} .. {p['max']}, opt {p['opt']}, batch {p['batch']}",
        f"  built in    {r['build_seconds']:.1f} s",
    ]
    q = r.get("quantize") or {}
    if "psnr_drop_db" in q:
        # What `srx quantize` reports: the INT8 graph's accuracy on images held back from calibration.
        held = q.get("held_out_images", "?")
        lines.insert(
            3,
            f"  accuracy    INT8 Y-PSNR drop {q['psnr_drop_db']:.3f} dB on {held} held-back image"
            + ("" if held == 1 else "s")
            + (f" (INT8 vs FP32 {q['psnr_vs_fp32']:.2f} dB)" if "psnr_vs_fp32" in q else ""),
        )
    return "\n".join(lines)
