"""srx.kernels.fuse: whole fused networks against the PyTorch reference, fallbacks, errors.

On the CPU the kernels run under the Triton interpreter (tests/triton_interpreter.py);
on a CUDA GPU the same tests run compiled, and the `gpu` tests add the FP16 accuracy
gate on Set5 crops and the CUDA graph. FP32 tolerance: 1e-4 max abs (the contract).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("triton") is None:  # not importorskip: triton must not be imported yet
    pytest.skip("the fused kernels need the 'triton' package (pip install 'srx[kernels]')", allow_module_level=True)

from triton_interpreter import kernel_device

DEVICE = kernel_device()

from conftest import DATA, REPO, weight_path  # noqa: E402
from test_import_light import HIDE  # noqa: E402

import srx.kernels  # noqa: E402
from srx.errors import BadInput  # noqa: E402
from srx.models import build_model, default_model, load_model  # noqa: E402

# Max abs error of FP32 outputs against the FP32 reference, per srx FP32 precision: the
# exact modes hold the 1e-4 contract; tf32 rounds operands to 10-bit mantissas as PyTorch's
# default GPU convolutions do (the interpreter ignores TF32, so it is only looser on a GPU).
FP32_TOL = {"ieee": 1e-4, "tf32x3": 1e-4, "tf32": 3e-2}


def smooth_image(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A natural-looking RGB batch in [0, 1]: smooth gradients plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    imgs = []
    for i in range(n):
        base = torch.stack([0.5 + 0.4 * torch.sin(5 * xx + 3 * yy + 2 * k + i) for k in range(3)])
        imgs.append(base + 0.05 * torch.randn(3, h, w, generator=g))
    return torch.stack(imgs).clamp(0, 1).to(DEVICE)


def shared_image(folder: str, index: int) -> Path:
    """The index-th image of a ../shared data folder, or a skip that names what is missing."""
    path = DATA / folder
    files = sorted(p for p in path.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if len(files) <= index:
        pytest.skip(f"needs at least {index + 1} images in {path} (found {len(files)})")
    return files[index]


def image_crop(path, h: int, w: int, top: int = 0, left: int = 0) -> torch.Tensor:
    from PIL import Image

    img = Image.open(path).convert("RGB").crop((left, top, left + w, top + h))
    t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
    return (t.permute(2, 0, 1).float() / 255.0)[None].to(DEVICE)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


pytestmark = pytest.mark.usefixtures("exact_fp32_reference")


def _check_fused(model, x: torch.Tensor, precision: str = "tf32x3") -> None:
    model = model.to(DEVICE)
    fused = srx.kernels.fuse(model, fp32_precision=precision)
    assert fused is not model and fused.spec == model.spec
    with torch.no_grad():
        ref, out = model(x), fused(x)
    assert out.shape == ref.shape
    err = max_abs(out, ref)
    tol = FP32_TOL[precision]
    assert err <= tol, f"fused {model.spec.label} {precision} at {tuple(x.shape)}: max abs error {err:.3g} > {tol}"


@pytest.mark.parametrize("precision", ["tf32x3", "ieee", "tf32"])
def test_fused_paper_model_matches_reference(precision):
    # The paper default (x4, dim 36, 8 blocks); build_model randomises the LayerNorm
    # weights and biases, so every LN affine is exercised.
    model = build_model("safmn", 4, seed=11)
    assert any(float((b.norm1.weight.detach() - 1).abs().max()) > 0.1 for b in model.feats)
    _check_fused(model, smooth_image(1, 17, 23), precision)


@pytest.mark.parametrize(
    ("scale", "cfg", "shape"),
    [(2, {"dim": 48, "n_blocks": 2}, (1, 33, 9)), (3, {"dim": 16, "n_blocks": 1, "ffn_scale": 1.5}, (2, 17, 23))],
    ids=["x2-c48-33x9", "x3-c16-ffn1.5-batch2-17x23"],
)
def test_fused_paper_model_other_configs(scale, cfg, shape):
    _check_fused(build_model("safmn", scale, **cfg, seed=12), smooth_image(*shape))


def test_fused_ntire23_architecture_random_weights():
    _check_fused(build_model("safmn-ntire23", 2, dim=24, n_blocks=2, seed=13), smooth_image(1, 17, 23))


@pytest.mark.shared
def test_fused_team15_matches_reference():
    model = load_model(weight_path("team15_SAFMN.pth"))
    _check_fused(model, image_crop(shared_image("benchmarks/Set5/HR", 0), 17, 23, 40, 40))


@pytest.mark.shared
def test_fused_team15_fp16_stays_close_to_fp32_reference():
    # The GPU gate below (>= 50 dB on Set5 crops) checked here on a small crop: FP16
    # activations and GEMM operands, FP32 statistics, FP32 GRN.
    model = load_model(weight_path("team15_SAFMN.pth")).to(DEVICE)
    x = image_crop(shared_image("benchmarks/Set5/HR", 1), 17, 23, 60, 60)
    fused = srx.kernels.fuse(model).half()
    with torch.no_grad():
        ref, out = model(x), fused(x.half())
    assert out.dtype == torch.float16
    assert psnr(out, ref) >= 50.0, f"FP16 fused PSNR {psnr(out, ref):.2f} dB < 50 dB"


def test_fused_block_alone_equals_attblock():
    block = build_model("safmn", 4, seed=14).feats[3].to(DEVICE)
    from srx.kernels.model import FusedAttBlock

    x = torch.randn(1, 36, 11, 13, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    with torch.no_grad():
        assert max_abs(FusedAttBlock(block).to(DEVICE)(x), block(x)) <= FP32_TOL["ieee"]


def test_fused_bf16_model_stays_close_to_fp32_reference():
    model = build_model("safmn", 4, n_blocks=2, seed=17).to(DEVICE)
    x = smooth_image(1, 17, 23)
    with torch.no_grad():
        ref, out = model(x), srx.kernels.fuse(model).to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert psnr(out, ref) >= 35.0, f"BF16 fused PSNR {psnr(out, ref):.2f} dB < 35 dB"


# --- fallbacks and errors ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ["safmnpp", "safmnpp-light"])
def test_unsupported_variants_fall_back_to_the_reference_with_a_logged_reason(arch, caplog):
    model = build_model(arch, 4)
    assert "no fused kernels" in srx.kernels.fusable(model)
    with caplog.at_level(logging.WARNING, logger="srx.kernels"):
        assert srx.kernels.fuse(model) is model
    assert f"{arch} has no fused kernels" in caplog.text
    with pytest.raises(BadInput, match=f"cannot fuse: {arch} has no fused kernels"):
        srx.kernels.fuse(model, strict=True)


def test_fusable_accepts_the_supported_models():
    assert srx.kernels.fusable(build_model("safmn", 2, dim=16, n_blocks=1)) is None
    assert srx.kernels.fusable(build_model("safmn-ntire23", 4, n_blocks=1)) is None


def test_fused_model_refuses_inputs_below_its_minimum():
    fused = srx.kernels.fuse(build_model("safmn-ntire23", 4, n_blocks=1).to(DEVICE))
    with pytest.raises(BadInput, match="smaller than this model's minimum of 16x16"):
        fused(smooth_image(1, 33, 9))


def test_fused_model_refuses_a_dtype_it_was_not_converted_to():
    fused = srx.kernels.fuse(build_model("safmn", 4, n_blocks=1).to(DEVICE)).half()
    with pytest.raises(BadInput, match=r"input is torch.float32 but the fused model is torch.float16"):
        fused(smooth_image(1, 17, 23))


def test_fused_model_refuses_gradients_and_unknown_precisions():
    fused = srx.kernels.fuse(build_model("safmn", 4, n_blocks=1).to(DEVICE))
    with pytest.raises(BadInput, match="inference-only"):
        fused(smooth_image(1, 17, 23).requires_grad_())
    with pytest.raises(BadInput, match="unknown FP32 precision 'fp64'"):
        srx.kernels.fuse(build_model("safmn", 4, n_blocks=1), fp32_precision="fp64")


def test_cuda_graph_runner_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; test_cuda_graph_replays_the_fused_model covers it")
    with pytest.raises(BadInput, match="needs a CUDA GPU"):
        srx.kernels.cuda_graph_runner(build_model("safmn", 4, n_blocks=1), torch.rand(1, 3, 17, 23))


def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    full.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-without-interpreter error")
def test_fused_forward_on_cpu_without_interpreter_fails_clearly():
    proc = _run_python(
        "import torch, srx.kernels\n"
        "from srx.errors import BadInput\n"
        "from srx.models import build_model\n"
        "fused = srx.kernels.fuse(build_model('safmn', 4, n_blocks=1))\n"
        "try:\n"
        "    fused(torch.rand(1, 3, 17, 23))\n"
        "except BadInput as e:\n"
        "    print('BadInput:', e)\n",
        {},
    )
    assert proc.returncode == 0, proc.stderr
    assert "BadInput: conv_head: fused Triton kernels need CUDA tensors, got a cpu tensor" in proc.stdout
    assert "TRITON_INTERPRET=1" in proc.stdout


def test_import_srx_kernels_without_triton_and_fuse_says_what_to_install():
    proc = _run_python(
        HIDE + "import srx.kernels\n"
        "from srx.errors import MissingDependency\n"
        "try:\n"
        "    srx.kernels.fuse(None)\n"
        "except MissingDependency as e:\n"
        "    print(e)\n",
        {},
    )
    assert proc.returncode == 0, proc.stderr
    assert "needs the Python package 'triton'" in proc.stdout and "srx[kernels]" in proc.stdout


# --- GPU only ---------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.shared
@pytest.mark.parametrize("weights", ["team15_SAFMN.pth", "paper-default"])
def test_fp16_fused_psnr_on_set5_crops(weights):
    # Acceptance gate: FP16 fused vs the FP32 reference >= 50 dB (not a tuning set: checked only).
    model = default_model(4) if weights == "paper-default" else load_model(weight_path(weights))
    model = model.to(DEVICE)
    fused = srx.kernels.fuse(model).half()
    for i in range(5):
        path = shared_image("benchmarks/Set5/HR", i)
        x = image_crop(path, 180, 240)  # 720x960 output: real work for the GPU
        with torch.no_grad():
            ref, out = model(x), fused(x.half())
        assert psnr(out, ref) >= 50.0, f"{path.name}: FP16 fused PSNR {psnr(out, ref):.2f} dB < 50 dB"


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["tf32x3", "ieee", "tf32"])
def test_fused_paper_model_matches_reference_at_320x180_on_gpu(precision):
    _check_fused(build_model("safmn", 4, seed=15), smooth_image(1, 180, 320), precision)


@pytest.mark.gpu
def test_cuda_graph_replays_the_fused_model():
    fused = srx.kernels.fuse(build_model("safmn", 4, seed=16).to(DEVICE)).half()
    x = smooth_image(1, 180, 320).half()
    run = srx.kernels.cuda_graph_runner(fused, x)
    # Same kernels replayed; the tolerance only allows for a different cuDNN algorithm.
    with torch.no_grad():
        eager = fused(x)
    assert max_abs(run(x), eager) <= 1e-3
    y = smooth_image(1, 180, 320, seed=1).half()
    with torch.no_grad():
        assert max_abs(run(y), fused(y)) <= 1e-3
    with pytest.raises(BadInput, match="captured for"):
        run(smooth_image(1, 90, 160).half())
