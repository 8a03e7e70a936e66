"""SAFM's multi-scale branch at low resolution: exact adaptive max pooling, depthwise 3x3.

For chunk l = 1, 2, 3 of the (normalised) SAFM input u, with pool factor f_l and
o_h = H // f_l, o_w = W // f_l (PyTorch's adaptive windows, srx.models.layers.pool_windows):

    P_l[c, i, j] = max over r in [floor(i*H/o_h), ceil((i+1)*H/o_h)),
                            s in [floor(j*W/o_w), ceil((j+1)*W/o_w))  of  u[l*Cq + c, r, s]
    D_l[c, i, j] = b_l[c] + sum_{dy,dx in -1..1} w_l[c, dy, dx] * P_l[c, i+dy, j+dx]   (zero outside)

u = LN1(x) is never stored: with LayerNorm statistics (mean, rstd per pixel) the pooling
kernel normalises each element it reads, u = (x - mean) * rstd * w + b, before the max
(the LN weight can be negative, so the max cannot be taken first).
All three levels go through one launch per kernel: the program id picks the level, and
the three low-resolution maps live in one flat buffer (the nearest-neighbour upsampling
and the concatenation happen in srx.kernels.safm_tail by gathering from it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels._common import check_input, pow2, tile

N_POOLED = 3  # SAFM has 4 chunks; chunks 1..3 are pooled

# Depthwise conv: low-resolution pixels per program (flattened, all Cq channels of the
# chunk). The maps are small (1/4 .. 1/256 of the image), so one block size serves all
# levels; 64 x 16 tiles keep ~1024 elements per program.
BLOCK_LOW = 64
# Pooling: outputs x window elements per program (window padded to powers of two); ~7
# live [outputs, window] values per lane, so 1024 lanes stay in registers at 4 warps.
POOL_LANES = 1024


@functools.lru_cache(maxsize=4096)
def max_window(n: int, o: int) -> int:
    """Longest of PyTorch's adaptive windows [floor(i*n/o), ceil((i+1)*n/o)), i < o."""
    return max(((i + 1) * n + o - 1) // o - (i * n) // o for i in range(o))


@dataclass(frozen=True)
class LowRes:
    """Three (N, Cq, o_h, o_w) maps in one flat buffer, for one launch over all levels."""

    buf: torch.Tensor
    sizes: tuple[tuple[int, int], ...]
    offsets: tuple[int, ...]
    n: int
    cq: int

    def level(self, i: int) -> torch.Tensor:
        """Level i (0..2) as an (N, Cq, o_h, o_w) view: for tests and debugging."""
        oh, ow = self.sizes[i]
        return self.buf[self.offsets[i] : self.offsets[i] + self.n * self.cq * oh * ow].view(self.n, self.cq, oh, ow)

    def empty_like(self) -> LowRes:
        return LowRes(torch.empty_like(self.buf), self.sizes, self.offsets, self.n, self.cq)


def lowres_layout(x: torch.Tensor, factors: tuple[int, ...]) -> LowRes:
    n, c, h, w = x.shape
    if len(factors) != N_POOLED or c % (N_POOLED + 1):
        raise BadInput(f"SAFM needs 3 pool factors and channels divisible by 4, got {factors} and {c} channels")
    cq = c // (N_POOLED + 1)
    sizes = tuple((h // f, w // f) for f in factors)
    if any(oh < 1 or ow < 1 for oh, ow in sizes):
        raise BadInput(
            f"input {w}x{h} is too small for pool factor {max(factors)}: use at least {max(factors)}x{max(factors)}"
        )
    offsets, total = [], 0
    for oh, ow in sizes:
        offsets.append(total)
        total += n * cq * oh * ow
    buf = torch.empty(total, device=x.device, dtype=x.dtype)
    return LowRes(buf, sizes, tuple(offsets), n, cq)


@triton.jit
def _pick(pid, t1, t2, a1, a2, a3):
    """a1 for programs of level 1 (pid < t1), a2 for level 2 (pid < t2), a3 for level 3."""
    return tl.where(pid < t1, a1, tl.where(pid < t2, a2, a3))


@triton.jit
def _pool_level(
    X,
    STATS,
    LN_W,
    LN_B,
    OUT,
    n,
    tile,
    level,
    C,
    CQ,
    H,
    W,
    oh,
    ow,
    off,
    HAS_LN: tl.constexpr,  # normalise before the max (paper SAFMN) or pool x as is (NTIRE 2023)
    BLOCK_O: tl.constexpr,  # outputs in this tile (the level's share of POOL_LANES)
    KH_PAD: tl.constexpr,  # window rows held in lanes: power of two >= the level's longest window
    KW_PAD: tl.constexpr,  # window columns likewise; a shift/mask, not a division, splits the lane index
):
    """One level's tile: BLOCK_O outputs x (KH_PAD x KW_PAD) window elements in lanes."""
    HW = H * W
    q = tile * BLOCK_O + tl.arange(0, BLOCK_O)
    qm = q < oh * ow
    i = q // ow
    j = q % ow
    r0 = (i * H) // oh
    r1 = ((i + 1) * H + oh - 1) // oh
    s0 = (j * W) // ow
    s1 = ((j + 1) * W + ow - 1) // ow
    e = tl.arange(0, KH_PAD * KW_PAD)
    r = r0[:, None] + (e // KW_PAD)[None, :]
    s = s0[:, None] + (e % KW_PAD)[None, :]
    valid = qm[:, None] & (r < r1[:, None]) & (s < s1[:, None])
    pix = r * W + s
    if HAS_LN:  # loaded once, used for all Cq channels
        stats_n = STATS + n.to(tl.int64) * 2 * HW
        mean = tl.load(stats_n + pix, mask=valid, other=0.0)
        rstd = tl.load(stats_n + HW + pix, mask=valid, other=0.0)
    x_n = X + n.to(tl.int64) * C * HW
    for c in range(0, CQ):
        ch = level * CQ + c
        v = tl.load(x_n + ch * HW + pix, mask=valid, other=0.0).to(tl.float32)
        if HAS_LN:
            v = (v - mean) * rstd * tl.load(LN_W + ch).to(tl.float32) + tl.load(LN_B + ch).to(tl.float32)
        best = tl.max(tl.where(valid, v, float("-inf")), axis=1)
        # PyTorch's adaptive max pooling propagates NaN; tl.max would drop it.
        has_nan = tl.max(tl.where(valid & (v != v), 1, 0), axis=1) > 0
        best = tl.where(has_nan, float("nan"), best)
        tl.store(OUT + off + (n * CQ + c) * (oh * ow) + q, best.to(OUT.dtype.element_ty), mask=qm)


@triton.jit
def _multiscale_pool_kernel(
    X,
    STATS,
    LN_W,
    LN_B,
    OUT,
    C,
    CQ,
    H,
    W,
    oh1,
    ow1,
    off1,
    oh2,
    ow2,
    off2,
    oh3,
    ow3,
    off3,
    t1,
    t2,
    HAS_LN: tl.constexpr,  # paper SAFMN pools LN1(x) (normalised on the fly); NTIRE 2023 pools x itself
    BLOCK_O1: tl.constexpr,  # outputs per program at level 1: BLOCK_O * window lanes ~ POOL_LANES
    KH1: tl.constexpr,  # longest window at level 1 (rows), rounded up to a power of two (tl.arange)
    KW1: tl.constexpr,  # same for columns; windows are [f, 2f) long, so a few variants per factor
    BLOCK_O2: tl.constexpr,  # as above, level 2
    KH2: tl.constexpr,
    KW2: tl.constexpr,
    BLOCK_O3: tl.constexpr,  # as above, level 3
    KH3: tl.constexpr,
    KW3: tl.constexpr,
):
    # One launch for all levels: programs [0, t1) do level 1, [t1, t2) level 2, the rest
    # level 3. The branch is uniform per program; each level has its own tile shape, so the
    # whole window of every output is reduced in parallel lanes (a serial loop over a
    # 16x16 window at the coarsest level would leave a few programs with long chains).
    pid = tl.program_id(0)
    n = tl.program_id(1)
    if pid < t1:
        _pool_level(X, STATS, LN_W, LN_B, OUT, n, pid, 1, C, CQ, H, W, oh1, ow1, off1, HAS_LN, BLOCK_O1, KH1, KW1)
    elif pid < t2:
        _pool_level(X, STATS, LN_W, LN_B, OUT, n, pid - t1, 2, C, CQ, H, W, oh2, ow2, off2, HAS_LN, BLOCK_O2, KH2, KW2)
    else:
        _pool_level(X, STATS, LN_W, LN_B, OUT, n, pid - t2, 3, C, CQ, H, W, oh3, ow3, off3, HAS_LN, BLOCK_O3, KH3, KW3)


@triton.jit
def _lowres_dwconv_kernel(
    IN,
    WEIGHT,
    BIAS,
    OUT,
    CQ,
    oh1,
    ow1,
    off1,
    oh2,
    ow2,
    off2,
    oh3,
    ow3,
    off3,
    t1,
    t2,
    BLOCK: tl.constexpr,  # low-res pixels per program, as in the pooling kernel (same level split)
    CQ_PAD: tl.constexpr,  # all channels of the chunk per program: one launch, few programs per level
):
    pid = tl.program_id(0)
    n = tl.program_id(1)
    oh = _pick(pid, t1, t2, oh1, oh2, oh3)
    ow = _pick(pid, t1, t2, ow1, ow2, ow3)
    off = _pick(pid, t1, t2, off1, off2, off3)
    lv = _pick(pid, t1, t2, 0, 1, 2)
    tile = pid - _pick(pid, t1, t2, 0, t1, t2)

    q = tile * BLOCK + tl.arange(0, BLOCK)
    qm = q < oh * ow
    c = tl.arange(0, CQ_PAD)
    cm = c < CQ
    i = q // ow
    j = q % ow
    planes = off + (n * CQ + c)[None, :] * (oh * ow)
    acc = tl.zeros([BLOCK, CQ_PAD], tl.float32)
    acc += tl.load(BIAS + lv * CQ + c, mask=cm, other=0.0).to(tl.float32)[None, :]
    for tap in tl.static_range(9):
        r = i + (tap // 3 - 1)
        s = j + (tap % 3 - 1)
        valid = qm & (r >= 0) & (r < oh) & (s >= 0) & (s < ow)
        vmask = valid[:, None] & cm[None, :]
        v = tl.load(IN + planes + (r * ow + s)[:, None], mask=vmask, other=0.0).to(tl.float32)
        acc += v * tl.load(WEIGHT + (lv * CQ + c) * 9 + tap, mask=cm, other=0.0).to(tl.float32)[None, :]
    tl.store(OUT + planes + q[:, None], acc.to(OUT.dtype.element_ty), mask=qm[:, None] & cm[None, :])


def multiscale_pool(
    x: torch.Tensor,
    factors: tuple[int, ...],
    stats: torch.Tensor | None = None,
    ln_weight: torch.Tensor | None = None,
    ln_bias: torch.Tensor | None = None,
) -> LowRes:
    """Adaptive max pool of chunks 1..3 of u to (H // f, W // f), f in `factors`.

    u = x, or LN(x) from per-pixel `stats` (srx.kernels.layer_norm.layer_norm_stats)
    and the LayerNorm's weight and bias when those are given.
    """
    x = check_input(x, _multiscale_pool_kernel, "multiscale_pool")
    n, c, h, w = x.shape
    out = lowres_layout(x, factors)
    has_ln = stats is not None
    shapes = {}
    tiles = []
    for lv, (oh, ow) in enumerate(out.sizes, start=1):
        kh, kw = pow2(max_window(h, oh)), pow2(max_window(w, ow))
        block_o = pow2(max(1, tile(POOL_LANES, _multiscale_pool_kernel) // (kh * kw)))
        shapes.update({f"BLOCK_O{lv}": block_o, f"KH{lv}": kh, f"KW{lv}": kw})
        tiles.append(triton.cdiv(oh * ow, block_o))
    (oh1, ow1), (oh2, ow2), (oh3, ow3) = out.sizes
    grid = (sum(tiles), n)
    _multiscale_pool_kernel[grid](
        x,
        stats if has_ln else x,
        ln_weight if has_ln else x,
        ln_bias if has_ln else x,
        out.buf,
        c,
        out.cq,
        h,
        w,
        oh1,
        ow1,
        out.offsets[0],
        oh2,
        ow2,
        out.offsets[1],
        oh3,
        ow3,
        out.offsets[2],
        tiles[0],
        tiles[0] + tiles[1],
        HAS_LN=has_ln,
        **shapes,
    )
    return out


def lowres_dwconv(low: LowRes, weight: torch.Tensor, bias: torch.Tensor) -> LowRes:
    """Depthwise 3x3 (padding 1) on each level: weight (3, Cq, 9) float, bias (3, Cq)."""
    if tuple(weight.shape) != (N_POOLED, low.cq, 9) or tuple(bias.shape) != (N_POOLED, low.cq):
        raise BadInput(f"lowres_dwconv: weight must be (3, {low.cq}, 9) and bias (3, {low.cq})")
    out = low.empty_like()
    (oh1, ow1), (oh2, ow2), (oh3, ow3) = low.sizes
    block = tile(BLOCK_LOW, _lowres_dwconv_kernel)
    t = [triton.cdiv(oh * ow, block) for oh, ow in low.sizes]
    grid = (sum(t), low.n)
    _lowres_dwconv_kernel[grid](
        low.buf,
        weight,
        bias,
        out.buf,
        low.cq,
        oh1,
        ow1,
        low.offsets[0],
        oh2,
        ow2,
        low.offsets[1],
        oh3,
        ow3,
        low.offsets[2],
        t[0],
        t[0] + t[1],
        BLOCK=block,
        CQ_PAD=pow2(low.cq),
    )
    return out
