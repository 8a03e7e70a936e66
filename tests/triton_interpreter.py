"""Import srx's Triton kernels so they run here: compiled on a CUDA GPU, else interpreted.

Triton decides when a function is decorated (at import) whether it is compiled or run
by its CPU interpreter (TRITON_INTERPRET=1), and that includes triton.language's own
helpers such as tl.sum, decorated when triton itself is first imported. So without a GPU
the variable is set before triton and the kernel modules are imported; then the knob is
pinned in-process (triton.knobs) and the variable restored, so no other test, and no CLI
subprocess a test starts, sees it.
"""

from __future__ import annotations

import importlib
import os
import sys

KERNEL_MODULES = (
    "srx.kernels.tuning",
    "srx.kernels._common",
    "srx.kernels.layer_norm",
    "srx.kernels.conv",
    "srx.kernels.multiscale",
    "srx.kernels.safm_tail",
    "srx.kernels.ccm",
    "srx.kernels.model",
)


def _interpreted(fn: object) -> bool:
    return type(fn).__name__ == "InterpretedFunction"


def kernel_device() -> str:
    """Import the kernel modules for this machine; returns the device tests should use."""
    import torch

    if torch.cuda.is_available():
        for name in KERNEL_MODULES:
            importlib.import_module(name)
        return "cuda"
    if "triton" in sys.modules and not _interpreted(sys.modules["triton"].language.standard.sum):
        raise RuntimeError(
            "triton was imported before TRITON_INTERPRET=1 was set, so its kernels cannot run on this CPU: "
            "import tests/triton_interpreter.py first, or run pytest with TRITON_INTERPRET=1"
        )
    ln = sys.modules.get("srx.kernels.layer_norm")
    if ln is not None and _interpreted(ln._layer_norm_kernel):
        return "cpu"
    for name in KERNEL_MODULES:
        sys.modules.pop(name, None)
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        triton = importlib.import_module("triton")
        for name in KERNEL_MODULES:
            importlib.import_module(name)
        # Triton (3.4+) also checks the knob lazily at launch time; pin it in this process only.
        if hasattr(triton, "knobs"):
            triton.knobs.runtime.interpret = True
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old
    return "cpu"
