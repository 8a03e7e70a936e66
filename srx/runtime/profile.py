"""Optimisation profiles for SR engines: the input sizes an engine accepts (pure logic).

A TensorRT engine built from a dynamic ONNX runs any input between the profile's `min`
and `max` (per side) and is tuned for `opt`. Defaults fit super-resolution of video
frames: 64x64 up to 1920x1080 (1080p in, 4K-class out at x2, 8K-class at x4), tuned for
640x360. The model's minimum input (its coarsest pooling level must keep a pixel) bounds
`min` from below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from srx.errors import BadInput
from srx.sizes import Size, parse_size
from srx.spec import ModelSpec

DEFAULT_MIN = Size(64, 64)
DEFAULT_OPT = Size(640, 360)
DEFAULT_MAX = Size(1920, 1080)
DLA_MAX_SIDE = 8192  # DLA: largest non-batch dimension


@dataclass(frozen=True)
class Profile:
    min: Size
    opt: Size
    max: Size
    batch: tuple[int, int, int] = (1, 1, 1)

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max and len(set(self.batch)) == 1

    def shapes(self, channels: int = 3) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW shapes for IOptimizationProfile.set_shape."""
        return tuple(  # type: ignore[return-value]
            (b, channels, s.height, s.width) for b, s in zip(self.batch, (self.min, self.opt, self.max), strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"min": str(self.min), "opt": str(self.opt), "max": str(self.max), "batch": list(self.batch)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        return cls(
            parse_size(d["min"]),
            parse_size(d["opt"]),
            parse_size(d["max"]),
            tuple(d.get("batch", (1, 1, 1))),  # type: ignore[arg-type]
        )

    def contains(self, batch: int, height: int, width: int) -> bool:
        return (
            self.batch[0] <= batch <= self.batch[2]
            and self.min.height <= height <= self.max.height
            and self.min.width <= width <= self.max.width
        )


def parse_batch(text: str | None) -> tuple[int, int, int] | None:
    """'4' -> (4, 4, 4); '1:4:8' -> (1, 4, 8) (min:opt:max, a dynamic batch)."""
    if text is None:
        return None
    parts = text.split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 3
    if len(nums) != 3 or min(nums) < 1:
        raise BadInput(f"--batch {text!r}: give N (a fixed batch) or MIN:OPT:MAX (a dynamic batch), all >= 1")
    lo, opt, hi = nums
    if not lo <= opt <= hi:
        raise BadInput(f"--batch {text!r}: needs MIN <= OPT <= MAX; give them in that order")
    return lo, opt, hi


def make_profile(
    spec: ModelSpec,
    input_dims: list[int | str],
    *,
    min_size: str | None = None,
    opt_size: str | None = None,
    max_size: str | None = None,
    batch: str | None = None,
    dla: bool = False,
) -> Profile:
    """The profile from CLI flags, defaults and the ONNX's input dims; BadInput when impossible."""
    n_dim, _c, h_dim, w_dim = input_dims
    given = {k: v for k, v in (("--min", min_size), ("--opt", opt_size), ("--max", max_size)) if v is not None}
    lo = parse_size(min_size, what="--min") if min_size else None
    opt = parse_size(opt_size, what="--opt") if opt_size else None
    hi = parse_size(max_size, what="--max") if max_size else None
    b = parse_batch(batch)

    if isinstance(h_dim, int) and isinstance(w_dim, int):
        fixed = Size(w_dim, h_dim)
        for flag, value in given.items():
            if parse_size(value, what=flag) != fixed:
                raise BadInput(
                    f"{flag} {value}: this ONNX has a static input of {fixed}; "
                    "export a dynamic model (srx export without --static) for other sizes"
                )
        lo = opt = hi = fixed
    if isinstance(n_dim, int):
        if b is not None and b != (n_dim, n_dim, n_dim):
            raise BadInput(f"--batch {batch}: this ONNX has a fixed batch of {n_dim}; export with a dynamic batch")
        b = (n_dim, n_dim, n_dim)
    b = b or (1, 1, 1)

    m = spec.min_size
    floor = Size(max(DEFAULT_MIN.width, m), max(DEFAULT_MIN.height, m))
    static_onnx = isinstance(h_dim, int) and isinstance(w_dim, int)
    if dla and not given and not static_onnx:
        raise BadInput(
            "--dla-core needs a static shape (DLA has no dynamic shapes): give --min, --opt and --max the same size, "
            "e.g. --min 640x360 --opt 640x360 --max 640x360"
        )
    # Defaults give way to what was given: a --max below 64x64 lowers the default min, a
    # --min above 1920x1080 raises the default max.
    if hi is None:
        hi = Size(max(DEFAULT_MAX.width, lo.width), max(DEFAULT_MAX.height, lo.height)) if lo else DEFAULT_MAX
    if lo is None:
        lo = Size(max(min(floor.width, hi.width), m), max(min(floor.height, hi.height), m))
    if opt is None:
        # Default opt: 640x360, clamped into [min, max] side by side.
        opt = Size(min(max(DEFAULT_OPT.width, lo.width), hi.width), min(max(DEFAULT_OPT.height, lo.height), hi.height))

    if lo.width < m or lo.height < m:
        raise BadInput(
            f"--min {lo} is below this model's minimum input {m}x{m} ({spec.title}): use --min {m}x{m} or larger"
        )
    if lo.width > hi.width or lo.height > hi.height:
        raise BadInput(
            f"--min {lo} is larger than --max {hi}: the minimum must not exceed the maximum on either side; give a smaller --min or a larger --max"
        )
    if not (lo.width <= opt.width <= hi.width and lo.height <= opt.height <= hi.height):
        raise BadInput(f"--opt {opt} is outside --min {lo} .. --max {hi}: choose an opt between them")
    k = spec.size_multiple
    if k > 1:
        for flag, s in (("--min", lo), ("--opt", opt), ("--max", hi)):
            if s.width % k or s.height % k:
                raise BadInput(f"{flag} {s} is not a multiple of {k}, which this model needs")
    prof = Profile(lo, opt, hi, b)
    if dla:
        if not prof.static:
            raise BadInput(
                f"--dla-core needs a static shape (DLA has no dynamic shapes): --min, --opt and --max must be equal "
                f"(got {lo}, {opt}, {hi}) and --batch fixed"
            )
        if max(hi.width, hi.height) > DLA_MAX_SIDE:
            raise BadInput(f"DLA supports sides up to {DLA_MAX_SIDE} pixels; {hi} is larger")
    return prof
