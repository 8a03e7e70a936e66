"""ONNX emitters for srx/models/safmnpp.py: SAFMN++ and light SAFMN++.

Each function mirrors the forward of the module with the same name, op for op.
"""

from __future__ import annotations

from srx.export.graph import GraphBuilder
from srx.export.layers import (
    adaptive_max_pool,
    bilinear_resize_like,
    bilinear_upscale,
    conv,
    gelu,
    pixel_shuffle,
    split,
)
from srx.models.safmnpp import POOL_FACTOR, SAFMNPP, BlockLight, BlockPP, CCMLight, CCMpp, SAFMNPPLight, SimpleSAFM


def simple_safm(b: GraphBuilder, path: str, m: SimpleSAFM, x: str) -> str:
    """x0, x1 = split(proj(x)); x2 = GELU(bilinear(dwconv(pool(x0)))) * x0;
    return out(GELU(concat(x1, x2))). Pool and resize are scoped `{path}.pool` / `.up`."""
    channels = m.proj.out_channels
    x0, x1 = split(b, path, conv(b, f"{path}.proj", m.proj, x), [m.chunk, channels - m.chunk])
    x2 = conv(b, f"{path}.dwconv", m.dwconv, adaptive_max_pool(b, f"{path}.pool", x0, POOL_FACTOR))
    like_shape = None if b.dynamic else [1, m.chunk, *b.static_hw]  # type: ignore[misc]
    x2 = b.op(
        path, "Mul", [gelu(b, f"{path}.act", m.act, bilinear_resize_like(b, f"{path}.up", x2, x0, like_shape)), x0]
    )
    mixed = gelu(b, f"{path}.act", m.act, b.op(path, "Concat", [x1, x2], axis=1))
    return conv(b, f"{path}.out", m.out, mixed)


def ccm_pp(b: GraphBuilder, path: str, m: CCMpp, x: str) -> str:
    return conv(b, f"{path}.conv2", m.conv2, gelu(b, f"{path}.act", m.act, conv(b, f"{path}.conv1", m.conv1, x)))


def ccm_light(b: GraphBuilder, path: str, m: CCMLight, x: str) -> str:
    h = gelu(b, f"{path}.conv.1", m.conv[1], conv(b, f"{path}.conv.0", m.conv[0], x))
    return conv(b, f"{path}.conv.2", m.conv[2], h)


def block_pp(b: GraphBuilder, path: str, m: BlockPP, x: str) -> str:
    y = ccm_pp(b, f"{path}.conv2", m.conv2, simple_safm(b, f"{path}.conv1", m.conv1, x))
    return b.op(path, "Add", [y, x])


def block_light(b: GraphBuilder, path: str, m: BlockLight, x: str) -> str:
    return ccm_light(b, f"{path}.conv2", m.conv2, simple_safm(b, f"{path}.conv1", m.conv1, x))


def _to_img(b: GraphBuilder, m: SAFMNPP | SAFMNPPLight, x: str) -> str:
    return pixel_shuffle(b, "to_img.1", m.to_img[1], conv(b, "to_img.0", m.to_img[0], x))


def emit_safmnpp(b: GraphBuilder, m: SAFMNPP, lr: str) -> str:
    """res = bilinear x s (lr); return to_img(feats(to_feat(lr))) + res."""
    res = bilinear_upscale(b, "", lr, m.scale)
    x = conv(b, "to_feat", m.to_feat, lr)
    for i, block in enumerate(m.feats):
        x = block_pp(b, f"feats.{i}", block, x)
    return b.op("", "Add", [_to_img(b, m, x), res])


def emit_safmnpp_light(b: GraphBuilder, m: SAFMNPPLight, lr: str) -> str:
    """x = to_feat(lr); return to_img(feats(x) + x)."""
    x = conv(b, "to_feat", m.to_feat, lr)
    y = x
    for i, block in enumerate(m.feats):
        y = block_light(b, f"feats.{i}", block, y)
    return _to_img(b, m, b.op("", "Add", [y, x]))
