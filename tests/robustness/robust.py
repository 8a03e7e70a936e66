"""Shared machinery of the robustness suite: the bad-input workspace and two ways to run srx.

`run_inprocess` calls `srx.cli.main` in the test process (the same function the console
script runs) and returns what a subprocess would: exit code, stdout, stderr (file
descriptors 1 and 2, so C libraries writing there are caught too) with the warnings Python
would print under its default filters. `test_bad_inputs.py` checks that it agrees with the
real subprocess (`conftest.run_srx`) on a subset of cases; the rest run in-process, which
saves the ~2 s torch import per case.

`run_restricted` runs the real CLI in a subprocess with limits a test cannot put on its own
process: without the capabilities that let root ignore file permissions (so `chmod 000`
means unreadable, as for any user), and with a maximum file size (writes fail as on a full
disk; Python ignores SIGXFSZ, so the write returns an error instead of killing it).
"""

from __future__ import annotations

import ctypes
import io
import os
import resource
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from conftest import REPO
from PIL import Image

from srx.bench.inputs import synthetic_image
from srx.models import build_model

TINY = {"dim": 8, "n_blocks": 1}  # safmn x2: 1.7k parameters, minimum input 8x8


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


# -- running srx ------------------------------------------------------------------------------


def run_inprocess(*args: str, cwd: Path | None = None) -> Result:
    """`srx ARGS` through srx.cli.main in this process; see the module docstring."""
    from srx.cli import main

    saved_handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    saved_debug = os.environ.pop("SRX_DEBUG", None)
    code = 0
    with _FdCapture() as cap, warnings.catch_warnings(record=True) as caught:
        _default_warning_filters()
        sys.argv = ["srx", *args]
        try:
            if cwd is not None:
                os.chdir(cwd)
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            os.chdir(saved_cwd)
            sys.argv = saved_argv
            for s, h in saved_handlers.items():
                signal.signal(s, h)
            if saved_debug is not None:
                os.environ["SRX_DEBUG"] = saved_debug
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return Result(code, cap.out, cap.err + shown)


def _default_warning_filters() -> None:
    """The filters a plain `python -m srx` starts with (pytest installs its own)."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)


class _FdCapture:
    """Redirect file descriptors 1 and 2 (and sys.stdout / sys.stderr) into temporary files."""

    def __enter__(self) -> _FdCapture:
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self._files = [tempfile.TemporaryFile(mode="w+b") for _ in range(2)]  # noqa: SIM115 (closed in __exit__)
        self._saved_fds = [os.dup(1), os.dup(2)]
        self._saved_streams = (sys.stdout, sys.stderr)
        for fd, f in zip((1, 2), self._files, strict=True):
            os.dup2(f.fileno(), fd)
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), encoding="utf-8", write_through=True)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout.close()
        sys.stderr.close()
        sys.stdout, sys.stderr = self._saved_streams
        for fd, saved in zip((1, 2), self._saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self.out, self.err = (self._read(f) for f in self._files)

    @staticmethod
    def _read(f: io.BufferedRandom) -> str:
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
        f.close()
        return text


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_permission_override() -> None:
    """In the child before exec: remove root's power to ignore file modes (the capability
    bounding set limits what the exec'd program gets; root keeps uid 0 and nothing else)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_restricted(*args: str, max_file_bytes: int | None = None, cwd: Path | None = None) -> Result:
    """`srx ARGS` in a subprocess that obeys file modes even as root, optionally with a file-size limit."""

    def limits() -> None:
        if os.geteuid() == 0:
            _drop_file_permission_override()
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SRX_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "srx", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        preexec_fn=limits,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def permissions_are_enforced(folder: Path) -> str:
    """'' if a restricted child really cannot list a chmod-000 folder here, else why not."""
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0)
    try:
        code = f"import os\ntry:\n    os.listdir({str(probe)!r})\nexcept PermissionError:\n    raise SystemExit(3)\n"
        try:
            proc = subprocess.run([sys.executable, "-c", code], preexec_fn=_restricted_only, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            return f"cannot start a process without root's file-permission override ({e})"
        if proc.returncode != 3:
            return "chmod 000 does not block reads here, even without CAP_DAC_OVERRIDE (file system ignores modes?)"
        return ""
    finally:
        probe.chmod(0o700)
        probe.rmdir()


def _restricted_only() -> None:
    if os.geteuid() == 0:
        _drop_file_permission_override()


# -- the workspace of inputs ------------------------------------------------------------------


def tiny_model(arch: str = "safmn", scale: int = 2, seed: int = 3) -> torch.nn.Module:
    return build_model(arch, scale, **TINY, seed=seed, trained=True, source="robustness test")


def save_checkpoint(path: Path, model: torch.nn.Module) -> Path:
    torch.save({"params": model.state_dict()}, path)
    return path


def save_image(path: Path, h: int, w: int, seed: int = 0, mode: str = "RGB", **save_kwargs: object) -> Path:
    """A smooth natural-looking image (not noise: see COMMON.md on SAFMN++)."""
    rgb = (synthetic_image(h, w, seed).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(path, **save_kwargs)
    return path


def files_under(folder: Path) -> set[str]:
    """Every file and folder below `folder`, relative, including hidden temp files."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
