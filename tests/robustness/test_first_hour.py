"""A new user's first hour (issue 16), through the real entry point: labels, warnings, names, options.

Each test is one numbered point of the issue: what srx printed or wrote that was wrong or
missing, checked where a user sees it (stdout, stderr, the JSON, the files written).
"""

from __future__ import annotations

import json

import onnx
import pytest
from conftest import assert_one_line_error
from onnx_models import onnx_bytes, write_images
from PIL import Image
from robust import run_inprocess, save_checkpoint, save_image, tiny_model

from srx.runtime import check_backend

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_x2.pth", tiny_model())


def _json(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- 1. upscale without --weights --------------------------------------------------------------


def test_1_untrained_model_is_named_on_stderr_before_the_work(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    save_image(folder / "a.png", 20, 24)
    (folder / "b.png").write_bytes((folder / "a.png").read_bytes()[:60])  # fails during the work
    seeded = ("--weights", "seeded", "--scale", "2")
    r = run_inprocess("upscale", str(folder), "-o", str(tmp_path / "out"), *seeded, "--json", "-")
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("srx: warning: seeded is an UNTRAINED model") and "noise" in lines[0], lines
    assert any("b.png" in ln for ln in lines[1:]), lines  # the failure of the work comes after the warning
    d = json.loads(r.stdout)
    assert d["untrained"] is True and [o["input"] for o in d["outputs"]] == [str(folder / "a.png")]
    text = run_inprocess("upscale", str(folder / "a.png"), "-o", str(tmp_path / "c.png"), *seeded).stdout
    assert "NOTE: untrained model: these outputs are noise" in text
    # Without --weights every scale has a trained default now (x2 and x3 since issue 23): no warning.
    r = run_inprocess("upscale", str(folder / "a.png"), "-o", str(tmp_path / "d.png"), "--scale", "2", "--json", "-")
    assert "warning" not in r.stderr and json.loads(r.stdout)["untrained"] is False


def test_1_a_trained_model_gets_no_warning(tmp_path, ckpt):
    img = save_image(tmp_path / "a.png", 20, 24)
    r = run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--weights", str(ckpt))
    assert r.returncode == 0 and r.stderr == "", r.stderr


# -- 3 and 4. the model's precision in bench, and --compare saying what differs ---------------


def _fp16_onnx(path):
    from srx.export.metadata import srx_onnx_from_model
    from srx.precision.fp16 import fp16_from_onnx

    path.write_bytes(
        fp16_from_onnx(srx_onnx_from_model(onnx.load_from_string(onnx_bytes("safmn"))))[0].graph().SerializeToString()
    )
    return path


def test_3_and_4_bench_labels_the_models_precision_and_compare_says_what_differs(tmp_path):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(onnx_bytes("safmn"))
    half = _fp16_onnx(tmp_path / "m.fp16.onnx")
    args = ["bench", "--backends", "onnxruntime", "--input", "16x16", "--runs", "1", "--warmup", "0"]
    first = run_inprocess(*args, "--model", str(fp32), "--json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    r = run_inprocess(
        *args, "--model", str(half), "--compare", str(tmp_path / "a.json"), "--json", str(tmp_path / "b.json")
    )
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "b.json").read_text())
    row = next(x for x in d["results"] if x["backend"] == "onnxruntime")
    assert row["precision"] == "fp16" and d["model"]["precision"] == "fp16"
    table_row = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("onnxruntime "))
    assert table_row.split()[1] == "fp16"
    assert "WARNING: model file differs" in r.stdout
    assert "WARNING: model precision differs (fp32 before, fp16 now)" in r.stdout
    assert "WARNING: onnxruntime ran fp32 before and fp16 now" in r.stdout


# -- 5. build-engine --int8 does not silently replace a quantized ONNX -------------------------


def test_5_build_engine_refuses_to_replace_an_existing_qdq_onnx(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes("safmn"))
    existing = tmp_path / "m.int8.onnx"
    existing.write_bytes(b"made by srx quantize, tuned for 66 s")
    calib = write_images(tmp_path / "calib", 3, (64, 64))
    r = run_inprocess("build-engine", str(model), "--int8", "--calib-dir", str(calib), "--backend", "tensorrt-rtx")
    line = assert_one_line_error(r, 2)
    assert "m.int8.onnx already exists" in line and f"srx build-engine {existing}" in line and "--overwrite" in line
    assert existing.read_bytes() == b"made by srx quantize, tuned for 66 s"


def test_5_the_report_carries_the_accuracy_drop():
    from srx.engines.build import format_report

    r = {"engine": "m.int8.engine", "engine_bytes": 2**20, "sidecar": "m.int8.engine.json", "backend": "tensorrt-rtx",
         "backend_version": "1.2", "network": "strongly typed", "precision": "int8", "precision_onnx": "m.int8.onnx",
         "profile": {"min": "64x64", "max": "1920x1080", "opt": "640x360", "batch": [1, 1, 1]}, "build_seconds": 3.0,
         "quantize": {"psnr_drop_db": 0.0412, "psnr_vs_fp32": 45.1, "held_out_images": 8}}  # fmt: skip
    assert "accuracy    INT8 Y-PSNR drop 0.041 dB on 8 held-back images (INT8 vs FP32 45.10 dB)" in format_report(r)


# -- 6. no GPU is the reason, not a missing package --------------------------------------------


def test_6_no_gpu_is_named_before_a_missing_package(monkeypatch):
    import srx.runtime.registry as registry
    from srx.runtime.device import NO_GPU

    monkeypatch.setattr(registry, "has_cuda", lambda: False)
    monkeypatch.setattr(registry, "_installed", lambda m: m == "tensorrt_rtx")  # no cuda-python either
    for name in ("tensorrt-rtx", "tensorrt", "onnxruntime-cuda"):
        assert registry.check_backend(name, "cuda").reason == NO_GPU, name


# -- 7. help texts ------------------------------------------------------------------------------


def test_7_help_is_whole_and_names_what_it_refers_to():
    top = run_inprocess("--help").stdout
    commands = top.split("Commands:")[1].strip().splitlines()
    assert len(commands) >= 7 and not any("..." in c for c in commands), commands
    bench = run_inprocess("bench", "--help").stdout
    assert "CLI.md" not in bench and "tensorrt-rtx" in bench
    upscale = " ".join(run_inprocess("upscale", "--help").stdout.split())
    assert "onnxruntime-cuda" in upscale and "Default (or 0): whole images" in upscale
    assert "--model CKPT|ONNX|ENGINE" in upscale
    build = " ".join(run_inprocess("build-engine", "--help").stdout.split())
    assert "No precision flag: the ONNX's own, FP32 for srx export" in build
    assert "ahead of time, even on a CPU" in build


def test_7_model_takes_a_checkpoint_in_upscale_and_bench_as_in_eval(tmp_path, ckpt):
    img = save_image(tmp_path / "a.png", 20, 24)
    d = _json(run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--model", str(ckpt), "--json", "-"))
    auto = "openvino" if check_backend("openvino", "cpu").ok else "onnxruntime"  # --backend auto on the CPU
    assert d["backend"] == auto and d["outputs"][0]["size_out"] == "48x40"
    b = _json(run_inprocess("bench", "--model", str(ckpt), "--backends", "torch", "--input", "16x16", "--runs", "1",
                            "--warmup", "0", "--json", "-"))  # fmt: skip
    assert b["model"]["source"] == str(ckpt)
    named = _json(run_inprocess("bench", "--model", "seeded", "--backends", "torch", "--input", "16x16", "--runs", "1",
                                "--warmup", "0", "--json", "-"))  # fmt: skip
    assert named["untrained"] is True  # a shipped network's name, as `srx eval --model` takes it


# -- 8. smaller ---------------------------------------------------------------------------------


def test_8_an_image_given_as_weights_is_named_as_info_names_it(tmp_path):
    img = save_image(tmp_path / "small.jpg", 20, 24, format="JPEG")
    export = assert_one_line_error(run_inprocess("export", "--weights", str(img), "-o", str(tmp_path / "m.onnx")))
    info = assert_one_line_error(run_inprocess("info", str(img)))
    assert "unknown file type .jpg" in export and "unknown file type .jpg" in info
    assert "truncated" not in export


def test_8_info_on_a_folder(tmp_path):
    assert "is a folder: give a checkpoint, ONNX model or engine file" in assert_one_line_error(
        run_inprocess("info", str(tmp_path))
    )


def test_8_quantize_counts_in_words_and_warns_about_an_evaluation_set(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes("safmn"))
    calib = write_images(tmp_path / "benchmarks" / "Set5", 4, (64, 64))
    r = run_inprocess("quantize", str(model), "--calib-dir", str(calib), "--calib-images", "2", "--held-out", "1",
                      "--crop", "24", "--sensitivity-crops", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "1 image held back" in r.stdout and "1 images" not in r.stdout
    assert r.stderr.startswith("srx: warning: --calib-dir") and "looks like the Set5 evaluation set" in r.stderr


def test_8_tile_below_the_minimum_suggests_the_minimum(tmp_path, ckpt):
    img = save_image(tmp_path / "a.png", 20, 24)
    line = assert_one_line_error(
        run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--weights", str(ckpt), "--tile", "7")
    )
    assert "minimum of 8 pixels" in line and "use --tile 8 or more" in line and "256" not in line


def test_8_an_output_file_in_a_new_folder_is_written(tmp_path, ckpt):
    img = save_image(tmp_path / "a.png", 20, 24)
    out = tmp_path / "sub" / "deeper" / "new.png"
    assert run_inprocess("upscale", str(img), "-o", str(out), "--weights", str(ckpt)).returncode == 0
    assert Image.open(out).size == (48, 40)


def test_8_a_failed_upscale_leaves_no_new_folder(tmp_path, ckpt):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "sub" / "new.png"
    assert_one_line_error(run_inprocess("upscale", str(bad), "-o", str(out), "--weights", str(ckpt)))
    assert not (tmp_path / "sub").exists()


def test_8_the_plot_names_rss_growth_and_puts_accuracy_above_the_whiskers(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.axes import Axes

    from srx.bench.plot import plot_result

    placed, labels = [], []
    real_annotate, real_ylabel = Axes.annotate, Axes.set_ylabel
    monkeypatch.setattr(
        Axes, "annotate", lambda self, text, xy, **kw: placed.append(xy) or real_annotate(self, text, xy, **kw)
    )
    monkeypatch.setattr(
        Axes, "set_ylabel", lambda self, text, **kw: labels.append(text) or real_ylabel(self, text, **kw)
    )
    row = {"backend": "torch", "status": "ok", "latency_ms": {"median": 10.0, "p90": 14.0}, "peak_memory_mb": 5.0,
           "memory_method": "peak RSS growth (VmHWM after reset via /proc/self/clear_refs)", "psnr_vs_fp32": 50.0,
           "max_abs_diff_vs_fp32": 1e-3}  # fmt: skip
    result = {"results": [row], "device": {"name": "cpu"}, "model": {"label": "m"}, "input": "16x16", "scale": 2}
    plot_result(result, tmp_path / "p.png")
    assert placed[0][1] == pytest.approx(14.0)  # the top of the p90 whisker, not of the 10 ms bar
    assert "peak RSS growth (MB)" in labels


# -- 8 and 13. srx info on an engine: the ONNX it was built from ---------------------------------


def test_8_info_names_the_fp16_onnx_an_engine_was_built_from(tmp_path):
    from trt_fakes import make_trt

    from srx.engines.build import engine_from_onnx
    from srx.runtime.cudart import DeviceInfo

    src = tmp_path / "m.onnx"
    src.write_bytes(onnx_bytes("safmn"))
    engine = tmp_path / "m.fp16.engine"
    engine_from_onnx(src, engine, precision="fp16", backend="tensorrt", trt_module=make_trt("10.3.0.30"),
                     device=DeviceInfo("NVIDIA Fake GPU", "8.9", 24000, 128))  # fmt: skip
    text = run_inprocess("info", str(engine)).stdout
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("onnx "))
    assert "m.fp16.onnx" in line and "the FP16 ONNX made from m.onnx" in line


# -- 11. tiles that are mostly context ----------------------------------------------------------


def test_11_a_tile_mostly_made_of_context_is_warned_about(tmp_path, ckpt):
    img = save_image(tmp_path / "a.png", 64, 64)
    r = run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--weights", str(ckpt), "--tile", "16")
    assert r.returncode == 0
    assert r.stderr.startswith("srx: warning: --tile 16: each tile also computes 24 pixels of context"), r.stderr
    assert "16.0x the work" in r.stderr
    quiet = run_inprocess("upscale", str(img), "-o", str(tmp_path / "p.png"), "--weights", str(ckpt), "--tile", "64")
    assert quiet.returncode == 0 and quiet.stderr == ""


# -- 12. what Real-ESRGAN's script, chaiNNer and vs-mlrt users expect ------------------------------


def test_12_existing_outputs_are_refused_skipped_or_replaced(tmp_path, ckpt):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        save_image(folder / name, 20, 24)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    base = ["upscale", str(folder), "-o", str(out), "--weights", str(ckpt)]
    line = assert_one_line_error(run_inprocess(*base))
    assert f"{out / 'a.png'} exists already" in line and "--overwrite" in line and "--skip-existing" in line
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]
    d = _json(run_inprocess(*base, "--skip-existing", "--json", "-"))
    assert d["skipped"] == [str(folder / "a.png")] and [o["input"] for o in d["outputs"]] == [str(folder / "b.png")]
    assert (out / "a.png").read_bytes() == b"keep me"
    again = _json(run_inprocess(*base, "--skip-existing", "--json", "-"))
    assert again["outputs"] == [] and len(again["skipped"]) == 2
    assert run_inprocess(*base, "--overwrite").returncode == 0
    assert Image.open(out / "a.png").size == (48, 40)


def test_12_suffix_ext_quality_and_outscale(tmp_path, ckpt):
    folder = tmp_path / "in"
    folder.mkdir()
    save_image(folder / "photo.png", 30, 40)
    base = ["upscale", str(folder), "--weights", str(ckpt), "--suffix", "_x2", "--ext", "jpg"]
    assert run_inprocess(*base, "-o", str(tmp_path / "lo"), "--quality", "20").returncode == 0
    assert run_inprocess(*base, "-o", str(tmp_path / "hi"), "--quality", "98").returncode == 0
    lo, hi = tmp_path / "lo" / "photo_x2.jpg", tmp_path / "hi" / "photo_x2.jpg"
    assert Image.open(lo).format == "JPEG" and lo.stat().st_size < hi.stat().st_size
    d = _json(run_inprocess("upscale", str(folder / "photo.png"), "-o", str(tmp_path / "o.png"), "--weights",
                            str(ckpt), "--outscale", "1.5", "--json", "-"))  # fmt: skip
    assert d["outputs"][0]["size_out"] == "60x45" and Image.open(tmp_path / "o.png").size == (60, 45)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outscale", "0"], "--outscale 0: give a factor above 0"),
        (["--quality", "101"], "--quality 101: give 1 to 100"),
        (["--overwrite", "--skip-existing"], "give --overwrite or --skip-existing, not both"),
        (["--ext", "webp"], "names a PNG file but --ext is webp"),
    ],
)
def test_12_bad_output_options(tmp_path, ckpt, args, message):
    img = save_image(tmp_path / "a.png", 20, 24)
    r = run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--weights", str(ckpt), *args)
    assert message in assert_one_line_error(r)
    assert not (tmp_path / "o.png").exists()
