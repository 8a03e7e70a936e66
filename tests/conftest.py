"""Shared fixtures and markers. Markers are declared in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Before torch loads OpenMP (test modules import it after this file): spinning OpenMP
# threads collapse on a busy 2-core CI machine (a 320x180 SAFMN forward took 5.8 s
# instead of 1.8 s at load 6). An explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))
WEIGHTS = SHARED / "weights"
DATA = SHARED / "data"

REAL_CHECKPOINTS = {
    "team15_SAFMN.pth": ("safmn-ntire23", {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0, "params": 237_000}),
    "team23_safmnpp.pth": ("safmnpp", {"dim": 36, "n_blocks": 6, "ffn_scale": 1.5, "params": 211_572}),
    "light_safmnpp.pth": ("safmnpp-light", {"dim": 32, "n_blocks": 2, "ffn_scale": 1.5, "params": 66_176}),
}


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible on this machine")
    skip_shared = pytest.mark.skip(reason=f"needs the shared data folder, not found at {SHARED} (set SRX_SHARED)")
    cuda = _has_cuda()
    shared = WEIGHTS.is_dir() and DATA.is_dir()
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip_gpu)
        if "shared" in item.keywords and not shared:
            item.add_marker(skip_shared)


def weight_path(name: str) -> Path:
    return WEIGHTS / name


def run_srx(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600):
    """Run the real CLI in a subprocess (so exit codes, stderr and signals are real)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    full_env.pop("SRX_DEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "srx", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """A failure as docs/cli.md#errors-one-line wants it: the exit code, one line on stderr, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}; stderr: {err}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("srx: error: "), lines[0]
    return lines[0]


@pytest.fixture
def exact_fp32_reference():
    """PyTorch FP32 references in true FP32: on Ampere and newer GPUs cuDNN runs FP32
    convolutions in TF32 by default (10-bit mantissas), 1e-3-sized errors that a 1e-4
    comparison would blame on the code under test."""
    import torch

    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
