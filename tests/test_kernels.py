"""Each fused Triton kernel against the PyTorch ops it replaces (srx/kernels).

Runs on a CUDA GPU when there is one (compiled), else under the Triton interpreter on the
CPU (tests/triton_interpreter.py), with odd sizes (17x23, 33x9) and a batch of 2 somewhere.
References run in true FP32 (TF32 off, also on a GPU) on the same rounded inputs.
Tolerances, max abs error: FP32 1e-4 in the exact modes (ieee; tf32x3, whose three TF32
products carry ~FP32 accuracy; observed <= 3e-6 under the interpreter); tf32 3e-2 (10-bit
operand mantissas, what PyTorch's own FP32 convolutions do by default on a GPU). FP16 and
BF16 are bounded by rounding the output (values up to ~6: half an ulp is 2e-3 in FP16,
1.6e-2 in BF16) plus rounding of the stored LayerNorm output and of the tensor-core
operands, as eager FP16 convs do: FP16 1e-2, BF16 1e-1 (observed 2.7e-3 and 3.2e-2). LayerNorm
outputs get twice the tolerance (dividing by the per-pixel standard deviation scales the
input's error; observed at most 1.3x here). The interpreter ignores TF32 (it
multiplies in FP32) and multiplies BF16 tl.dot operands in FP32 (triton-lang/triton#11584);
the GPU run checks those roundings.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("triton") is None:  # not importorskip: triton must not be imported yet
    pytest.skip("the fused kernels need the 'triton' package (pip install 'srx[kernels]')", allow_module_level=True)

from triton_interpreter import kernel_device

DEVICE = kernel_device()

from srx.errors import BadInput  # noqa: E402
from srx.kernels import tuning  # noqa: E402
from srx.kernels._common import channel_stride, from_nhwc, split_width, to_nhwc  # noqa: E402
from srx.kernels.ccm import ccm, pack_ccm  # noqa: E402
from srx.kernels.conv import conv_head, conv_tail, pack_conv3x3, pack_head, tail_width  # noqa: E402
from srx.kernels.layer_norm import TritonLayerNorm2d, layer_norm  # noqa: E402
from srx.kernels.model import FusedAttBlock, _padded  # noqa: E402
from srx.kernels.multiscale import lowres_layout, multiscale_pool  # noqa: E402
from srx.kernels.safm_tail import pack_safm, safm_tail  # noqa: E402
from srx.models import build_model  # noqa: E402
from srx.models.layers import LayerNorm2d  # noqa: E402

pytestmark = pytest.mark.usefixtures("exact_fp32_reference")

SHAPES = [(2, 17, 23), (1, 33, 9)]  # (batch, height, width)
# (activation dtype, FP32 precision): the FP32 modes only differ on a GPU.
MODES = [
    (torch.float32, "ieee"),
    (torch.float32, "tf32x3"),
    (torch.float32, "tf32"),
    (torch.float16, "tf32x3"),
    (torch.bfloat16, "tf32x3"),
]
MODE_IDS = ["fp32-ieee", "fp32-tf32x3", "fp32-tf32", "fp16", "bf16"]
TOL = {"ieee": 1e-4, "tf32x3": 1e-4, "tf32": 3e-2, torch.float16: 1e-2, torch.bfloat16: 1e-1}
LN_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 6e-2}


def tolerance(dtype: torch.dtype, precision: str) -> float:
    return TOL[precision] if dtype == torch.float32 else TOL[dtype]


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


def assert_padding_zero(t: torch.Tensor, c: int, what: str) -> None:
    """The padded NHWC layout's contract: channels c..CS-1 are exactly zero."""
    assert t.shape[-1] == channel_stride(c), f"{what}: channel stride {t.shape[-1]} != {channel_stride(c)}"
    pad = t[..., c:]
    assert pad.numel() == 0 or bool((pad == 0).all()), f"{what}: padding channels are not zero"


def _rand(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(DEVICE, dtype)


def _block(arch: str, dim: int = 36, seed: int = 3):
    """A feature block with random weights (biases and LayerNorm affine included)."""
    return build_model(arch, 4, dim=dim, n_blocks=1, seed=seed).feats[0].to(DEVICE)


def _ln_params(norm: LayerNorm2d, c: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    cp = max(16, 1 << (channel_stride(c) - 1).bit_length())
    return _padded(norm.weight, cp), _padded(norm.bias, cp), norm.eps


# --- layout and packing helpers ---------------------------------------------------------------


def test_split_width_covers_with_little_waste():
    assert split_width(72) == (64, 16)  # SAFMN's hidden width: 80 columns, not 128
    assert split_width(48) == (32, 16)  # x4 reconstruction: 3 * 16 channels
    assert split_width(27) == (32, 0)
    assert split_width(12) == (16, 0)
    assert split_width(112) == (128, 0)  # 64 + 64 would not be smaller
    for n in range(1, 300):
        a, b = split_width(n)
        assert a + b >= n and a >= 16 and a & (a - 1) == 0 and (b == 0 or (b >= 16 and b & (b - 1) == 0))


def test_nhwc_round_trip_pads_with_zeros():
    x = _rand((2, 36, 5, 7), 0)
    y = to_nhwc(x)
    assert y.shape == (2, 5, 7, 40) and y.is_contiguous()
    assert_padding_zero(y, 36, "to_nhwc")
    assert torch.equal(from_nhwc(y, 36), x)


# --- standalone LayerNorm (NCHW) ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
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


def test_triton_layer_norm_refuses_to_run_with_gradients():
    # The kernels have no backward: a training step through them would get no gradient.
    ln = TritonLayerNorm2d(8).to(DEVICE)
    with pytest.raises(BadInput, match="inference-only"):
        ln(_rand((1, 8, 4, 4), 0))
    with torch.no_grad():
        assert ln(_rand((1, 8, 4, 4), 0)).shape == (1, 8, 4, 4)


# --- first convolution (+ LN1) and last convolution (+ PixelShuffle, + image skip) -------------


@pytest.mark.parametrize(("dtype", "precision"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_conv_head_equals_to_feat_and_layer_norm(shape, dtype, precision):
    n, h, w = shape
    model = build_model("safmn", 4, n_blocks=1, seed=4).to(DEVICE)
    img = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(5)).to(DEVICE, dtype)
    cp = 64
    wt, b = pack_head(model.to_feat.weight, model.to_feat.bias, cp)
    with torch.no_grad():
        feat_ref = model.to_feat(img.float())
        u_ref = model.feats[0].norm1(feat_ref)
        feat, u = conv_head(img, wt.to(dtype), b, 36, ln=_ln_params(model.feats[0].norm1, 36), fp32_precision=precision)
    assert feat.dtype == dtype
    assert_padding_zero(feat, 36, "conv_head features")
    assert_padding_zero(u, 36, "conv_head LN1")
    tol = tolerance(dtype, precision)
    assert_close(from_nhwc(feat, 36), feat_ref, tol, f"conv_head {dtype} {precision}")
    assert_close(from_nhwc(u, 36), u_ref, 2 * tol, "conv_head LN1")


@pytest.mark.parametrize(("dtype", "precision"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize(("scale", "dim"), [(4, 36), (3, 16), (2, 48)], ids=str)
def test_conv_tail_equals_to_img_with_pixel_shuffle(scale, dim, dtype, precision):
    model = build_model("safmn", scale, dim=dim, n_blocks=1, seed=6).to(DEVICE)
    x = _rand((2, dim, 9, 11), 7, dtype)
    add = _rand((2, 3, 9 * scale, 11 * scale), 8, dtype)
    conv = model.to_img[0]
    wt, b = pack_conv3x3(conv.weight, conv.bias, sum(tail_width(conv.weight.shape[0])))
    with torch.no_grad():
        ref = model.to_img(x.float()) + add.float()
        out = conv_tail(to_nhwc(x), wt.to(dtype), b, dim, scale, add=add, fp32_precision=precision)
    assert out.dtype == dtype and out.is_contiguous()
    assert_close(out, ref, tolerance(dtype, precision), f"conv_tail x{scale} dim {dim} {dtype} {precision}")


# --- multi-scale branch: exact adaptive max pooling ---------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize(
    ("factors", "shape", "dim"),
    [
        ((2, 4, 8), (2, 17, 23), 36),
        ((2, 4, 8), (1, 33, 9), 36),
        ((4, 8, 16), (1, 17, 23), 36),
        ((4, 8, 16), (1, 35, 16), 36),
        ((2, 4, 8), (1, 17, 23), 48),  # aligned loads too, other lane shifts (4, 0, 4)
        ((2, 4, 8), (1, 17, 23), 16),  # chunk-by-chunk loads (the aligned lanes would pass the pixel)
    ],
    ids=str,
)
def test_multiscale_pool_equals_adaptive_max_pool(factors, shape, dim, dtype):
    n, h, w = shape
    cq = dim // 4
    u = _rand((n, dim, h, w), 5, dtype)
    low = multiscale_pool(to_nhwc(u), dim, factors)
    assert low.shifts == ((4, 0, 4) if dim == 48 else (1, 2, 3) if dim == 36 else (0, 0, 0))
    for i, f in enumerate(factors):
        ref = F.adaptive_max_pool2d(u[:, cq * (i + 1) : cq * (i + 2)].float(), (h // f, w // f)).to(dtype)
        assert torch.equal(low.level_nchw(i).cpu(), ref.cpu()), f"pool level {i + 1} (f={f}) differs"
        lanes = torch.ones(low.cqp, dtype=torch.bool)
        lanes[low.shifts[i] : low.shifts[i] + cq] = False
        assert bool((low.level(i)[..., lanes] == 0).all()), f"pool level {i + 1}: lanes outside the chunk are not zero"


def test_multiscale_pool_propagates_nan_like_pytorch():
    u = _rand((1, 36, 17, 23), 8)
    u[0, 9, 5, 7] = float("nan")
    low = multiscale_pool(to_nhwc(u), 36, (2, 4, 8))
    ref = F.adaptive_max_pool2d(u[:, 9:18], (8, 11))
    assert torch.equal(low.level_nchw(0).isnan(), ref.isnan()) and int(ref.isnan().sum()) >= 1
    assert torch.equal(low.level_nchw(0).nan_to_num(0), ref.nan_to_num(0))


def test_multiscale_pool_refuses_inputs_below_the_coarsest_level():
    with pytest.raises(BadInput, match="too small for pool factor 16"):
        multiscale_pool(to_nhwc(_rand((1, 36, 33, 9), 0)), 36, (4, 8, 16))


def test_kernels_refuse_a_layout_that_is_not_padded_nhwc():
    with pytest.raises(BadInput, match=r"\(N, H, W, 40\) padded channels-last"):
        multiscale_pool(_rand((1, 36, 17, 23), 0), 36, (2, 4, 8))


# --- SAFM tail and CCM ------------------------------------------------------------------------


def _reference_pooled(block, u: torch.Tensor, dtype: torch.dtype):
    """P_l computed by PyTorch, packed the way safm_tail reads it."""
    n, c, h, w = u.shape
    low = lowres_layout(n, h, w, c, block.safm.pool_factors, u.to(dtype))
    low.buf.zero_()
    chunks = u.chunk(4, dim=1)
    for i, f in enumerate(block.safm.pool_factors, start=1):
        pooled = F.adaptive_max_pool2d(chunks[i], (h // f, w // f))
        lane = low.shifts[i - 1]  # where multiscale_pool puts channel 0 of the chunk
        low.level(i - 1)[..., lane : lane + c // 4].copy_(pooled.permute(0, 2, 3, 1).to(dtype))
    return low


@pytest.mark.parametrize(("dtype", "precision"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23"])
def test_safm_tail_equals_safm_plus_residual(arch, shape, dtype, precision):
    n, h, w = shape
    if arch == "safmn-ntire23" and w < 16:
        h, w = 16, 19  # its coarsest level is 1/16
    block = _block(arch)
    x = _rand((n, 36, h, w), 12, dtype)
    with torch.no_grad():
        u = (block.norm1(x.float()) if block.norm else x.float()).to(dtype)  # what the previous kernel stored
        ref = block.safm(u.float()) + x.float()
        ln2 = _ln_params(block.norm2, 36) if block.norm else None
        y, u2 = safm_tail(
            to_nhwc(x),
            to_nhwc(u),
            _reference_pooled(block, u.float(), dtype),
            {k: v.to(dtype) if k == "aggr_w" else v for k, v in pack_safm(block.safm, 36).items()},
            36,
            ln_out=ln2,
            fp32_precision=precision,
        )
    assert y.dtype == dtype
    assert_padding_zero(y, 36, "safm_tail y")
    tol = tolerance(dtype, precision)
    assert_close(from_nhwc(y, 36), ref, tol, f"safm_tail {arch} {dtype} {precision}")
    if block.norm:
        assert_padding_zero(u2, 36, "safm_tail LN2")
        with torch.no_grad():
            u2_ref = block.norm2(ref)
        assert_close(from_nhwc(u2, 36), u2_ref, 2 * tol, "LN2")
    else:
        assert u2 is None


@pytest.mark.parametrize(("dtype", "precision"), MODES, ids=MODE_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23"])
def test_ccm_equals_ccm_plus_residual(arch, shape, dtype, precision):
    n, h, w = shape
    block = _block(arch)
    next_norm = _block("safmn", seed=9).norm1
    x = _rand((n, 36, h, w), 13, dtype)
    skip = _rand((n, 36, h, w), 14, dtype)
    with torch.no_grad():
        u = (block.norm2(x.float()) if block.norm else x.float()).to(dtype)
        ref = block.ccm(u.float()) + x.float() + skip.float()
        packed = {k: v.to(dtype) if k in ("w1", "w2") else v for k, v in pack_ccm(*block.ccm.ccm[::2]).items()}
        y, u_next = ccm(
            to_nhwc(x),
            to_nhwc(u),
            packed,
            36,
            skip=to_nhwc(skip),
            ln_out=_ln_params(next_norm, 36),
            fp32_precision=precision,
        )
    assert y.dtype == dtype
    assert_padding_zero(y, 36, "ccm y")
    assert_padding_zero(u_next, 36, "ccm next LN1")
    tol = tolerance(dtype, precision)
    assert_close(from_nhwc(y, 36), ref, tol, f"ccm {arch} {dtype} {precision}")
    with torch.no_grad():
        u_next_ref = next_norm(ref)
    assert_close(from_nhwc(u_next, 36), u_next_ref, 2 * tol, "next LN1")


@pytest.mark.parametrize("precision", ["ieee", "tf32x3"])
@pytest.mark.parametrize("config", [tuning.Config(64, 4, 3), tuning.Config(16, 4, 2)], ids=str)
def test_gpu_tile_sizes_cover_rows_tiles_and_hidden_slices(config, precision):
    # The interpreter normally takes one big tile; GPU tiles of 64 or 16 pixels span row ends
    # (width 9), and the exact mode walks the hidden width in slices (80 = 5 x 16).
    block = _block("safmn")
    x = _rand((1, 36, 17, 9), 15)
    with torch.no_grad():
        u = block.norm2(x)
        ref = block.ccm(u) + x
        y, _ = ccm(to_nhwc(x), to_nhwc(u), pack_ccm(*block.ccm.ccm[::2]), 36, fp32_precision=precision, config=config)
        u1 = block.norm1(x)
        ref1 = block.safm(u1) + x
        low = _reference_pooled(block, u1, torch.float32)
        y1, _ = safm_tail(to_nhwc(x), to_nhwc(u1), low, pack_safm(block.safm, 36), 36, config=config)
    assert_close(from_nhwc(y, 36), ref, 1e-4, f"ccm {config} {precision}")
    assert_close(from_nhwc(y1, 36), ref1, 1e-4, f"safm_tail {config}")


@pytest.mark.parametrize("dim", [16, 48])
def test_fused_block_at_other_widths(dim):
    # Cq = 4 and 12: chunk widths other than the default 9, padded differently (CS 16 and 48).
    block = _block("safmn", dim=dim, seed=dim)
    x = _rand((1, dim, 13, 10), 16)
    with torch.no_grad():
        ref = block(x)
        out = FusedAttBlock(block).to(DEVICE)(x)
    assert_close(out, ref, 1e-4, f"FusedAttBlock dim {dim}")


def test_fused_block_refuses_gradients():
    block = FusedAttBlock(_block("safmn")).to(DEVICE)
    x = _rand((1, 36, 9, 9), 0).requires_grad_()
    with pytest.raises(BadInput, match="inference-only"):
        block(x)
