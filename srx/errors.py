"""Errors that end a command with one clear line and a defined exit code.

Library code raises these; `srx.program` turns them into `srx: error: ...` on stderr.
Every message says what is wrong and what to do next.
"""

from __future__ import annotations


class SrxError(Exception):
    """Base class. `exit_code` is what the CLI exits with (docs/cli.md#exit-codes: 1 failed, 2 bad input)."""

    exit_code = 1


class BadInput(SrxError):
    """The user gave something srx cannot use: a file, a size, a flag. Exit code 2."""

    exit_code = 2


# PyTorch is not a dependency of the base install: an unpinned `torch` pulls several GB of
# CUDA packages, the wrong build for a CPU-only machine, and a Jetson needs NVIDIA's wheel.
TORCH_HINT = (
    "install the PyTorch build for your machine first (CPU only: pip install torch "
    "--index-url https://download.pytorch.org/whl/cpu; CUDA and Jetson: see the README's Install)"
)
TENSORRT_HINT = "install NVIDIA TensorRT 8.6 or newer (pip install tensorrt; on a Jetson it comes with JetPack)"

# Top-level module -> (package to name, how to get it), for every optional import srx makes.
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "torch": ("torch", TORCH_HINT),
    "onnx": ("onnx", "pip install 'srx[cpu]'"),
    "onnxruntime": ("onnxruntime", "pip install 'srx[cpu]' (or 'srx[gpu]' for onnxruntime-gpu)"),
    "onnxslim": ("onnxslim", "pip install 'srx[cpu]'"),
    "tensorrt": ("tensorrt", TENSORRT_HINT),
    "tensorrt_rtx": ("tensorrt-rtx-cu13", "pip install 'srx[trt-rtx]'"),
    "cuda": ("cuda-python", "pip install 'srx[gpu]'"),
    "triton": ("triton", "pip install 'srx[kernels]'"),
    "matplotlib": ("matplotlib", "pip install 'srx[plot]'"),
    # nvidia-pytriton requires numpy<2: an environment of its own (README: Serving).
    "pytriton": ("nvidia-pytriton", "pip install 'srx[serve]' in an environment of its own (it requires numpy<2)"),
    "tritonclient": ("tritonclient", "pip install 'srx[triton-client]'"),
    "openvino": ("openvino", "pip install 'srx[openvino]' (or 'srx[cpu]', which includes it)"),
    "av": ("av", "pip install 'srx[video]' (PyAV: FFmpeg's libraries as wheels)"),
}


def install_hint(package: str, extra: str | None = None) -> str:
    """How to install `package`: its entry above, else the srx extra that carries it."""
    for name, how in OPTIONAL_MODULES.values():
        if name == package:
            return how
    return f"pip install 'srx[{extra}]'" if extra else f"pip install {package}"


class MissingDependency(BadInput):
    """An optional package the command needs is not installed. Exit code 2."""

    def __init__(self, package: str, extra: str | None, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed: {install_hint(package, extra)}"
        )
        self.package = package

    @classmethod
    def from_import_error(cls, e: ModuleNotFoundError, purpose: str) -> MissingDependency | None:
        """The MissingDependency for an import of an optional module that failed, else None."""
        top = (e.name or "").split(".")[0]
        if top not in OPTIONAL_MODULES:
            return None
        return cls(OPTIONAL_MODULES[top][0], None, purpose)


def first_line(message: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an error or a library's message, cut to `limit` characters:
    what srx quotes inside its own one-line errors (an exception's text may span many lines)."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    if lines:
        return lines[0][:limit]
    return type(message).__name__ if isinstance(message, BaseException) else "no message"


class CheckFailed(SrxError):
    """The work ran but a verification or accuracy gate failed. Exit code 1."""

    exit_code = 1
