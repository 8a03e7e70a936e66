"""ONNX emitters for srx/models/safmn.py: the paper SAFMN and the NTIRE 2023 variant.

Each function mirrors the forward of the module with the same name, op for op.
"""

from __future__ import annotations

from srx.export.graph import GraphBuilder
from srx.export.layers import (
    adaptive_max_pool,
    bilinear_upscale,
    chunk_sizes,
    conv,
    gelu,
    grn,
    layer_norm2d,
    nearest_resize,
    pixel_shuffle,
    split,
)
from srx.models.safmn import CCM, N_LEVELS, SAFM, SAFMN, AttBlock, SAFMNNtire23


def ccm(b: GraphBuilder, path: str, m: CCM, x: str) -> str:
    h = gelu(b, f"{path}.ccm.1", m.ccm[1], conv(b, f"{path}.ccm.0", m.ccm[0], x))
    return conv(b, f"{path}.ccm.2", m.ccm[2], h)


def safm(b: GraphBuilder, path: str, m: SAFM, x: str) -> str:
    """Chunk 0 -> dwconv; chunk i -> pool 1/f_i -> dwconv -> nearest back; concat ->
    1x1 conv -> GELU -> * x. Pool and resize steps are scoped `{path}.pool{i}` / `.up{i}`."""
    chunks = split(b, path, x, chunk_sizes(m.aggr.in_channels, N_LEVELS))
    out = [conv(b, f"{path}.mfr.0", m.mfr[0], chunks[0])]
    for i, factor in enumerate(m.pool_factors, start=1):
        pooled = adaptive_max_pool(b, f"{path}.pool{i}", chunks[i], factor)
        out.append(nearest_resize(b, f"{path}.up{i}", conv(b, f"{path}.mfr.{i}", m.mfr[i], pooled), factor))
    mixed = conv(b, f"{path}.aggr", m.aggr, b.op(path, "Concat", out, axis=1))
    return b.op(path, "Mul", [gelu(b, f"{path}.act", m.act, mixed), x])


def att_block(b: GraphBuilder, path: str, m: AttBlock, x: str) -> str:
    if m.norm:
        x = b.op(path, "Add", [safm(b, f"{path}.safm", m.safm, layer_norm2d(b, f"{path}.norm1", m.norm1, x)), x])
        return b.op(path, "Add", [ccm(b, f"{path}.ccm", m.ccm, layer_norm2d(b, f"{path}.norm2", m.norm2, x)), x])
    x = b.op(path, "Add", [safm(b, f"{path}.safm", m.safm, x), x])
    return b.op(path, "Add", [ccm(b, f"{path}.ccm", m.ccm, x), x])


def _feats(b: GraphBuilder, m: SAFMN | SAFMNNtire23, x: str) -> str:
    for i, block in enumerate(m.feats):
        x = att_block(b, f"feats.{i}", block, x)
    return x


def _to_img(b: GraphBuilder, m: SAFMN | SAFMNNtire23, x: str) -> str:
    return pixel_shuffle(b, "to_img.1", m.to_img[1], conv(b, "to_img.0", m.to_img[0], x))


def emit_safmn(b: GraphBuilder, m: SAFMN, lr: str) -> str:
    """x = to_feat(lr); x = feats(x) + x; return to_img(x)."""
    x = conv(b, "to_feat", m.to_feat, lr)
    return _to_img(b, m, b.op("", "Add", [_feats(b, m, x), x]))


def emit_safmn_ntire23(b: GraphBuilder, m: SAFMNNtire23, lr: str) -> str:
    """ident = bilinear x s (lr); x = norm(to_feat(lr)); return to_img(feats(x)) + ident."""
    ident = bilinear_upscale(b, "", lr, m.scale)
    x = grn(b, "norm", m.norm, conv(b, "to_feat", m.to_feat, lr))
    return b.op("", "Add", [_to_img(b, m, _feats(b, m, x)), ident])
