"""Property-based tests of the fused Triton kernels' index arithmetic (hypothesis).

The kernels compute PyTorch's adaptive-pooling windows and nearest source rows inline
(srx/kernels/multiscale.py, safm_tail.py). On random sizes they must give PyTorch's
results: bit-exact for the pooling (pure selection), within float tolerance for the whole
SAFM. Without a GPU the kernels run in Triton's interpreter (tests/triton_interpreter.py),
so the examples are few and small.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("triton") is None:  # not importorskip: triton must not be imported yet
    pytest.skip("needs triton (pip install 'srx[kernels]')", allow_module_level=True)

from triton_interpreter import kernel_device

DEVICE = kernel_device()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from srx.kernels._common import from_nhwc, to_nhwc  # noqa: E402
from srx.kernels.multiscale import max_window, multiscale_pool  # noqa: E402
from srx.kernels.safm_tail import pack_safm, safm_tail  # noqa: E402
from srx.models import build_model  # noqa: E402
from srx.models.layers import pool_windows  # noqa: E402

KERNEL = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(n=st.integers(1, 16384), f=st.sampled_from([2, 4, 8, 16]))
def test_max_window_bounds_every_pooling_window(n, f):
    """The kernel sizes its window loop with max_window: it must be the longest window."""
    if n < f:
        return
    start, stop = pool_windows(n, f)
    assert max_window(n, n // f) == int((stop - start).max()) <= 2 * f - 1


@KERNEL
@given(
    h=st.integers(16, 72),
    w=st.integers(16, 72),
    factors=st.sampled_from([(2, 4, 8), (4, 8, 16)]),
    seed=st.integers(0, 2**16),
)
def test_multiscale_pool_equals_adaptive_max_pool(h, w, factors, seed):
    c = 8  # four chunks of two channels
    x = torch.randn(1, c, h, w, generator=torch.Generator().manual_seed(seed)).to(DEVICE)
    low = multiscale_pool(to_nhwc(x), c, factors)
    for i, f in enumerate(factors):
        ref = F.adaptive_max_pool2d(x[:, 2 * (i + 1) : 2 * (i + 2)], (h // f, w // f))
        assert torch.equal(low.level_nchw(i), ref), f"level {i + 1} (f={f}) at {w}x{h}"


@KERNEL
@given(h=st.integers(8, 60), w=st.integers(8, 60), seed=st.integers(0, 2**16))
def test_fused_safm_equals_the_module(h, w, seed):
    """Pooling windows, the low-resolution convs at the nearest source position, at random sizes."""
    block = build_model("safmn", 2, dim=8, n_blocks=1, seed=seed % 97).feats[0].to(DEVICE)
    x = torch.randn(1, 8, h, w, generator=torch.Generator().manual_seed(seed)).to(DEVICE)
    with torch.no_grad():
        u = block.norm1(x)
        ref = block.safm(u) + x
        us = to_nhwc(u)
        got, _ = safm_tail(to_nhwc(x), us, multiscale_pool(us, 8, (2, 4, 8)), pack_safm(block.safm, 8), 8)
        got = from_nhwc(got, 8)
    err = float((got - ref).abs().max())
    assert err < 1e-4, f"max abs error {err:.3g} at {w}x{h}"
