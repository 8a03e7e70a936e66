"""SAFM's multi-scale branch, first half: exact adaptive max pooling of chunks 1..3.

For chunk l = 1, 2, 3 of the SAFM input u (LN1(x), stored by the previous kernel; x
itself without LayerNorm), pool factor f_l, o_h = H // f_l, o_w = W // f_l and Cq = C / 4
(PyTorch's adaptive windows, srx.models.layers.pool_windows):

    P_l[i, j, c] = max over r in [floor(i*H/o_h), ceil((i+1)*H/o_h)),
                            s in [floor(j*W/o_w), ceil((j+1)*W/o_w))  of  u[r, s, l*Cq + c]

All three levels go through one launch (the program id picks the level). Each program
reduces whole windows: lanes are [outputs, channels]; a loop over the window rows with the
window columns unrolled inside it issues a row's loads together (independent, 16-byte
vectors where the chunk's alignment allows: pool_shifts) and takes elementwise maxima.
The depthwise 3x3 that follows at low resolution happens inside srx.kernels.safm_tail,
which gathers P_l around each pixel's nearest low-resolution position.
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

# Lanes per program: outputs x padded chunk channels; 8 values a thread at 4 warps (one
# 16-byte FP16 vector per window position).
POOL_LANES = 1024
INTERPRETER_POOL_LANES = 16384
POOL_CONFIG = tuning.Config(0, 4)  # BLOCK_O per level comes from POOL_LANES


@functools.lru_cache(maxsize=4096)
def max_window(n: int, o: int) -> int:
    """Longest of PyTorch's adaptive windows [floor(i*n/o), ceil((i+1)*n/o)), i < o."""
    return max(((i + 1) * n + o - 1) // o - (i * n) // o for i in range(o))


@dataclass(frozen=True)
class LowRes:
    """Three (N, o_h, o_w, CQP) maps in one flat buffer: level i's Cq channels in lanes
    [shifts[i], shifts[i] + Cq) (pool_shifts), every other lane zero."""

    buf: torch.Tensor
    sizes: tuple[tuple[int, int], ...]
    offsets: tuple[int, ...]
    n: int
    cq: int
    shifts: tuple[int, ...] = (0,) * N_POOLED

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
        s = self.shifts[i]
        return self.level(i)[..., s : s + self.cq].permute(0, 3, 1, 2)


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
    return LowRes(like.new_empty(total), sizes, tuple(offsets), n, cq, pool_shifts(c))


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
    KH: tl.constexpr,  # longest window (rows) of this level at this input size: the row loop
    KW: tl.constexpr,  # longest window (columns): the unrolled column loop
    VEC: tl.constexpr,  # see pool_shifts
):
    q = tile * BLOCK_O + tl.arange(0, BLOCK_O)
    qm = q < oh * ow
    i = q // ow
    j = q - i * ow
    r0 = (i * H) // oh
    r1 = ((i + 1) * H + oh - 1) // oh
    s0 = (j * W) // ow
    s1 = ((j + 1) * W + ow - 1) // ow
    c = tl.arange(0, CQP)
    cm = c < CQ
    # Lane c holds channel LANE0 + c. The chunk starts at channel LEVEL * CQ (18 bytes into
    # an FP16 pixel for dim 36): read from there, every lane is a 2-byte load. VEC reads CQP
    # whole channels from the 8-aligned channel at or below it instead, 16-byte vectors with
    # no lane mask, and the map keeps that lane order (LowRes.shifts).
    if VEC:
        LANE0: tl.constexpr = LEVEL * CQ // 8 * 8
    else:
        LANE0: tl.constexpr = LEVEL * CQ
    u_n = U + n.to(tl.int64) * H * W * CS + LANE0
    best = tl.full([BLOCK_O, CQP], float("-inf"), tl.float32)
    nan = tl.zeros([BLOCK_O, CQP], tl.int32)
    # Window positions are loop steps, not lanes: each step loads [outputs, channels] and takes
    # an elementwise maximum, so no reduction ever crosses threads or warps (a window-column
    # lane axis did, through shared memory, with Triton 3.6's layouts and aligned loads).
    for dr in range(KH):
        r = r0 + dr
        row_ok = qm & (r < r1)
        for dc in tl.static_range(KW):
            m = (row_ok & (s0 + dc < s1))[:, None]
            if not VEC:
                m = m & cm[None, :]
            pix = (r * W + s0 + dc) * CS
            v = tl.load(u_n + pix[:, None] + c[None, :], mask=m, other=float("-inf")).to(tl.float32)
            best = tl.maximum(best, v)
            # PyTorch's adaptive max pooling propagates NaN; tl.maximum would drop it.
            nan = tl.maximum(nan, tl.where(m & (v != v), 1, 0))
    best = tl.where(nan > 0, float("nan"), best)
    # Lanes outside the chunk (other chunks' channels, or the padding) are stored as zeros.
    best = tl.where(((c >= LEVEL * CQ - LANE0) & (c < LEVEL * CQ - LANE0 + CQ))[None, :], best, 0.0)
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
    BLOCK_O1: tl.constexpr,  # outputs per program at level 1: BLOCK_O * CQP ~ POOL_LANES
    KH1: tl.constexpr,  # longest window rows at level 1 (loop)
    KW1: tl.constexpr,  # longest window columns at level 1 (unrolled loop)
    BLOCK_O2: tl.constexpr,  # as above, level 2
    KH2: tl.constexpr,
    KW2: tl.constexpr,
    BLOCK_O3: tl.constexpr,  # as above, level 3
    KH3: tl.constexpr,
    KW3: tl.constexpr,
    VEC: tl.constexpr,  # aligned 16-byte loads of whole 8-channel groups (pool_shifts)
):
    # Programs [0, t1) do level 1, [t1, t2) level 2, the rest level 3 (a uniform branch).
    pid = tl.program_id(0)
    n = tl.program_id(1)
    if pid < t1:
        _pool_level(U, OUT, n, pid, H, W, oh1, ow1, off1, 1, CQ, CS, CQP, BLOCK_O1, KH1, KW1, VEC)
    elif pid < t2:
        _pool_level(U, OUT, n, pid - t1, H, W, oh2, ow2, off2, 2, CQ, CS, CQP, BLOCK_O2, KH2, KW2, VEC)
    else:
        _pool_level(U, OUT, n, pid - t2, H, W, oh3, ow3, off3, 3, CQ, CS, CQP, BLOCK_O3, KH3, KW3, VEC)


def pool_vectorised(c: int) -> bool:
    """Whether every level can load CQP whole channels from the 8-aligned channel at or below
    its chunk: the chunk must fit in those lanes, and the last one must stay inside the pixel
    (CS), so the image's last pixel is never read past. True for dim 36 (levels at 8, 16, 24)."""
    cq, cqp, cs = c // 4, chunk_stride(c // 4), channel_stride(c)
    return all(lv * cq % 8 + cq <= cqp and lv * cq // 8 * 8 + cqp <= cs for lv in range(1, N_POOLED + 1))


def pool_shifts(c: int) -> tuple[int, ...]:
    """The lane of channel 0 of each pooled chunk in the low-resolution maps: the chunk's
    offset past an 8-channel boundary in u when the pooling loads aligned vectors (1, 2, 3 for
    dim 36), else 0. srx.kernels.safm_tail packs its weights to match."""
    cq = c // 4
    return tuple(lv * cq % 8 if pool_vectorised(c) else 0 for lv in range(1, N_POOLED + 1))


def pool_shapes(h: int, w: int, c: int, factors: tuple[int, ...], lanes: int) -> tuple[dict[str, int], list[int]]:
    """The level constexprs (BLOCK_O, KH, KW per level) and the programs per level."""
    cqp = chunk_stride(c // 4)
    shapes: dict[str, int] = {}
    tiles = []
    for lv, f in enumerate(factors, start=1):
        oh, ow = h // f, w // f
        block_o = min(pow2(max(1, lanes // cqp)), pow2(oh * ow))
        shapes.update({f"BLOCK_O{lv}": block_o, f"KH{lv}": max_window(h, oh), f"KW{lv}": max_window(w, ow)})
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
    consts["VEC"] = pool_vectorised(c)
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
