"""checkpoint -> ModelSpec + nn.Module: architecture detection, building and loading."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srx.errors import BadInput
from srx.fileio import sha256_file
from srx.models.checkpoint import read_checkpoint
from srx.models.safmn import SAFMN, SAFMNNtire23, detect_ntire23, detect_safmn
from srx.models.safmnpp import SAFMNPP, SAFMNPPLight, detect_light, detect_safmnpp
from srx.spec import ARCHS, ModelSpec

__all__ = [
    "ARCHS",
    "build_model",
    "default_model",
    "detect_arch",
    "load_model",
    "model_from_state_dict",
    "seeded_model",
]


@dataclass(frozen=True)
class Arch:
    name: str
    cls: type[nn.Module]
    detect: Callable[[Mapping[str, Any]], dict[str, Any] | None]
    defaults: dict[str, Any]

    @property
    def min_size(self) -> int:
        # The coarsest adaptive pooling level must keep at least one pixel.
        return max(self.cls.pool_factors)  # type: ignore[attr-defined]


REGISTRY: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("safmn", SAFMN, detect_safmn, {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}),
        Arch("safmn-ntire23", SAFMNNtire23, detect_ntire23, {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}),
        Arch("safmnpp", SAFMNPP, detect_safmnpp, {"dim": 36, "n_blocks": 6, "ffn_scale": 1.5}),
        Arch("safmnpp-light", SAFMNPPLight, detect_light, {"dim": 32, "n_blocks": 2, "ffn_scale": 1.5}),
    )
}
assert tuple(REGISTRY) == ARCHS

DEFAULT_SEED = 0


def _arch(name: str) -> Arch:
    if name not in REGISTRY:
        raise BadInput(f"unknown architecture {name!r}: choose one of {', '.join(ARCHS)}")
    return REGISTRY[name]


def build_model(
    arch: str = "safmn",
    scale: int = 4,
    dim: int | None = None,
    n_blocks: int | None = None,
    ffn_scale: float | None = None,
    *,
    seed: int | None = DEFAULT_SEED,
    trained: bool = False,
    source: str = "",
    source_sha256: str = "",
) -> nn.Module:
    """Build a network (eval mode, with `.spec`). With a seed, weights are random but reproducible."""
    a = _arch(arch)
    cfg = {
        **a.defaults,
        **{k: v for k, v in (("dim", dim), ("n_blocks", n_blocks), ("ffn_scale", ffn_scale)) if v is not None},
    }
    _check_config(arch, scale, cfg)
    model = a.cls(dim=cfg["dim"], n_blocks=cfg["n_blocks"], ffn_scale=cfg["ffn_scale"], scale=scale)
    if seed is not None:
        randomize(model, seed)
    model.eval()
    model.spec = ModelSpec(  # type: ignore[assignment]
        arch=arch,
        scale=scale,
        dim=cfg["dim"],
        n_blocks=cfg["n_blocks"],
        ffn_scale=float(cfg["ffn_scale"]),
        params=sum(p.numel() for p in model.parameters()),
        min_size=a.min_size,
        trained=trained,
        source=source,
        source_sha256=source_sha256,
    )
    return model


def _check_config(arch: str, scale: int, cfg: dict[str, Any]) -> None:
    if scale not in range(1, 9):
        raise BadInput(f"scale {scale} is not supported: use 2, 3 or 4")
    if cfg["dim"] < 1 or cfg["n_blocks"] < 1 or cfg["ffn_scale"] <= 0:
        raise BadInput(f"invalid {arch} configuration {cfg}: dim, n_blocks and ffn_scale must be positive")
    divisor = {"safmn": 4, "safmn-ntire23": 4, "safmnpp": 3, "safmnpp-light": 2}[arch]
    if cfg["dim"] % divisor:
        raise BadInput(f"{arch} needs dim divisible by {divisor} (its channel split); got {cfg['dim']}")


def randomize(model: nn.Module, seed: int) -> None:
    """Reproducible random weights, independent of torch's global RNG and init defaults.

    Conv weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default bound); biases,
    normalisation scales and shifts get noise too, so tests exercise every parameter.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and p.dim() > 1:
                bound = 1.0 / math.sqrt(p[0].numel())
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
            elif leaf == "weight":  # LayerNorm scale
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:  # biases, GRN gamma / beta
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def default_model(scale: int = 4, arch: str = "safmn") -> nn.Module:
    """The embedded default of `arch`: for the paper SAFMN the trained network srx ships for
    `scale` (srx/models/defaults.py), otherwise a seeded, untrained one (latency only)."""
    if arch == "safmn":
        from srx.models.defaults import default_model as shipped_default

        return shipped_default(scale)
    return build_model(
        arch, scale, seed=DEFAULT_SEED, trained=False, source=f"embedded default {arch} x{scale} (seed {DEFAULT_SEED})"
    )


def seeded_model(scale: int = 4) -> nn.Module:
    """The seeded, untrained paper SAFMN (dim 36, 8 blocks): for latency work (`--weights seeded`)."""
    from srx.models.defaults import seeded_model as seeded

    return seeded(scale)


def model_from_options(
    weights: str | Path | None, *, arch: str = "auto", scale: int | None = None, param_key: str | None = None
) -> nn.Module:
    """`--weights`, `--arch`, `--scale`, `--param-key` of the commands: the checkpoint's
    network, or without weights the embedded default of the architecture (paper SAFMN for auto)."""
    if weights is not None:
        return load_model(weights, arch=arch, scale=scale, param_key=param_key)
    if param_key is not None:
        raise BadInput("--param-key needs --weights: the embedded default model has no checkpoint entries")
    return default_model(scale or 4, "safmn" if arch == "auto" else arch)


def detect_arch(sd: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Architecture name and configuration from a state dict's keys and shapes, or None."""
    for a in REGISTRY.values():
        try:
            cfg = a.detect(sd)
        except (IndexError, AttributeError, TypeError, ZeroDivisionError):
            cfg = None  # a tensor of an impossible rank or shape where a layer should be
        if cfg is not None:
            return a.name, cfg
    return None


# Prefixes of the layers every SAFMN-family network has: a state dict with none of them is foreign.
SAFMN_PREFIXES = ("to_feat.", "feats.", "to_img.")


def _not_detected(sd: Mapping[str, Any], origin: str) -> BadInput:
    """Why a state dict is not a supported network: foreign, or SAFMN-like but damaged."""
    if not any(str(k).startswith(SAFMN_PREFIXES) for k in sd):
        return BadInput(
            f"{origin} is not a SAFMN-family checkpoint (no SAFMN layer names such as to_feat.weight, "
            f"feats.0.safm.aggr.weight or feats.0.conv1.proj.weight): give a checkpoint of {', '.join(ARCHS)}"
        )
    missing = [k for k in ("to_feat.weight", "to_img.0.weight") if k not in sd]
    shape = tuple(getattr(sd.get("to_img.0.weight"), "shape", ()))
    if missing:
        why = f"missing {', '.join(missing)}"
    elif not shape or shape[0] not in (3 * s * s for s in (1, 2, 3, 4, 8)):
        why = f"to_img.0.weight has shape {shape}, not 3*s*s output channels for a scale s"
    else:
        block = sorted(k[len("feats.0.") :] for k in sd if str(k).startswith("feats.0."))
        why = f"its blocks match no supported layout; feats.0 has {', '.join(block[:4]) or 'nothing'}"
    return BadInput(
        f"{origin} has SAFMN layer names but is incomplete or modified ({why}): use the original, complete checkpoint"
    )


def model_from_state_dict(
    sd: Mapping[str, Any],
    *,
    arch: str = "auto",
    scale: int | None = None,
    origin: str = "state dict",
    **spec_fields: Any,
) -> nn.Module:
    detected = detect_arch(sd)
    if arch == "auto":
        if detected is None:
            raise _not_detected(sd, origin)
        arch, cfg = detected
    else:
        _arch(arch)
        cfg = REGISTRY[arch].detect(sd)  # type: ignore[assignment]
        if cfg is None:
            found = f"it looks like {detected[0]}" if detected else "it is not a SAFMN-family checkpoint"
            raise BadInput(f"{origin} does not match --arch {arch}: {found}; use --arch auto")
    if cfg["n_blocks"] < 1:
        raise BadInput(f"{origin} has no feature blocks (feats.0.*): the checkpoint is incomplete")
    if scale is not None and scale != cfg["scale"]:
        raise BadInput(
            f"--scale {scale} contradicts {origin}, which is a x{cfg['scale']} model: drop --scale or use {cfg['scale']}"
        )
    model = build_model(
        arch, cfg["scale"], cfg["dim"], cfg["n_blocks"], cfg["ffn_scale"], seed=None, trained=True, **spec_fields
    )
    _load_strict(model, sd, origin)
    return model


def _load_strict(model: nn.Module, sd: Mapping[str, Any], origin: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_names(unexpected)}")
        arch = model.spec.arch  # type: ignore[union-attr]
        raise BadInput(f"{origin} does not fit {arch}: {'; '.join(parts)} (partial or modified checkpoint?)")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise BadInput(
                f"{origin}: {k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)} for this configuration"
            )
        if not sd[k].is_floating_point():
            raise BadInput(f"{origin}: {k} is {sd[k].dtype}, expected floating point")
        bad = int((~torch.isfinite(sd[k])).sum())
        if bad:
            raise BadInput(
                f"{origin}: {k} holds {bad} NaN or infinite value(s), so every output would be garbage: "
                "the checkpoint is damaged (or diverged in training); use an intact checkpoint"
            )
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_model(
    path: str | Path, *, arch: str = "auto", scale: int | None = None, param_key: str | None = None
) -> nn.Module:
    """Load a SAFMN-family checkpoint: detect architecture and configuration, load strictly.

    Returns the network in eval mode with its ModelSpec as `.spec`. The names of the networks
    srx ships (default, seeded, team15: srx/models/defaults.py) load those, unless a file of
    that name exists.
    """
    from srx.models.defaults import is_name, named_model

    if is_name(path):
        if param_key is not None:
            raise BadInput(f"--param-key applies to checkpoint files, not to the shipped '{path}': drop it")
        model = named_model(str(path), scale)
        if arch not in ("auto", model.spec.arch):  # type: ignore[union-attr]
            raise BadInput(f"'{path}' is a {model.spec.arch} network, not --arch {arch}: use --arch auto")  # type: ignore[union-attr]
        return model
    p = Path(path)
    ckpt = read_checkpoint(p, param_key)
    origin = str(p) if ckpt.param_key is None else f"{p} [{ckpt.param_key}]"
    return model_from_state_dict(
        ckpt.state_dict, arch=arch, scale=scale, origin=origin, source=p.name, source_sha256=sha256_file(p)
    )
