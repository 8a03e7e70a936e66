"""srx: SAFMN super-resolution to production on NVIDIA GPUs and Jetson.

`import srx` pulls in nothing heavy: torch, onnx, TensorRT and Triton are imported by
the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from torch import nn


def load_model(path: Any, **kwargs: Any) -> nn.Module:
    """Load a SAFMN-family checkpoint; see `srx.models.load_model`."""
    from srx.models import load_model as _load_model

    return _load_model(path, **kwargs)


__all__ = ["__version__", "load_model"]
