"""srx.runtime.cuda_graph: the one CUDA-graph capture/replay, under srx.kernels.cuda_graph_runner
(the kernels' API) and the bench runners (torch-fused, torch-fp16-graph).

On the CPU: the argument checks, the refusal without CUDA, the replay's input check and that
both entry points are the same class. The capture itself needs a GPU (`gpu` tests).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import srx.kernels
from srx.errors import BadInput
from srx.runtime import cuda_graph
from srx.runtime.cuda_graph import GraphCache, GraphReplay, check_replay_input


def _cpu_only():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the gpu tests below capture for real")


@pytest.mark.parametrize(
    ("fn", "example", "warmup", "message"),
    [
        ("model", torch.zeros(1, 3, 4, 4), 3, "captures a callable"),
        (nn.Identity(), [1.0, 2.0], 3, "needs an example input tensor"),
        (nn.Identity(), torch.zeros(1, 3, 4, 4), 0, "warmup must be a whole number of calls >= 1"),
        (nn.Identity(), torch.zeros(1, 3, 4, 4), 2.5, "warmup must be a whole number"),
        (nn.Identity(), torch.zeros(1, 3, 4, 4), True, "warmup must be a whole number"),
    ],
)
def test_bad_arguments_are_refused_before_any_gpu_work(fn, example, warmup, message):
    with pytest.raises(BadInput, match=message):
        GraphReplay(fn, example, warmup=warmup)
    with pytest.raises(BadInput, match=message):
        srx.kernels.cuda_graph_runner(fn, example, warmup=warmup)


def test_without_cuda_both_entry_points_refuse_in_one_line():
    _cpu_only()
    calls = []
    for capture in (GraphReplay, srx.kernels.cuda_graph_runner):
        with pytest.raises(BadInput, match="needs a CUDA GPU and a CUDA example tensor") as info:
            capture(calls.append, torch.zeros(1, 3, 4, 4))
        assert "\n" not in str(info.value)
    assert calls == []  # refused before the warm-up ran anything


def test_a_replay_refuses_an_input_the_graph_was_not_captured_for():
    captured = torch.zeros(1, 3, 4, 4)
    check_replay_input(captured, torch.ones(1, 3, 4, 4))  # same shape, dtype, device: fine
    for other in (torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 4, 4, dtype=torch.float16)):
        with pytest.raises(BadInput, match=r"captured for \(1, 3, 4, 4\) torch.float32 on cpu, got"):
            check_replay_input(captured, other)


def test_the_kernels_api_and_the_bench_cache_capture_through_the_same_class(monkeypatch):
    """srx.kernels.cuda_graph_runner and GraphCache (torch-fused, torch-fp16-graph) both build a
    GraphReplay: what the kernels' API runs is what `srx bench` times."""
    built = []

    class Recorder:
        def __init__(self, fn, example, warmup=3):
            built.append((fn, tuple(example.shape), warmup))

        def __call__(self, x):
            return x

    monkeypatch.setattr(cuda_graph, "GraphReplay", Recorder)
    model = nn.Identity()
    srx.kernels.cuda_graph_runner(model, torch.zeros(1, 3, 4, 4), warmup=2)
    cache = GraphCache(model)
    for shape in ((1, 3, 4, 4), (1, 3, 4, 4), (1, 3, 8, 4)):
        cache(torch.zeros(shape))
    assert built == [(model, (1, 3, 4, 4), 2), (model, (1, 3, 4, 4), 3), (model, (1, 3, 8, 4), 3)]


@pytest.mark.gpu
def test_a_captured_graph_replays_new_inputs_into_its_output_buffer():
    weight = torch.randn(8, 3, 3, 3, device="cuda")
    conv = nn.Conv2d(3, 8, 3, padding=1).cuda().eval()
    with torch.no_grad():
        conv.weight.copy_(weight)
    x = torch.rand(1, 3, 16, 16, device="cuda")
    replay = GraphReplay(conv, x)
    y = torch.rand(1, 3, 16, 16, device="cuda")
    with torch.no_grad():
        expected = conv(y)
    out = replay(y)
    assert out.data_ptr() == replay(x).data_ptr()  # one static buffer, overwritten by each replay
    assert torch.allclose(replay(y), expected, atol=1e-4)  # the same conv; cuDNN may pick another algorithm
    with pytest.raises(BadInput, match="captured for"):
        replay(torch.rand(1, 3, 8, 8, device="cuda"))
