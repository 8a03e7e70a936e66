"""One TensorRT / TensorRT-RTX engine, ready to run: numpy + tensorrt + cuda-python, no torch.

`EngineSession` is what the `tensorrt` and `tensorrt-rtx` runners drive (a Jetson runs
it with JetPack's TensorRT and cuda-python only). Opening it first checks the sidecar
against this TensorRT and GPU (srx.runtime.sidecar.check_engine) and only then
deserialises; TensorRT-RTX engines are also asked `Runtime.get_engine_validity`, which
reads the engine header. Buffers are allocated on first use and grown when a larger
input arrives; inputs outside the engine's optimisation profile are refused with the
profile in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srx.errors import BadInput, CheckFailed
from srx.runtime.profile import Profile
from srx.runtime.sidecar import check_engine, read_sidecar, spec_of
from srx.runtime.trt import MODULES, import_backend
from srx.sizes import Size


class EngineSession:
    """open() -> stage(lr) -> execute() -> fetch() (or run(lr)) -> close(); also a context manager."""

    def __init__(
        self,
        engine: str | Path,
        *,
        backend: str = "tensorrt",
        device_index: int = 0,
        check: bool = True,
        trt_module: Any | None = None,
        cuda: Any | None = None,
    ) -> None:
        if backend not in MODULES:
            raise BadInput(f"unknown TensorRT backend {backend!r}: use tensorrt or tensorrt-rtx")
        self.path = Path(engine)
        self.backend = backend
        self.device_index = device_index
        self.check = check
        self._trt = trt_module
        self._cuda = cuda
        self.sidecar: dict[str, Any] = {}
        self.profile: Profile | None = None
        self.device: Any = None
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (pointer, capacity in bytes)
        self._staged: list[int] = []  # buffers of inputs staged with stage_copy(), freed by close()
        self._staged_host: list[np.ndarray] = []
        self._stream: Any = None
        self._context: Any = None
        self._engine: Any = None
        self._runtime: Any = None
        self._out_shape: tuple[int, ...] = ()

    @property
    def spec(self) -> Any:
        return spec_of(self.sidecar) if self.sidecar else None

    @property
    def cuda(self) -> Any:
        """The CUDA runtime wrapper (srx.runtime.cudart.Cuda) the session runs on."""
        return self._cuda

    @property
    def stream(self) -> Any:
        """The CUDA stream the engine runs on (None before open())."""
        return self._stream

    @property
    def backend_version(self) -> str:
        """The version of the TensorRT that runs the engine ('' before open())."""
        return str(getattr(self._trt, "__version__", "")) if self._trt is not None else ""

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> EngineSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if not self.path.is_file():
            raise BadInput(f"engine {self.path} does not exist or is not a file: check the path")
        if self.check:
            self.sidecar = read_sidecar(self.path)
        else:
            try:
                self.sidecar = read_sidecar(self.path)
            except BadInput:
                self.sidecar = {}
        trt = self._trt if self._trt is not None else import_backend(self.backend)
        self._trt = trt
        if self._cuda is None:
            from srx.runtime.cudart import Cuda

            self._cuda = Cuda()
        cuda = self._cuda
        cuda.set_device(self.device_index)
        self.device = cuda.device(self.device_index)
        if self.check:
            check_engine(
                self.path,
                self.sidecar,
                backend=self.backend,
                backend_version=str(trt.__version__),
                device=self.device,
            )
        data = self.path.read_bytes()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.backend == "tensorrt-rtx" and hasattr(self._runtime, "get_engine_validity"):
            validity, diagnostics = self._runtime.get_engine_validity(data)
            if validity == trt.EngineValidity.INVALID:
                why = _diagnostics(trt, diagnostics)
                raise BadInput(
                    f"{self.path} cannot run on {self.device.name} (compute capability "
                    f"{self.device.compute_capability}) with TensorRT-RTX {trt.__version__}: {why}; rebuild it"
                )
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise CheckFailed(f"TensorRT could not deserialise {self.path}: rebuild it with 'srx build-engine'")
        self._context = self._engine.create_execution_context()
        self.input_name, self.output_name = self._io_names()
        for name in (self.input_name, self.output_name):
            if self._engine.get_tensor_dtype(name) != trt.float32:
                raise BadInput(f"{self.path}: tensor {name} is not float32; srx engines have float32 I/O")
        self.profile = self._profile()
        self._stream = cuda.stream()

    def close(self) -> None:
        cuda = self._cuda
        if cuda is not None:
            for ptr, _cap in self._buffers.values():
                cuda.free(ptr)
            for ptr in self._staged:
                cuda.free(ptr)
            if self._stream is not None:
                cuda.destroy_stream(self._stream)
        self._buffers.clear()
        self._staged.clear()
        self._staged_host.clear()
        self._stream = None
        self._context = None
        self._engine = None
        self._runtime = None

    # -- inference ------------------------------------------------------------------------
    def run(self, lr: np.ndarray) -> np.ndarray:
        self.stage(lr)
        self.execute()
        return self.fetch()

    def check_shape(self, shape: tuple[int, ...]) -> None:
        n, _c, h, w = shape
        p = self.profile
        if p is not None and not p.contains(n, h, w):
            raise BadInput(
                f"input {w}x{h} (batch {n}) is outside this engine's profile {p.min} .. {p.max} "
                f"(batch {p.batch[0]}..{p.batch[2]}): rebuild it with --min/--max/--batch, or tile the image"
            )

    def stage(self, lr: np.ndarray) -> None:
        if self._context is None:
            raise RuntimeError("EngineSession used before open()")
        arr = np.ascontiguousarray(lr, dtype=np.float32)
        if arr.ndim != 4:
            raise BadInput(f"engine input must be NCHW (4 dimensions), got shape {arr.shape}")
        self.check_shape(tuple(arr.shape))
        ptr = self._buffer(self.input_name, arr.nbytes)
        self._cuda.to_device(ptr, arr, self._stream)
        if not self._context.set_input_shape(self.input_name, tuple(arr.shape)):
            raise BadInput(f"TensorRT refused input shape {tuple(arr.shape)} for {self.path}")
        self._host_input = arr  # kept alive until the asynchronous copy is done

    def stage_copy(self, lr: np.ndarray) -> tuple[int, tuple[int, ...]]:
        """Copy `lr` into a device buffer of its own (kept until close) and return a handle
        for `execute(handle)`: a benchmark stages all its inputs first and times only the
        engine (`stage` reuses one input buffer, so it holds one input at a time)."""
        if self._context is None:
            raise RuntimeError("EngineSession used before open()")
        arr = np.ascontiguousarray(lr, dtype=np.float32)
        if arr.ndim != 4:
            raise BadInput(f"engine input must be NCHW (4 dimensions), got shape {arr.shape}")
        self.check_shape(tuple(arr.shape))
        ptr = self._cuda.malloc(arr.nbytes)
        self._staged.append(ptr)
        self._cuda.to_device(ptr, arr, self._stream)
        self._staged_host.append(arr)  # kept alive until the asynchronous copy is done
        return ptr, tuple(arr.shape)

    def execute(self, staged: tuple[int, tuple[int, ...]] | None = None) -> None:
        """Run on the input of the last `stage`, or on `staged` from `stage_copy`."""
        ctx = self._context
        in_ptr = self._buffers[self.input_name][0] if staged is None else staged[0]
        if staged is not None and not ctx.set_input_shape(self.input_name, staged[1]):
            raise BadInput(f"TensorRT refused input shape {staged[1]} for {self.path}")
        out_shape = tuple(int(d) for d in ctx.get_tensor_shape(self.output_name))
        if any(d < 0 for d in out_shape):
            raise RuntimeError(f"TensorRT could not infer the output shape ({out_shape})")
        nbytes = int(np.prod(out_shape)) * 4
        ctx.set_tensor_address(self.input_name, in_ptr)
        ctx.set_tensor_address(self.output_name, self._buffer(self.output_name, nbytes))
        from srx.runtime.cudart import native_handle

        if not ctx.execute_async_v3(native_handle(self._stream)):
            raise RuntimeError(f"TensorRT failed to run {self.path}")
        self._out_shape = out_shape

    def fetch(self) -> np.ndarray:
        out = np.empty(self._out_shape, dtype=np.float32)
        self._cuda.to_host(out, self._buffers[self.output_name][0], self._stream)
        self._cuda.synchronize(self._stream)
        return out

    def synchronize(self) -> None:
        if self._stream is not None:
            self._cuda.synchronize(self._stream)

    # -- helpers ----------------------------------------------------------------------------
    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, cap = self._buffers.get(name, (0, 0))
        if nbytes > cap:
            if ptr:
                self._cuda.free(ptr)
            ptr, cap = self._cuda.malloc(nbytes), nbytes
            self._buffers[name] = (ptr, cap)
        return ptr

    def _io_names(self) -> tuple[str, str]:
        trt, eng = self._trt, self._engine
        ins, outs = [], []
        for i in range(eng.num_io_tensors):
            name = eng.get_tensor_name(i)
            (ins if eng.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(name)
        if len(ins) != 1 or len(outs) != 1:
            raise BadInput(f"{self.path} has {len(ins)} inputs and {len(outs)} outputs; srx engines have one of each")
        return ins[0], outs[0]

    def _profile(self) -> Profile:
        if self.sidecar.get("profile"):
            return Profile.from_dict(self.sidecar["profile"])
        lo, opt, hi = (tuple(s) for s in self._engine.get_tensor_profile_shape(self.input_name, 0))
        return Profile(Size(lo[3], lo[2]), Size(opt[3], opt[2]), Size(hi[3], hi[2]), (lo[0], opt[0], hi[0]))


def _diagnostics(trt: Any, bits: int) -> str:
    names = []
    enum = getattr(trt, "EngineInvalidityDiagnostics", None)
    if enum is not None:
        for name, member in enum.__members__.items():
            if int(bits) & int(member):
                names.append(name.lower().replace("_", " "))
    return ", ".join(names) or "invalid engine"
