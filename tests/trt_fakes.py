"""Small stand-ins for TensorRT and cuda-python, for testing srx's logic where neither runs.

They implement only the calls srx makes, record what was asked, and enforce what the
real APIs enforce where srx's correctness depends on it: builder flags that a TensorRT
version does not have raise AttributeError (TensorRT 11 removed FP16/INT8), layer
precision cannot be set on a strongly typed network, "device memory" is host memory so
copies and a fake nearest-neighbour "engine" can be checked end to end.
"""

from __future__ import annotations

import ctypes
import enum
import types

import numpy as np

ENGINE_MAGIC = b"FAKEENGINE"


# -- cuda-python ----------------------------------------------------------------------------


class FakeCudart(types.SimpleNamespace):
    """cuda.bindings.runtime: every call returns (error, results...)."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self, name: str = "NVIDIA Fake GPU", cc: tuple[int, int] = (8, 9)) -> None:
        super().__init__()
        self.name, self.cc = name, cc
        self.buffers: dict[int, ctypes.Array] = {}
        self.freed: list[int] = []
        self.streams = 0

    ok = cudaError_t.cudaSuccess

    def cudaGetDeviceCount(self):
        return (self.ok, 1)

    def cudaSetDevice(self, i):
        return (self.ok,)

    def cudaGetDeviceProperties(self, i):
        prop = types.SimpleNamespace(
            name=self.name.encode() + b"\x00" * 8,
            major=self.cc[0],
            minor=self.cc[1],
            totalGlobalMem=8 << 30,
            multiProcessorCount=16,
        )
        return (self.ok, prop)

    def cudaMalloc(self, n):
        buf = ctypes.create_string_buffer(n)
        ptr = ctypes.addressof(buf)
        self.buffers[ptr] = buf
        return (self.ok, ptr)

    def cudaFree(self, ptr):
        self.buffers.pop(ptr)
        self.freed.append(ptr)
        return (self.ok,)

    def cudaStreamCreate(self):
        self.streams += 1
        return (self.ok, 1000 + self.streams)

    def cudaStreamDestroy(self, s):
        self.streams -= 1
        return (self.ok,)

    def cudaStreamSynchronize(self, s):
        return (self.ok,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (self.ok,)

    def cudaEventCreate(self):
        return (self.ok, object())

    def cudaEventRecord(self, e, s):
        return (self.ok,)

    def cudaEventSynchronize(self, e):
        return (self.ok,)

    def cudaEventElapsedTime(self, a, b):
        return (self.ok, 1.5)

    def cudaEventDestroy(self, e):
        return (self.ok,)

    def cudaGetErrorString(self, err):
        return (self.ok, b"fake error")


# -- tensorrt ---------------------------------------------------------------------------------


class DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"
    INT32 = "int32"
    INT64 = "int64"


class LayerType(enum.Enum):
    CONVOLUTION = 1
    REDUCE = 2
    ELEMENTWISE = 3
    SHAPE = 4
    CAST = 5
    OTHER = 6


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class Tensor:
    def __init__(self, name: str, dtype: DataType) -> None:
        self.name, self.dtype = name, dtype


class Layer:
    def __init__(self, name: str, type_: LayerType, out_dtype: DataType, strongly_typed: bool) -> None:
        self.name, self.type = name, type_
        self._outputs = [Tensor(f"{name}:0", out_dtype)]
        self._strong = strongly_typed
        self.output_types: dict[int, DataType] = {}
        self._precision: DataType | None = None

    num_outputs = property(lambda self: len(self._outputs))

    def get_output(self, i: int) -> Tensor:
        return self._outputs[i]

    @property
    def precision(self) -> DataType | None:
        return self._precision

    @precision.setter
    def precision(self, value: DataType) -> None:
        if self._strong:
            raise RuntimeError("setting layer precision is not allowed in a strongly typed network")
        self._precision = value

    def set_output_type(self, i: int, dtype: DataType) -> None:
        if self._strong:
            raise RuntimeError("setting output types is not allowed in a strongly typed network")
        self.output_types[i] = dtype


def _layer_type(op: str) -> LayerType:
    if op == "Conv":
        return LayerType.CONVOLUTION
    if op.startswith("Reduce"):
        return LayerType.REDUCE
    if op == "Shape":
        return LayerType.SHAPE
    return LayerType.ELEMENTWISE


def make_trt(version: str, *, rtx: bool = False) -> types.ModuleType:
    """A fake `tensorrt` (or `tensorrt_rtx`) module of the given version."""
    v = tuple(int(x) for x in version.split(".")[:2])
    m = types.ModuleType("tensorrt_rtx" if rtx else "tensorrt")
    m.__version__ = version
    m.float32, m.float16, m.int32, m.int64 = DataType.FLOAT, DataType.HALF, DataType.INT32, DataType.INT64
    m.LayerType, m.TensorIOMode, m.DataType = LayerType, TensorIOMode, DataType

    flags = ["GPU_FALLBACK", "TF32", "REFIT"]
    if v < (11, 0) and not rtx:
        flags += ["FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"]
    m.BuilderFlag = enum.Enum("BuilderFlag", flags)
    net_flags = []
    if v < (10, 0) and not rtx:
        net_flags.append("EXPLICIT_BATCH")
    if v >= (9, 1) or rtx:
        net_flags.append("STRONGLY_TYPED")
    m.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", net_flags, start=0)
    m.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])
    m.DeviceType = enum.Enum("DeviceType", ["GPU", "DLA"])
    m.ComputeCapability = enum.Enum("ComputeCapability", ["SM75", "SM80", "SM86", "SM89", "SM120", "SM121"])
    m.EngineValidity = enum.Enum("EngineValidity", ["VALID", "SUBOPTIMAL", "INVALID"])
    m.EngineInvalidityDiagnostics = enum.IntFlag("EngineInvalidityDiagnostics", ["VERSION_MISMATCH", "UNSUPPORTED_CC"])

    class ILogger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    class Logger(ILogger):
        WARNING = ILogger.Severity.WARNING

        def __init__(self, severity=None) -> None:
            super().__init__()

    m.ILogger, m.Logger = ILogger, Logger

    class Network:
        def __init__(self, flags: int) -> None:
            strong_bit = getattr(m.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
            self.strongly_typed = v >= (11, 0) or rtx or (strong_bit is not None and bool(flags & (1 << strong_bit)))
            self.flags = flags
            self.layers: list[Layer] = []
            self.inputs: list[Tensor] = []

        num_layers = property(lambda self: len(self.layers))
        num_inputs = property(lambda self: len(self.inputs))

        def get_layer(self, i: int) -> Layer:
            return self.layers[i]

        def get_input(self, i: int) -> Tensor:
            return self.inputs[i]

    class ParserError:
        def __init__(self, msg: str) -> None:
            self._msg = msg

        def desc(self) -> str:
            return self._msg

    class OnnxParser:
        def __init__(self, network: Network, logger) -> None:
            self.network, self.errors = network, []

        num_errors = property(lambda self: len(self.errors))

        def get_error(self, i: int) -> ParserError:
            return self.errors[i]

        def parse(self, data: bytes) -> bool:
            import onnx

            try:
                model = onnx.load_from_string(data)
            except Exception as e:
                self.errors.append(ParserError(f"not ONNX: {e}"))
                return False
            self.network.inputs = [Tensor(i.name, DataType.FLOAT) for i in model.graph.input]
            for node in model.graph.node:
                out = DataType.INT64 if node.op_type in ("Shape", "Range") else DataType.FLOAT
                self.network.layers.append(
                    Layer(node.name, _layer_type(node.op_type), out, self.network.strongly_typed)
                )
            return True

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name, lo, opt, hi) -> None:
            self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

    class TimingCache:
        def __init__(self, blob: bytes) -> None:
            self.blob = blob

        def serialize(self) -> bytes:
            return b"TIMINGCACHE" + self.blob[:0]

    class Config:
        def __init__(self) -> None:
            self.flags: set[str] = set()
            self.cleared: set[str] = set()
            self.pool_limits: dict[str, int] = {}
            self.profiles: list[Profile] = []
            self.default_device_type = m.DeviceType.GPU
            self.DLA_core = -1
            self.cache: TimingCache | None = None
            self.num_compute_capabilities = 0
            self.ccs: dict[int, object] = {}

        def set_flag(self, f) -> None:
            self.flags.add(f.name)

        def clear_flag(self, f) -> None:
            self.cleared.add(f.name)
            self.flags.discard(f.name)

        def set_memory_pool_limit(self, pool, n) -> None:
            self.pool_limits[pool.name] = n

        def add_optimization_profile(self, p) -> int:
            self.profiles.append(p)
            return len(self.profiles) - 1

        def create_timing_cache(self, blob: bytes) -> TimingCache:
            return TimingCache(blob)

        def set_timing_cache(self, cache, ignore_mismatch) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache:
            return self.cache

        def set_compute_capability(self, cc, i) -> None:
            self.ccs[i] = cc

    class Builder:
        last: Builder | None = None

        def __init__(self, logger) -> None:
            self.logger = logger
            Builder.last = self
            self.fail = False

        def create_network(self, flags: int = 0) -> Network:
            self.network = Network(flags)
            return self.network

        def create_builder_config(self) -> Config:
            self.config = Config()
            return self.config

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network, config):
            if self.fail:
                self.logger.log(ILogger.Severity.ERROR, "fake build failure\nsecond line")
                return None
            return memoryview(ENGINE_MAGIC + b":" + version.encode())

    m.Builder, m.OnnxParser, m.Network, m.Config = Builder, OnnxParser, Network, Config

    class Context:
        def __init__(self, scale: int) -> None:
            self.scale, self.shape, self.addr = scale, None, {}

        def set_input_shape(self, name, shape) -> bool:
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            n, c, h, w = self.shape
            return (n, c, h * self.scale, w * self.scale)

        def set_tensor_address(self, name, ptr) -> bool:
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream) -> bool:
            n, c, h, w = self.shape
            s = self.scale
            src = np.ctypeslib.as_array((ctypes.c_float * (n * c * h * w)).from_address(self.addr["lr"]))
            x = src.reshape(n, c, h, w)
            y = x.repeat(s, axis=2).repeat(s, axis=3)  # nearest upscaling stands in for the network
            dst = np.ctypeslib.as_array((ctypes.c_float * y.size).from_address(self.addr["sr"]))
            dst[:] = y.reshape(-1)
            return True

    class Engine:
        def __init__(self, scale: int) -> None:
            self.scale = scale
            self.num_io_tensors = 2

        def get_tensor_name(self, i: int) -> str:
            return ("lr", "sr")[i]

        def get_tensor_mode(self, name: str) -> TensorIOMode:
            return TensorIOMode.INPUT if name == "lr" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> DataType:
            return DataType.FLOAT

        def get_tensor_profile_shape(self, name: str, i: int):
            return ((1, 3, 16, 16), (1, 3, 64, 64), (1, 3, 128, 128))

        def create_execution_context(self) -> Context:
            return Context(self.scale)

    class Runtime:
        deserialized = 0
        validity = None  # set to an EngineValidity member to simulate get_engine_validity

        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes):
            Runtime.deserialized += 1
            return Engine(4) if bytes(data).startswith(ENGINE_MAGIC) else None

        if rtx:

            def get_engine_validity(self, data):
                bad = Runtime.validity
                if bad is None:
                    return (m.EngineValidity.VALID, 0)
                return (bad, int(m.EngineInvalidityDiagnostics.UNSUPPORTED_CC))

    m.Runtime, m.Engine = Runtime, Engine
    return m
