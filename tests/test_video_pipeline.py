"""The video pipeline's machinery without files: bounded queues, failures, batching, the CUDA
path on CPU stand-ins, and the encoder choices."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="PyAV is the 'video' extra: pip install 'srx[video]'")

from srx.errors import BadInput, CheckFailed  # noqa: E402
from srx.models import build_model  # noqa: E402
from srx.runtime.registry import open_runner  # noqa: E402
from srx.runtime.source import ModelSource  # noqa: E402
from srx.video.cuda import CpuStandIn, CudaFrames  # noqa: E402
from srx.video.encoding import choose_encoding  # noqa: E402
from srx.video.frames import HostFrames  # noqa: E402
from srx.video.pipeline import Pipeline  # noqa: E402
from srx.video.probe import SideStream, VideoInfo  # noqa: E402
from srx.video.reader import Decoded  # noqa: E402


class FakeFrames:
    """Stage / infer / readback that only pass numbers along, recording batch sizes."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[int] = []
        self.fail_at = fail_at

    def stage(self, pixels):
        return pixels

    def infer(self, staged):
        self.batches.append(len(staged))
        if self.fail_at is not None and any(int(s[0, 0, 0]) == self.fail_at for s in staged):
            raise CheckFailed("model failed on purpose")
        return staged

    def readback(self, up, width, height):
        return up


class FakeSink:
    def __init__(self, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.frames: list[tuple[int, int]] = []
        self.copied: list[object] = []
        self.delay, self.fail_at = delay, fail_at
        self.finished = False

    def mux_copy(self, packet):
        self.copied.append(packet)

    def encode(self, frame, pts):
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise OSError(28, "No space left on device")
        time.sleep(self.delay)
        self.frames.append((int(frame[0, 0, 0]), pts))

    def finish(self):
        self.finished = True


class Source:
    """Frames 0..n-1 (pts = 10 * index) with a packet every 4 frames; records how far it got."""

    def __init__(self, n: int) -> None:
        self.n, self.produced = n, 0

    def __iter__(self):
        for i in range(self.n):
            self.produced = i + 1
            if i % 4 == 0:
                yield f"packet {i}"
            yield Decoded(i, 10 * i, np.full((2, 2, 3), i, np.uint8))


def test_frames_keep_order_timestamps_and_batches():
    src, frames, sink = Source(10), FakeFrames(), FakeSink()
    result = Pipeline(src, frames, sink, width=2, height=2, batch=4).run()
    assert sink.frames == [(i, 10 * i) for i in range(10)] and sink.finished
    assert frames.batches == [4, 4, 2]
    assert sink.copied == ["packet 0", "packet 4", "packet 8"]
    assert result.frames == 10 and set(result.busy_s) >= {"decode", "infer", "encode"}


def test_the_reader_cannot_run_ahead_of_the_encoder():
    """Memory is bounded: with a slow encoder the reader is held back by the two queues."""
    src, sink = Source(200), FakeSink(delay=0.002)
    ahead: list[int] = []
    original = sink.encode

    def encode(frame, pts):
        ahead.append(src.produced - len(sink.frames))
        original(frame, pts)

    sink.encode = encode
    Pipeline(src, FakeFrames(), sink, width=2, height=2, batch=2).run()
    # in flight at most: the reader's queue (2 x batch), the batch in the model, two queued
    # batches, the batch being encoded, and the frame the reader holds
    assert max(ahead) <= 2 * 2 + 2 + 2 * 2 + 2 + 1, max(ahead)
    assert len(sink.frames) == 200


def test_a_failing_encoder_stops_the_reader_and_raises_its_error():
    src = Source(500)
    with pytest.raises(OSError, match="No space left"):
        Pipeline(src, FakeFrames(), FakeSink(fail_at=3), width=2, height=2).run()
    assert src.produced < 50, "the reader went on after the failure"
    assert not [t for t in threading.enumerate() if t.name.startswith("srx-video-")], "a thread was left running"


def test_a_failing_model_raises_and_never_finishes_the_file():
    sink = FakeSink()
    with pytest.raises(CheckFailed, match="on purpose"):
        Pipeline(Source(20), FakeFrames(fail_at=5), sink, width=2, height=2).run()
    assert not sink.finished, "the output was finalised after a failure"


def test_a_failing_reader_raises_its_error():
    def items():
        yield Decoded(0, 0, np.zeros((2, 2, 3), np.uint8))
        raise BadInput("damaged video data after frame 1")

    sink = FakeSink()
    with pytest.raises(BadInput, match="damaged"):
        Pipeline(items(), FakeFrames(), sink, width=2, height=2).run()
    assert not sink.finished


def test_an_interrupt_in_the_calling_thread_stops_the_others():
    class Interrupting(FakeFrames):
        def infer(self, staged):
            raise KeyboardInterrupt

    src = Source(500)
    with pytest.raises(KeyboardInterrupt):
        Pipeline(src, Interrupting(), FakeSink(), width=2, height=2).run()
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name.startswith("srx-video-")]
    assert src.produced < 50


# -- the CUDA path on stand-ins ------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "bit_depth", "batch"), [((24, 16), 8, 1), ((24, 16), 8, 3), ((7, 5), 16, 2)])
def test_cuda_path_on_cpu_stand_ins_equals_the_host_path(size, bit_depth, batch):
    """Every step of srx.video.cuda (pinned ring, copy stream, GPU quantization, buffer return)
    with CPU tensors: the frames must equal the host path's bit for bit; 7x5 is padded to the
    model's 8x8 minimum."""
    w, h = size
    model = build_model("safmn", 2, dim=8, n_blocks=1, seed=4)
    rng = np.random.default_rng(0)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = 255 if bit_depth == 8 else 65535
    pixels = [rng.integers(0, top + 1, (h, w, 3), dtype=dtype) for _ in range(2 * batch + 1)]
    with open_runner("torch", ModelSource.from_module(model), "cpu") as runner:
        host = HostFrames(runner.run, model.spec, h, w, bit_depth, tile=None, overlap=None)
        cuda = CudaFrames(runner, model.spec, h, w, bit_depth, batch=batch, ops=CpuStandIn("cpu"))
        for start in range(0, len(pixels), batch):
            group = pixels[start : start + batch]
            want = host.infer([host.stage(p) for p in group])
            got = cuda.infer([cuda.stage(p) for p in group])
            for a, b in zip(want, got, strict=True):
                fa, fb = host.readback(a, 2 * w, 2 * h), cuda.readback(b, 2 * w, 2 * h)
                fmt = "rgb24" if bit_depth == 8 else "rgb48le"
                assert np.array_equal(fa.to_ndarray(format=fmt), fb.to_ndarray(format=fmt))
        assert cuda.free.qsize() == len(cuda.out_ring), "an output buffer was not given back"


def test_cuda_path_refuses_non_finite_outputs_like_the_host_path():
    model = build_model("safmn", 2, dim=8, n_blocks=1, seed=4)
    with torch.no_grad():
        model.to_feat.bias.fill_(float("nan"))
    with open_runner("torch", ModelSource.from_module(model), "cpu") as runner:
        cuda = CudaFrames(runner, model.spec, 8, 8, 8, batch=1, ops=CpuStandIn("cpu"))
        (rb,) = cuda.infer([cuda.stage(np.zeros((8, 8, 3), np.uint8))])
        with pytest.raises(CheckFailed, match="NaN or infinite"):
            cuda.readback(rb, 16, 16)


# -- encoder choices -------------------------------------------------------------------------------------


def info(codec="h264", pix_fmt="yuv420p", bits=8, alpha=False, size=(96, 64), side=()):
    return VideoInfo(
        Path("in.mp4"), "mp4", 0, codec, *size, pix_fmt, bits, alpha, Fraction(1, 24), Fraction(24), 48, 2.0, 0.0,
        side=tuple(side),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "suffix", "encoder", "out_fmt", "quality"),
    [
        ("h264", "yuv420p", ".mp4", "libx264", "yuv420p", "crf 18"),
        ("hevc", "yuv420p10le", ".mkv", "libx265", "yuv420p10le", "crf 20"),
        ("vp9", "yuv420p", ".webm", "libvpx-vp9", "yuv420p", "crf 24"),
        ("h264", "yuv420p", ".webm", "libvpx-vp9", "yuv420p", "crf 24"),  # WebM holds no H.264
        ("mpeg4", "yuv420p", ".mov", "libx264", "yuv420p", "crf 18"),  # no encoder kept for MPEG-4 Part 2
        ("ffv1", "bgr0", ".mkv", "ffv1", "bgr0", "lossless"),
        ("vp9", "yuva420p", ".mkv", "libvpx-vp9", "yuv420p", "crf 24"),  # alpha is not kept
    ],
)
def test_default_encoder_keeps_the_input_where_it_can(codec, pix_fmt, suffix, encoder, out_fmt, quality):
    bits = 10 if "10" in pix_fmt else 8
    enc = choose_encoding(info(codec, pix_fmt, bits, alpha=pix_fmt.startswith("yuva")), suffix, 4)
    assert (enc.encoder, enc.pix_fmt, enc.quality, enc.width, enc.height) == (encoder, out_fmt, quality, 384, 256)
    assert ("alpha" in " ".join(enc.notes)) == pix_fmt.startswith("yuva")


@pytest.mark.parametrize(
    ("kwargs", "suffix", "message"),
    [
        ({"codec": "nosuchcodec"}, ".mp4", "this FFmpeg build has no such encoder"),
        ({"codec": "aac"}, ".mp4", "is a audio encoder"),
        ({"codec": "h264"}, ".webm", ".webm cannot hold h264 video"),
        ({"codec": "ffv1", "crf": 10}, ".mkv", "--crf does not apply to ffv1"),
        ({"crf": 52}, ".mp4", "--crf 52 is outside libx264's range 0..51"),
        ({}, ".avi", "srx cannot write .avi videos"),
        ({"codec": "ffv1", "preset": "fast"}, ".mkv", "--preset does not apply to ffv1"),
    ],
)
def test_impossible_encodings_are_refused_before_any_work(kwargs, suffix, message):
    with pytest.raises(BadInput, match=message.replace(".", r"\.").replace("+", r"\+")):
        choose_encoding(info(), suffix, 4, **kwargs)


def test_streams_a_container_cannot_hold_are_refused_and_data_streams_left_out():
    subs = SideStream(1, "subtitle", "subrip")
    with pytest.raises(BadInput, match=r"subtitle stream #1 \(subrip\) cannot be copied into \.mp4: write \.mkv"):
        choose_encoding(info(side=[subs]), ".mp4", 4)
    enc = choose_encoding(
        info(side=[subs, SideStream(2, "data", "bin_data"), SideStream(3, "audio", "aac")]), ".mkv", 2
    )
    assert enc.copy_streams == (1, 3)
    assert any("data stream #2" in n for n in enc.notes)


def test_preset_and_crf_reach_the_encoder_options():
    enc = choose_encoding(info(), ".mp4", 4, crf=23, preset="veryfast")
    assert enc.options == {"crf": "23", "preset": "veryfast"} and enc.quality == "crf 23, preset veryfast"
    vp9 = choose_encoding(info("vp9"), ".webm", 2, crf=30)
    assert vp9.options == {"crf": "30", "b": "0", "row-mt": "1"}  # b=0: libvpx's constant-quality mode
