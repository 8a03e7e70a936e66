"""srx's INT8 Q/DQ ONNX, adjusted for OpenVINO (`for_openvino`).

OpenVINO 2026.4 computes SAFM's aggregation wrongly when its input is quantized: the 1x1
convolution after the concatenation of the four SAFM branches (one depthwise output and
three nearest-upsampled ones). On a Set5 crop through the default x4 Q/DQ ONNX, that
convolution's output in the first block differed from onnxruntime's by 1.5 times
onnxruntime's largest value, and the image by up to 0.13 on [0, 1]. Moving the Q/DQ pair
onto each branch before the upsampling (the same arithmetic) did not change it; without
the pair the image is within 0.007 of onnxruntime's (the file's FP16 rounding)
(bench/openvino_aggr_check.py, bench/results/2026-12-06-cpu-openvino/aggr_check.txt).
So for OpenVINO the activation Q/DQ in front of a convolution fed by a Concat is dropped:
that convolution runs in floating point with its INT8 weights dequantized (one 1x1
convolution per block, and more accurate than the file's INT8).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx


@dataclass(frozen=True)
class OpenVINORewrite:
    float_inputs: tuple[str, ...]  # convolutions whose input Q/DQ was dropped

    def to_dict(self) -> dict[str, list[str]]:
        return {"float_input_convolutions": list(self.float_inputs)}


def for_openvino(model: onnx.ModelProto) -> tuple[onnx.ModelProto, OpenVINORewrite]:
    """A copy of `model` with the activation Q/DQ removed in front of every Conv fed by a
    Concat (through that Q/DQ pair); a model without Q/DQ comes back unchanged."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = {o: n for n in out.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in out.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    changed: list[str] = []
    dropped: set[int] = set()
    for node in out.graph.node:
        if node.op_type != "Conv":
            continue
        dq = producer.get(node.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue
        src = producer.get(q.input[0])
        if src is None or src.op_type != "Concat":
            continue
        node.input[0] = q.input[0]
        changed.append(node.name or node.output[0])
        # The pair goes only when nothing else reads it (srx's files give each Conv its own).
        if consumers.get(dq.output[0], 0) == 1 and consumers.get(q.output[0], 0) == 1:
            dropped.update((id(q), id(dq)))
    if dropped:
        kept = [n for n in out.graph.node if id(n) not in dropped]
        del out.graph.node[:]
        out.graph.node.extend(kept)
    return out, OpenVINORewrite(tuple(changed))
