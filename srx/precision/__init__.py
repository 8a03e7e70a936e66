"""ONNX -> FP16 / INT8 ONNX: precision transforms over srx-exported graphs.

Needs onnx and numpy only (calibration also needs onnxruntime), never torch: on a Jetson
the FP16 pass runs next to the TensorRT builder, where torch is usually absent.
Submodules are imported lazily by their users (`srx.precision.fp16`, `srx.precision.int8`).
"""
