"""What `srx serve` does with each batch of requests: check, convert, run, split (plain numpy).

Triton's dynamic batcher hands the model a list of requests. `Handler` checks each input against
the ModelSpec (Triton has already checked the data type and that the shape matches
`[-1, 3, -1, -1]`; the minimum size, an empty batch and the size limit are srx's), joins the
requests of one image size into one batch, splits it where one batch would not fit in memory,
runs it on a runner borrowed from the pool, and gives every request its own slice back.

Two data types, one model each on the server: FP32 in [0, 1] in, FP32 out (the interface of the
ONNX and engine repositories), and UINT8 in [0, 255] in, UINT8 out (rounded as `srx upscale`
writes 8-bit images: a quarter of the bytes on the wire).

A bad request raises `RequestError` (the client's mistake: one line, HTTP 400 / INVALID_ARG); any
other failure is logged here with its traceback and a request id, and raises `ServerFault`, whose
one line (HTTP 500) names only that id. `srx.serve.stub_model` maps the two in Triton's stub. The
shape checks depend on the shape alone, and Triton batches only requests of one shape, so a bad
request never fails a good one with it; a non-finite value is checked per request for the same
reason.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from srx.errors import BadInput
from srx.export import INPUT_NAME as INPUT  # the request and response names are the ONNX tensor names
from srx.export import OUTPUT_NAME as OUTPUT
from srx.images import quantize
from srx.resources import available_memory
from srx.runtime.base import Runner
from srx.spec import ModelSpec

LOG = logging.getLogger("srx.serve")
DTYPES = {"float32": np.float32, "uint8": np.uint8}


class RequestError(Exception):
    """A request the model cannot run; the message goes back to the client, in one line."""


class ServerFault(Exception):
    """The server failed on a valid request; the client gets this one line with a request id, the
    server log the traceback."""


class RunnerPool:
    """N activated runners shared by every model instance: a call borrows one for its batch.

    Runners are not all safe to call from two threads at once (a TensorRT execution context is
    not), so each is used by one call at a time; N bounds how many batches run at once."""

    def __init__(self, runners: Sequence[Runner]) -> None:
        self._free: queue.Queue[Runner] = queue.Queue()
        for r in runners:
            self._free.put(r)
        self.size = len(runners)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Runner]:
        runner = self._free.get()
        try:
            yield runner
        finally:
            self._free.put(runner)


@dataclass(frozen=True)
class Limits:
    """max_pixels: the largest LR image (height x width) one request may send.
    memory: bytes a batch may use (None: what the machine has available at the time).
    allow_nonfinite: pass NaN and infinite FP32 inputs to the model (srx serve --allow-nonfinite)."""

    max_pixels: int
    memory: Callable[[], int | None] = available_memory
    allow_nonfinite: bool = False


def image_bytes(spec: ModelSpec, height: int, width: int) -> int:
    """Memory one image of a batch needs: the forward pass, plus its input and FP32 output kept
    for the response."""
    return spec.forward_bytes(height, width, 1) + 4 * 3 * height * width * (1 + spec.scale**2)


class Handler:
    """The infer function of one served model (FP32 or UINT8), callable with PyTriton's requests."""

    def __init__(self, pool: RunnerPool, spec: ModelSpec, dtype: str, limits: Limits) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose from {', '.join(DTYPES)}")
        self.pool = pool
        self.spec = spec
        self.dtype = dtype
        self.limits = limits

    def __call__(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        try:
            arrays = [self._checked(r) for r in requests]
        except RequestError as e:
            LOG.warning("rejected %d request(s): %s", len(requests), e)
            raise
        try:
            return self._answer(arrays)
        except RequestError as e:
            LOG.warning("rejected %d request(s): %s", len(requests), e)
            raise
        except Exception as e:
            request_id = uuid.uuid4().hex[:12]
            LOG.error("request %s failed (%d request(s) in its batch)", request_id, len(requests), exc_info=True)
            raise ServerFault(f"internal error (request id {request_id}): the server log has the details") from e

    def _answer(self, arrays: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        outputs: list[np.ndarray | None] = [None] * len(arrays)
        for shape, members in _group_by_shape(arrays).items():
            batch = np.concatenate([arrays[i] for i in members]) if len(members) > 1 else arrays[members[0]]
            sr = self._run(batch, shape)
            start = 0
            for i in members:
                n = arrays[i].shape[0]
                outputs[i] = sr[start : start + n]
                start += n
        return [{OUTPUT: self._to_wire(o)} for o in outputs]  # type: ignore[arg-type]

    # -- steps -----------------------------------------------------------------------------
    def _checked(self, request: Mapping[str, np.ndarray]) -> np.ndarray:
        if INPUT not in request:
            raise RequestError(f"the request has no input '{INPUT}': send the image as '{INPUT}'")
        a = np.asarray(request[INPUT])
        if a.dtype != DTYPES[self.dtype]:
            raise RequestError(f"input '{INPUT}' is {a.dtype}, this model takes {self.dtype}")
        if a.ndim != 4:
            raise RequestError(f"input '{INPUT}' must be NCHW (4 dimensions), got shape {list(a.shape)}")
        n, c, h, w = a.shape
        if n < 1 or h < 1 or w < 1:
            raise RequestError(f"input '{INPUT}' is empty (shape {list(a.shape)}): send at least one image")
        if c != self.spec.in_channels:
            raise RequestError(
                f"input '{INPUT}' has {c} channels, this model takes {self.spec.in_channels} (RGB, NCHW)"
            )
        try:
            self.spec.check_input_size(h, w)
        except BadInput as e:
            raise RequestError(str(e)) from None
        if h * w > self.limits.max_pixels:
            raise RequestError(
                f"input {w}x{h} is larger than this server accepts ({self.limits.max_pixels:,} pixels per image, "
                "srx serve --max-size): split it into tiles"
            )
        if a.dtype == np.float32 and not self.limits.allow_nonfinite:
            bad = a.size - int(np.count_nonzero(np.isfinite(a)))
            if bad:
                raise RequestError(
                    f"input '{INPUT}' has {bad:,} NaN or infinite value(s): send finite values in [0, 1] "
                    "(srx serve --allow-nonfinite passes them to the model)"
                )
        return a

    def _run(self, batch: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Run a batch of one image size, in parts where the whole would not fit in memory."""
        _, h, w = shape
        per_image = image_bytes(self.spec, h, w)
        free = self.limits.memory()
        # Every runner of the pool may be running a batch at the same time.
        room = None if free is None else free // self.pool.size
        n = batch.shape[0]
        step = n if room is None else min(n, room // per_image)
        if step < 1:
            raise RequestError(
                f"one {w}x{h} image needs about {per_image / 1e9:.1f} GB here, more than the "
                f"{(room or 0) / 1e9:.1f} GB this server has free: send smaller images or tiles"
            )
        parts = []
        for start in range(0, n, step):
            x = self._to_model(batch[start : start + step])
            with self.pool.borrow() as runner:
                parts.append(runner.run(x))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _to_model(self, a: np.ndarray) -> np.ndarray:
        if self.dtype == "uint8":
            return a.astype(np.float32) / 255.0  # as srx reads 8-bit images (srx.images)
        return np.ascontiguousarray(a, dtype=np.float32)

    def _to_wire(self, sr: np.ndarray) -> np.ndarray:
        return quantize(sr, 8) if self.dtype == "uint8" else sr


def _group_by_shape(arrays: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    """Request indices by (C, H, W), in arrival order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault(tuple(a.shape[1:]), []).append(i)
    return groups
