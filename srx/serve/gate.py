"""The HTTP port of `srx serve`: a small relay in front of tritonserver that refuses an oversized
request from its headers, before its body is read (issue 25).

tritonserver 2.51 (PyTriton 0.7's) has no request size limit: `--http-max-input-size` came in a
later release, and gRPC's message limit is fixed at 2 GB. It received every body whole and copied
it into the Python backend's shared memory, which grows to the largest request seen and never
shrinks: each 8000x8000 request that srx then refused stayed in memory. So `srx serve` listens on
the HTTP port itself, and tritonserver on a private loopback port:

- a request whose Content-Length is above the limit (`--max-batch` images of `--max-size`, FP32,
  plus room for the JSON header) is answered 413 with one line;
- a request with binary tensors (what tritonclient sends: `Inference-Header-Content-Length`) has
  its JSON header read first, and an image larger than `--max-size` is answered 400 with the line
  srx's own check gives (so a UINT8 image cannot pass for a quarter of its pixels);
- either way the rest of a refused body is read and dropped in small pieces (the client sends it
  whole before it reads the answer), never held;
- a body without a Content-Length (chunked) is refused with 411, as it cannot be checked first;
- everything else is passed through byte for byte, one request at a time per connection.

gRPC goes to tritonserver directly: its requests are refused by srx's checks in Triton's stub
(srx.serve.stub_model), after tritonserver has received them (docs/serving.md, Limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass

from srx.serve.handler import LOG

HEAD_LIMIT = 64 * 1024  # request line and headers; Triton's own are a few hundred bytes
JSON_ROOM = 1 << 20  # the JSON part of a binary-tensor request, beside the tensor bytes
PIECE = 1 << 20
# A refused body is read and dropped up to this much, so that the client reads the answer; past it
# the connection is closed.
DISCARD_LIMIT = 16 << 30


def body_limit(max_batch: int, channels: int, width: int, height: int) -> int:
    """Bytes of the largest request the server accepts: a full batch of the largest images, FP32."""
    return max_batch * channels * width * height * 4 + JSON_ROOM


@dataclass(frozen=True)
class GateConfig:
    host: str
    port: int
    upstream_port: int
    max_body: int
    hint: str  # what to change, named in the refusal: the options behind max_body
    max_pixels: int  # per image (srx serve --max-size)


class Gate:
    """The relay, on an asyncio loop in a thread of its own: `start()` listens (raises OSError
    when it cannot), `stop()` closes the port and every connection."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        # A connection that fails is the client's closed connection, never a traceback in the log.
        self._loop.set_exception_handler(lambda _loop, context: LOG.debug("gate: %s", context.get("message")))
        self._thread = threading.Thread(target=self._loop.run_forever, name="srx-serve-gate", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.config.host, self.config.port, limit=HEAD_LIMIT, reuse_address=True
        )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Let every connection finish closing before the loop stops under it.
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    await _answer(writer, 431, "the request's headers are larger than 64 KiB")
                    return
                headers = _headers(head)
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    await _answer(
                        writer, 411, "send a Content-Length: srx serve checks a request's size before its body"
                    )
                    return
                length = int(headers.get("content-length", "0") or 0)
                if length > self.config.max_body:
                    self.refused += 1
                    await self._refuse(reader, writer, headers, length)
                    return
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = _without_header(head, b"expect")
                json_part = b""
                json_length = int(headers.get("inference-header-content-length", "0") or 0)
                if 0 < json_length <= min(length, JSON_ROOM):
                    json_part = await reader.readexactly(json_length)
                    too_large = self._too_large(json_part)
                    if too_large:
                        self.refused += 1
                        LOG.warning("rejected 1 request: %s", too_large)
                        await _answer(writer, 400, too_large)
                        await _discard(reader, length - json_length)
                        return
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.config.upstream_port, limit=HEAD_LIMIT)
                up_reader, up_writer = upstream
                up_writer.write(head + json_part)
                await _relay(reader, up_writer, length - len(json_part))
                keep = await _relay_response(up_reader, writer, head.startswith(b"HEAD "))
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (Exception, asyncio.CancelledError):  # a broken connection, either side: close both
            return
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()
            if task is not None:
                self._tasks.discard(task)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers, length) -> None:
        message = (
            f"the request has {length:,} bytes, more than this server accepts ({self.config.max_body:,} bytes: "
            f"{self.config.hint}): send smaller images or tiles"
        )
        LOG.warning("rejected 1 request: %s", message)
        await _answer(writer, 413, message)
        if headers.get("expect", "").lower() != "100-continue":  # else the client waits for a 100
            await _discard(reader, length)

    def _too_large(self, json_part: bytes) -> str:
        """srx's one line for an image above --max-size in a request's JSON header, else ''.
        The same words as srx.serve.stub_model, which checks what comes by gRPC."""
        try:
            inputs = json.loads(json_part).get("inputs", [])
            shapes = [[int(d) for d in i.get("shape", [])] for i in inputs if isinstance(i, dict)]
        except (ValueError, TypeError, AttributeError):
            return ""  # Triton answers a malformed header itself
        for shape in shapes:
            if len(shape) == 4 and shape[2] * shape[3] > self.config.max_pixels:
                h, w = shape[2], shape[3]
                return (
                    f"input {w}x{h} is larger than this server accepts ({self.config.max_pixels:,} pixels per "
                    "image, srx serve --max-size): split it into tiles"
                )
        return ""


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    left = min(length, DISCARD_LIMIT)
    while left > 0:
        piece = await reader.read(min(PIECE, left))
        if not piece:
            break
        left -= len(piece)


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _without_header(head: bytes, name: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(ln for ln in lines if not ln.lower().startswith(name + b":"))


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    while length > 0:
        piece = await reader.read(min(PIECE, length))
        if not piece:
            raise asyncio.IncompleteReadError(b"", length)
        writer.write(piece)
        length -= len(piece)
        await writer.drain()
    await writer.drain()


async def _relay_response(up: asyncio.StreamReader, writer: asyncio.StreamWriter, head_request: bool) -> bool:
    """Pass one response back; False when the connection must close after it."""
    while True:
        head = await up.readuntil(b"\r\n\r\n")
        writer.write(head)
        status = int(head.split(b" ", 2)[1])
        if status >= 200:
            break
    headers = _headers(head)
    if head_request or status in (204, 304):
        await writer.drain()
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await up.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";")[0], 16)
            await _relay(up, writer, size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    elif "content-length" in headers:
        await _relay(up, writer, int(headers["content-length"]))
    else:  # the body runs to the end of the connection
        while piece := await up.read(PIECE):
            writer.write(piece)
            await writer.drain()
        return False
    return headers.get("connection", "").lower() != "close"


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    reason = {
        400: "Bad Request",
        411: "Length Required",
        413: "Payload Too Large",
        431: "Request Header Fields Too Large",
    }[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
