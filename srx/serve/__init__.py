"""Serving srx models on NVIDIA Triton Inference Server (issue 17).

Two ways, one interface (input `lr`, output `sr`, FP32 NCHW, the ModelSpec in the model
configuration's `parameters`):

- `srx.serve.repository`: a model repository (`config.pbtxt` + `model.onnx|model.plan`) for a
  standalone tritonserver (`srx export --triton-repo`, `srx serve-config`). Torch-free, no
  Triton package needed to write one.
- `srx.serve.server`: `srx serve`, any srx backend behind a Triton server started in-process
  with PyTriton (the `serve` extra). `srx.serve.handler` is what each request goes through
  (plain numpy and the Runner contract, so it is tested without PyTriton).
- `srx.serve.loadtest`: N concurrent tritonclient clients for T seconds against a server,
  and the same model in-process, so the serving overhead is a number.

Nothing here is imported by `import srx`.
"""
