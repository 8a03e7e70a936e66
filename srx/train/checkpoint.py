"""Training checkpoints: what `srx train` writes into its output folder, and reading it back.

    OUT/model.safetensors   the network (any srx command loads it: --weights OUT/model.safetensors)
    OUT/model.json          config, data, starting weights, teacher, commit, versions, scores
    OUT/best.safetensors    with --val: the network at its best validation PSNR (+ best.json)
    OUT/resume.safetensors  network + optimizer state + the JSON, in one file (--resume OUT)
    OUT/train.log           one line per logged iteration and per validation

Every file is written to a temporary name and renamed into place, so a crash, a full
disk or Ctrl-C leaves the previous complete file. Resuming needs only resume.safetensors:
one file is replaced in one step, so it never pairs weights with the wrong optimizer state.
Files are read as untrusted: safetensors holds tensors and strings, never code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srx.errors import BadInput
from srx.fileio import atomic_path, write_json_atomic

RESUME_FORMAT = "srx-train/1"
META_KEY = "srx.train"
MODEL_FILE, MODEL_JSON = "model.safetensors", "model.json"
BEST_FILE, BEST_JSON = "best.safetensors", "best.json"
RESUME_FILE = "resume.safetensors"
LOG_FILE = "train.log"


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    # safetensors refuses views that share storage; clones are cheap at this model size.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def save_model(out: Path, model: nn.Module, meta: dict[str, Any], *, best: bool = False) -> Path:
    """The network alone (a plain state dict srx loads anywhere) and its JSON."""
    weights, js = (BEST_FILE, BEST_JSON) if best else (MODEL_FILE, MODEL_JSON)
    _save_tensors(out / weights, model.state_dict(), meta)
    write_json_atomic(out / js, meta)
    return out / weights


def save_resume(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> Path:
    """Everything needed to continue exactly where training stopped, as one file."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optim.{index}.{name}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    groups = [{k: v for k, v in g.items()} for g in opt["param_groups"]]
    _save_tensors(out / RESUME_FILE, tensors, {**meta, "optimizer_param_groups": groups})
    return out / RESUME_FILE


def resume_path(given: str | Path) -> Path:
    """--resume accepts the run folder or its resume.safetensors."""
    p = Path(given)
    if p.is_dir():
        p = p / RESUME_FILE
        if not p.exists():
            raise BadInput(
                f"--resume {given} holds no {RESUME_FILE}: give the folder a run of srx train wrote (-o), or its {RESUME_FILE}"
            )
    elif not p.exists():
        raise BadInput(f"--resume {given} does not exist: give the folder of an earlier srx train run (-o)")
    return p


def read_resume_meta(path: Path) -> dict[str, Any]:
    """The JSON state of a resume file, without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as e:
        raise BadInput(f"--resume {path} is not a readable safetensors file ({e}): it may be truncated") from e
    return _checked_meta(path, raw)


def _checked_meta(path: Path, raw: str | None) -> dict[str, Any]:
    try:
        meta = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        meta = None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != RESUME_FORMAT
        or not isinstance(meta.get("config"), dict)
        or not isinstance(meta.get("iteration"), int)
        or "optimizer_param_groups" not in meta
    ):
        raise BadInput(f"--resume {path} is not an srx train resume checkpoint (no {RESUME_FORMAT} state in it)")
    return meta


def read_resume(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(meta, model tensors, optimizer tensors) of a resume file; BadInput if it is not one."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
    except (SafetensorError, OSError, ValueError) as e:
        raise BadInput(f"--resume {path} is not a readable safetensors file ({e}): it may be truncated") from e
    meta = _checked_meta(path, raw)
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optim = {k[len("optim.") :]: v for k, v in tensors.items() if k.startswith("optim.")}
    return meta, model, optim


def restore_optimizer(optimizer: torch.optim.Optimizer, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = meta["optimizer_param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise BadInput(f"the optimizer state in the resume checkpoint does not fit this network ({e})") from e


def source_commit() -> dict[str, Any]:
    """The git commit srx runs from (None outside a checkout), and whether its tree was modified."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}
