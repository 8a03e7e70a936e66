"""FP32 ONNX -> explicit INT8 Q/DQ ONNX, calibrated, with sensitive layers kept out (`int8_from_onnx`).

Placement, as TensorRT's explicit quantization wants it: every quantized convolution
gets QuantizeLinear -> DequantizeLinear on its input activation (per tensor) and a
DequantizeLinear on its weight (per output channel, axis 0, weights stored as int8);
outputs are not quantized, so TensorRT fuses DQ -> Conv (+ bias, GELU, residual add)
into one INT8 kernel. Quantization is symmetric with zero points 0, as TensorRT requires:

    q = clamp(round(x / s), -128, 127),   x' = q * s
    weights: s_c = max|W_c| / 127 per output channel (so q stays in -127..127)
    activations: s = a / 127, a chosen on calibration data to minimise E[(x - x')^2]
                 over samples of x (an MSE search over a in [max/100, max])

With `weight_bits=7` the weights use -63..63 (s_c = max|W_c| / 63): for x86 CPUs without
VNNI (AVX2 only), where oneDNN, under OpenVINO, sums each pair of u8 x s8 products in 16
bits before widening; 2 x 255 x 127 overflows that, 2 x 255 x 63 does not (oneDNN's
"Nuances of int8 computations"). The layer choice and the held-out drop are measured with
the 7-bit weights, so the accuracy gate holds for the file that runs.

Which convolutions stay out of INT8 is measured, not guessed: each one is quantized on
its own and the Y-PSNR drop against the FP32 model on calibration crops is its
sensitivity; starting from "all INT8", the most sensitive layers return to higher
precision one by one until the whole model's drop on those crops is below
`target_drop_db`. The result is then measured on images held back from calibration.

The layers that are not INT8 run in FP16 with the FP32 islands of srx.precision.fp16
(`high_precision="fp16"`, the default: the FP16 scales need opset >= 19 and TensorRT
>= 9.1 / TensorRT-RTX), or in FP32 (`high_precision="fp32"`, for TensorRT 8.6, which
then runs the FP32 remainder in FP16 with the builder flag).

Why an own pass rather than onnxruntime's quantize_static: the placement above, symmetric
activations and the per-layer choice are ~200 lines over graphs whose layers we know;
quantize_static would need its QDQ format, symmetric and per-channel options, op-type
restrictions and node exclusion lists set just so, and would still not decide which
layers to exclude. onnxruntime (the `cpu` extra) is used only to run calibration.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.errors import BadInput, CheckFailed, MissingDependency
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.export.metadata import (
    HIGH_PRECISIONS,
    META_INT8,
    META_PRECISION,
    SrxOnnx,
    opset_of,
    read_srx_onnx,
    set_metadata,
    srx_onnx_from_model,
)
from srx.precision.calib import (
    Pair,
    batches_by_size,
    center_pair,
    evaluation_set_warning,
    list_images,
    random_crop_pair,
    split_images,
)
from srx.precision.graph import check_pass_output, import_onnx, module_path
from srx.precision.quality import mse_y, psnr_from_mse, psnr_y
from srx.progress import Progress

if TYPE_CHECKING:
    import onnx

    from srx.precision.result import QuantizeResult

MIN_FP16_QDQ_OPSET = 19  # DequantizeLinear takes FP16 scales from opset 19 on

# Samples kept per calibration image and tensor for the MSE range search.
SAMPLES_PER_ITEM = 4096


@dataclass(frozen=True)
class QuantSettings:
    """Calibration and selection settings (CLI flags of `srx quantize`)."""

    calibration_images: int = 64
    held_out_images: int = 8
    crop: int = 96  # LR crop side for calibration
    sensitivity_crops: int = 16
    sensitivity_crop: int = 48
    held_out_max_side: int = 128  # LR side cap for held-out images (centre crop)
    target_drop_db: float = 0.03
    high_precision: str = "fp16"
    method: str = "mse"  # activation range: mse | max | percentile
    seed: int = 0
    batch: int = 8
    weight_bits: int = 8  # 7: for CPUs without VNNI (module docstring)

    @property
    def weight_max(self) -> int:
        return 2 ** (self.weight_bits - 1) - 1


@dataclass(frozen=True)
class ConvSite:
    """One quantizable convolution: its layer name, node, input activation and weight."""

    layer: str
    node: str
    act: str
    weight: str


@dataclass
class Int8Report:
    calibration_images: int = 0
    held_out_images: int = 0
    held_out_names: list[str] = field(default_factory=list)
    psnr_vs_fp32: float = 0.0
    psnr_fp32_db: float = 0.0
    psnr_int8_db: float = 0.0
    psnr_drop_db: float = 0.0
    calib_drop_db: float = 0.0
    all_int8_calib_drop_db: float = 0.0
    sensitivity_sum_db: float = 0.0
    target_drop_db: float = 0.0
    int8_layers: list[str] = field(default_factory=list)
    kept_layers: list[str] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    high_precision: str = "fp16"
    method: str = "mse"
    weight_bits: int = 8
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        r = {k: v for k, v in self.__dict__.items()}
        for k in (
            "psnr_vs_fp32",
            "psnr_fp32_db",
            "psnr_int8_db",
            "psnr_drop_db",
            "calib_drop_db",
            "all_int8_calib_drop_db",
            "sensitivity_sum_db",
        ):
            r[k] = round(float(r[k]), 4)
        r["seconds"] = {k: round(v, 2) for k, v in self.seconds.items()}
        return r


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise MissingDependency("onnxruntime", "cpu", "INT8 calibration") from e
    return onnxruntime


# -- graph sites and Q/DQ insertion ---------------------------------------------------------


def conv_sites(model: onnx.ModelProto) -> list[ConvSite]:
    """Convolutions whose input is image data and whose weight is a 4-D initializer."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    sites = []
    for node in g.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        w = inits.get(node.input[1])
        if w is None or len(w.dims) != 4:
            continue
        sites.append(ConvSite(module_path(node.name) or node.name, node.name, node.input[0], node.input[1]))
    return sites


def _fp16_ceil(x: np.ndarray) -> np.ndarray:
    """The smallest FP16 values >= x (as float32): scales that FP16 stores exactly and that never clip."""
    x = np.atleast_1d(np.asarray(x, dtype=np.float32))
    h = x.astype(np.float16)
    low = h.astype(np.float32) < x
    h[low] = np.nextafter(h[low], np.float16(np.inf))
    return h.astype(np.float32)


def _scale(amax: np.ndarray, fp16: bool, qmax: int = 127) -> np.ndarray:
    s = np.where(amax > 0, amax / float(qmax), 1.0).astype(np.float32)
    # Scales below FP16's smallest subnormal would round to 0.
    s = np.maximum(s, np.float32(2.0**-24) if fp16 else np.float32(1e-12))
    return _fp16_ceil(s) if fp16 else s


def qdq_model(
    base: onnx.ModelProto,
    sites: Sequence[ConvSite],
    act_amax: dict[str, float],
    quantize: set[str],
    *,
    fp16_scales: bool,
    weight_max: int = 127,
) -> onnx.ModelProto:
    """A copy of `base` with Q/DQ on the convolutions named in `quantize` (by layer), the
    weights' integers within +-`weight_max`."""
    onnx = import_onnx()
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(base)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    chosen = {s.node: s for s in sites if s.layer in quantize}
    act_dq: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    zero = numpy_helper.from_array(np.array(0, dtype=np.int8), "qdq.zero_point")
    g.initializer.append(zero)
    for node in g.node:
        site = chosen.get(node.name)
        if site is None:
            nodes.append(node)
            continue
        if site.act not in act_dq:
            s = _scale(np.array([act_amax[site.act]], dtype=np.float32), fp16_scales)
            scale = numpy_helper.from_array(s.reshape(()), f"{site.act}.qdq.scale")
            g.initializer.append(scale)
            q = f"{site.act}.qdq.q"
            dq = f"{site.act}.qdq.dq"
            nodes.append(
                helper.make_node(
                    "QuantizeLinear", [site.act, scale.name, zero.name], [q], name=f"{site.layer}/input_QuantizeLinear"
                )
            )
            nodes.append(
                helper.make_node(
                    "DequantizeLinear", [q, scale.name, zero.name], [dq], name=f"{site.layer}/input_DequantizeLinear"
                )
            )
            act_dq[site.act] = dq
        w = numpy_helper.to_array(inits[site.weight]).astype(np.float32)
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        ws = _scale(amax, fp16_scales, weight_max)
        wq = np.clip(np.round(w / ws[:, None, None, None]), -weight_max, weight_max).astype(np.int8)
        wq_t = numpy_helper.from_array(wq, f"{site.weight}.int8")
        ws_t = numpy_helper.from_array(ws, f"{site.weight}.qdq.scale")
        wz_t = numpy_helper.from_array(np.zeros(w.shape[0], dtype=np.int8), f"{site.weight}.qdq.zero_point")
        g.initializer.extend([wq_t, ws_t, wz_t])
        wdq = f"{site.weight}.qdq.dq"
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [wq_t.name, ws_t.name, wz_t.name],
                [wdq],
                name=f"{site.layer}/weight_DequantizeLinear",
                axis=0,
            )
        )
        node.input[0] = act_dq[site.act]
        node.input[1] = wdq
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    set_metadata(model, {META_PRECISION: "int8"})
    return model


MASK_INPUT = "srx.int8_mask"


def switchable_model(
    base: onnx.ModelProto,
    sites: Sequence[ConvSite],
    act_amax: dict[str, float],
    *,
    fp16_scales: bool,
    weight_max: int = 127,
) -> onnx.ModelProto:
    """One graph in which each convolution's quantization is switched on by a mask input.

    For convolution k with mask m_k (element k of the float input `srx.int8_mask`):
        x' = x + m_k * (DQ(Q(x)) - x),   W' = W + m_k * (DQ(W_int8) - W)
    m_k = 1 gives the Q/DQ values of `qdq_model(..., {layer_k})` (x + (x_q - x) is x_q up
    to float rounding, in practice bit for bit), m_k = 0 exactly the FP32 ones. The per-layer sensitivity then needs one onnxruntime session instead of one per
    layer (building a session costs more than running the small calibration batch).
    """
    import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    everything = {s.layer for s in sites}
    full = qdq_model(base, sites, act_amax, everything, fp16_scales=fp16_scales, weight_max=weight_max)
    g = full.graph
    float_weight = {i.name: i for i in base.graph.initializer}
    producer = {o: n for n in g.node for o in n.output}
    convs = {s.node: (k, s) for k, s in enumerate(sites)}
    g.input.append(helper.make_tensor_value_info(MASK_INPUT, TensorProto.FLOAT, [len(sites)]))
    nodes: list[onnx.NodeProto] = []
    for node in g.node:
        hit = convs.get(node.name)
        if hit is None:
            nodes.append(node)
            continue
        k, site = hit
        scope = f"{site.layer}/mask"
        idx = numpy_helper.from_array(np.array(k, dtype=np.int64), f"{scope}.index")
        g.initializer.append(idx)
        m = f"{scope}.m"
        nodes.append(helper.make_node("Gather", [MASK_INPUT, idx.name], [m], name=f"{scope}/Gather", axis=0))
        # The float originals: the activation feeding Q, the weight before quantization.
        x = producer[producer[node.input[0]].input[0]].input[0]
        if site.weight not in {i.name for i in g.initializer}:
            g.initializer.append(float_weight[site.weight])
        for i, orig in ((0, x), (1, site.weight)):
            d = f"{scope}.{i}.delta"
            nodes.append(helper.make_node("Sub", [node.input[i], orig], [d], name=f"{scope}/Sub_{i}"))
            nodes.append(helper.make_node("Mul", [d, m], [f"{d}.m"], name=f"{scope}/Mul_{i}"))
            nodes.append(helper.make_node("Add", [orig, f"{d}.m"], [f"{scope}.{i}.out"], name=f"{scope}/Add_{i}"))
            node.input[i] = f"{scope}.{i}.out"
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    return full


def upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The model at `opset` (ONNX version converter) if it is older; unchanged otherwise."""
    if opset_of(model) >= opset:
        return model
    from onnx import version_converter

    meta = [(p.key, p.value) for p in model.metadata_props]
    out = version_converter.convert_version(model, opset)
    del out.metadata_props[:]
    for k, v in meta:
        out.metadata_props.add(key=k, value=v)
    return out


# -- running models -----------------------------------------------------------------------


def session(model: onnx.ModelProto | bytes, *, threads: int = 0) -> Any:
    """A CPU session without graph optimisations: it starts 4x faster, runs as fast on
    these graphs, and rounds every FP16 op's output to FP16 (no fused casts), which is
    the conservative reading of FP16 accuracy."""
    ort = import_ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def run_batches(
    sess: Any, batches: Sequence[Sequence[Pair]], outputs: list[str] | None = None
) -> list[list[np.ndarray]]:
    """Outputs of `sess` per batch (`outputs` names, default the model output)."""
    names = outputs or [OUTPUT_NAME]
    res = []
    for batch in batches:
        lr = np.stack([p.lr for p in batch])
        res.append(sess.run(names, {INPUT_NAME: lr}))
    return res


# -- calibration ----------------------------------------------------------------------------


def collect_ranges(
    base: onnx.ModelProto,
    tensors: list[str],
    batches: Sequence[Sequence[Pair]],
    *,
    method: str,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Per tensor, the clipping range a (scale = a / 127) from calibration batches."""
    onnx = import_onnx()
    from onnx import TensorProto, helper

    model = onnx.ModelProto()
    model.CopyFrom(base)
    known = {o.name for o in model.graph.output}
    for t in tensors:
        if t not in known:
            model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = session(model)
    rng = np.random.default_rng(seed)
    amax = dict.fromkeys(tensors, 0.0)
    samples: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    bar = (progress or Progress.off()).bar("calibrating", sum(len(b) for b in batches), "crop")
    for batch in batches:
        outs = sess.run(tensors, {INPUT_NAME: np.stack([p.lr for p in batch])})
        bar.update(len(batch))
        for t, v in zip(tensors, outs, strict=True):
            if not np.all(np.isfinite(v)):
                raise BadInput(f"calibration produced non-finite values at {t}: check the calibration images")
            amax[t] = max(amax[t], float(np.abs(v).max()))
            for item in v.reshape(v.shape[0], -1):
                k = min(SAMPLES_PER_ITEM, item.size)
                samples[t].append(item[rng.integers(0, item.size, k)])
    bar.close()
    return {t: choose_range(np.concatenate(samples[t]), amax[t], method) for t in tensors}


def choose_range(x: np.ndarray, amax: float, method: str) -> float:
    """The clipping range a for samples x with observed max |x| = amax.

    max: a = amax. percentile: the 99.99th percentile of |x|. mse: argmin over 100
    candidates a in [amax/100, amax] (geometric) of mean((x - Q(x; a / 127))^2).
    """
    if amax <= 0:
        return 1.0
    if method == "max":
        return amax
    if method == "percentile":
        return float(max(np.percentile(np.abs(x), 99.99), amax * 1e-3))
    if method != "mse":
        raise ValueError(f"unknown range method {method!r}")
    x = x.astype(np.float32)
    best, best_err = amax, math.inf
    for a in np.geomspace(amax / 100.0, amax, 100):
        s = a / 127.0
        err = float(np.mean((x - np.clip(np.round(x / s), -128, 127) * s) ** 2))
        if err < best_err:
            best, best_err = float(a), err
    return best


# -- the whole quantization ------------------------------------------------------------------


@dataclass
class _Data:
    calib: list[list[Pair]]
    sens: list[list[Pair]]
    held: list[list[Pair]]
    n_calib: int
    held_names: list[str]


def _load_data(spec_scale: int, min_lr: int, calib_dir: str | Path, st: QuantSettings, progress: Progress) -> _Data:
    files = list_images(calib_dir)
    split = split_images(files, held_out=st.held_out_images, calibration=st.calibration_images, seed=st.seed)
    rng = random.Random(st.seed)
    n_sens = len(split.calibration[: st.sensitivity_crops])
    bar = progress.bar("reading images", len(split.calibration) + n_sens + len(split.held_out), "img")

    def counted(pair: Pair | None) -> Pair | None:
        bar.update(1)
        return pair

    calib = [
        p
        for f in split.calibration
        if (p := counted(random_crop_pair(f, scale=spec_scale, lr_size=st.crop, min_lr=min_lr, rng=rng)))
    ]
    sens = [
        p
        for f in split.calibration[: st.sensitivity_crops]
        if (p := counted(random_crop_pair(f, scale=spec_scale, lr_size=st.sensitivity_crop, min_lr=min_lr, rng=rng)))
    ]
    held = [
        p
        for f in split.held_out
        if (p := counted(center_pair(f, scale=spec_scale, max_lr=st.held_out_max_side, min_lr=min_lr)))
    ]
    bar.close()
    if not calib or not held:
        raise BadInput(
            f"the images in {calib_dir} are too small for this model (LR side at least {min_lr} pixels, "
            f"so images of at least {min_lr * spec_scale} pixels a side): use larger training images"
        )
    return _Data(
        calib=batches_by_size(calib, st.batch),
        sens=batches_by_size(sens or calib[: st.sensitivity_crops], st.batch),
        held=[[p] for p in held],
        n_calib=len(calib),
        held_names=[p.name for p in held],
    )


def _mean_mse(outs: list[list[np.ndarray]], batches: Sequence[Sequence[Pair]], scale: int) -> float:
    errs = [
        mse_y(o, p.hr, scale, quantize=False)
        for out, batch in zip(outs, batches, strict=True)
        for o, p in zip(out[0], batch, strict=True)
    ]
    return float(np.mean(errs))


def _drop_db(ref_mse: float, test_mse: float) -> float:
    return psnr_from_mse(ref_mse) - psnr_from_mse(test_mse)


def int8_from_onnx(
    src: SrxOnnx,
    calib_dir: str | Path,
    settings: QuantSettings = QuantSettings(),
    *,
    progress: Progress | None = None,
) -> tuple[SrxOnnx, Int8Report]:
    """Calibrate, measure per-layer sensitivity, choose the INT8 layers and report held-out accuracy."""
    st = settings
    progress = progress or Progress.off()
    _check_quantizable(src, st)
    import_ort()
    t0 = time.perf_counter()
    scale = src.spec.scale
    data = _load_data(scale, src.spec.min_size, calib_dir, st, progress)
    base, sites = _graph_to_quantize(src, st)
    report = Int8Report(
        calibration_images=data.n_calib,
        held_out_images=sum(len(b) for b in data.held),
        held_out_names=data.held_names,
        target_drop_db=st.target_drop_db,
        high_precision=st.high_precision,
        method=st.method,
        weight_bits=st.weight_bits,
    )

    progress.note(f"calibrating the inputs of {len(sites)} convolutions on {data.n_calib} crops")
    acts = sorted({s.act for s in sites})
    ranges = collect_ranges(base, acts, data.calib, method=st.method, seed=st.seed, progress=progress)
    t1 = time.perf_counter()

    fp32_sess = session(base)
    ref_sens = _mean_mse(run_batches(fp32_sess, data.sens), data.sens, scale)
    candidates = _Candidates(base, sites, ranges, st, data.sens, scale, ref_sens)
    sensitivity = _layer_sensitivity(candidates, progress)
    t2 = time.perf_counter()

    quantized, kept, drop = _choose_int8_layers(candidates, sensitivity, report, progress.note)
    t3 = time.perf_counter()

    final = candidates.build(quantized, final=True)
    _measure_held_out(report, fp32_sess, final, data.held, scale, progress.note)
    t4 = time.perf_counter()

    layers = [s.layer for s in sites]
    order = sorted(layers, key=lambda k: -sensitivity[k])
    report.calib_drop_db = drop
    report.int8_layers = [k for k in layers if k in quantized]
    report.kept_layers = kept
    report.sensitivity = [{"layer": k, "drop_db": round(sensitivity[k], 5), "int8": k in quantized} for k in order]
    report.seconds = {
        "calibrate": t1 - t0,
        "sensitivity": t2 - t1,
        "select": t3 - t2,
        "evaluate": t4 - t3,
        "total": t4 - t0,
    }
    meta = _int8_metadata(st, report, data.n_calib)
    set_metadata(final, {META_PRECISION: "int8", META_INT8: json.dumps(meta, sort_keys=True)})
    check_pass_output(final, "INT8")
    return srx_onnx_from_model(final, origin="INT8 model"), report


def _check_quantizable(src: SrxOnnx, st: QuantSettings) -> None:
    if src.precision != "fp32":
        raise BadInput(f"the model is already {src.precision.upper()}; quantize the FP32 ONNX from 'srx export'")
    if st.high_precision not in HIGH_PRECISIONS:
        raise BadInput(f"--high-precision {st.high_precision!r}: use fp16 or fp32")


def _graph_to_quantize(src: SrxOnnx, st: QuantSettings) -> tuple[onnx.ModelProto, list[Any]]:
    """The FP32 graph (at the opset FP16 scales need, for --high-precision fp16) and its convolutions."""
    base = src.graph()
    if st.high_precision == "fp16":
        base = upgrade_opset(base, MIN_FP16_QDQ_OPSET)
    sites = conv_sites(base)
    if not sites:
        raise BadInput(
            f"{src.path or 'the model'} has no convolutions to quantize: it is not an srx model; export one with 'srx export'"
        )
    return base, sites


@dataclass
class _Candidates:
    """Q/DQ models of `base` with a chosen set of INT8 convolutions, and their PSNR drop on
    the sensitivity crops against the FP32 model's (`ref_sens`, a mean squared error)."""

    base: onnx.ModelProto
    sites: list[Any]
    ranges: dict[str, float]
    st: QuantSettings
    sens: list[list[Pair]]
    scale: int
    ref_sens: float

    def build(self, quantized: set[str], final: bool = False) -> onnx.ModelProto:
        fp16 = self.st.high_precision == "fp16"
        m = qdq_model(self.base, self.sites, self.ranges, quantized, fp16_scales=fp16, weight_max=self.st.weight_max)
        if fp16 and final:
            from srx.precision.fp16 import fp16_from_onnx

            m = fp16_from_onnx(srx_onnx_from_model(m, origin="Q/DQ model"))[0].model
        return m

    def drop(self, quantized: set[str]) -> float:
        outs = run_batches(session(self.build(quantized, final=True)), self.sens)
        return _drop_db(self.ref_sens, _mean_mse(outs, self.sens, self.scale))


def _layer_sensitivity(c: _Candidates, progress: Progress) -> dict[str, float]:
    """Each convolution's PSNR drop on the sensitivity crops when it alone is INT8, from one
    model whose per-layer switch (MASK_INPUT) selects it: no model built per layer."""
    layers = [s.layer for s in c.sites]
    fp16 = c.st.high_precision == "fp16"
    switch = session(switchable_model(c.base, c.sites, c.ranges, fp16_scales=fp16, weight_max=c.st.weight_max))
    sensitivity = {}
    bar = progress.bar(f"layer sensitivity ({sum(len(b) for b in c.sens)} crops)", len(layers), "layer")
    for k, layer in enumerate(layers):
        mask = np.zeros(len(layers), dtype=np.float32)
        mask[k] = 1.0
        outs = [switch.run([OUTPUT_NAME], {INPUT_NAME: np.stack([p.lr for p in b]), MASK_INPUT: mask}) for b in c.sens]
        sensitivity[layer] = _drop_db(c.ref_sens, _mean_mse(outs, c.sens, c.scale))
        bar.update(1)
    bar.close()
    return sensitivity


def _choose_int8_layers(
    c: _Candidates, sensitivity: dict[str, float], report: Int8Report, say: Callable[[str], None]
) -> tuple[set[str], list[str], float]:
    """Every convolution INT8, then the most sensitive kept in high precision one by one until
    the drop on the calibration crops is within the target: (INT8 layers, kept layers, drop)."""
    layers = [s.layer for s in c.sites]
    order = sorted(layers, key=lambda k: -sensitivity[k])
    st = c.st
    kept: list[str] = []
    quantized = set(layers)
    drop = c.drop(quantized)
    report.all_int8_calib_drop_db = drop
    report.sensitivity_sum_db = float(sum(sensitivity.values()))
    say(
        f"every convolution INT8: drop on calibration crops {drop:.3f} dB (single-layer drops sum to "
        f"{report.sensitivity_sum_db:.3f} dB)"
    )
    while drop > st.target_drop_db and len(kept) < len(order):
        if len(kept) == len(order) - 1:
            raise CheckFailed(
                f"even one INT8 convolution loses {drop:.3f} dB on the calibration crops, over --target-drop "
                f"{st.target_drop_db:g}: no INT8 model is worth writing; raise --target-drop or build with --fp16"
            )
        kept.append(order[len(kept)])
        quantized = set(layers) - set(kept)
        drop = c.drop(quantized)
        say(f"kept {kept[-1]} in {st.high_precision.upper()}: drop on calibration crops {drop:.3f} dB")
    return quantized, kept, drop


def _measure_held_out(
    report: Int8Report,
    fp32_sess: Any,
    final: onnx.ModelProto,
    held: list[list[Pair]],
    scale: int,
    say: Callable[[str], None],
) -> None:
    """PSNR-Y of the FP32 and the INT8 model on the held-back images, and of one against the other."""
    say(f"measuring the accuracy on {len(held)} held-back image{'s' if len(held) != 1 else ''}")
    held_fp32 = run_batches(fp32_sess, held)
    held_int8 = run_batches(session(final), held)
    p32, p8, vs = [], [], []
    for a, b, batch in zip(held_fp32, held_int8, held, strict=True):
        for ya, yb, p in zip(a[0], b[0], batch, strict=True):
            p32.append(psnr_y(ya, p.hr, scale))
            p8.append(psnr_y(yb, p.hr, scale))
            vs.append(psnr_y(yb, ya, scale))
    report.psnr_fp32_db = float(np.mean(p32))
    report.psnr_int8_db = float(np.mean(p8))
    report.psnr_drop_db = report.psnr_fp32_db - report.psnr_int8_db
    report.psnr_vs_fp32 = float(np.mean([v for v in vs if math.isfinite(v)] or [math.inf]))


def _int8_metadata(st: QuantSettings, report: Int8Report, n_calib: int) -> dict[str, Any]:
    """The srx.int8 metadata entry (read back by srx.export.metadata.precision_report)."""
    return {
        "high_precision": st.high_precision,
        "method": st.method,
        "weight_bits": st.weight_bits,
        "int8_layers": len(report.int8_layers),
        "kept_layers": report.kept_layers,
        "calibration_images": n_calib,
        "crop": st.crop,
        "seed": st.seed,
        "held_out_images": report.held_out_images,
        "psnr_drop_db": round(report.psnr_drop_db, 4),
        "psnr_vs_fp32": round(report.psnr_vs_fp32, 3),
    }


def default_int8_path(onnx_path: Path) -> Path:
    stem = onnx_path.stem
    return onnx_path.with_name(f"{stem[:-5] if stem.endswith('.fp32') else stem}.int8.onnx")


def quantize_file(
    onnx_path: str | Path,
    calib_dir: str | Path,
    output: str | Path | None = None,
    *,
    settings: QuantSettings = QuantSettings(),
    max_psnr_drop: float | None = None,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """`srx quantize`: check inputs, quantize, gate on `max_psnr_drop`, write the Q/DQ ONNX.

    Nothing is written when the gate fails (CheckFailed) or anything else goes wrong.
    """
    from srx.fileio import check_writable, write_bytes_atomic
    from srx.precision.result import QuantizeResult

    src_path = Path(onnx_path)
    _check_settings(settings, max_psnr_drop)
    src = read_srx_onnx(src_path, keep_model=True)
    out = Path(output) if output is not None else default_int8_path(src_path)
    if out.resolve() == src_path.resolve():
        raise BadInput(f"-o {out} is the input model: choose another output file")
    check_writable(out)
    files = list_images(calib_dir)
    if len(files) < 2:
        raise BadInput(
            f"--calib-dir {calib_dir} holds {len(files)} image; calibration needs at least 2 (one is held back): add training images"
        )
    if warn is not None and evaluation_set_warning(calib_dir, files):
        warn(evaluation_set_warning(calib_dir, files))
    model, report = int8_from_onnx(src, calib_dir, settings, progress=progress)
    result = QuantizeResult(str(out), report, max_psnr_drop, str(src_path))
    if max_psnr_drop is not None and report.psnr_drop_db > max_psnr_drop:
        raise CheckFailed(
            f"INT8 loses {report.psnr_drop_db:.3f} dB Y-PSNR on {report.held_out_images} held-out images, over "
            f"--max-psnr-drop {max_psnr_drop:g}; nothing was written: lower --target-drop or use FP16"
        )
    write_bytes_atomic(out, model.model.SerializeToString())
    return result


def _check_settings(st: QuantSettings, max_psnr_drop: float | None) -> None:
    for name, value, low in (
        ("--calib-images", st.calibration_images, 1),
        ("--held-out", st.held_out_images, 1),
        ("--crop", st.crop, 8),
        ("--sensitivity-crops", st.sensitivity_crops, 1),
    ):
        if value < low:
            raise BadInput(f"{name} {value}: must be at least {low}; use {low} or more")
    if not st.target_drop_db >= 0:
        raise BadInput(f"--target-drop {st.target_drop_db}: must be >= 0 dB; use 0 or more")
    if max_psnr_drop is not None and not max_psnr_drop >= 0:
        raise BadInput(f"--max-psnr-drop {max_psnr_drop}: must be >= 0 dB; use 0 or more")
    if st.high_precision not in HIGH_PRECISIONS:
        raise BadInput(f"--high-precision {st.high_precision!r}: use fp16 or fp32")
    if st.weight_bits not in (7, 8):
        raise BadInput(f"--weight-bits {st.weight_bits}: use 8, or 7 for CPUs without VNNI")


def format_report(r: dict[str, Any]) -> str:
    """The lines `srx quantize` prints for `quantize_file`'s result."""
    n_int8, kept = len(r["int8_layers"]), r["kept_layers"]
    hp = str(r.get("high_precision", "fp16")).upper()
    held = r["held_out_images"]
    notes = [f"{r['weight_bits']}-bit weights"] if r.get("weight_bits", 8) != 8 else []
    notes += [f"kept in {hp}: {', '.join(kept)}"] if kept else []
    return "\n".join(
        [
            f"wrote {r['onnx']}",
            f"  INT8 layers   {n_int8} of {n_int8 + len(kept)}" + (f" ({'; '.join(notes)})" if notes else ""),
            f"  calibration   {r['calibration_images']} crops; {held} image{'s' if held != 1 else ''} held back",
            f"  held-out      Y-PSNR {r['psnr_fp32_db']:.3f} dB FP32 -> {r['psnr_int8_db']:.3f} dB INT8 "
            f"(drop {r['psnr_drop_db']:.3f} dB); INT8 vs FP32 {r['psnr_vs_fp32']:.2f} dB",
        ]
    )
