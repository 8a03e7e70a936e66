"""Each fused Triton kernel against the PyTorch ops it replaces (srx/kernels).

Runs on a CUDA GPU when there is one, else under the Triton interpreter on the CPU
(tests/triton_interpreter.py), with odd sizes (17x23, 33x9) and a batch of 2 somewhere.
References run in FP32 on the same (already rounded) inputs. Tolerances, max abs error:
FP32 1e-4 (the contract; observed <= 1e-6). FP16 and BF16 are bounded by rounding the
output (values up to ~6: half an ulp is 2e-3 in FP16, 1.6e-2 in BF16; observed <= 2.4e-3
and 3.4e-2) plus, on a GPU, rounding of the tensor-core GEMM operands as eager FP16 convs
do: FP16 1e-2, BF16 1e-1 for the GEMM kernels, 1e-2 / 6e-2 for LayerNorm alone.
Under the interpreter BF16 tl.dot operands go through FP32 (triton-lang/triton#11584).
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("triton") is None:  # not importorskip: triton must not be imported yet
    pytest.skip("the fused kernels need the 'triton' package (pip install 'srx[kernels]')", allow_module_level=True)

from triton_interpreter import kernel_device

DEVICE = kernel_device()

from srx.errors import BadInput  # noqa: E402
from srx.kernels.ccm import ccm  # noqa: E402
from srx.kernels.layer_norm import TritonLayerNorm2d, layer_norm, layer_norm_stats  # noqa: E402
from srx.kernels.model import FusedCCM, FusedSAFM  # noqa: E402
from srx.kernels.multiscale import lowres_dwconv, lowres_layout, multiscale_pool  # noqa: E402
from srx.kernels.safm_tail import safm_tail  # noqa: E402
from srx.models import build_model  # noqa: E402
from srx.models.layers import LayerNorm2d  # noqa: E402

SHAPES = [(2, 17, 23), (1, 33, 9)]  # (batch, height, width)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LN_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 6e-2}
GEMM_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-1}


def assert_close(out: torch.Tensor, ref: torch.Tensor, tol: float, what: str) -> None:
    """Max abs error within tol; on failure say where, how much, and how many NaNs."""
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    out, ref = out.float().cpu(), ref.float().cpu()
    nan_out, nan_ref = int(out.isnan().sum()), int(ref.isnan().sum())
    assert nan_out == nan_ref, f"{what}: {nan_out} NaNs in the output, {nan_ref} in the reference"
    err = (out - ref).abs().nan_to_num(0.0)
    worst = float(err.max()) if err.numel() else 0.0
    if worst > tol:
        bad = (err > tol).nonzero()
        first = tuple(bad[0].tolist())
        raise AssertionError(
            f"{what}: max abs error {worst:.3g} > {tol:g} at {len(bad)} of {err.numel()} elements; "
            f"first at {first}: got {out[first].item():.6g}, expected {ref[first].item():.6g}"
        )


def _rand(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(DEVICE, dtype)


def _ln_stats_ref(x: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    u = x.mean(1)
    var = (x - u[:, None]).pow(2).mean(1)
    return u, 1.0 / torch.sqrt(var + eps)


def _block(arch: str, dim: int = 36, seed: int = 3):
    """A feature block with random weights (biases and LayerNorm affine included)."""
    return build_model(arch, 4, dim=dim, n_blocks=1, seed=seed).feats[0].to(DEVICE)


# --- LayerNorm -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layer_norm_matches_layernorm2d(shape, dtype):
    n, h, w = shape
    ref_ln = LayerNorm2d(36).to(DEVICE)
    with torch.no_grad():
        ref_ln.weight.copy_(1 + 0.3 * _rand((36,), 1))
        ref_ln.bias.copy_(0.2 * _rand((36,), 2))
    x = (3 * _rand((n, 36, h, w), 0) + 1).to(dtype)
    with torch.no_grad():
        ref = ref_ln(x.float())
        out = TritonLayerNorm2d.from_reference(ref_ln)(x)
    assert out.dtype == dtype
    assert_close(out, ref, LN_TOL[dtype], f"layer_norm {dtype}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layer_norm_stats_are_fp32_mean_and_rstd(shape):
    n, h, w = shape
    x = _rand((n, 20, h, w), 4) * 2
    stats = layer_norm_stats(x, 1e-6)
    assert stats.dtype == torch.float32 and stats.shape == (n, 2, h, w)
    mean, rstd = _ln_stats_ref(x)
    assert_close(stats[:, 0], mean, 1e-5, "mean")
    assert_close(stats[:, 1], rstd, 1e-4 * float(rstd.abs().max()), "rstd")


def test_layer_norm_fp16_keeps_fp32_statistics_where_eager_fp16_overflows():
    # (x - mean)^2 = 300^2 > 65504: the hand-written LayerNorm overflows in FP16.
    x = torch.zeros(1, 4, 3, 5)
    x[:, 0], x[:, 1] = 600.0, -600.0
    x = (x + torch.linspace(0, 1, 15).reshape(1, 1, 3, 5)).to(DEVICE, torch.float16)
    w, b = torch.ones(4, device=DEVICE), torch.zeros(4, device=DEVICE)
    with torch.no_grad():
        ref = LayerNorm2d(4).to(DEVICE)(x.float())
    out = layer_norm(x, w, b)
    assert torch.isfinite(out).all()
    assert_close(out, ref, 1e-2, "layer_norm fp16 large values")


def test_layer_norm_refuses_wrong_weight_size():
    with pytest.raises(BadInput, match="36 elements"):
        layer_norm(_rand((1, 36, 9, 9), 0), torch.ones(12, device=DEVICE), torch.zeros(12, device=DEVICE))


# --- multi-scale branch: exact adaptive max pooling, low-resolution depthwise conv ------


@pytest.mark.parametrize(
    ("factors", "shape"),
    [((2, 4, 8), (2, 17, 23)), ((2, 4, 8), (1, 33, 9)), ((4, 8, 16), (1, 17, 23)), ((4, 8, 16), (1, 35, 16))],
    ids=str,
)
@pytest.mark.parametrize("with_ln", [False, True], ids=["x", "ln(x)"])
def test_multiscale_pool_equals_adaptive_max_pool(factors, shape, with_ln):
    n, h, w = shape
    x = _rand((n, 36, h, w), 5)
    if with_ln:
        lw, lb = 1 + 0.5 * _rand((36,), 6), 0.3 * _rand((36,), 7)
        lw[3] = -0.7  # a negative LN scale: the max must be taken after normalising
        mean, rstd = _ln_stats_ref(x)
        u = (x - mean[:, None]) * rstd[:, None] * lw[:, None, None] + lb[:, None, None]
        low = multiscale_pool(x, factors, layer_norm_stats(x), lw, lb)
    else:
        u = x
        low = multiscale_pool(x, factors)
    for i, f in enumerate(factors):
        ref = F.adaptive_max_pool2d(u[:, 9 * (i + 1) : 9 * (i + 2)], (h // f, w // f))
        if with_ln:
            assert_close(low.level(i), ref, 1e-5, f"pool level {i + 1} (f={f})")
        else:  # pure selection: bit-exact
            assert torch.equal(low.level(i), ref), f"pool level {i + 1} (f={f}) differs"


def test_multiscale_pool_propagates_nan_like_pytorch():
    x = _rand((1, 36, 17, 23), 8)
    x[0, 9, 5, 7] = float("nan")
    low = multiscale_pool(x, (2, 4, 8))
    ref = F.adaptive_max_pool2d(x[:, 9:18], (8, 11))
    assert torch.equal(low.level(0).isnan(), ref.isnan()) and int(ref.isnan().sum()) >= 1
    assert torch.equal(low.level(0).nan_to_num(0), ref.nan_to_num(0))


def test_multiscale_pool_refuses_inputs_below_the_coarsest_level():
    with pytest.raises(BadInput, match="too small for pool factor 16"):
        multiscale_pool(_rand((1, 36, 33, 9), 0), (4, 8, 16))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_lowres_dwconv_equals_depthwise_conv2d(shape):
    n, h, w = shape
    x = _rand((n, 36, h, w), 9)
    low = multiscale_pool(x, (2, 4, 8))
    weight, bias = _rand((3, 9, 9), 10) / 3, _rand((3, 9), 11)
    out = lowres_dwconv(low, weight, bias)
    for i in range(3):
        ref = F.conv2d(low.level(i), weight[i].reshape(9, 1, 3, 3), bias[i], padding=1, groups=9)
        assert_close(out.level(i), ref, 1e-5, f"low-res dwconv level {i + 1}")


# --- SAFM tail and CCM ------------------------------------------------------------------


def _reference_lowres(block, u: torch.Tensor):
    """D_l computed by PyTorch, packed the way safm_tail reads it."""
    low = lowres_layout(u, block.safm.pool_factors)
    h, w = u.shape[-2:]
    chunks = u.chunk(4, dim=1)
    for i, f in enumerate(block.safm.pool_factors, start=1):
        d = block.safm.mfr[i](F.adaptive_max_pool2d(chunks[i], (h // f, w // f)))
        low.level(i - 1).copy_(d.to(low.buf.dtype))
    return low


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23"])
def test_safm_tail_equals_safm_plus_residual(arch, shape, dtype):
    n, h, w = shape
    if arch == "safmn-ntire23" and w < 16:
        h, w = 16, 19  # its coarsest level is 1/16
    block = _block(arch)
    x = _rand((n, 36, h, w), 12)
    xd = x.to(dtype)
    with torch.no_grad():
        u = block.norm1(xd.float()) if block.norm else xd.float()
        ref = block.safm(u) + xd.float()
        fused = FusedSAFM(block.safm, block.norm1 if block.norm else None, want_stats=True).to(DEVICE)
        low_ref = _reference_lowres(block, u)
        low = dataclasses.replace(low_ref, buf=low_ref.buf.to(dtype))
        stats = layer_norm_stats(xd) if block.norm else None
        ln = (fused.ln_w, fused.ln_b) if block.norm else (None, None)
        y, st = safm_tail(
            xd,
            low,
            fused.dw0_w,
            fused.dw0_b,
            fused.aggr_wt,
            fused.aggr_b,
            stats=stats,
            ln_weight=ln[0],
            ln_bias=ln[1],
            want_stats=True,
        )
    assert y.dtype == dtype
    assert_close(y, ref, GEMM_TOL[dtype], f"safm_tail {arch} {dtype}")
    if dtype == torch.float32:
        mean, rstd = _ln_stats_ref(ref)
        assert_close(st[:, 0], mean, 1e-5, "LN2 mean")
        assert_close(st[:, 1], rstd, 1e-4 * float(rstd.max()), "LN2 rstd")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23"])
def test_ccm_equals_ccm_plus_residual(arch, shape, dtype):
    n, h, w = shape
    block = _block(arch)
    x = _rand((n, 36, h, w), 13).to(dtype)
    skip = _rand((n, 36, h, w), 14).to(dtype)
    with torch.no_grad():
        u = block.norm2(x.float()) if block.norm else x.float()
        ref = block.ccm(u) + x.float() + skip.float()
        fused = FusedCCM(block.ccm, block.norm2 if block.norm else None).to(DEVICE)
        stats = layer_norm_stats(x) if block.norm else None
        y, st = fused(x, stats, skip=skip, want_stats=True)
    assert y.dtype == dtype
    assert_close(y, ref, GEMM_TOL[dtype], f"ccm {arch} {dtype}")
    if dtype == torch.float32:
        mean, rstd = _ln_stats_ref(ref)
        assert_close(st[:, 0], mean, 1e-5, "next LN1 mean")
        assert_close(st[:, 1], rstd, 1e-4 * float(rstd.max()), "next LN1 rstd")


@pytest.mark.parametrize("blocks", [(64, 32, 16), (16, 16, 32)], ids=str)
def test_ccm_gpu_tile_sizes_cover_every_channel_and_hidden_slice(blocks):
    # The interpreter normally takes one K step and one hidden slice; the GPU defaults
    # (64, 32, 16) loop over several (dim 36 = 16 + 16 + 4, hidden 72 = 32 + 32 + 8).
    block_p, hid_block, k_block = blocks
    block = _block("safmn")
    x = _rand((1, 36, 7, 9), 15)
    with torch.no_grad():
        ref = block.ccm(block.norm2(x)) + x
        fused = FusedCCM(block.ccm, block.norm2).to(DEVICE)
        y, _ = ccm(
            x,
            fused.w1,
            fused.b1,
            fused.w2,
            fused.b2,
            stats=layer_norm_stats(x),
            ln_weight=fused.ln_w,
            ln_bias=fused.ln_b,
            block_p=block_p,
            hid_block=hid_block,
            k_block=k_block,
        )
    assert_close(y, ref, 1e-4, f"ccm tiles {blocks}")


@pytest.mark.parametrize("dim", [16, 48])
def test_fused_safm_and_ccm_modules_at_other_widths(dim):
    # Cq = 4 and 12: channel counts that are not the default 9, padded differently.
    block = _block("safmn", dim=dim, seed=dim)
    x = _rand((1, dim, 13, 10), 16)
    with torch.no_grad():
        x1 = block.safm(block.norm1(x)) + x
        ref = block.ccm(block.norm2(x1)) + x1
        y1, _ = FusedSAFM(block.safm, block.norm1, want_stats=False).to(DEVICE)(x)
        y, _ = FusedCCM(block.ccm, block.norm2).to(DEVICE)(y1)
    assert_close(y1, x1, 1e-4, f"FusedSAFM dim {dim}")
    assert_close(y, ref, 1e-4, f"FusedSAFM + FusedCCM dim {dim}")
