"""A guard instead of a dropped Q/DQ for SAFM's aggregation in OpenVINO: right, but no faster here.

Usage: python bench/openvino_aggr_guard.py MODEL.int8.onnx [--rounds 20] > OUT.txt

srx.runtime.openvino_graph.for_openvino drops the Q/DQ pair in front of each SAFM
aggregation (fed by a Concat), which OpenVINO otherwise reads wrongly, so that 1x1
convolution runs in floating point. This script tries the other way: an identity op
between the Concat and the QuantizeLinear (Max with the lowest finite value, Clip to the
finite range, a 1x1 MaxPool; and Mul by 1, which OpenVINO folds away), which keeps
OpenVINO's quantization from moving up through the Concat into the branches. Each variant
runs at 64x64 (a Set5 crop) against onnxruntime's reading of the unchanged file; then the
dropped pair and the Max guard run at 320x180 (a Set14 crop) with for_cpu, interleaved over
--rounds rounds, with OpenVINO's node times. INT8 kernels run only where exact on this CPU
(7-bit weights on a CPU without VNNI).
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def guarded(model: onnx.ModelProto, kind: str) -> onnx.ModelProto:
    """A copy of `model` with an identity op (`kind`) between each Concat and the QuantizeLinear it feeds."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    producer = {o: n for n in g.node for o in n.output}
    elem = onnx.helper.tensor_dtype_to_np_dtype(next(i for i in g.initializer if "qdq.scale" in i.name).data_type)
    low, high = np.finfo(elem).min, np.finfo(elem).max
    nodes, inits = [], []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in producer and producer[n.input[0]].op_type == "Concat":
            src = n.input[0]
            mid = f"{src}.{kind}"
            if kind == "MaxPool 1x1":
                nodes.append(helper.make_node("MaxPool", [src], [mid], kernel_shape=[1, 1]))
            else:
                consts = {"Max lowest": [low], "Clip finite": [low, high], "Mul 1": [1.0]}[kind]
                names = [f"{mid}.c{i}" for i in range(len(consts))]
                inits += [numpy_helper.from_array(np.array(v, elem), nm) for v, nm in zip(consts, names, strict=True)]
                op = {"Max lowest": "Max", "Clip finite": "Clip", "Mul 1": "Mul"}[kind]
                nodes.append(helper.make_node(op, [src, *names], [mid]))
            n.input[0] = mid
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(inits)
    return m


def crop(path: Path, top: int, left: int, h: int, w: int) -> np.ndarray:
    from srx.images import read_image

    rgb = read_image(path).rgb[top : top + h, left : left + w]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def compile_for(core, model: onnx.ModelProto, shape: list[int], perf: bool = False):
    from srx.runtime.openvino_graph import for_cpu, for_openvino
    from srx.runtime.openvino_runner import int8_kernels_exact

    ovm = core.read_model(io.BytesIO(model.SerializeToString()))
    ovm.reshape(shape)
    for_cpu(ovm, int8_weights=int8_kernels_exact(for_openvino(model)[1].weight_max))
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        **({"PERF_COUNT": True} if perf else {}),
    }
    return core.compile_model(ovm, "CPU", config)


def aggr_precisions(compiled) -> list[str]:
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "safm.aggr/Conv" in op.get_friendly_name() and info["layerType"].astype(str) == "Convolution":
            out.append(str(info["runtimePrecision"].astype(str)))
    return out


def main() -> None:
    import onnxruntime as ort
    import openvino as ov

    from srx.runtime.openvino_graph import for_openvino

    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    base = onnx.load(str(a.model))
    core = ov.Core()
    ref_session = ort.InferenceSession(str(a.model), providers=["CPUExecutionProvider"])
    small = crop(SHARED / "data/benchmarks/Set5/HR/baby.png", 100, 100, 64, 64)
    ref = ref_session.run(None, {"lr": small})[0]
    dropped = for_openvino(base)[0]
    variants = {"as is": base, "Q/DQ dropped (srx)": dropped}
    variants |= {k: guarded(base, k) for k in ("Max lowest", "Clip finite", "MaxPool 1x1", "Mul 1")}
    print("64x64, max |diff| against onnxruntime on the unchanged file; the aggregations' compiled precisions")
    for name, m in variants.items():
        c = compile_for(core, m, [1, 3, 64, 64])
        got = c.create_infer_request().infer({0: small})[0]
        print(f"  {name:20s} {float(np.abs(got - ref).max()):.4f}  {sorted(set(aggr_precisions(c)))}")
    big = crop(SHARED / "data/benchmarks/Set14/HR/lenna.png", 0, 0, 180, 320)
    ref = ref_session.run(None, {"lr": big})[0]
    timed = {"Q/DQ dropped (srx)": dropped, "Max lowest": variants["Max lowest"]}
    requests = {k: compile_for(core, m, [1, 3, 180, 320]).create_infer_request() for k, m in timed.items()}
    ms: dict[str, list[float]] = {k: [] for k in timed}
    for r in requests.values():
        r.infer({0: big})
    for i in range(a.rounds):
        for k in list(requests)[:: 1 if i % 2 == 0 else -1]:
            t0 = time.perf_counter()
            requests[k].infer({0: big})
            ms[k].append((time.perf_counter() - t0) * 1000)
    print(f"320x180, {a.rounds} interleaved rounds (load {os.getloadavg()[:3]})")
    for k, m in timed.items():
        c = compile_for(core, m, [1, 3, 180, 320], perf=True)
        req = c.create_infer_request()
        got = req.infer({0: big})[0]
        kinds: dict[str, float] = {}
        for _ in range(5):
            req.infer({0: big})
            for p in req.profiling_info:
                key = f"{p.node_type} ({p.exec_type})"
                kinds[key] = kinds.get(key, 0.0) + p.real_time.total_seconds() * 1000 / 5
        conv1x1 = {n: round(v, 1) for n, v in kinds.items() if "1x1" in n}
        print(f"  {k:20s} median {np.median(ms[k]):7.1f} ms  max |diff| vs onnxruntime {float(np.abs(got - ref).max()):.4f}"
              f"  node times {sum(kinds.values()):.1f} ms, 1x1 convolutions {conv1x1}")  # fmt: skip


if __name__ == "__main__":
    main()
