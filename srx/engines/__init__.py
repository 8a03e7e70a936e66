"""Building TensorRT / TensorRT-RTX engines from srx ONNX (`srx build-engine`).

* `srx.engines.build`: `engine_from_onnx`: checks, precision transform, build, files, report
* `srx.engines.network`: the TensorRT network, builder configuration and FP32 pinning

Building needs onnx and the precision passes; running an engine does not. The run path
and what both share (srx.runtime: trt, sidecar, profile, cudart, trt_session) stays
importable with numpy, TensorRT and cuda-python only, as on a Jetson.
"""
