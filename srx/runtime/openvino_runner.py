"""OpenVINO runners on the CPU: FP32, BF16 and INT8 (srx's Q/DQ ONNX) for srx's ONNX I/O contract.

OpenVINO reads srx's exact ONNX directly. The ONNX is read once per runner; each input
shape gets its own compiled model (the dynamic height / width pinned with `reshape`, so
OpenVINO folds the pooling windows' index arithmetic and picks blocked layouts for that
size), kept in a small cache as onnxruntime's sessions are (srx.runtime.ort_runner).

Precision is OpenVINO's `INFERENCE_PRECISION_HINT`: `f32` keeps the graph's own precision
(an FP32 ONNX runs in FP32; a Q/DQ ONNX from `srx quantize` runs its quantized convolutions
in INT8 and the rest in FP32), `bf16` runs the floating-point part in bfloat16 on CPUs with
native BF16 (AVX512_BF16 or AMX). The INT8 runner runs a Q/DQ ONNX with the floating-point
rest in BF16 where the CPU has it: 1.24x faster than with an FP32 rest for 0.01 dB on Set5
(docs/bench.md, OpenVINO).

INT8 convolutions run in INT8 where that is exact: on CPUs with VNNI or AMX, or with weights
within +-64 (`srx quantize --weight-bits 7`); an 8-bit file on an x86 CPU without VNNI runs
its INT8 arithmetic emulated in FP32 kernels (same values, FP32 speed), since OpenVINO's INT8
convolutions would overflow there (srx.runtime.openvino_graph.for_cpu).

Latency vs throughput: `hint="latency"` compiles for one request using every thread;
`hint="throughput"` gives OpenVINO its streams and runs a batch of N images as N requests
in flight. The default, `hint="auto"`, is latency for one image and throughput for a batch
(`srx bench --batch N`, `srx upscale` on videos with `--batch N`); bench/openvino_cpu.py
measures both. An INT8 Q/DQ model always runs with the latency hint (see `_hint_for`).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from srx.errors import BadInput, first_line
from srx.runtime.base import Runner
from srx.runtime.device import cpu_count

if TYPE_CHECKING:
    from srx.runtime.source import ModelSource

HINTS = ("auto", "latency", "throughput")


INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # sums u8 x s8 products in 32 bits


def has_int8_dot_product() -> bool:
    """Whether this CPU sums u8 x s8 products in 32 bits (VNNI, AVX-VNNI or AMX-INT8)."""
    from srx.runtime.device import cpu_info

    return any(f in cpu_info()["flags"] for f in INT8_DOT_PRODUCT_FLAGS)


def int8_kernels_exact(weight_max: int) -> bool:
    """Whether OpenVINO's INT8 convolutions compute a Q/DQ file whose weights reach
    +-`weight_max` exactly on this CPU."""
    from srx.runtime.openvino_graph import NO_VNNI_WEIGHT_MAX

    return has_int8_dot_product() or weight_max <= NO_VNNI_WEIGHT_MAX


def emulated_int8_warning(source: ModelSource, backend: str) -> str | None:
    """What to tell a user before `backend` runs `source`'s INT8 Q/DQ file emulated in
    floating point on this CPU (8-bit weights, no VNNI), else None."""
    if not backend.startswith("openvino") or source.precision != "int8" or source.kind != "onnx":
        return None
    import onnx

    from srx.runtime.openvino_graph import int8_weight_max

    if int8_kernels_exact(int8_weight_max(onnx.load(str(source.onnx_path())))):
        return None
    return (
        f"{backend} runs {source.origin}'s INT8 in floating-point kernels on this CPU, no faster than FP32: it has "
        "no VNNI and the file's weights use 8 bits, which OpenVINO's INT8 kernels would overflow; for INT8 speed "
        "make the file with srx quantize --weight-bits 7"
    )


@functools.cache
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of the CPU ('FP32', 'BF16', 'INT8', ...)."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVINORunner(Runner):
    """Options: threads (default: the CPUs this process may use), hint ('auto' default,
    'latency', 'throughput'; see the module docstring), requests (requests in flight in
    throughput mode; default: what OpenVINO chooses for the CPU), rewrite (default True:
    srx.runtime.openvino_graph.for_cpu on each compiled size; False compiles the graph as
    read, for comparisons)."""

    name = "openvino"
    inference_precision: ClassVar[str] = "f32"
    max_models = 2
    profile_unavailable = "a batch runs as overlapping requests (THROUGHPUT hint): profile one image (--batch 1)"

    def __init__(self, source: ModelSource, device: str = "cpu", **options: Any) -> None:
        super().__init__(source, device, **options)
        # What the model computes in: an INT8 ONNX run with the f32 hint is an INT8 run.
        self.precision = self._precision(source.precision)  # type: ignore[misc]

    def _precision(self, model_precision: str) -> str:
        return model_precision

    def _activate(self) -> None:
        import openvino as ov

        hint = self.options.get("hint") or "auto"
        if hint not in HINTS:
            raise BadInput(f"unknown OpenVINO performance hint {hint!r}: choose from {', '.join(HINTS)}")
        self._hint = hint
        self._threads = int(self.options.get("threads") or cpu_count())
        self._core = ov.Core()
        self._rewrite: dict[str, Any] = {}
        self._size_rewrites: dict[str, dict[str, int]] = {}
        self._int8_kernels = False
        self._convolutions: dict[str, int] = {}
        model = self._onnx()  # an export's own errors (a full disk) stay what they are
        try:
            self._model = self._core.read_model(model)
        except Exception as e:  # OpenVINO raises RuntimeError with a multi-line report
            raise BadInput(f"OpenVINO cannot read {self.source.origin}: {first_line(e, 200)}") from e
        self._in = _port_name(self._model.inputs, "lr")
        self._out = _port_name(self._model.outputs, "sr")
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def _onnx(self) -> Any:
        """The ONNX for OpenVINO: a path, or for a Q/DQ file its bytes after `for_openvino`."""
        path = str(self.source.onnx_path())
        if self.source.precision != "int8":
            return path
        import io

        import onnx

        from srx.runtime.openvino_graph import for_openvino

        try:
            model = onnx.load(path)
        except Exception as e:  # DecodeError, OSError...
            raise BadInput(f"OpenVINO cannot load {path}: not a readable ONNX file ({type(e).__name__})") from e
        model, report = for_openvino(model)
        self._rewrite = report.to_dict()
        self._int8_kernels = int8_kernels_exact(report.weight_max)
        return io.BytesIO(model.SerializeToString())

    def _hint_for(self, batch: int) -> str:
        if self.source.precision == "int8":
            # OpenVINO 2026.4 ran an INT8 Q/DQ model wrongly in 3 of 32 fresh processes with
            # THROUGHPUT (2 streams), never with LATENCY (bench/openvino_int8_streams.py).
            return "latency"
        if self._hint == "auto":
            return "latency" if batch == 1 else "throughput"
        return self._hint

    def _config(self, hint: str) -> dict[str, Any]:
        return {
            "PERFORMANCE_HINT": hint.upper(),
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "INFERENCE_NUM_THREADS": self._threads,
        }

    def _compiled_for(self, shape: tuple[int, ...]) -> Any:
        """(compiled model, an infer request) for one input shape, compiled on first use;
        in throughput mode the model is compiled for one image, run once per image."""
        hint = self._hint_for(shape[0])
        if hint == "throughput":
            shape = (1, *shape[1:])
        key = (hint, *shape)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        try:
            model = self._sized_model(shape)
            compiled = self._core.compile_model(model, "CPU", self._config(hint))
        except Exception as e:
            raise BadInput(
                f"OpenVINO cannot compile {self.source.origin} for input {'x'.join(map(str, shape))}: {first_line(e, 200)}"
            ) from e
        entry = (compiled, compiled.create_infer_request())
        self._convolutions = _convolution_precisions(compiled)
        self._compiled[key] = entry
        while len(self._compiled) > self.max_models:
            self._compiled.popitem(last=False)
        return entry

    def _sized_model(self, shape: tuple[int, ...]) -> Any:
        """The read model for one input shape, with `for_cpu`'s rewrites for that size."""
        from srx.runtime.openvino_graph import fold_constants, for_cpu

        model = self._model.clone()
        model.reshape({self._in: list(shape)})
        if self.options.get("rewrite", True):
            report = for_cpu(model, int8_weights=self._int8_kernels)
            self._size_rewrites["x".join(map(str, shape))] = report.to_dict()
        elif self.source.precision == "int8" and not self._int8_kernels:
            fold_constants(model)  # as read, its INT8 convolutions would overflow on this CPU
        return model

    def _deactivate(self) -> None:
        self._compiled.clear()
        self._model = None
        self._core = None

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Compile for an input shape now (so it is not counted in a timed run)."""
        self._compiled_for(tuple(shape))

    def execute(self, staged: np.ndarray) -> np.ndarray:
        compiled, request = self._compiled_for(tuple(staged.shape))
        if self._hint_for(staged.shape[0]) == "throughput":
            return self._in_flight(compiled, staged)
        # share_inputs: OpenVINO reads the caller's array instead of copying it; the output
        # is copied out, since the request reuses its buffer on the next call.
        result = request.infer({self._in: staged}, share_inputs=True)
        return np.array(result[self._out], dtype=np.float32, copy=True)

    def _in_flight(self, compiled: Any, batch: np.ndarray) -> np.ndarray:
        """Each image of the batch as its own request, as many in flight as OpenVINO's streams."""
        import openvino as ov

        jobs = int(self.options.get("requests") or compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = ov.AsyncInferQueue(compiled, max(1, jobs))
        outputs: list[np.ndarray | None] = [None] * batch.shape[0]

        def done(request: Any, index: int) -> None:
            outputs[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

        queue.set_callback(done)
        for i in range(batch.shape[0]):
            queue.start_async({self._in: batch[i : i + 1]}, userdata=i)
        queue.wait_all()
        return np.concatenate(outputs, axis=0)  # type: ignore[arg-type]

    def profile(self, staged: list[Any], runs: int) -> Any:
        """OpenVINO's per-node counters (PERF_COUNT) on a model compiled like the timed one.

        OpenVINO reports each executed node's time per inference, not a timeline: the span
        is the sum of those times. Node names are the ONNX nodes' (the fused ones named after
        one of theirs), so the module path before '/' is the scope."""
        import time

        from srx.runtime.trace import OpTime, Trace, merge_ops

        shape = tuple(staged[0].shape)
        hint = self._hint_for(shape[0])
        if hint == "throughput":
            return None  # several requests overlap: per-node times would not add up to a run
        model = self._sized_model(shape)
        request = self._core.compile_model(model, "CPU", {**self._config(hint), "PERF_COUNT": True})
        request = request.create_infer_request()
        request.infer({self._in: staged[0]})  # first-run allocations stay out of the profile
        ops: list[OpTime] = []
        measured = span = 0.0
        for i in range(runs):
            t0 = time.perf_counter()
            request.infer({self._in: staged[i % len(staged)]}, share_inputs=True)
            measured += (time.perf_counter() - t0) * 1000.0
            for node in request.get_profiling_info():
                ms = node.real_time.total_seconds() * 1000.0
                if ms > 0:
                    scope = node.node_name.rsplit("/", 1)[0] if "/" in node.node_name else ""
                    ops.append(OpTime(f"{node.node_type} ({node.exec_type})", ms, 1, scope))
                    span += ms
        note = (
            "OpenVINO's per-node times (no timeline): the span is their sum; OpenVINO renames some "
            "nodes it transforms (a LayerNorm's ReduceMean), which then count by their type alone"
        )
        return Trace("OpenVINO PERF_COUNT (node times)", "host", runs, measured, span, merge_ops(ops), note)

    def mode(self) -> str:
        hint = self.options.get("hint") or "auto"
        hint = "latency / throughput (batch)" if hint == "auto" else hint
        if self.source.precision != "int8":
            return f"OpenVINO CPU, {self.inference_precision}, {hint} hint"
        kernels = "INT8 in" if self._int8_kernels or not self.active else "INT8 emulated (no VNNI) in"
        return f"OpenVINO CPU, {kernels} {self.inference_precision}, latency hint"

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "threads": self._threads if self.active else self.options.get("threads"),
            "performance_hint": self.options.get("hint") or "auto",
            "inference_precision_hint": self.inference_precision,
        }
        if self.active:
            import openvino as ov

            d["openvino"] = ov.__version__
            d["compiled"] = [f"{k[0]} {'x'.join(map(str, k[1:]))}" for k in self._compiled]
            d["convolution_precisions"] = self._convolutions  # of the last compiled size
            if self.source.precision == "int8":
                d["int8_convolutions"] = "int8" if self._int8_kernels else EMULATED_INT8
            if self._rewrite or self._size_rewrites:
                d["graph_rewrite"] = {
                    **self._rewrite,
                    **({"per_size": self._size_rewrites} if self._size_rewrites else {}),
                }
        return d


EMULATED_INT8 = (
    "emulated in floating point: this CPU has no VNNI and the file's weights use 8 bits, which "
    "OpenVINO's INT8 convolutions would overflow; make the file with srx quantize --weight-bits 7"
)


class OpenVINOBF16Runner(OpenVINORunner):
    """Floating-point work in bfloat16 (CPUs with AVX512_BF16 or AMX); INT8 layers stay INT8."""

    name = "openvino-bf16"
    inference_precision = "bf16"

    def _precision(self, model_precision: str) -> str:
        return "int8" if model_precision == "int8" else "bf16"


class OpenVINOINT8Runner(OpenVINORunner):
    """An INT8 Q/DQ ONNX (`srx quantize`): quantized convolutions in INT8 (VNNI / AMX-INT8),
    the rest in bfloat16 where the CPU has it, else FP32."""

    name = "openvino-int8"

    @property
    def inference_precision(self) -> str:  # type: ignore[override]
        return "bf16" if "BF16" in cpu_capabilities() else "f32"

    def _precision(self, model_precision: str) -> str:
        return "int8"


def _convolution_precisions(compiled: Any) -> dict[str, int]:
    """Convolutions per precision OpenVINO compiled them in (u8 / i8: its INT8 kernels)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) == "Convolution":
            precision = str(info["runtimePrecision"].astype(str))
            counts[precision] = counts.get(precision, 0) + 1
    return dict(sorted(counts.items()))


def _port_name(ports: Any, preferred: str) -> str:
    names = [next(iter(p.get_names()), "") for p in ports]
    return preferred if any(preferred in p.get_names() for p in ports) else names[0]
