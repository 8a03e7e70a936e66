"""Analytical memory traffic and FLOPs of SAFMN, eager vs fused: computed, not measured.

Model: every op (eager) or kernel (fused) reads its inputs from and writes its outputs
to DRAM once; neighbours of a 3x3 stencil, low-resolution gathers and re-reads of a
tile's own data come from on-chip caches and are not counted again; weights are counted
once per block. This is the usual roofline accounting. It overstates eager traffic on
GPUs whose L2 holds whole activations (H100: 50 MB; one dim-36 FP32 map at 320x180 is
8.3 MB), so the eager figures are upper bounds there; at 1280x720 (133 MB per map)
nothing fits and the model is close. Fused activations are counted in their padded NHWC
layout (CS = C rounded up to 8 channels: 40 for dim 36), which is what the kernels move;
the pooling kernel reads every sector of u although it uses 3 of its 4 chunks.

Pure Python (no torch): docs/kernels.md and bench/kernels_bench.py both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from srx.kernels._layout import channel_stride, chunk_stride

# NVIDIA H100 SXM datasheet peaks (dense): the floor is computed from these, not measured.
H100 = {"name": "H100 SXM (datasheet)", "hbm_bytes_per_s": 3.35e12, "fp32_flops": 67e12, "tensor_fp16_flops": 990e12}


@dataclass(frozen=True)
class Traffic:
    bytes: int
    flops: int  # 2 per multiply-add, plus element-wise work (small)
    launches: int

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.bytes + other.bytes, self.flops + other.flops, self.launches + other.launches)


def pooled_pixels(height: int, width: int, factors: tuple[int, ...]) -> list[int]:
    return [(height // f) * (width // f) for f in factors]


def fmm_breakdown(
    dim: int,
    ffn_scale: float,
    height: int,
    width: int,
    elem_bytes: int,
    *,
    fused: bool,
    pool_factors: tuple[int, ...] = (2, 4, 8),
    layer_norm: bool = True,
    bias: bool = True,
    last: bool = False,
    long_skip: bool = False,
) -> dict[str, int]:
    """Bytes each eager op group or fused kernel of one feature-mixing block moves.

    last / long_skip: the fused path adds the model's long skip in the last block's CCM
    and writes no LayerNorm statistics there; eager adds it as one more op.
    """
    c, p = dim, height * width
    cq = c // 4
    hd = int(dim * ffn_scale + 1e-6)
    low_total = cq * sum(pooled_pixels(height, width, pool_factors))
    b = elem_bytes
    n = c * p
    if not fused:
        ln = (14 * n + 9 * p) * b  # layers.LayerNorm2d: 8 reads + 6 writes of the map (mean, sub, pow, ...)
        out = {
            "LN1 (10 ops)": ln if layer_norm else 0,
            "dwconv chunk 0": 2 * cq * p * b,
            "adaptive max pools": (3 * cq * p + low_total) * b,
            "low-res dwconvs": 2 * low_total * b,
            "nearest resizes": (low_total + 3 * cq * p) * b,
            "cat": 2 * n * b,
            "1x1 aggregation": 2 * n * b,
            "GELU": 2 * n * b,
            "* u": 3 * n * b,
            "+ x (SAFM residual)": 3 * n * b,
            "LN2 (10 ops)": ln if layer_norm else 0,
            "CCM conv3x3": (c + hd) * p * b,
            "CCM GELU": 2 * hd * p * b,
            "CCM conv1x1": (hd + c) * p * b,
            "+ x (CCM residual)": 3 * n * b,
        }
        if long_skip and last:
            out["+ long skip"] = 3 * n * b
        return {k: v for k, v in out.items() if v}
    cs = channel_stride(c) * p * b  # one padded NHWC map
    low_stored = chunk_stride(cq) * sum(pooled_pixels(height, width, pool_factors)) * b
    u_maps = 1 if layer_norm else 0  # without LayerNorm the kernels read x where u would be
    return {
        # u in (every sector of it), the three pooled maps out
        "multiscale_pool": cs + low_stored,
        # x, u in, pooled maps gathered once, x1 (+ u2 = LN2(x1)) out
        "safm_tail": (1 + u_maps) * cs + low_stored + (1 + u_maps) * cs,
        # x1, u2 in, output (+ the next u) out; the long skip in (last block)
        "ccm": (1 + u_maps) * cs + (1 + (u_maps if not last else 0)) * cs + (cs if long_skip and last else 0),
    }


def fmm_traffic(
    dim: int,
    ffn_scale: float,
    height: int,
    width: int,
    elem_bytes: int,
    *,
    fused: bool,
    pool_factors: tuple[int, ...] = (2, 4, 8),
    layer_norm: bool = True,
    bias: bool = True,
    last: bool = False,
    long_skip: bool = False,
) -> Traffic:
    """Bytes (activations + weights once) and FLOPs of one feature-mixing block."""
    parts = fmm_breakdown(
        dim,
        ffn_scale,
        height,
        width,
        elem_bytes,
        fused=fused,
        pool_factors=pool_factors,
        layer_norm=layer_norm,
        bias=bias,
        last=last,
        long_skip=long_skip,
    )
    c, p = dim, height * width
    cq = c // 4
    hd = int(dim * ffn_scale + 1e-6)
    low = pooled_pixels(height, width, pool_factors)
    params = 4 * cq * 9 + c * c + hd * c * 9 + c * hd + (4 * cq + c + hd + c if bias else 0)
    params += 4 * c if layer_norm else 0
    macs = p * (cq * 9 + c * c + hd * c * 9 + hd * c) + sum(cq * 9 * q for q in low)
    elementwise = p * (c * 4 + hd * 8) + (2 * p * c * 8 if layer_norm else 0)  # GELU ~8, LN ~8 per element
    # eager: dw0, 3 x (pool, dw, resize), cat, 1x1, GELU, *, +; conv, GELU, conv, +; 10 per LN
    eager_launches = 1 + 3 * 3 + 5 + 4 + (20 if layer_norm else 0) + (1 if long_skip and last else 0)
    launches = 3 if fused else eager_launches
    return Traffic(sum(parts.values()) + params * elem_bytes, 2 * macs + elementwise, launches)


def model_traffic(
    arch: str,
    scale: int,
    dim: int,
    n_blocks: int,
    ffn_scale: float,
    height: int,
    width: int,
    elem_bytes: int,
    *,
    fused: bool,
) -> Traffic:
    """Whole network: first conv, blocks, skips, reconstruction conv and PixelShuffle."""
    if arch not in ("safmn", "safmn-ntire23"):
        raise ValueError(f"no traffic model for {arch}")
    paper = arch == "safmn"
    p, b = height * width, elem_bytes
    out_ch = 3 * scale * scale
    if fused:  # conv_head (image in, x0 + u out) and conv_tail (x in, the shuffled image out, + image skip)
        cs = channel_stride(dim)
        head = Traffic((3 * p + (2 if paper else 1) * cs * p) * b, 2 * p * 3 * 9 * dim, 1)
        tail = Traffic((cs * p + out_ch * p * (1 if paper else 2)) * b, 2 * p * dim * 9 * out_ch, 1)
    else:
        head = Traffic((3 * p + dim * p) * b, 2 * p * 3 * 9 * dim, 1)  # to_feat
        tail = Traffic((dim * p + 2 * out_ch * p + out_ch * p) * b, 2 * p * dim * 9 * out_ch, 2)  # to_img + shuffle
    total = head + tail
    if not paper:
        sp = p * scale * scale
        c = channel_stride(dim) if fused else dim
        grn = Traffic(3 * c * p * b, 4 * dim * p, 5)  # norm over the image, then scale + shift + x
        skip = 3 * p + 3 * sp + (0 if fused else 3 * sp * 2)  # bilinear (the add is in conv_tail when fused)
        total += grn + Traffic(skip * b, 10 * 3 * sp, 1 if fused else 2)
    for i in range(n_blocks):
        total += fmm_traffic(
            dim,
            ffn_scale,
            height,
            width,
            elem_bytes,
            fused=fused,
            pool_factors=(2, 4, 8) if paper else (4, 8, 16),
            layer_norm=paper,
            bias=paper,
            last=i == n_blocks - 1,
            long_skip=paper,
        )
    return total


def roofline_floor_s(traffic: Traffic, hbm_bytes_per_s: float, flops_per_s: float) -> float:
    """max(bytes / bandwidth, FLOPs / peak): no kernel can beat it; launches not included."""
    return max(traffic.bytes / hbm_bytes_per_s, traffic.flops / flops_per_s)


def fused_kernel_costs(
    dim: int, ffn_scale: float, height: int, width: int, elem_bytes: int, scale: int = 4
) -> dict[str, tuple[int, int]]:
    """(bytes, useful FLOPs) of each fused kernel of the paper SAFMN (a middle block's three,
    the first and the last convolution): what a kernel's own roofline floor is computed from.
    FLOPs are 2 per multiply-add of the real (unpadded) convolutions, plus ~8 per element for
    GELU and LayerNorm; the tensor cores also multiply the zero padding, which is not counted."""
    c, p, b = dim, height * width, elem_bytes
    cq, hd = c // 4, int(dim * ffn_scale + 1e-6)
    cs = channel_stride(c)
    parts = fmm_breakdown(dim, ffn_scale, height, width, elem_bytes, fused=True)
    low = sum(pooled_pixels(height, width, (2, 4, 8)))
    out_ch = 3 * scale * scale
    return {
        "conv_head": ((3 * p + 2 * cs * p) * b, 2 * p * 27 * c + 8 * p * c),
        "multiscale_pool": (parts["multiscale_pool"], 3 * cq * p),
        "safm_tail": (parts["safm_tail"], 2 * p * (9 * cq + 27 * cq + c * c) + 16 * p * c + 2 * 9 * cq * low),
        "ccm": (parts["ccm"], 2 * p * (9 * c * hd + hd * c) + 8 * p * (hd + c)),
        "conv_tail": ((cs * p + out_ch * p) * b, 2 * p * 9 * c * out_ch),
    }
