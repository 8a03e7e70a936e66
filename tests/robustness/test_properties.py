"""Property-based tests (hypothesis): the size parser, the adaptive-pooling and nearest index
arithmetic (PyTorch eager, the portable export form, the ONNX index subgraph), and tiling.

Examples are derandomized so CI sees the same cases on every run; raise max_examples
locally (or drop derandomize) to search further.
"""

from __future__ import annotations

import math
import re
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from srx.errors import BadInput
from srx.models import build_model
from srx.models.layers import nearest_indices, pool_windows, portable_adaptive_max_pool, portable_nearest_resize
from srx.sizes import MAX_SIDE, Size, parse_size
from srx.tiling import BLEND, context, plan_tiling, pool_grid, tiled_apply

FAST = settings(max_examples=200, deadline=None, derandomize=True)
SLOW = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
FACTORS = st.sampled_from([2, 4, 8, 16])

# -- the size parser -----------------------------------------------------------------------------


@FAST
@given(
    w=st.integers(1, MAX_SIDE),
    h=st.integers(1, MAX_SIDE),
    sep=st.sampled_from(["x", "X", "×"]),
    pad=st.sampled_from(["", " ", "\t", "  "]),
    zeros=st.sampled_from(["", "0", "000"]),
)
def test_sizes_in_range_parse_and_round_trip(w, h, sep, pad, zeros):
    size = parse_size(f"{pad}{zeros}{w}{pad}{sep}{pad}{h}{pad}")
    assert size == Size(w, h) and parse_size(str(size)) == size


@FAST
@given(st.text(max_size=40) | st.from_regex(r"\A-?[0-9]{0,30}[xX×*,]-?[0-9]{0,30}\Z"))
def test_any_text_is_a_size_or_one_bad_input(text):
    """Never another exception, never an out-of-range size, and the message is one line."""
    try:
        size = parse_size(text, what="--input")
    except BadInput as e:
        assert "\n" not in str(e) and str(e).startswith("--input ")
        return
    assert 1 <= size.width <= MAX_SIDE and 1 <= size.height <= MAX_SIDE
    assert re.fullmatch(r"\s*[0-9]+\s*[xX×]\s*[0-9]+\s*", text)


@FAST
@given(
    big=st.integers(MAX_SIDE + 1, 10**40),
    small=st.integers(1, MAX_SIDE),
    swap=st.booleans(),
)
def test_oversized_and_zero_sides_are_refused(big, small, swap):
    for value, expect in ((big, "larger than"), (0, "zero side")):
        text = f"{small}x{value}" if swap else f"{value}x{small}"
        with pytest.raises(BadInput, match=expect):
            parse_size(text)


def test_thousands_of_digits_are_refused_without_converting_them():
    """int() of more than 4300 digits raises ValueError (it was an internal error)."""
    with pytest.raises(BadInput, match="larger than 16384"):
        parse_size("9" * 5000 + "x5")


# -- adaptive pooling windows and nearest indices ------------------------------------------------


@FAST
@given(n=st.integers(1, 20_000), f=FACTORS)
def test_pool_windows_cover_the_side_exactly(n, f):
    """PyTorch's windows [floor(i n / o), ceil((i + 1) n / o)), o = n // f: they tile [0, n)
    in order, neighbours share at most one pixel, and each is f to 2f - 1 long."""
    assume(n >= f)
    o = n // f
    start, stop = (t.tolist() for t in pool_windows(n, f))
    assert len(start) == len(stop) == o
    assert start[0] == 0 and stop[-1] == n
    for i in range(o):
        assert start[i] == (i * n) // o and stop[i] == math.ceil((i + 1) * n / o)
        assert f <= stop[i] - start[i] <= 2 * f - 1
        if i:
            assert stop[i - 1] - 1 <= start[i] <= stop[i - 1]


@st.composite
def pooled_images(draw):
    f = draw(FACTORS)
    h = draw(st.integers(f, 6 * f + 7))
    w = draw(st.integers(f, 6 * f + 7))
    seed = draw(st.integers(0, 2**31 - 1))
    # Distinct values: a window that is off by one pixel shows up as a different maximum.
    x = torch.randperm(2 * h * w, generator=torch.Generator().manual_seed(seed))[: 2 * h * w].float()
    return f, x.reshape(1, 2, h, w)


@SLOW
@given(pooled_images())
def test_portable_pooling_equals_adaptive_max_pool2d(case):
    f, x = case
    h, w = x.shape[-2:]
    ref = F.adaptive_max_pool2d(x, (h // f, w // f))
    assert torch.equal(portable_adaptive_max_pool(x, f), ref)
    rs, re_ = pool_windows(h, f)
    cs, ce = pool_windows(w, f)
    by_window = torch.stack(
        [
            torch.stack([x[0, :, rs[i] : re_[i], cs[j] : ce[j]].amax(dim=(1, 2)) for j in range(w // f)], dim=-1)
            for i in range(h // f)
        ],
        dim=-2,
    )
    assert torch.equal(by_window[None], ref)


@FAST
@given(n_out=st.integers(1, MAX_SIDE), data=st.data())
def test_nearest_indices_equal_interpolate(n_out, data):
    """PyTorch's own float32 arithmetic, checked on an index ramp (exact in float32)."""
    n_in = data.draw(st.one_of(st.sampled_from([max(1, n_out // f) for f in (2, 4, 8, 16)]), st.integers(1, n_out)))
    ramp = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in, 1)
    ref = F.interpolate(ramp, size=(n_out, 1), mode="nearest")[0, 0, :, 0].to(torch.int64)
    got = nearest_indices(n_in, n_out)
    assert torch.equal(got, ref)
    assert int(got.min()) >= 0 and int(got.max()) <= n_in - 1 and bool((got[1:] >= got[:-1]).all())
    x = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in, 1).expand(1, 1, n_in, 2)
    assert torch.equal(portable_nearest_resize(x, (n_out, 2)), F.interpolate(x, size=(n_out, 2), mode="nearest"))


# -- the ONNX index subgraph of the dynamic export -----------------------------------------------


@cache
def _index_session(factor: int):
    """onnxruntime session of just the export's index tensors for one factor (height axis)."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from srx.export import INPUT_NAME
    from srx.export.graph import GraphBuilder
    from srx.export.layers import nearest_source_indices, pool_indices

    b = GraphBuilder(19)
    start, last = pool_indices(b, 2, factor)
    src = nearest_source_indices(b, 2, factor)
    outputs = [helper.make_tensor_value_info(name, TensorProto.INT64, None) for name in (start, last, src)]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 1, "height", 1])]
    proto = b.model(inputs, outputs, graph_name=f"index_f{factor}")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


@FAST
@given(n=st.integers(1, MAX_SIDE), f=FACTORS)
def test_export_index_graph_equals_pytorch(n, f):
    """The integer-only ONNX arithmetic (long division for the float32 scale) gives PyTorch's
    windows and nearest rows at every side length srx accepts."""
    assume(n >= f)
    sess = _index_session(f)
    start, last, src = sess.run(None, {"lr": np.zeros((1, 1, n, 1), np.float32)})
    ref_start, ref_stop = pool_windows(n, f)
    np.testing.assert_array_equal(start, ref_start.numpy())
    np.testing.assert_array_equal(last, (ref_stop - f).numpy())
    np.testing.assert_array_equal(src, nearest_indices(n // f, n).numpy())


# -- tiling geometry -----------------------------------------------------------------------------

TINY = {"safmn": 8, "safmnpp": 9, "safmnpp-light": 8, "safmn-ntire23": 8}


@cache
def _spec(arch: str):
    return build_model(arch, 2, dim=TINY[arch], n_blocks=1).spec


@st.composite
def tilings(draw):
    arch = draw(st.sampled_from(sorted(TINY)))
    spec = _spec(arch)
    g = pool_grid(spec)
    aligned = draw(st.booleans())
    if aligned:
        h, w = g * draw(st.integers(1, 12)), g * draw(st.integers(1, 12))
    else:
        h, w = draw(st.integers(spec.min_size, 160)), draw(st.integers(spec.min_size, 160))
    tile = draw(st.integers(max(g, spec.min_size), 96))
    overlap = draw(st.one_of(st.none(), st.integers(0, 40)))
    return spec, h, w, tile, overlap


@SLOW
@given(tilings())
def test_tiles_cover_the_image_and_reproduce_a_local_model(case):
    """A pixel-local model (nearest x2 of an image of coordinates) through tiled_apply gives
    back the whole-image result; every output row is emitted once, top to bottom; every
    crop has one shape, lies inside the image and holds its core plus the context; exact
    plans crop on the pooling grid."""
    spec, h, w, tile, overlap = case
    plan = plan_tiling(spec, h, w, tile, overlap)
    event("whole image" if plan.tile is None else ("exact tiles" if plan.exact else "blended tiles"))
    s, g = spec.scale, plan.grid
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    lr = np.stack([yy, xx, yy * 0.5 + xx])
    crops = []

    def local(x):
        return x.repeat(s, axis=2).repeat(s, axis=3)

    def forward(x):
        rows, cols = x[0, 0, :, 0], x[0, 1, 0, :]
        crops.append((int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
        return local(x)

    out = np.full((h * s, w * s, 3), np.nan, np.float32)
    emitted = []

    def emit(y0, rows):
        emitted.append((y0, y0 + rows.shape[0]))
        out[y0 : y0 + rows.shape[0]] = rows

    n = tiled_apply(lr, forward, s, plan, emit)
    assert n == len(crops)
    assert [e[0] for e in emitted] == [0, *[e[1] for e in emitted[:-1]]] and emitted[-1][1] == h * s
    whole = local(lr[None])[0].transpose(1, 2, 0)
    np.testing.assert_allclose(out, whole, atol=1e-4 * max(h, w), rtol=0)
    if plan.tile is None:
        assert crops == [(0, h, 0, w)]
        return
    assert plan.tile % g == 0 and plan.overlap % g == 0 and plan.overlap >= (overlap if overlap is not None else 0)
    assert len({(y1 - y0, x1 - x0) for y0, y1, x0, x1 in crops}) == 1, "one input shape for every tile"
    hb = plan.blend // 2
    cores = [(r, c) for r in range(0, h, plan.tile) for c in range(0, w, plan.tile)]
    assert len(cores) == len(crops)
    for (r, c), (y0, y1, x0, x1) in zip(cores, crops, strict=True):
        assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
        need_y = (max(0, r - hb - plan.overlap), min(h, r + plan.tile + hb + plan.overlap))
        need_x = (max(0, c - hb - plan.overlap), min(w, c + plan.tile + hb + plan.overlap))
        assert y0 <= need_y[0] and y1 >= need_y[1] and x0 <= need_x[0] and x1 >= need_x[1]
        if plan.exact:
            assert y0 % g == 0 and x0 % g == 0, "crops of an exact plan start on the pooling grid"
            assert (y1 - y0) % g == 0 and (x1 - x0) % g == 0
    if plan.exact:
        assert plan.blend == 0 and h % g == 0 and w % g == 0
        assert (overlap if overlap is not None else plan.overlap) >= context(spec)
    else:
        assert 0 < plan.blend <= BLEND and plan.reason
