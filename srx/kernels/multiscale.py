"""SAFM's multi-scale branch, first half: exact adaptive max pooling of chunks 1..3.

For chunk l = 1, 2, 3 of the SAFM input u (LN1(x), stored by the previous kernel; x
itself without LayerNorm), pool factor f_l, o_h = H // f_l, o_w = W // f_l and Cq = C / 4
(PyTorch's adaptive windows, srx.models.layers.pool_windows):

    P_l[i, j, c] = max over r in [floor(i*H/o_h), ceil((i+1)*H/o_h)),
                            s in [floor(j*W/o_w), ceil((j+1)*W/o_w))  of  u[r, s, l*Cq + c]

All three levels go through one launch (the program id picks the level). Each program
reduces whole windows: lanes are [outputs, window columns, channels], a static loop runs
over the window rows, so even the 16x16 windows of the coarsest NTIRE level are a few
steps of parallel loads, not a long serial chain. The depthwise 3x3 that follows at low
resolution happens inside srx.kernels.safm_tail, which gathers P_l around each pixel's
nearest low-resolution position.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels import tuning
from srx.kernels._common import channel_stride, check_nhwc, chunk_stride, interpreted, pow2

N_POOLED = 3  # SAFM has 4 chunks; chunks 1..3 are pooled

# Lanes per program: outputs x padded window width x padded chunk channels; ~16 values a
# thread at 4 warps, so a static loop over the window rows stays in registers.
POOL_LANES = 1024
INTERPRETER_POOL_LANES = 16384
POOL_CONFIG = tuning.Config(0, 4)  # BLOCK_O per level comes from POOL_LANES


@functools.lru_cache(maxsize=4096)
def max_window(n: int, o: int) -> int:
    """Longest of PyTorch's adaptive windows [floor(i*n/o), ceil((i+1)*n/o)), i < o."""
    return max(((i + 1) * n + o - 1) // o - (i * n) // o for i in range(o))


@dataclass(frozen=True)
class LowRes:
    """Three (N, o_h, o_w, CQP) maps in one flat buffer (channels >= Cq are zero)."""

    buf: torch.Tensor
    sizes: tuple[tuple[int, int], ...]
    offsets: tuple[int, ...]
    n: int
    cq: int

    @property
    def cqp(self) -> int:
        return chunk_stride(self.cq)

    def level(self, i: int) -> torch.Tensor:
        """Level i (0..2) as an (N, o_h, o_w, CQP) view."""
        oh, ow = self.sizes[i]
        size = self.n * oh * ow * self.cqp
        return self.buf[self.offsets[i] : self.offsets[i] + size].view(self.n, oh, ow, self.cqp)

    def level_nchw(self, i: int) -> torch.Tensor:
        """Level i as an (N, Cq, o_h, o_w) tensor, for comparing with PyTorch."""
        return self.level(i)[..., : self.cq].permute(0, 3, 1, 2)


def lowres_layout(n: int, h: int, w: int, c: int, factors: tuple[int, ...], like: torch.Tensor) -> LowRes:
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
        total += n * oh * ow * chunk_stride(cq)
    return LowRes(like.new_empty(total), sizes, tuple(offsets), n, cq)


@triton.jit
def _pool_level(
    U,
    OUT,
    n,
    tile,
    H,
    W,
    oh,
    ow,
    off,
    LEVEL: tl.constexpr,  # which chunk (1..3) this level pools
    CQ: tl.constexpr,  # channels per chunk
    CS: tl.constexpr,  # channel stride of U
    CQP: tl.constexpr,  # channel stride of the low-resolution maps
    BLOCK_O: tl.constexpr,  # outputs in this program
    KH: tl.constexpr,  # longest window (rows) of this level at this input size: the static row loop
    KWP: tl.constexpr,  # longest window (columns) rounded up to a power of two: lanes
):
    q = tile * BLOCK_O + tl.arange(0, BLOCK_O)
    qm = q < oh * ow
    i = q // ow
    j = q - i * ow
    r0 = (i * H) // oh
    r1 = ((i + 1) * H + oh - 1) // oh
    s0 = (j * W) // ow
    s1 = ((j + 1) * W + ow - 1) // ow
    s = s0[:, None] + tl.arange(0, KWP)[None, :]
    cols_ok = qm[:, None] & (s < s1[:, None])
    c = tl.arange(0, CQP)
    cm = c < CQ
    u_n = U + n.to(tl.int64) * H * W * CS + LEVEL * CQ
    best = tl.full([BLOCK_O, CQP], float("-inf"), tl.float32)
    nan = tl.zeros([BLOCK_O, CQP], tl.int32)
    for dr in range(KH):
        r = r0 + dr
        m = (cols_ok & (r < r1)[:, None])[:, :, None] & cm[None, None, :]
        pix = (r[:, None] * W + s) * CS
        v = tl.load(u_n + pix[:, :, None] + c[None, None, :], mask=m, other=float("-inf")).to(tl.float32)
        best = tl.maximum(best, tl.max(v, axis=1))
        # PyTorch's adaptive max pooling propagates NaN; tl.max would drop it.
        nan = tl.maximum(nan, tl.max(tl.where(m & (v != v), 1, 0), axis=1))
    best = tl.where(nan > 0, float("nan"), best)
    best = tl.where(cm[None, :], best, 0.0)
    dst = OUT + off + n.to(tl.int64) * oh * ow * CQP + q[:, None] * CQP + c[None, :]
    tl.store(dst, best.to(OUT.dtype.element_ty), mask=qm[:, None])


@triton.jit
def _multiscale_pool_kernel(
    U,
    OUT,
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
    CQ: tl.constexpr,  # channels per chunk (dim / 4)
    CS: tl.constexpr,  # channel stride of U
    CQP: tl.constexpr,  # channel stride of the low-resolution maps (>= 16: a tl.dot K slice downstream)
    BLOCK_O1: tl.constexpr,  # outputs per program at level 1: BLOCK_O * KWP * CQP ~ POOL_LANES
    KH1: tl.constexpr,  # longest window rows at level 1 (static loop)
    KWP1: tl.constexpr,  # longest window columns at level 1, power of two (lanes)
    BLOCK_O2: tl.constexpr,  # as above, level 2
    KH2: tl.constexpr,
    KWP2: tl.constexpr,
    BLOCK_O3: tl.constexpr,  # as above, level 3
    KH3: tl.constexpr,
    KWP3: tl.constexpr,
):
    # Programs [0, t1) do level 1, [t1, t2) level 2, the rest level 3 (a uniform branch).
    pid = tl.program_id(0)
    n = tl.program_id(1)
    if pid < t1:
        _pool_level(U, OUT, n, pid, H, W, oh1, ow1, off1, 1, CQ, CS, CQP, BLOCK_O1, KH1, KWP1)
    elif pid < t2:
        _pool_level(U, OUT, n, pid - t1, H, W, oh2, ow2, off2, 2, CQ, CS, CQP, BLOCK_O2, KH2, KWP2)
    else:
        _pool_level(U, OUT, n, pid - t2, H, W, oh3, ow3, off3, 3, CQ, CS, CQP, BLOCK_O3, KH3, KWP3)


def pool_shapes(h: int, w: int, c: int, factors: tuple[int, ...], lanes: int) -> tuple[dict[str, int], list[int]]:
    """The level constexprs (BLOCK_O, KH, KWP per level) and the programs per level."""
    cqp = chunk_stride(c // 4)
    shapes: dict[str, int] = {}
    tiles = []
    for lv, f in enumerate(factors, start=1):
        oh, ow = h // f, w // f
        kwp = pow2(max_window(w, ow))
        block_o = pow2(max(1, lanes // (kwp * cqp)))
        shapes.update({f"BLOCK_O{lv}": block_o, f"KH{lv}": max_window(h, oh), f"KWP{lv}": kwp})
        tiles.append(triton.cdiv(oh * ow, block_o))
    return shapes, tiles


def multiscale_pool(u: torch.Tensor, c: int, factors: tuple[int, ...]) -> LowRes:
    """Adaptive max pool of chunks 1..3 of u (padded NHWC) to (H // f, W // f), f in `factors`."""
    check_nhwc(u, c, _multiscale_pool_kernel, "multiscale_pool")
    n, h, w, _ = u.shape
    out = lowres_layout(n, h, w, c, factors, u)
    lanes = INTERPRETER_POOL_LANES if interpreted(_multiscale_pool_kernel) else POOL_LANES
    shapes, tiles = pool_shapes(h, w, c, factors, lanes)
    (oh1, ow1), (oh2, ow2), (oh3, ow3) = out.sizes
    o1, o2, o3 = out.offsets
    args = (u, out.buf, h, w, oh1, ow1, o1, oh2, ow2, o2, oh3, ow3, o3, tiles[0], tiles[0] + tiles[1])
    consts = {"CQ": c // 4, "CS": channel_stride(c), "CQP": out.cqp, **shapes}
    tuning.launch(
        _multiscale_pool_kernel,
        ("multiscale_pool", u.dtype, c, h, w),
        lambda cfg: (sum(tiles), n),
        args,
        consts,
        (POOL_CONFIG,),
        interpreter=POOL_CONFIG,
    )
    return out
