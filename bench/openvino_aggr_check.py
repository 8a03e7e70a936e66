"""Where OpenVINO and onnxruntime part ways on srx's INT8 Q/DQ ONNX (the finding behind srx.runtime.openvino_graph).

Usage: python bench/openvino_aggr_check.py MODEL.int8.onnx > OUT.txt

Runs three versions of the Q/DQ file on a 64x64 crop of Set5's baby in onnxruntime and in
OpenVINO (FP32 inference precision) with every convolution's output exposed, and prints the
largest difference per convolution (absolute, and relative to onnxruntime's largest value):
  as-is     the file `srx quantize` wrote;
  moved     the Q/DQ pair in front of each SAFM aggregation moved onto the four branches
            before the nearest upsampling (the same arithmetic: quantization is element-wise);
  for_openvino  that Q/DQ pair dropped (what the openvino backends run).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def moved(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    added = []
    for conv in [n for n in g.node if n.op_type == "Conv"]:
        dq = producer.get(conv.input[0])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        cat = producer.get(q.input[0]) if q is not None else None
        if cat is None or cat.op_type != "Concat":
            continue
        for j, name in enumerate(list(cat.input)):
            chain, src = [], name
            while producer[src].op_type == "Gather":
                chain.append(producer[src])
                src = producer[src].input[0]
            added += [
                helper.make_node("QuantizeLinear", [src, q.input[1], q.input[2]], [src + ".ovq"]),
                helper.make_node("DequantizeLinear", [src + ".ovq", dq.input[1], dq.input[2]], [src + ".ovdq"]),
            ]
            if chain:
                chain[-1].input[0] = src + ".ovdq"
            else:
                cat.input[j] = src + ".ovdq"
        conv.input[0] = cat.output[0]
    nodes, ready, ordered = [*added, *g.node], {i.name for i in [*g.initializer, *g.input]} | {""}, []
    while nodes:  # topological order for the nodes added in front of their consumers
        rest = [n for n in nodes if not all(i in ready for i in n.input)]
        for n in nodes:
            if n not in rest:
                ordered.append(n)
                ready.update(n.output)
        nodes = rest
    del g.node[:]
    g.node.extend(ordered)
    return m


def compare(model: onnx.ModelProto, x: np.ndarray) -> list[str]:
    import onnxruntime as ort
    import openvino as ov

    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = [n.output[0] for n in m.graph.node if n.op_type == "Conv"][:12]
    for name in names:
        m.graph.output.append(helper.make_empty_tensor_value_info(name))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    ref = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"lr": x})
    core = ov.Core()
    om = core.read_model(io.BytesIO(m.SerializeToString()))
    om.reshape({"lr": list(x.shape)})
    got = list(core.compile_model(om, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).infer_new_request({0: x}).values())
    lines = []
    for i, name in enumerate(["sr", *names]):
        a, b = np.asarray(ref[i], np.float32), np.asarray(got[i], np.float32)
        d = float(np.abs(a - b).max())
        lines.append(f"  {name:32s} max |diff| {d:.3e}  relative {d / (float(np.abs(a).max()) + 1e-12):.3e}")
    return lines


def main() -> None:
    from PIL import Image

    from srx.runtime.openvino_graph import for_openvino

    model = onnx.load(sys.argv[1])
    hr = np.asarray(Image.open(SHARED / "data/benchmarks/Set5/HR/baby.png").convert("RGB"), np.float32) / 255
    x = np.ascontiguousarray(hr[:64, :64].transpose(2, 0, 1)[None])
    for title, m in (("as-is", model), ("moved", moved(model)), ("for_openvino", for_openvino(model)[0])):
        print(f"== {title}: onnxruntime vs OpenVINO (f32)")
        print("\n".join(compare(m, x)))


if __name__ == "__main__":
    main()
