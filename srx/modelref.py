"""Which model the user meant: one resolver for every command that takes a model.

`--model`, `--weights`, a shipped network's name (default, seeded, team15), a checkpoint,
an srx ONNX or an engine (with its sidecar), and for `srx eval` a baseline (bicubic):
`resolve_model_ref` turns what was given into a `ModelRef` and refuses what cannot be one,
without loading anything (no torch: `srx serve`'s environment has none). The loaders
(`srx.runtime.source.ModelSource.from_ref`, `srx.evaluate.resolve_model`, `srx.inspect`)
take the reference from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from srx.errors import BadInput
from srx.filekinds import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES, file_kind

# The networks srx ships under srx/models/weights, by the name the commands accept.
SHIPPED_NAMES = ("default", "seeded", "team15")
# What a reference is.
REF_KINDS = ("default", "shipped", "checkpoint", "onnx", "engine", "baseline")


@dataclass(frozen=True)
class ModelRef:
    """A model the user named. `kind`: 'default' (none named), 'shipped', 'checkpoint', 'onnx',
    'engine' or 'baseline'; `name`: the name or path as given (None for 'default');
    `weights`: a checkpoint given next to an ONNX or engine (the same network, for the FP32
    reference and the torch backends)."""

    kind: str
    name: str | None = None
    weights: str | None = None
    scale: int | None = None
    param_key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in REF_KINDS:
            raise ValueError(f"ModelRef kind {self.kind!r} is not one of {REF_KINDS}")

    @property
    def is_file(self) -> bool:
        """An exported model (ONNX or engine) that a runtime runs as it is."""
        return self.kind in ("onnx", "engine")

    @property
    def named(self) -> bool:
        """Whether the user named a model (else the command's default runs)."""
        return self.kind != "default"


def is_shipped(value: str | Path) -> bool:
    """Whether a name is a shipped network rather than a file (a file of that name wins; a name
    with a model file's suffix never is one)."""
    return file_kind(value) is None and str(value) in SHIPPED_NAMES and not Path(value).exists()


def resolve_model_ref(
    model: str | None,
    weights: str | None = None,
    *,
    scale: int | None = None,
    param_key: str | None = None,
    baselines: Sequence[str] = (),
) -> ModelRef:
    """`--model` and `--weights` -> the ModelRef they name.

    `--model` takes a checkpoint or a shipped network's name too (then it is `--weights`).
    An exported file and weights together: the file runs, the weights are its network.
    `baselines` (srx eval: bicubic, bicubic-rgb) are names that are not networks; a command
    with baselines also scores a checkpoint of any suffix and names them when a path is missing.
    """
    if baselines and model is not None:
        ref = _baseline_or_network(model, scale, param_key, baselines)
        if ref is not None:
            return ref
    elif model is not None and (file_kind(model) == "checkpoint" or is_shipped(model)):
        if weights is not None:
            raise BadInput(f"--model {model} is a checkpoint and so is --weights {weights}: give one of them")
        weights, model = model, None
    if model is None:
        if weights is None:
            return ModelRef("default", scale=scale, param_key=param_key)
        return ModelRef("shipped" if is_shipped(weights) else "checkpoint", weights, scale=scale, param_key=param_key)
    return exported_file_ref(model, weights=weights, scale=scale, param_key=param_key)


def exported_file_ref(
    path: str | Path,
    *,
    weights: str | None = None,
    scale: int | None = None,
    param_key: str | None = None,
    checkpoints: bool = True,
) -> ModelRef:
    """An ONNX or engine file that must exist; anything else is refused with what to give
    (`checkpoints=False`: for a command that takes no checkpoint, such as srx serve-config)."""
    p, kind = Path(path), file_kind(path)
    if not p.is_file():
        remedy = "check the path" if checkpoints else "give an srx .onnx or .engine"
        raise BadInput(f"model {p} does not exist or is not a file: {remedy}")
    if kind not in ("onnx", "engine"):
        remedy = (
            f"give an .onnx or engine ({', '.join(ENGINE_SUFFIXES)}) file, or a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
            if checkpoints
            else "give an srx .onnx or .engine file"
        )
        raise BadInput(f"{p}: unknown model file type {p.suffix or '(none)'}; {remedy}")
    return ModelRef(kind, str(path), weights=weights, scale=scale, param_key=param_key)


def _baseline_or_network(
    model: str, scale: int | None, param_key: str | None, baselines: Sequence[str]
) -> ModelRef | None:
    """srx eval's `--model`: a baseline, a shipped network, or an existing file (any suffix but
    ONNX and engine is a checkpoint); None for an ONNX or engine path, checked as every command does."""
    if model in baselines:
        return ModelRef("baseline", model, scale=scale, param_key=param_key)
    if is_shipped(model):
        return ModelRef("shipped", model, scale=scale, param_key=param_key)
    if not Path(model).exists():
        raise BadInput(
            f"model {model!r} is neither {baselines[0]!r} nor an existing file (nor a shipped network: "
            f"{', '.join(SHIPPED_NAMES)}): check the path"
        )
    if file_kind(model) in ("onnx", "engine"):
        return None
    return ModelRef("checkpoint", model, scale=scale, param_key=param_key)
