"""Parameters, multiply-adds and activations of a model at an input size, counted as fvcore does.

The SAFMN paper's numbers (239.52 K params, 13.56 G, 76.70 M for x4 at 320x180) come
from fvcore's FlopCountAnalysis / ActivationCountAnalysis (the official safmn_arch.py).
Its default rules, reproduced here on PyTorch's dispatched ops:

* convolution: MACs = output elements * in_channels / groups * kh * kw (bias not counted)
* nearest upsampling: 1 per output element; bilinear upsampling: 4 per output element
* adaptive average pooling: 1 per input element
* everything else (LayerNorm written out by hand, GELU, max pooling, products, sums,
  PixelShuffle, GRN): 0
* activations: output elements of convolutions (fvcore also counts matmul/linear/einsum
  outputs; SAFMN has none)

For x4 at 320x180 this gives 13,554,915,840 MACs, which fvcore prints as 13.555 G and the
paper rounds to 13.56 G, and 76,700,160 activations (76.70 M); both checked against
fvcore 0.1.5 (tests/test_bench.py).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

RULE = (
    "fvcore rules: conv MACs = out elements * in_ch/groups * k*k (no bias); nearest upsample 1, "
    "bilinear upsample 4 per output element; other ops 0; activations = conv output elements"
)


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    activations: int

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "macs": self.macs, "activations": self.activations, "rule": RULE}


def count_complexity(model: Any, height: int, width: int) -> Complexity:
    """Count on the meta device: shapes only, no arithmetic, so any input size is instant."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    totals = {"macs": 0, "acts": 0}

    def numel(t: Any) -> int:
        return math.prod(t.shape)

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            packet = getattr(func, "overloadpacket", None)
            if packet in (aten.convolution, aten._convolution, aten.conv2d):
                weight = args[1]  # (out_ch, in_ch / groups, kh, kw)
                per_out = weight.shape[1] * math.prod(weight.shape[2:])
                totals["macs"] += numel(out) * per_out
                totals["acts"] += numel(out)
            elif packet in (aten.upsample_nearest2d, aten._upsample_nearest_exact2d):
                totals["macs"] += numel(out)
            elif packet is aten.upsample_bilinear2d:
                totals["macs"] += 4 * numel(out)
            elif packet in (aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d):
                totals["macs"] += numel(args[0])
            return out

    params = sum(p.numel() for p in model.parameters())
    meta = copy.deepcopy(model).to("meta")
    x = torch.empty(1, 3, height, width, device="meta")
    with torch.inference_mode(), Counter():
        meta(x)
    return Complexity(params, totals["macs"], totals["acts"])
