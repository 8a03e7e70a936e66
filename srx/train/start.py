"""`--linear-start`: begin training as the best linear upscaler the network can express.

Zeroing the last layer of every residual branch (SAFM's `aggr`, CCM's second conv) makes
each block the identity, so the paper SAFMN computes to_img(2 * to_feat(lr)): a linear
map of each 5x5 LR neighbourhood to its s x s HR pixels. With to_feat at its random
initialisation, to_img is then solved by least squares against HR patches. On Set5 x4
that starts at 29.13 dB (bicubic: 28.42; the random network with the same fitted head:
27.29; team15's copied tensors with it: 26.07), where a fresh network starts at noise
(bench/results/2026-11-28-cpu-train/recipe.json).
The zeroed layers still receive gradients, so training grows the branches from there
(the "skip-init" idea for residual networks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srx.errors import BadInput
from srx.train.data import PatchSampler

FIT_PATCHES = 64


def linear_start(model: nn.Module, sampler: PatchSampler, batch: int = FIT_PATCHES) -> dict[str, float]:
    """Zero the residual branches and fit to_img by least squares; returns fit statistics."""
    if model.spec.arch != "safmn":  # type: ignore[union-attr]
        raise BadInput("--linear-start applies to the paper SAFMN (--arch safmn), whose blocks have residual branches")
    with torch.no_grad():
        for block in model.feats:  # type: ignore[attr-defined]
            for layer in (block.safm.aggr, block.ccm.ccm[2]):
                layer.weight.zero_()
                layer.bias.zero_()
    return fit_head(model, sampler, batch)


def fit_head(model: nn.Module, sampler: PatchSampler, batch: int = FIT_PATCHES) -> dict[str, float]:
    """Fit to_img by least squares on the body's current features (`--fit-head`).

    With `--init` from another scale every tensor but the head transfers (the x4 body into
    an x2 / x3 network): a fitted head starts the run as an upscaler built on those
    features, where a random head would output noise and its first gradients would pull
    the transferred body away from what it learnt.
    """
    if model.spec.arch != "safmn":  # type: ignore[union-attr]
        raise BadInput("--fit-head applies to the paper SAFMN (--arch safmn), whose head is to_img")
    lr_np, hr_np, _ = sampler.batch(0, batch, stream=1)
    lr, hr = torch.from_numpy(lr_np), torch.from_numpy(hr_np)
    s = model.spec.scale  # type: ignore[union-attr]
    head: nn.Conv2d = model.to_img[0]  # type: ignore[index]
    with torch.no_grad():
        f0 = model.to_feat(lr)  # type: ignore[operator]
        x = model.feats(f0) + f0  # type: ignore[operator]
        cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, x.shape[1] * 9).double()
        cols = torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], 1)
        target = F.pixel_unshuffle(hr, s).permute(0, 2, 3, 1).reshape(-1, 3 * s * s).double()
        gram = cols.T @ cols
        # A whisper of ridge keeps the solve stable where feature channels are nearly collinear.
        gram += 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        w = torch.linalg.solve(gram, cols.T @ target)
        head.weight.copy_(w[:-1].T.reshape(head.weight.shape).to(head.weight.dtype))
        head.bias.copy_(w[-1].to(head.bias.dtype))
        fit = (cols @ w - target).abs().mean().item()
    return {"patches": batch, "l1_after_fit": round(fit, 6)}
