"""Layout arithmetic of the fused kernels, in plain Python (no torch, no Triton): the cost
model and the docs use it without a GPU stack. srx.kernels._common explains the layout."""

from __future__ import annotations

# Smallest tl.dot operand side Triton accepts on NVIDIA GPUs (M, N, K >= 16).
MIN_DOT = 16


def pow2(n: int, floor: int = 1) -> int:
    """Next power of two >= max(n, floor): tl.arange needs power-of-two extents."""
    n = max(n, floor, 1)
    return 1 << (n - 1).bit_length()


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def channel_stride(c: int) -> int:
    """CS: the padded channel count of the NHWC layout (a multiple of 8: 16-byte pixels in FP16)."""
    return round_up(c, 8)


def chunk_stride(cq: int) -> int:
    """CQP: channels per low-resolution pixel, a power of two >= 16 (one tl.dot K slice)."""
    return pow2(cq, MIN_DOT)


def split_width(n: int) -> tuple[int, int]:
    """Cover n output columns with one or two power-of-two tl.dot widths >= 16, wasting least.

    72 -> (64, 16): 80 columns instead of 128; 48 -> (32, 16); 27 -> (32, 0); 96 -> (64, 32).
    """
    n16 = round_up(max(n, MIN_DOT), MIN_DOT)
    a = 1 << (n16.bit_length() - 1)
    rest = n16 - a
    if rest == 0:
        return a, 0
    b = pow2(rest, MIN_DOT)
    return (2 * a, 0) if a + b >= 2 * a else (a, b)
