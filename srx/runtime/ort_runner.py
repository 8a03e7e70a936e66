"""onnxruntime runners (CPU and CUDA execution providers) for srx's ONNX I/O contract.

Contract: input `lr` (N, 3, H, W) float32, output `sr`, dynamic dims named `batch`,
`height`, `width`; files without those names fall back to their first input and output.

Speed on the CPU comes from session settings and graph choices, each measured
(docs/bench.md, bench/cpu_speed.py):
* graph optimisation ORT_ENABLE_ALL, which adds the NCHWc layout transform (blocked
  channels for AVX-512 convolutions) on top of constant folding and fusions;
* a graph per input shape: from a PyTorch model srx exports a fixed-size graph for the
  shape (`srx export --static`: pooling windows and nearest indices are constants, axes
  divisible by the pooling factor use plain strided pooling and integer resizes); from a
  given ONNX file, a session with its dynamic dims pinned
  (`add_free_dimension_override_by_name`), so onnxruntime folds the shape arithmetic.
  Sessions are cached (the two most recent shapes). `specialize=False` keeps one
  dynamic session;
* srx.runtime.ort_graph's rewrite of the exact GELU into com.microsoft.Gelu (`fuse`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.errors import BadInput, first_line
from srx.export import DYNAMIC_DIMS
from srx.runtime.base import Runner
from srx.runtime.device import cpu_count

if TYPE_CHECKING:
    from srx.runtime.source import ModelSource

DIM_NAMES = DYNAMIC_DIMS
OPT_LEVELS = ("disable", "basic", "extended", "all")


class OrtCPURunner(Runner):
    """Options: threads (intra-op, default: the CPUs this process may use), opt_level
    ('all' default, 'extended', 'basic', 'disable'), specialize (default True: a session
    per input shape), static (default True: with specialize, a fixed-size export per shape
    when the model comes from PyTorch weights), fuse (default True: com.microsoft.Gelu),
    spinning (default False: worker threads sleep between operators instead of spinning,
    measured faster on a CPU shared with other work), mem_pattern (default False:
    onnxruntime's pre-planned activation block came on top of the arena's, doubling the
    peak for a 528x528 tile, 1388 MB vs 836 MB, at the same speed); docs/bench.md."""

    name = "onnxruntime"
    precision = "fp32"
    providers: tuple[Any, ...] = ("CPUExecutionProvider",)
    max_sessions = 2
    fuse_default = True
    static_default = True
    spinning_default = False
    mem_pattern_default = False

    def __init__(self, source: ModelSource, device: str = "cpu", **options: Any) -> None:
        super().__init__(source, device, **options)
        # What the model computes in: a given FP16 or INT8 ONNX is not an FP32 run.
        self.precision = source.precision  # type: ignore[misc]

    def _activate(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        self._sessions: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._graphs: dict[str, str] = {}
        self._fused: dict[str, int] = {}
        level = self.options.get("opt_level", "all")
        if level not in OPT_LEVELS:
            raise BadInput(f"unknown onnxruntime optimisation level {level!r}: choose from {', '.join(OPT_LEVELS)}")
        self._threads = int(self.options.get("threads") or cpu_count())
        self._specialize = bool(self.options.get("specialize", True))
        self._static = (
            self._specialize and bool(self.options.get("static", self.static_default)) and self.source.exports_onnx
        )
        self._fuse = bool(self.options.get("fuse", self.fuse_default))
        self._spinning = bool(self.options.get("spinning", self.spinning_default))
        self._mem_pattern = bool(self.options.get("mem_pattern", self.mem_pattern_default))
        self._dynamic_model: bytes | None = None
        if not self._specialize:
            self._session(None)

    def _options(self, shape: tuple[int, ...] | None, pin: bool, profile_prefix: str | None = None) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        if profile_prefix is not None:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.options.get("opt_level", "all")]
        so.intra_op_num_threads = self._threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # warnings about unused initializers etc. are not the user's concern
        if not self._spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if not self._mem_pattern:
            so.enable_mem_pattern = False
        if shape is not None and pin:
            n, _, h, w = shape
            for name, value in zip(DIM_NAMES, (n, h, w), strict=True):
                so.add_free_dimension_override_by_name(name, value)
        return so

    def _model_bytes(self, path: str) -> bytes:
        import onnx

        try:
            model = onnx.load(path)
        except Exception as e:  # DecodeError, OSError...
            raise BadInput(f"onnxruntime cannot load {path}: not a readable ONNX file ({type(e).__name__})") from e
        if self._fuse:
            from srx.runtime.ort_graph import fuse_for_onnxruntime

            model, report = fuse_for_onnxruntime(model)
            self._fused = report.to_dict()
        return model.SerializeToString()

    def _graph_for(self, shape: tuple[int, ...] | None) -> tuple[bytes, str, bool]:
        """(model bytes, description, whether to pin the dynamic dims) for an input shape."""
        if shape is not None and self._static and shape[0] == 1:
            h, w = shape[2], shape[3]
            return self._model_bytes(str(self.source.onnx_path((h, w)))), f"static {w}x{h} (srx export --static)", False
        if self._dynamic_model is None:
            self._dynamic_model = self._model_bytes(str(self.source.onnx_path()))
        pinned = shape is not None
        return self._dynamic_model, "dynamic, dims pinned per input shape" if pinned else "dynamic", pinned

    def _session(self, shape: tuple[int, ...] | None) -> Any:
        key = shape or ()
        if key in self._sessions:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        model, how, pin = self._graph_for(shape)
        sess = self._new_session(model, self._options(shape, pin))
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        names_in = [i.name for i in inputs]
        names_out = [o.name for o in outputs]
        self._in = "lr" if "lr" in names_in else names_in[0]
        self._out = "sr" if "sr" in names_out else names_out[0]
        self._graphs["x".join(map(str, key)) or "any"] = how
        self._sessions[key] = sess
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return sess

    def _new_session(self, model: bytes, options: Any) -> Any:
        try:
            return self._ort.InferenceSession(model, options, providers=list(self.providers))
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
            raise BadInput(f"onnxruntime cannot load {self.source.origin}: {first_line(e, 200)}") from e

    def _deactivate(self) -> None:
        self._sessions.clear()
        self._dynamic_model = None

    def mode(self) -> str:
        first = self.providers[0] if isinstance(self.providers[0], str) else self.providers[0][0]
        return f"onnxruntime {first.removesuffix('ExecutionProvider')} EP"

    def unsupported_batch(self, batch: int) -> str:
        """A given ONNX with a fixed batch dimension cannot take another batch size."""
        if batch == 1 or self.source.exports_onnx:
            return ""
        import onnx

        try:
            model = onnx.load(str(self.source.onnx_path()), load_external_data=False)
            dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        except Exception:  # unreadable files are reported when the session is created
            return ""
        if dim.HasField("dim_value") and dim.dim_value != batch:
            return (
                f"{self.source.origin} has a fixed batch of {dim.dim_value}: export it with a dynamic batch "
                f"(srx export without --static) to run --batch {batch}"
            )
        return ""

    def profile(self, staged: list[Any], runs: int) -> Any:
        """onnxruntime's own profiler on a session like the timed one (same graph and settings)."""
        import json
        import tempfile
        import time
        from pathlib import Path

        from srx.runtime.ort_profile import trace_from_events

        shape = tuple(staged[0].shape) if self._specialize else None
        model, _how, pin = self._graph_for(shape)
        with tempfile.TemporaryDirectory(prefix="srx-ort-profile-") as tmp:
            sess = self._new_session(model, self._options(shape, pin, str(Path(tmp) / "ort")))
            sess.run([self._out], {self._in: staged[0]})  # the arena grows here, not in a profiled run
            measured = 0.0
            for i in range(runs):
                t0 = time.perf_counter()
                sess.run([self._out], {self._in: staged[i % len(staged)]})
                measured += (time.perf_counter() - t0) * 1000.0
            events = json.loads(Path(sess.end_profiling()).read_text())
        return trace_from_events(events, runs, measured)

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Create the session for an input shape now (so it is not counted in a timed run)."""
        self._session(tuple(shape) if self._specialize else None)

    def execute(self, staged: np.ndarray) -> np.ndarray:
        sess = self._session(staged.shape if self._specialize else None)
        return sess.run([self._out], {self._in: staged})[0]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "intra_op_threads": self._threads if self.active else self.options.get("threads"),
            "graph_optimization": self.options.get("opt_level", "all"),
            "shape_specialized": bool(self.options.get("specialize", True)),
            "spinning": bool(self.options.get("spinning", self.spinning_default)),
            "memory_pattern": bool(self.options.get("mem_pattern", self.mem_pattern_default)),
            "providers": [p if isinstance(p, str) else p[0] for p in self.providers],
        }
        if self.active:
            d["graphs"] = dict(self._graphs)
            d["fused"] = dict(self._fused) if self._fuse else "off"
        return d


class OrtCUDARunner(OrtCPURunner):
    """CUDA execution provider with I/O binding: inputs and outputs stay on the GPU between
    `stage` and `fetch`, so the timed `execute` covers the model only. onnxruntime's Run
    synchronises its stream before returning, so the host clock times it correctly."""

    name = "onnxruntime-cuda"
    providers = (("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider")
    # The GELU rewrite and the fixed-size graphs were measured on the CPU only (no GPU was
    # available to this work): the CUDA runner keeps the plain dynamic export, dims pinned.
    fuse_default = False
    static_default = False
    spinning_default = True  # onnxruntime's defaults
    mem_pattern_default = True

    def stage(self, lr: np.ndarray) -> Any:
        return self._ort.OrtValue.ortvalue_from_numpy(lr, "cuda", 0)

    def execute(self, staged: Any) -> Any:
        shape = tuple(staged.shape())
        sess = self._session(shape if self._specialize else None)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(self._in, staged)
        binding.bind_output(self._out, "cuda", 0)
        sess.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def fetch(self, out: Any) -> np.ndarray:
        return np.asarray(out.numpy(), dtype=np.float32)

    def staged_device_bytes(self, staged: Any) -> int:
        return int(np.prod(staged.shape())) * 4

    # onnxruntime's CPU-side node times do not measure asynchronous CUDA kernels.
    profile_unavailable = "onnxruntime's profiler times CUDA nodes on the host (kernel launches), not on the GPU"

    def profile(self, staged: list[Any], runs: int) -> Any:
        return None
