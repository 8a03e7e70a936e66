"""ModelSource: the model a runner consumes, in whichever forms the backends need.

A bench or an upscale starts from one of: PyTorch weights (or the embedded default), an
ONNX file, or an engine file. Backends ask for the form they run: torch backends for the
nn.Module, onnxruntime for an ONNX file (exported from the module on first request, into
a temporary folder removed by `close()`), TensorRT for an engine. The ModelSpec comes
with every form. Torch-free until a torch form is requested.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.spec import ModelSpec

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
SPEC_METADATA_KEY = "srx.spec"


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
    ) -> None:
        self.spec = spec
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
    def from_weights(cls, path: str | Path | None, scale: int | None = None) -> ModelSource:
        """A checkpoint, or with `path=None` the embedded default (untrained) model."""
        from srx.models import default_model, load_model

        if path is None:
            return cls.from_module(default_model(scale or 4))
        return cls.from_module(load_model(path, scale=scale), origin=str(path))

    @classmethod
    def from_file(cls, path: str | Path, scale: int | None = None) -> ModelSource:
        """An exported artefact: ONNX (spec in metadata) or engine (spec in its JSON sidecar)."""
        p = Path(path)
        if not p.is_file():
            raise BadInput(f"model {p} does not exist or is not a file: check the path")
        suffix = p.suffix.lower()
        if suffix in ONNX_SUFFIXES:
            spec = spec_from_onnx(p)
            src = cls(spec, onnx_path=p, origin=str(p))
        elif suffix in ENGINE_SUFFIXES:
            spec = spec_from_engine_sidecar(p)
            src = cls(spec, engine_path=p, origin=str(p))
        else:
            raise BadInput(f"{p}: unknown model file type {suffix or '(none)'}; give an .onnx or .engine file")
        if scale is not None and scale != spec.scale:
            raise BadInput(f"--scale {scale} contradicts {p}, which is a x{spec.scale} model: drop --scale")
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
        try:
            from srx.export.model import onnx_from_model  # noqa: F401
        except ImportError:
            return "needs srx's ONNX exporter (srx.export), which is not in this build"
        return ""

    def onnx_path(self) -> Path:
        """The ONNX file: the one given, or the module exported once (dynamic batch/height/width)."""
        if self._onnx is not None:
            return self._onnx
        reason = self.onnx_unavailable_reason()
        if reason:
            raise BadInput(reason)
        from srx.export.model import onnx_from_model

        out = self.workdir() / "model.onnx"
        result = onnx_from_model(self._module, dynamic=True)
        _save_onnx(result, out)
        self._onnx = out
        self.onnx_exported = True
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


def _save_onnx(result: Any, out: Path) -> None:
    if isinstance(result, (str, Path)):
        shutil.copyfile(result, out)
    elif isinstance(result, bytes):
        out.write_bytes(result)
    else:  # onnx.ModelProto, or an object carrying one
        import onnx

        proto = getattr(result, "model", result)
        onnx.save(proto, str(out))


def spec_from_onnx(path: Path) -> ModelSpec:
    try:
        import onnx
    except ImportError as e:
        from srx.errors import MissingDependency

        raise MissingDependency("onnx", "cpu", "reading an ONNX model") from e
    from srx.export.metadata import check_onnx_size, check_self_contained

    check_onnx_size(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValueError, OSError...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise BadInput(
            f"{path} is not a readable ONNX model ({first}): it may be truncated or corrupt; export it again with srx export"
        ) from e
    check_self_contained(model, path)
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_METADATA_KEY not in meta:
        raise BadInput(
            f"{path} has no '{SPEC_METADATA_KEY}' metadata: it was not exported by srx; export it with srx export"
        )
    return ModelSpec.from_json(meta[SPEC_METADATA_KEY])


def spec_from_engine_sidecar(path: Path) -> ModelSpec:
    """Engines carry their ModelSpec in a JSON sidecar next to them (`X.engine.json`, key `spec`)."""
    for side in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if side.is_file():
            with contextlib.suppress(OSError, json.JSONDecodeError):
                d = json.loads(side.read_text())
                if isinstance(d, dict) and isinstance(d.get("spec"), dict):
                    return ModelSpec.from_dict(d["spec"])
    raise BadInput(f"{path} has no srx sidecar ({path.name}.json with a 'spec'): build it with srx build-engine")
