"""`--qat`: quantization-aware fine-tuning with srx quantize's INT8 scheme (srx/precision/int8.py).

`srx quantize` puts a per-tensor symmetric Q/DQ pair on every convolution's input and
quantizes every convolution's weight per output channel:

    x' = clamp(round(x / s), -128, 127) * s,   s = a / 127, a chosen by an MSE search on calibration data
    W' = round(W / s_c) * s_c,                 s_c = max|W_c| / 127

During QAT every convolution computes conv(x', W') instead of conv(x, W), so training sees
the rounding it will get, and the weights move to where rounding hurts least. Gradients
pass through the rounding unchanged (straight-through estimator) and are zero where the
activation is clipped. Weight scales follow the weights at every step, as `srx quantize`
computes them from the final weights; activation ranges are chosen once, when QAT starts,
with the same MSE search on a fixed calibration batch, and saved with the run so a resumed
run uses the same ones. The network's parameters and names are unchanged: the checkpoints
are plain float networks that `srx export` and `srx quantize` take as they are.

Every convolution is fake-quantized, also those `srx quantize` may later keep in FP16 (it
picks them by measured sensitivity): a network trained to tolerate INT8 everywhere
tolerates it in any subset.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srx.precision.int8 import SAMPLES_PER_ITEM  # the range search samples as srx quantize does

CALIBRATION_PATCHES = 16


def fake_quant(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """clamp(round(x / s), -128, 127) * s, with a straight-through gradient inside the range."""
    lo, hi = -128.0 * scale, 127.0 * scale
    clipped = torch.clamp(x, lo, hi)  # gradient 1 inside the range (bounds included), 0 outside
    return clipped + (torch.round(clipped / scale) * scale - clipped).detach()


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    amax = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))


def _qat_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    xq = fake_quant(x, self.srx_act_scale)  # type: ignore[arg-type]
    wq = fake_quant(self.weight, weight_scale(self.weight))
    return F.conv2d(xq, wq, self.bias, self.stride, self.padding, self.dilation, self.groups)


def convolutions(model: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            yield name, m


def calibrate(model: nn.Module, lr: torch.Tensor, seed: int) -> dict[str, float]:
    """Each convolution's input range a, by srx quantize's MSE search on the float network."""
    from srx.precision.int8 import choose_range

    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = {}
    amax: dict[str, float] = {}
    hooks = []
    for name, conv in convolutions(model):

        def record(_m: nn.Module, inputs: tuple[torch.Tensor, ...], name: str = name) -> None:
            v = inputs[0].detach().float().cpu().numpy()
            amax[name] = max(amax.get(name, 0.0), float(np.abs(v).max()))
            for item in v.reshape(v.shape[0], -1):
                k = min(SAMPLES_PER_ITEM, item.size)
                samples.setdefault(name, []).append(item[rng.integers(0, item.size, k)])

        hooks.append(conv.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            model(lr)
    finally:
        for h in hooks:
            h.remove()
    return {name: choose_range(np.concatenate(samples[name]), amax[name], "mse") for name in samples}


def attach(model: nn.Module, ranges: dict[str, float]) -> None:
    """Fake-quantize every convolution of `model` (in place; parameters and names unchanged)."""
    for name, conv in convolutions(model):
        a = ranges[name]
        scale = max(a / 127.0, 1e-12)
        conv.register_buffer("srx_act_scale", torch.tensor(scale, device=conv.weight.device), persistent=False)
        conv.forward = types.MethodType(_qat_forward, conv)  # type: ignore[method-assign]


def describe(ranges: dict[str, float]) -> dict[str, Any]:
    return {"scheme": "srx quantize INT8 (per-tensor symmetric inputs, per-channel weights)", "ranges": ranges}
