"""ModelSpec: the one descriptor that travels with a model (docs/architecture.md#modelspec).

It goes into ONNX metadata and engine sidecars so nothing downstream guesses the
architecture, scale or input limits. Plain data, no torch: the TensorRT runtime on a
Jetson reads it too.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from srx.errors import BadInput

ARCHS = ("safmn", "safmn-ntire23", "safmnpp", "safmnpp-light")

ARCH_TITLES = {
    "safmn": "SAFMN (ICCV 2023)",
    "safmn-ntire23": "SAFMN, NTIRE 2023 ESR variant (GRN)",
    "safmnpp": "SAFMN++ (NTIRE 2024 ESR)",
    "safmnpp-light": "light SAFMN++ (AIS 2024 RTSR)",
}

UNTRAINED_LABEL = "untrained: for latency only"


@dataclass(frozen=True)
class ModelSpec:
    """What a SAFMN-family network is and what input it accepts.

    min_size: the smallest height and width the network accepts (its coarsest adaptive
    pooling level must keep at least one pixel). size_multiple: a side length the input
    must be a multiple of (1 = any size at or above min_size works exactly).
    """

    arch: str
    scale: int
    dim: int
    n_blocks: int
    ffn_scale: float
    params: int
    min_size: int
    size_multiple: int = 1
    in_channels: int = 3
    value_range: tuple[float, float] = (0.0, 1.0)
    trained: bool = True
    source: str = ""
    source_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return ARCH_TITLES.get(self.arch, self.arch)

    @property
    def label(self) -> str:
        """Human name with the untrained warning where it applies (and a shipped network's name)."""
        cfg = f"{self.title} x{self.scale}, dim {self.dim}, {self.n_blocks} blocks, ffn {self.ffn_scale:g}"
        name = self.extra.get("name") if isinstance(self.extra, dict) else None
        if name:
            cfg = f"{name}: {cfg}"
        return f"{cfg} [{UNTRAINED_LABEL}]" if not self.trained else cfg

    def check_input_size(self, height: int, width: int) -> None:
        """Raise BadInput if an LR input of this size cannot run exactly."""
        if height < self.min_size or width < self.min_size:
            raise BadInput(
                f"input {width}x{height} is smaller than this model's minimum of "
                f"{self.min_size}x{self.min_size} ({self.title}): use a larger input"
            )
        m = self.size_multiple
        if m > 1 and (height % m or width % m):
            raise BadInput(f"input {width}x{height} is not a multiple of {m}: pad or crop it to a multiple of {m}")

    def forward_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Estimated peak memory of one eager FP32 forward pass, an upper bound for planning:

            4 bytes * batch * H * W * (12 * dim + 2 * ceil(ffn_scale * dim) + 6 * (1 + scale**2))

        (a dozen feature maps live at once inside a block, two CCM hidden maps, input and
        output twice). Measured peak RSS growth on the CPU with PyTorch 2.13, dim 36 at
        640x360: 1.8-2.1 kB per LR pixel for safmn, safmn-ntire23 and safmnpp; this gives
        2.7 kB at x4.
        """
        hidden = math.ceil(self.ffn_scale * self.dim)
        per_pixel = 12 * self.dim + 2 * hidden + 6 * (1 + self.scale**2)
        return 4 * batch * height * width * per_pixel

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["value_range"] = list(self.value_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            kwargs = {k: v for k, v in d.items() if k in known}
            if "value_range" in kwargs:
                kwargs["value_range"] = tuple(kwargs["value_range"])
            spec = cls(**kwargs)
        except TypeError as e:
            raise BadInput(f"model descriptor is incomplete ({e}); re-export the model with srx") from e
        if spec.arch not in ARCHS:
            raise BadInput(f"model descriptor names unknown architecture {spec.arch!r}; re-export the model with srx")
        return spec

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInput(f"model descriptor is not valid JSON ({e}); re-export the model with srx") from e
        if not isinstance(d, dict):
            raise BadInput("model descriptor is not a JSON object; re-export the model with srx")
        return cls.from_dict(d)
