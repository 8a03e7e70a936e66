"""nn.Module -> exact ONNX (docs/architecture.md#layers-and-data-flow).

srx writes the ONNX graph itself from the module tree instead of tracing it with
torch.onnx: adaptive max pooling and nearest resizing then compute PyTorch's exact
windows and source indices at every input size, the graph does not depend on the
user's torch exporter, export takes well under a second, and node names follow module
paths (`feats.3.norm1/ReduceMean`) so precision passes and TensorRT can find layers.
See docs/export.md.

Modules (import them directly; this package file stays free of onnx and torch so
`srx --help` can show the opset defaults):

* `srx.export.model`: `onnx_from_model`, `simplify_onnx`, `export_onnx`
* `srx.export.metadata`: `read_srx_onnx`, `metadata`, `set_metadata`, the `srx.*` keys
  (onnx only, no torch: runtimes read it)
* `srx.export.verify`: `verify_onnx`, `verification_cases`
* `srx.export.graph`: `GraphBuilder` (naming, initializers, shared constants)
* `srx.export.layers`, `srx.export.safmn`, `srx.export.safmnpp`: one emitter per module
"""

from __future__ import annotations

from srx.errors import BadInput

# 19 is the lowest opset whose DequantizeLinear takes FP16 scales (needed by the
# strongly typed FP16 + INT8 Q/DQ graphs built from this export) and is inside the
# TensorRT 10.x ONNX parser's range (opset 9..20). 17 is TensorRT 8.6's maximum
# (JetPack 6.0). Above 20, TensorRT 10.x refuses the model.
DEFAULT_OPSET = 19
MIN_OPSET = 17
MAX_OPSET = 20

# The CLI verifies at --input; this is its default (docs/cli.md#srx-export).
DEFAULT_VERIFY_INPUT = "320x180"

# Max |ONNX - PyTorch| allowed on FP32 outputs (issue 3).
FP32_TOLERANCE = 1e-4

# Names of the graph's input, output and dynamic dimensions (docs/architecture.md#the-runner-contract: one I/O contract).
INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
DYNAMIC_DIMS = ("batch", "height", "width")


def check_opset(opset: int) -> int:
    """Raise BadInput unless srx can write this opset (MIN_OPSET..MAX_OPSET)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise BadInput(
            f"--opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} "
            f"({MIN_OPSET} for TensorRT 8.6 / JetPack 6.0; default {DEFAULT_OPSET}; TensorRT 10.x parses up to {MAX_OPSET})"
        )
    return opset
