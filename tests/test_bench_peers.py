"""srx bench on a GPU, with stand-in runners: the default set, what a timed run holds, the
speed-up columns, graph pool memory, --batch, and engines built for another batch.

The stand-ins replace only the runners (and say every backend can run); the registry's
defaults, the bench loop, the speed-ups and the report are srx's own code, run here on a
machine without a GPU.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

import srx.bench.engine as engine
from srx.bench.engine import BenchConfig, run_bench
from srx.bench.report import format_table
from srx.models import build_model
from srx.runtime import ModelSource
from srx.runtime.base import Availability, Runner, Timer
from srx.runtime.memory import MemoryMeter
from srx.runtime.registry import BACKENDS

# Median ms per run each stand-in reports: the shape of the H200 run of 2026-11-28 (issue 13).
MS = {
    "torch": 5.0,
    "torch-fp16": 6.4,
    "torch-fp16-graph": 3.1,
    "torch-compile": 4.4,
    "torch-compile-fp16": 1.36,
    "torch-fused": 3.4,
    "onnxruntime-cuda": 4.0,
}
GRAPHS = {"torch-fp16-graph", "torch-fused", "torch-compile-fp16"}


class StandInTimer(Timer):
    def __init__(self, ms: float, log: list[str]) -> None:
        super().__init__()
        self.ms, self.log = ms, log

    def start(self) -> None:
        self.log.append("start")

    def stop(self) -> None:
        self.log.append("stop")

    def elapsed_ms(self) -> float:
        self.log.append("read")
        return self.ms


class StandInMeter(MemoryMeter):
    method = "stand-in"

    def __init__(self, graph: bool) -> None:
        self.graph_pool_mb = 12.5 if graph else None

    def peak_mb(self) -> float | None:
        return 40.0


class StandIn(Runner):
    """Nearest-neighbour 'model' that logs every call and reports a fixed latency."""

    log: ClassVar[list[str]] = []

    def _activate(self) -> None:
        self.log.append(f"activate {self.name}")

    def _deactivate(self) -> None:
        self.log.append(f"deactivate {self.name}")

    def execute(self, staged: np.ndarray) -> np.ndarray:
        self.log.append("execute")
        s = self.spec.scale
        out = staged.repeat(s, axis=2).repeat(s, axis=3)
        return out + (1e-3 if self.precision == "fp16" else 0.0)

    def fetch(self, out: np.ndarray) -> np.ndarray:
        self.log.append("fetch")
        return np.asarray(out, np.float32)

    def synchronize(self) -> None:
        self.log.append("sync")

    def timer(self) -> Timer:
        return StandInTimer(MS[self.name], self.log)

    def memory_meter(self) -> MemoryMeter:
        return StandInMeter(self.name in GRAPHS)

    def mode(self) -> str:
        return f"stand-in {self.name}"

    def staged_device_bytes(self, staged: np.ndarray) -> int:
        return 2**20  # each staged input holds 1 MiB "on the device"


@pytest.fixture
def stand_ins(monkeypatch):
    """Every backend can run; each runner is a StandIn with the backend's name and precision."""
    log: ClassVar[list[str]] = []
    classes = {
        name: type(name, (StandIn,), {"name": name, "precision": b.precision, "log": log})
        for name, b in BACKENDS.items()
    }
    for name, b in list(BACKENDS.items()):
        monkeypatch.setitem(BACKENDS, name, dataclasses.replace(b, check=lambda d, s: Availability.yes()))
    monkeypatch.setattr(engine, "runner_class", lambda name: classes[name])
    return log


@pytest.fixture(scope="module")
def source():
    return ModelSource.from_module(build_model("safmn", 2, dim=8, n_blocks=1, seed=1))


def test_cuda_default_set_speedups_and_table(stand_ins, source):
    r = run_bench(source, BenchConfig(16, 24, "cuda", runs=6, warmup=2))
    rows = {x["backend"]: x for x in r.results}
    ran = [x["backend"] for x in r.results if x["status"] == "ok"]
    assert ran == ["torch", "torch-fp16", "torch-fp16-graph", "torch-compile-fp16", "torch-fused", "onnxruntime-cuda"]
    assert "default compiled row is torch-compile-fp16" in rows["torch-compile"]["reason"]
    assert "--backends torch-compile" in rows["torch-compile"]["reason"]
    assert "runs on the CPU" in rows["onnxruntime"]["reason"]
    assert "prebuilt engine" in rows["tensorrt"]["reason"] and "prebuilt engine" in rows["tensorrt-rtx"]["reason"]
    for name in ran:
        row = rows[name]
        assert row["precision"] == BACKENDS[name].precision and row["mode"] == f"stand-in {name}"
        assert row["latency_ms"]["median"] == MS[name]
        assert row["speedup_vs_torch"] == round(MS["torch"] / MS[name], 3)
        # The fastest row without srx is torch.compile FP16 reduce-overhead: srx rows are measured against it.
        assert row["speedup_vs_best_peer"] == round(MS["torch-compile-fp16"] / MS[name], 3)
        assert ("graph_pool_mb" in row) == (name in GRAPHS)
        # 8 inputs staged for the rotation (6 runs + 2 warm-up): one counts, as in a single run.
        assert row["peak_memory_mb"] == 40.0 - 7 and "other staged inputs not counted" in row["memory_method"]
    assert r.best_peer == {"backend": "torch-compile-fp16", "median_ms": 1.36}
    assert rows["torch-fused"]["speedup_vs_best_peer"] == 0.4 and rows["torch-fp16"]["psnr_vs_fp32"] == pytest.approx(
        60.0, abs=0.01
    )
    text = format_table(r)
    assert "vs eager FP32" in text and "vs best peer" in text and "stand-in torch-fp16-graph" in text
    assert "best peer (fastest row without srx: plain PyTorch): torch-compile-fp16, 1.36 ms" in text
    assert "torch-fused: peak memory includes its CUDA graph pool (12.5 MB)" in text


def test_a_timed_run_holds_the_model_only_and_one_sync_at_the_end(stand_ins, source):
    """Between the first timer mark and the last, nothing but timer marks and the model: no
    fetch, no host copy, no per-run synchronisation; the timers are read after one sync."""
    run_bench(source, BenchConfig(16, 24, "cuda", ["torch-fp16"], runs=5, warmup=2))
    log = stand_ins[stand_ins.index("activate torch-fp16") : stand_ins.index("deactivate torch-fp16")]
    first, last = log.index("start"), len(log) - 1 - log[::-1].index("stop")
    assert set(log[first : last + 1]) == {"start", "execute", "stop"}
    assert log[first : last + 1].count("execute") == 5
    assert log[last + 1] == "sync" and log[last + 2 : last + 7] == ["read"] * 5
    # The accuracy pass (execute + fetch per batch) ran before the timed runs, untimed.
    assert log[:first].count("fetch") == 5 and "read" not in log[:first]


def test_batch_counts_frames(stand_ins, source):
    r = run_bench(source, BenchConfig(16, 24, "cuda", ["torch", "torch-fused"], runs=3, warmup=1, batch=4))
    rows = {x["backend"]: x for x in r.results}
    assert r.batch == 4 and r.inputs["count"] == 16 and r.accuracy["inputs"] == 12
    assert rows["torch-fused"]["fps"] == round(4000.0 / MS["torch-fused"], 3)
    assert "latency is per batch of 4" in format_table(r)


def test_make_batches_wraps_around():
    images = [np.full((1, 3, 2, 2), i, np.float32) for i in range(5)]
    batches = engine.make_batches(images, 2)
    assert [b[:, 0, 0, 0].tolist() for b in batches] == [[0, 1], [2, 3], [4, 0]]
    assert engine.make_batches(images, 1) is images


def test_batch_below_one_is_refused(source):
    from srx.errors import BadInput

    with pytest.raises(BadInput, match="--batch 0"):
        run_bench(source, BenchConfig(16, 24, "cpu", ["torch"], runs=1, warmup=0, batch=0))
