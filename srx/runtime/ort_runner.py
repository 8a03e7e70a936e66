"""onnxruntime runners (CPU and CUDA execution providers) for srx's ONNX I/O contract.

Contract: input `lr` (N, 3, H, W) float32, output `sr`, dynamic dims named `batch`,
`height`, `width`; files without those names fall back to their first input and output.

Speed on the CPU comes from two session settings, both measured (docs/bench.md):
* graph optimisation ORT_ENABLE_ALL, which adds the NCHWc layout transform (blocked
  channels for AVX-512 convolutions) on top of constant folding and fusions;
* shape specialisation: a session per input shape with the dynamic dims pinned
  (`add_free_dimension_override_by_name`), so the shape arithmetic of the exact dynamic
  pooling is folded into constants and the layout transform sees static shapes. Sessions
  are cached (the two most recent shapes). `specialize=False` keeps one dynamic session.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from srx.errors import BadInput
from srx.runtime.base import Runner
from srx.runtime.device import cpu_count

DIM_NAMES = ("batch", "height", "width")
OPT_LEVELS = ("disable", "basic", "extended", "all")


class OrtCPURunner(Runner):
    """Options: threads (intra-op, default: the CPUs this process may use), opt_level
    ('all' default, 'extended', 'basic', 'disable'), specialize (default True)."""

    name = "onnxruntime"
    precision = "fp32"
    providers: tuple[Any, ...] = ("CPUExecutionProvider",)
    max_sessions = 2

    def _activate(self) -> None:
        import onnxruntime as ort

        self._ort = ort
        self._path = str(self.source.onnx_path())
        self._sessions: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        level = self.options.get("opt_level", "all")
        if level not in OPT_LEVELS:
            raise BadInput(f"unknown onnxruntime optimisation level {level!r}: choose from {', '.join(OPT_LEVELS)}")
        self._threads = int(self.options.get("threads") or cpu_count())
        if not self.options.get("specialize", True):
            self._session(None)

    def _options(self, shape: tuple[int, ...] | None) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.options.get("opt_level", "all")]
        so.intra_op_num_threads = self._threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # warnings about unused initializers etc. are not the user's concern
        if shape is not None:
            n, _, h, w = shape
            for name, value in zip(DIM_NAMES, (n, h, w), strict=True):
                so.add_free_dimension_override_by_name(name, value)
        return so

    def _session(self, shape: tuple[int, ...] | None) -> Any:
        key = shape or ()
        if key in self._sessions:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        try:
            sess = self._ort.InferenceSession(self._path, self._options(shape), providers=list(self.providers))
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise BadInput(f"onnxruntime cannot load {self._path}: {first}") from e
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        names_in = [i.name for i in inputs]
        names_out = [o.name for o in outputs]
        self._in = "lr" if "lr" in names_in else names_in[0]
        self._out = "sr" if "sr" in names_out else names_out[0]
        self._sessions[key] = sess
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return sess

    def _deactivate(self) -> None:
        self._sessions.clear()

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Create the session for an input shape now (so it is not counted in a timed run)."""
        self._session(tuple(shape) if self.options.get("specialize", True) else None)

    def execute(self, staged: np.ndarray) -> np.ndarray:
        sess = self._session(staged.shape if self.options.get("specialize", True) else None)
        return sess.run([self._out], {self._in: staged})[0]

    def describe(self) -> dict[str, Any]:
        return {
            "intra_op_threads": self._threads if self.active else self.options.get("threads"),
            "graph_optimization": self.options.get("opt_level", "all"),
            "shape_specialized": bool(self.options.get("specialize", True)),
            "providers": [p if isinstance(p, str) else p[0] for p in self.providers],
        }


class OrtCUDARunner(OrtCPURunner):
    """CUDA execution provider with I/O binding: inputs and outputs stay on the GPU between
    `stage` and `fetch`, so the timed `execute` covers the model only. onnxruntime's Run
    synchronises its stream before returning, so the host clock times it correctly."""

    name = "onnxruntime-cuda"
    providers = (("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider")

    def stage(self, lr: np.ndarray) -> Any:
        return self._ort.OrtValue.ortvalue_from_numpy(lr, "cuda", 0)

    def execute(self, staged: Any) -> Any:
        shape = tuple(staged.shape())
        sess = self._session(shape if self.options.get("specialize", True) else None)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(self._in, staged)
        binding.bind_output(self._out, "cuda", 0)
        sess.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def fetch(self, out: Any) -> np.ndarray:
        return np.asarray(out.numpy(), dtype=np.float32)
