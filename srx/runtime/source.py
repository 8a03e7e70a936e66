"""ModelSource: the model a runner consumes, in whichever forms the backends need.

A bench or an upscale starts from one of: PyTorch weights (or the embedded default), an
ONNX file, or an engine file. Backends ask for the form they run: torch backends for the
nn.Module, onnxruntime for an ONNX file, TensorRT for an engine. The ModelSpec comes with
every form. Torch-free until a torch form is requested.

From a module, the ONNX is srx's exact export (`srx.export.model.onnx_from_model`, the
graph `srx export` writes, before its optional onnxslim pass): dynamic batch / height /
width, or a fixed-size graph for one input size (`srx export --static`) when a backend asks
for one. Exports are made on first request, kept in a temporary folder and removed by
`close()`.

What the model is (its ModelSpec, its precision, and for an engine the backend that built
it) comes from the file's own record: the ONNX metadata checked against its graph
(srx.export.metadata) or the engine's sidecar (srx.runtime.sidecar), read with the same
functions `srx info` uses.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.modelref import ModelRef, exported_file_ref, resolve_model_ref
from srx.spec import ModelSpec


class ModelSource:
    """The model under test. `kind` is what the user gave: 'torch', 'onnx' or 'engine'."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        module: Any = None,
        onnx_path: Path | None = None,
        engine_path: Path | None = None,
        origin: str = "",
        precision: str = "fp32",
        engine_backend: str | None = None,
    ) -> None:
        self.spec = spec
        self.precision = precision  # what the given model computes in: fp32, fp16, int8
        self.engine_backend = engine_backend  # the backend that built a given engine (its sidecar says)
        self._module = module
        self._onnx = onnx_path
        self._engine = engine_path
        self.origin = origin or spec.source or spec.label
        self._workdir: Path | None = None
        self.onnx_exported = False

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def from_module(cls, module: Any, origin: str = "") -> ModelSource:
        return cls(module.spec, module=module, origin=origin)

    @classmethod
    def from_weights(
        cls,
        path: str | Path | None,
        scale: int | None = None,
        param_key: str | None = None,
        *,
        default: str = "default",
    ) -> ModelSource:
        """A checkpoint (or a shipped network's name), or with `path=None` the embedded default
        (`default="best"`: the shipped network with the best score, as `srx upscale` uses)."""
        from srx.models import model_from_options

        if path is None and default == "best" and param_key is None:
            from srx.models.defaults import best_model

            return cls.from_module(best_model(scale or 4))
        module = model_from_options(path, scale=scale, param_key=param_key)
        return cls.from_module(module, origin=str(path) if path is not None else "")

    @classmethod
    def from_options(
        cls,
        weights: str | None,
        model: str | None,
        scale: int | None = None,
        param_key: str | None = None,
        *,
        default: str = "default",
    ) -> ModelSource:
        """`--weights` and/or `--model` of bench, upscale and serve (srx.modelref resolves them)."""
        return cls.from_ref(resolve_model_ref(model, weights, scale=scale, param_key=param_key), default=default)

    @classmethod
    def from_ref(cls, ref: ModelRef, *, default: str = "default") -> ModelSource:
        """The model `ref` names (the embedded default when none; `default="best"`: see
        `from_weights`). An exported file with weights: the file runs in onnxruntime /
        TensorRT, the weights give the FP32 reference and the torch backends, so they must be
        the same network."""
        if ref.kind == "baseline":
            raise BadInput(f"{ref.name} is not a network: give a checkpoint, an srx ONNX or an engine")
        if not ref.is_file:
            return cls.from_weights(ref.name, ref.scale, ref.param_key, default=default)
        src = cls.from_file(ref.name, ref.scale)  # type: ignore[arg-type]
        if ref.weights is not None:
            from srx.models import load_model

            module = load_model(ref.weights, scale=ref.scale, param_key=ref.param_key)
            a, b = module.spec, src.spec
            if (a.arch, a.scale, a.dim, a.n_blocks, a.ffn_scale) != (b.arch, b.scale, b.dim, b.n_blocks, b.ffn_scale):
                raise BadInput(
                    f"--weights {ref.weights} ({a.label}) is not the model in --model {ref.name} ({b.label}): "
                    "give the checkpoint the file was exported from"
                )
            src._module = module
        return src

    @classmethod
    def from_file(cls, path: str | Path, scale: int | None = None) -> ModelSource:
        """An exported artefact: ONNX (spec in metadata) or engine (spec in its JSON sidecar)."""
        p = Path(path)
        if exported_file_ref(p).kind == "onnx":
            from srx.export.metadata import read_srx_onnx

            info = read_srx_onnx(p)
            src = cls(info.spec, onnx_path=p, origin=str(p), precision=info.precision)
        else:
            from srx.runtime.sidecar import read_sidecar, spec_of

            side = read_sidecar(p)
            src = cls(spec_of(side), engine_path=p, origin=str(p), precision=str(side.get("precision", "?")),
                      engine_backend=side.get("backend"))  # fmt: skip
        if scale is not None and scale != src.spec.scale:
            raise BadInput(f"--scale {scale} contradicts {p}, which is a x{src.spec.scale} model: drop --scale")
        return src

    # -- forms -----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self._module is not None:
            return "torch"
        return "onnx" if self._onnx is not None else "engine"

    @property
    def has_module(self) -> bool:
        return self._module is not None

    def torch_module(self) -> Any:
        if self._module is None:
            raise BadInput(
                f"this backend runs the PyTorch model, but {self.origin} is not a checkpoint: pass --weights"
            )
        return self._module

    def onnx_unavailable_reason(self) -> str:
        """Why no ONNX can be had ('' when one can)."""
        if self._onnx is not None:
            return ""
        if self._module is None:
            return f"needs an ONNX model; {self.origin} is an engine"
        return self._export_unavailable_reason()

    def _export_unavailable_reason(self) -> str:
        if self._module is None:
            return f"{self.origin} is not a PyTorch model, so srx cannot export it"
        try:
            from srx.export.model import EMITTERS
        except ImportError as e:
            return f"exporting to ONNX needs the Python package '{e.name}' (pip install 'srx[cpu]')"
        if type(self._module) not in EMITTERS:
            return f"srx cannot export {type(self._module).__name__} to ONNX: pass an exported --model"
        return ""

    @property
    def exports_onnx(self) -> bool:
        """Whether the ONNX comes from srx's exporter (no file was given, the module is exportable):
        then a fixed-size graph can be made for any input size."""
        given = self._onnx is not None and not self.onnx_exported
        return not given and not self._export_unavailable_reason()

    def onnx_path(self, static_hw: tuple[int, int] | None = None) -> Path:
        """The ONNX file: the one given, or the module exported once (dynamic batch/height/width).

        static_hw=(height, width) asks for a fixed (1, 3, height, width) graph (`srx export
        --static`) where the ONNX comes from the exporter (`exports_onnx`); a given file is
        always returned as it is.
        """
        if static_hw is not None and self.exports_onnx:
            return self._export(static_hw)
        if self._onnx is None:
            reason = self.onnx_unavailable_reason()
            if reason:
                raise BadInput(reason)
            self._onnx = self._export(None)
            self.onnx_exported = True
        return self._onnx

    def _export(self, static_hw: tuple[int, int] | None) -> Path:
        from srx.export.model import onnx_from_model
        from srx.fileio import write_bytes_atomic

        name = "model.onnx" if static_hw is None else f"model_{static_hw[1]}x{static_hw[0]}.onnx"
        out = self.workdir() / name
        if not out.exists():
            if static_hw is None:
                proto = onnx_from_model(self._module, dynamic=True)
            else:
                proto = onnx_from_model(self._module, dynamic=False, input_size=(static_hw[1], static_hw[0]))
            # Atomic: a write cut short (a full disk) must not leave a file the next call reuses.
            write_bytes_atomic(out, proto.SerializeToString())
        return out

    def engine_path(self) -> Path:
        if self._engine is None:
            raise BadInput(f"this backend runs a TensorRT engine; {self.origin} is not one: pass --model ENGINE")
        return self._engine

    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="srx-"))
        return self._workdir

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            if self.onnx_exported:
                self._onnx = None
                self.onnx_exported = False

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
