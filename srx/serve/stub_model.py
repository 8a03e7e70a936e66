"""The model.py that Triton's Python-backend stub runs for `srx serve` (never imported by srx itself).

PyTriton's own model.py (copied beside this file as `pytriton_model.py`) forwards each batch to the
srx process and turns any failure there into one exception for the whole batch: Triton answers it
as an internal error (HTTP 500) whose text is two Python tracebacks. This subclass gives each
request its own answer instead:

- requests refused from their shape alone (empty, more pixels than `srx serve --max-size`) never
  leave the stub, so their data is not copied into the srx process; nor do FP32 inputs with NaN or
  infinite values (unless `--allow-nonfinite`): checked per request here, because Triton batches
  them with good requests of the same shape, and PyTriton fails a batch as a whole;
- srx's `RequestError` (the client's mistake) becomes INVALID_ARG (HTTP 400) with its one line;
- anything else becomes INTERNAL (HTTP 500) with a request id; the traceback goes to the server
  log only (srx's own log line for srx's faults, Triton's log for the rest).

Triton imports this file as `<version>.model`, so the relative import below finds PyTriton's.
"""

import re
import uuid

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore  # only inside Triton's stub

from . import pytriton_model as _base  # type: ignore

# The last line of the traceback PyTriton passes on names the exception srx raised.
_CLIENT = re.compile(r"^srx\.serve\.handler\.RequestError: (.+)$", re.MULTILINE)
_FAULT = re.compile(r"^srx\.serve\.handler\.ServerFault: (.+)$", re.MULTILINE)


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


def _refusal(message):
    pb_utils.Logger.log_warn(f"srx serve: rejected 1 request: {message}")
    return _error(message, pb_utils.TritonError.INVALID_ARG)


class TritonPythonModel(_base.TritonPythonModel):
    def initialize(self, args):
        super().initialize(args)
        params = self._model_config.get("parameters", {})
        self._max_pixels = int(params.get("srx.max_pixels", {}).get("string_value", "0") or 0)
        self._input = self._model_config["input"][0]["name"]  # srx serve's models have one: 'lr'
        self._allow_nonfinite = params.get("srx.allow_nonfinite", {}).get("string_value", "false") == "true"

    def execute(self, triton_requests):
        answers = [None] * len(triton_requests)
        forward = []
        for i, request in enumerate(triton_requests):
            refused = self._refused(request)
            if refused is not None:
                answers[i] = refused
            else:
                forward.append(i)
        if forward:
            batch = [triton_requests[i] for i in forward]
            try:
                responses = super().execute(batch)
            except Exception as e:  # every failure becomes an answer per request
                message, code = self._from_failure(str(e))
                responses = [_error(message, code) for _ in batch]
            for i, response in zip(forward, responses, strict=True):
                answers[i] = response
        return answers

    def _refused(self, request):
        if request.is_cancelled():
            return _error("the client cancelled the request", pb_utils.TritonError.CANCELLED)
        tensor = pb_utils.get_input_tensor_by_name(request, self._input)
        if tensor is None:
            return None  # Triton refuses a request without its required input before this
        shape = list(tensor.shape())
        if len(shape) != 4:
            return None
        n, _, h, w = shape
        if n < 1 or h < 1 or w < 1:
            return _refusal(
                f"input '{self._input}' is empty (shape {shape}): send at least one image",
            )
        if self._max_pixels and h * w > self._max_pixels:
            return _refusal(
                f"input {w}x{h} is larger than this server accepts ({self._max_pixels:,} pixels per image, "
                "srx serve --max-size): split it into tiles",
            )
        if not self._allow_nonfinite:
            a = tensor.as_numpy()
            if a.dtype.kind == "f":
                bad = a.size - int(np.count_nonzero(np.isfinite(a)))
                if bad:
                    return _refusal(
                        f"input '{self._input}' has {bad:,} NaN or infinite value(s): send finite values in [0, 1] "
                        "(srx serve --allow-nonfinite passes them to the model)",
                    )
        return None

    def _from_failure(self, text):
        client = _CLIENT.findall(text)
        if client:
            return client[-1], pb_utils.TritonError.INVALID_ARG
        fault = _FAULT.findall(text)
        if fault:
            return fault[-1], pb_utils.TritonError.INTERNAL
        request_id = uuid.uuid4().hex[:12]
        pb_utils.Logger.log_error(f"srx serve: request {request_id} failed in the Triton stub:\n{text}")
        return (
            f"internal error (request id {request_id}): the server log has the details",
            pb_utils.TritonError.INTERNAL,
        )
