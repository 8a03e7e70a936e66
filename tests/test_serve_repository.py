"""Triton model repositories (srx serve-config, srx export --triton-repo): every config.pbtxt is
parsed with Triton's ModelConfig schema (model_config.proto, as tritonclient ships it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_srx
from onnx_models import onnx_bytes, write_onnx

from srx.errors import BadInput
from srx.runtime.sidecar import write_engine_pair
from srx.serve import repository
from srx.serve.repository import RepoOptions, write_model_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="pip install 'srx[triton-client]'")
from google.protobuf import text_format  # noqa: E402  (comes with tritonclient)


def parse(config: str | Path):
    text = Path(config).read_text()
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def params(cfg) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory) -> Path:
    return write_onnx(tmp_path_factory.mktemp("onnx"), "safmn", "tiny_x4.onnx", n_blocks=1)


@pytest.fixture(scope="module")
def static_onnx(tmp_path_factory) -> Path:
    from srx.export.model import onnx_from_model
    from srx.models import build_model

    model = build_model("safmn", 4, 8, 1, seed=0)
    path = tmp_path_factory.mktemp("onnx") / "tiny_static.onnx"
    path.write_bytes(onnx_from_model(model, dynamic=False, input_size=(40, 24)).SerializeToString())
    return path


def fake_engine(folder: Path, *, profile: dict, backend: str = "tensorrt", name: str = "m.engine") -> Path:
    """An engine file and the sidecar srx build-engine writes next to it (the bytes are never
    deserialised here: a repository only copies the plan)."""
    from srx.models import build_model

    spec = build_model("safmn", 4, 8, 1, seed=0).spec
    data = b"not really a plan " * 10
    engine = folder / name
    sidecar = {
        "format": "srx-engine",
        "format_version": 1,
        "engine": name,
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "spec": spec.to_dict(),
        "precision": "fp16",
        "profile": profile,
        "backend": backend,
        "backend_version": "10.3.0",
        "network": "strongly typed",
        "device": {"name": "NVIDIA H200", "compute_capability": "9.0"},
        "created": "2026-11-28T00:00:00+00:00",
    }
    write_engine_pair(engine, data, sidecar)
    return engine


DYNAMIC_PROFILE = {"min": "64x64", "opt": "640x360", "max": "1920x1080", "batch": [1, 4, 8]}


# -- ONNX --------------------------------------------------------------------------------------


def test_dynamic_onnx_default(dynamic_onnx, tmp_path):
    r = write_model_repository(dynamic_onnx, tmp_path / "repo")
    cfg = parse(r["config"])
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == ("tiny_x4", "onnxruntime", 8)
    (inp,), (out,) = cfg.input, cfg.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("lr", model_config_pb2.TYPE_FP32, [3, -1, -1])
    assert (out.name, out.data_type, list(out.dims)) == ("sr", model_config_pb2.TYPE_FP32, [3, -1, -1])
    assert cfg.HasField("dynamic_batching") and cfg.dynamic_batching.max_queue_delay_microseconds == 1000
    (group,) = cfg.instance_group
    assert (group.count, group.kind) == (1, model_config_pb2.ModelInstanceGroup.KIND_GPU)
    (acc,) = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "cuda"
    p = params(cfg)
    from srx.export.metadata import read_srx_onnx

    spec = read_srx_onnx(dynamic_onnx).spec
    assert json.loads(p["srx.spec"]) == json.loads(spec.to_json())
    assert (p["srx.scale"], p["srx.min_size"], p["srx.value_range"]) == ("4", str(spec.min_size), "0,1")
    assert p["srx.source"] == "tiny_x4.onnx"  # the name, never a path of this machine
    model_file = Path(r["model_file"])
    assert model_file == tmp_path / "repo" / "tiny_x4" / "1" / "model.onnx"
    assert model_file.read_bytes() == dynamic_onnx.read_bytes()
    assert p["srx.source_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()


def test_dynamic_onnx_options_and_tensorrt_accelerator(dynamic_onnx, tmp_path):
    o = RepoOptions(
        name="sr-4x",
        version=3,
        max_batch=16,
        queue_delay_us=250,
        instances=2,
        accelerator="tensorrt",
        trt_max="1280x720",
    )
    r = write_model_repository(dynamic_onnx, tmp_path, o)
    assert Path(r["model_file"]) == tmp_path / "sr-4x" / "3" / "model.onnx"
    cfg = parse(r["config"])
    assert (cfg.name, cfg.max_batch_size, cfg.dynamic_batching.max_queue_delay_microseconds) == ("sr-4x", 16, 250)
    assert cfg.instance_group[0].count == 2
    (acc,) = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt"
    assert dict(acc.parameters) == {
        "precision_mode": "FP32",
        "max_workspace_size_bytes": str(1 << 30),
        "trt_profile_min_shapes": "lr:1x3x64x64",
        "trt_profile_opt_shapes": "lr:1x3x360x640",
        "trt_profile_max_shapes": "lr:16x3x720x1280",
    }


def test_cpu_instances_have_no_gpu_accelerator(dynamic_onnx, tmp_path):
    cfg = parse(write_model_repository(dynamic_onnx, tmp_path, RepoOptions(kind="cpu"))["config"])
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not cfg.HasField("optimization")
    with pytest.raises(BadInput, match="needs GPU instances"):
        repository.plan_entry(dynamic_onnx, RepoOptions(kind="cpu", accelerator="tensorrt"))


def test_static_onnx(static_onnx, tmp_path):
    cfg = parse(write_model_repository(static_onnx, tmp_path)["config"])
    # A fixed batch of 1: Triton must not add a batch dimension, so full dims and no batcher.
    assert cfg.max_batch_size == 0
    assert list(cfg.input[0].dims) == [1, 3, 24, 40]
    assert list(cfg.output[0].dims) == [1, 3, 96, 160]
    assert not cfg.HasField("dynamic_batching")
    with pytest.raises(BadInput, match="fixed batch of 1"):
        repository.plan_entry(static_onnx, RepoOptions(max_batch=4))


# -- TensorRT plans ----------------------------------------------------------------------------


def test_dynamic_plan(tmp_path):
    engine = fake_engine(tmp_path, profile=DYNAMIC_PROFILE)
    r = write_model_repository(engine, tmp_path / "repo")
    cfg = parse(r["config"])
    assert (cfg.backend, cfg.max_batch_size) == ("tensorrt", 8)
    assert list(cfg.input[0].dims) == [3, -1, -1] and list(cfg.output[0].dims) == [3, -1, -1]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 1000
    assert cfg.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert not cfg.HasField("optimization")
    assert Path(r["model_file"]).name == "model.plan"
    assert Path(r["model_file"]).read_bytes() == engine.read_bytes()
    p = params(cfg)
    assert json.loads(p["srx.profile"]) == DYNAMIC_PROFILE
    assert json.loads(p["srx.engine"])["backend_version"] == "10.3.0"
    text = Path(r["config"]).read_text()
    assert "TensorRT 10.3.0 on NVIDIA H200 (compute capability 9.0)" in text  # the limit, where a reader sees it
    with pytest.raises(BadInput, match="batches up to 8"):
        repository.plan_entry(engine, RepoOptions(max_batch=16))


def test_static_plan(tmp_path):
    engine = fake_engine(tmp_path, profile={"min": "640x360", "opt": "640x360", "max": "640x360", "batch": [1, 1, 1]})
    cfg = parse(write_model_repository(engine, tmp_path / "repo")["config"])
    assert cfg.max_batch_size == 0
    assert list(cfg.input[0].dims) == [1, 3, 360, 640]
    assert list(cfg.output[0].dims) == [1, 3, 1440, 2560]
    assert not cfg.HasField("dynamic_batching")


def test_plan_built_for_batch_one_says_how_to_batch(tmp_path):
    engine = fake_engine(tmp_path, profile={**DYNAMIC_PROFILE, "batch": [1, 1, 1]})
    r = write_model_repository(engine, tmp_path / "repo")
    cfg = parse(r["config"])
    assert cfg.max_batch_size == 1 and not cfg.HasField("dynamic_batching")
    assert any("--batch 1:4:8" in n for n in r["notes"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"backend": "tensorrt-rtx"}, "loads TensorRT engines only"),
        ({"engine_sha256": "0" * 64}, "does not match its sidecar"),
        ({"profile": {"min": "64x64"}}, "no readable profile"),
    ],
)
def test_plan_refused(tmp_path, change, message):
    engine = fake_engine(tmp_path, profile=DYNAMIC_PROFILE)
    side = engine.with_name(engine.name + ".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **change}))
    with pytest.raises(BadInput, match=message):
        write_model_repository(engine, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_plan_options_that_do_not_apply(tmp_path):
    engine = fake_engine(tmp_path, profile=DYNAMIC_PROFILE)
    for o, message in [
        (RepoOptions(kind="cpu"), "runs on the GPU only"),
        (RepoOptions(accelerator="tensorrt"), "applies to ONNX models"),
        (RepoOptions(trt_max="640x360"), "keeps the profile"),
    ]:
        with pytest.raises(BadInput, match=message):
            repository.plan_entry(engine, o)


# -- writing -------------------------------------------------------------------------------------


def test_rewrite_replaces_only_what_srx_wrote(dynamic_onnx, tmp_path):
    write_model_repository(dynamic_onnx, tmp_path, RepoOptions(max_batch=4))
    write_model_repository(dynamic_onnx, tmp_path, RepoOptions(max_batch=2))
    assert parse(tmp_path / "tiny_x4" / "config.pbtxt").max_batch_size == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_x4"]  # no temporary or old folder left
    other = tmp_path / "theirs"
    other.mkdir()
    (other / "config.pbtxt").write_text('name: "theirs"\n')
    with pytest.raises(BadInput, match="not a model srx wrote"):
        write_model_repository(dynamic_onnx, tmp_path, RepoOptions(name="theirs"))
    assert (other / "config.pbtxt").read_text() == 'name: "theirs"\n'


def test_interrupted_write_leaves_the_old_entry_and_nothing_else(dynamic_onnx, tmp_path, monkeypatch):
    write_model_repository(dynamic_onnx, tmp_path, RepoOptions(max_batch=4))
    before = (tmp_path / "tiny_x4" / "config.pbtxt").read_text()

    def interrupted(src, dest):
        Path(dest).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(repository, "_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_model_repository(dynamic_onnx, tmp_path, RepoOptions(max_batch=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_x4"]
    assert (tmp_path / "tiny_x4" / "config.pbtxt").read_text() == before
    new = tmp_path / "new_repo"
    with pytest.raises(KeyboardInterrupt):
        write_model_repository(dynamic_onnx, new)
    assert not new.exists()  # the repository folder srx created is gone too


def test_not_an_srx_model(tmp_path):
    import onnx

    from srx.export.metadata import set_metadata

    proto = onnx.load_from_string(onnx_bytes("safmn", n_blocks=1))
    set_metadata(proto, {"srx.spec": "{}"})
    del proto.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(BadInput, match="not an srx image model"):
        write_model_repository(path, tmp_path / "repo")


# -- the commands --------------------------------------------------------------------------------


def test_serve_config_command(dynamic_onnx, tmp_path):
    proc = run_srx("serve-config", str(dynamic_onnx), "-o", str(tmp_path / "repo"), "--max-batch", "4", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert parse(r["config"]).max_batch_size == 4
    assert "tritonserver --model-repository=" in proc.stderr  # the human lines go to stderr with --json -


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["{onnx}", "-o", "{tmp}/r", "--instances", "0"], "--instances 0"),
        (["{onnx}", "-o", "{tmp}/r", "--max-batch", "0"], "--max-batch 0"),
        (["{onnx}", "-o", "{tmp}/r", "--max-queue-delay-us", "-1"], "cannot be negative"),
        (["{onnx}", "-o", "{tmp}/r", "--model-version", "0"], "positive integers"),
        (["{onnx}", "-o", "{tmp}/r", "--name", "a/b"], "model name 'a/b'"),
        (["{onnx}", "-o", "{tmp}/r", "--kind", "cpu", "--accelerator", "cuda"], "needs GPU instances"),
        (["{onnx}", "-o", "{tmp}/r", "--accelerator", "tensorrt", "--min", "4x4"], "below this model's minimum"),
        (["{tmp}/missing.onnx", "-o", "{tmp}/r"], "does not exist"),
        (["{tmp}/model.txt", "-o", "{tmp}/r"], "unknown model file type"),
        (["{onnx}", "-o", "{tmp}/model.txt"], "is a file, not a folder"),
        (["{onnx}", "-o", "{tmp}/no/such/r"], "does not exist"),
    ],
)
def test_serve_config_bad_input(dynamic_onnx, tmp_path, args, expect):
    (tmp_path / "model.txt").write_text("x")
    argv = [a.replace("{onnx}", str(dynamic_onnx)).replace("{tmp}", str(tmp_path)) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    line = assert_one_line_error(run_srx("serve-config", *argv), 2)
    assert expect in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_export_writes_the_repository_too(tmp_path):
    # --static at a small size: the quickest export (its verification), the wiring is the same.
    out = tmp_path / "x2.onnx"
    argv = ["--scale", "2", "--static", "--input", "32x24", "-o", str(out), "--triton-repo", str(tmp_path / "repo")]
    proc = run_srx("export", *argv, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)["triton_repo"]
    assert Path(r["model_file"]).read_bytes() == out.read_bytes()
    cfg = parse(r["config"])
    assert (cfg.name, cfg.max_batch_size, list(cfg.input[0].dims)) == ("x2", 0, [1, 3, 24, 32])


def test_export_refuses_a_repository_it_cannot_write_before_exporting(tmp_path):
    (tmp_path / "repo").write_text("a file")
    out = tmp_path / "x2.onnx"
    line = assert_one_line_error(
        run_srx("export", "--scale", "2", "-o", str(out), "--triton-repo", str(tmp_path / "repo")), 2
    )
    assert "is a file, not a folder" in line
    assert not out.exists()


def test_tritonserver_itself_reads_every_variant(dynamic_onnx, static_onnx, tmp_path):
    """Beyond the schema: tritonserver 2.51 (PyTriton's, in the serving environment) reads and
    normalises each config.pbtxt; only the missing onnxruntime / tensorrt backend (PyTriton ships
    the Python backend alone) stops the load. A config it could not read fails earlier, with
    'failed to read text proto', as a check below proves."""
    from serve_env import free_ports, run_serve_python

    found = run_serve_python("-c", "import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent)")
    assert found.returncode == 0, found.stderr
    root = Path(found.stdout.strip())
    binary, libs = root / "tritonserver" / "bin" / "tritonserver", root.parent / "nvidia_pytriton.libs"
    repo = tmp_path / "repo"
    write_model_repository(dynamic_onnx, repo, RepoOptions(name="onnx_dynamic", accelerator="tensorrt"))
    write_model_repository(static_onnx, repo, RepoOptions(name="onnx_static", kind="cpu"))
    write_model_repository(fake_engine(tmp_path, profile=DYNAMIC_PROFILE), repo, RepoOptions(name="plan_dynamic"))
    static = {"min": "640x360", "opt": "640x360", "max": "640x360", "batch": [1, 1, 1]}
    write_model_repository(
        fake_engine(tmp_path, profile=static, name="s.engine"), repo, RepoOptions(name="plan_static")
    )
    broken = repo / "broken"
    broken.mkdir()
    (broken / "config.pbtxt").write_text('name: "broken"\nmax_batch_sizes: 8\n')

    import os
    import subprocess

    ports = free_ports(3)
    proc = subprocess.run(
        [
            str(binary),
            f"--model-repository={repo}",
            f"--backend-directory={root / 'tritonserver' / 'backends'}",
            f"--http-port={ports[0]}",
            f"--grpc-port={ports[1]}",
            f"--metrics-port={ports[2]}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LD_LIBRARY_PATH": str(libs)},
        stdin=subprocess.DEVNULL,
    )
    log = proc.stdout + proc.stderr
    for name, backend in [
        ("onnx_dynamic", "onnxruntime"),
        ("onnx_static", "onnxruntime"),
        ("plan_dynamic", "tensorrt"),
        ("plan_static", "tensorrt"),
    ]:
        assert (
            f"failed to load '{name}' version 1: Invalid argument: unable to find backend library for backend '{backend}'"
            in log
        ), log
    assert "failed to read text proto from" in log and "broken/config.pbtxt" in log, log
    assert log.count("failed to read text proto") == 1, log
