"""Reading state dicts from untrusted checkpoint files.

Checkpoints are pickles, and a pickle can run code. srx only ever calls
`torch.load(..., weights_only=True)`, whose unpickler refuses every global that is not
a tensor building block, or reads `.safetensors`, which holds no code at all.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srx.errors import BadInput, first_line
from srx.filekinds import CHECKPOINT_SUFFIXES, SAFETENSORS_SUFFIXES, file_kind

# BasicSR saves {"params": sd} and, with EMA, {"params": sd, "params_ema": sd_ema}.
# BasicSR's SRModel loads `params` unless the config names another key; so do we.
DEFAULT_PARAM_KEY = "params"
KNOWN_PARAM_KEYS = ("params", "params_ema", "state_dict", "model")
# Checked before reading, so a huge file is not loaded into memory to find out.
MAX_CHECKPOINT_BYTES = 2**31


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, Any]
    format: str  # "pytorch" or "safetensors"
    param_key: str | None  # the top-level key the state dict came from, if any
    available_keys: tuple[str, ...]


def read_checkpoint(path: str | Path, param_key: str | None = None) -> Checkpoint:
    """Load a state dict from a BasicSR file, a bare state dict or a .safetensors file."""
    p = Path(path)
    if not p.exists():
        raise BadInput(f"checkpoint {p} does not exist: check the path")
    if p.is_dir():
        raise BadInput(f"checkpoint {p} is a folder: give the .pth or .safetensors file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise BadInput(f"cannot read checkpoint {p} ({e.strerror or e}): check its permissions") from e
    if size == 0:
        raise BadInput(f"checkpoint {p} is empty (0 bytes): download or save it again")
    if size > MAX_CHECKPOINT_BYTES:
        raise BadInput(
            f"checkpoint {p} is {size / 1e9:.1f} GB; SAFMN-family weights are at most tens of MB, so this is "
            "not one (a training state with optimizer?): give the network's .pth or .safetensors"
        )
    if file_kind(p) in ("onnx", "engine"):
        kind = "an ONNX model" if file_kind(p) == "onnx" else "a TensorRT engine"
        raise BadInput(
            f"{p} is {kind}, not a checkpoint: give the .pth or .safetensors file it came from "
            "(commands that run exported models take it with --model)"
        )
    if file_kind(p) == "image":
        raise BadInput(
            f"{p}: unknown file type {p.suffix} for a checkpoint (it is named like an image); give the network's "
            f"weights ({', '.join(CHECKPOINT_SUFFIXES)})"
        )
    if p.suffix.lower() in SAFETENSORS_SUFFIXES:
        obj = _read_safetensors(p)
        fmt = "safetensors"
    else:
        obj = _read_pytorch(p, head)
        fmt = "pytorch"
    return _select_state_dict(p, obj, fmt, param_key)


def _read_safetensors(p: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise BadInput(
            f"checkpoint {p} is not a readable .safetensors file ({first_line(e)}): it may be truncated; download or save it again"
        ) from e


def _read_pytorch(p: Path, head: bytes) -> Any:
    import torch

    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it was not saved with; the outcome is reported below.
            warnings.simplefilter("ignore")
            return torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _names_a_global(str(e)):
            raise BadInput(
                f"refused to load {p}: it holds Python objects other than tensors, which could run code "
                "(srx loads only plain state dicts); if you trust the file, re-save it with "
                "torch.save(model.state_dict(), ...)"
            ) from e
        raise BadInput(
            f"{p} is not a PyTorch checkpoint srx can read (not a state-dict pickle): it may be truncated or corrupt; download or save it again"
        ) from e
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        zipfile.BadZipFile,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
    ) as e:
        kind = "a .safetensors file named like a .pth" if _looks_like_safetensors(head) else "a PyTorch checkpoint"
        raise BadInput(
            f"{p} is not {kind} srx can read ({first_line(e)}): it may be truncated or corrupt; download or save it again"
        ) from e


def _names_a_global(message: str) -> bool:
    """True when the weights-only unpickler stopped at a class or function reference
    (code or arbitrary objects), not at bytes it cannot parse."""
    return (
        "GLOBAL" in message
        or "Unsupported class" in message
        or "global" in message.split("Unsupported operand")[0][-200:]
    )


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) == 8 and 0 < int.from_bytes(head, "little") < 100_000_000 and head[:2] != b"PK"


def _select_state_dict(p: Path, obj: Any, fmt: str, param_key: str | None) -> Checkpoint:
    if not isinstance(obj, Mapping):
        raise BadInput(f"{p} holds a {type(obj).__name__}, not a state dict: save model.state_dict()")
    keys = tuple(str(k) for k in obj)
    if _is_state_dict(obj):
        if param_key is not None:
            raise BadInput(f"{p} is a bare state dict with no key {param_key!r}: drop --param-key")
        return Checkpoint(_strip_prefix(dict(obj)), fmt, None, keys)
    if param_key is not None:
        if param_key not in obj:
            raise BadInput(f"{p} has no key {param_key!r}: use --param-key with one of: {', '.join(keys)}")
        chosen = param_key
    else:
        candidates = [k for k in (DEFAULT_PARAM_KEY, *KNOWN_PARAM_KEYS) if k in obj and isinstance(obj[k], Mapping)]
        if not candidates:
            raise BadInput(
                f"{p} holds no state dict (top-level keys: {', '.join(keys[:8])}); "
                "expected a BasicSR file with 'params' / 'params_ema' or a bare state dict"
            )
        chosen = candidates[0]
    sd = obj[chosen]
    if not isinstance(sd, Mapping) or not _is_state_dict(sd):
        raise BadInput(f"{p}: entry {chosen!r} is not a state dict of tensors")
    return Checkpoint(_strip_prefix(dict(sd)), fmt, chosen, keys)


def _is_state_dict(obj: Mapping[Any, Any]) -> bool:
    import torch

    return len(obj) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _strip_prefix(sd: dict[str, Any]) -> dict[str, Any]:
    # DataParallel / DistributedDataParallel checkpoints prefix every key with "module.".
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd
