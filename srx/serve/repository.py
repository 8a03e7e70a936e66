"""Triton model repositories for srx ONNX models and TensorRT engines (torch-free).

    write_model_repository("safmn_x4.onnx", "models")   # models/safmn_x4/config.pbtxt
                                                         # models/safmn_x4/1/model.onnx
    tritonserver --model-repository=models

`config.pbtxt` follows Triton's ModelConfig schema (model_config.proto; the tests parse every
variant with the copy in tritonclient): input `lr` and output `sr`, FP32 NCHW, -1 for the sides a
dynamic model accepts; `max_batch_size` and `dynamic_batching` where the batch dimension is
dynamic (Triton adds the batch dimension in front of `dims`); `instance_group`; for ONNX the
onnxruntime backend with the CUDA or TensorRT execution accelerator, for plans the tensorrt
backend. The ModelSpec and provenance go into `parameters` (strings), so a client reads the scale
and minimum size from the model configuration endpoint, as it does from `srx serve`.

What Triton cannot express and the comments at the top of the file say instead: the minimum
input size, and for a plan the profile and that it loads only in the TensorRT version, on the
GPU, that built it (from its sidecar).

The entry is written into a temporary folder beside it and renamed into place, so a reader (or a
tritonserver polling the repository) never sees half a model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from srx import __version__
from srx.errors import BadInput
from srx.export import INPUT_NAME, OUTPUT_NAME
from srx.fileio import sha256_file
from srx.modelref import exported_file_ref
from srx.spec import ModelSpec

if TYPE_CHECKING:
    from srx.runtime.profile import Profile

DEFAULT_MAX_BATCH = 8
# Long enough for clients that send at nearly the same time to share a batch, short next to
# one inference (a TensorRT FP16 320x180 frame is on the order of a millisecond on a big GPU).
DEFAULT_QUEUE_DELAY_US = 1000
INSTANCE_KINDS = ("gpu", "cpu")
ACCELERATORS = ("cuda", "tensorrt", "none")
# Triton and PyTriton accept these characters in a model name; it is also a folder name.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HEADER = "# srx model repository entry"  # how srx recognises an entry it may replace
TRT_WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class RepoOptions:
    """How the model is served. None means: decided from the model (see `plan_entry`)."""

    name: str | None = None
    version: int = 1
    max_batch: int | None = None
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    kind: str = "gpu"
    accelerator: str | None = None
    # onnxruntime's TensorRT accelerator: the shape range it builds its engine for.
    trt_min: str | None = None
    trt_opt: str | None = None
    trt_max: str | None = None


@dataclass
class RepoEntry:
    """One model of a repository, decided and checked, ready to write."""

    source: Path
    fmt: str  # "onnx" or "plan"
    name: str
    version: int
    spec: ModelSpec
    max_batch_size: int
    dims: list[int]
    out_dims: list[int]
    queue_delay_us: int | None
    instances: int
    kind: str
    accelerator: str
    parameters: dict[str, str]
    comments: list[str]
    trt_parameters: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return "onnxruntime" if self.fmt == "onnx" else "tensorrt"

    @property
    def filename(self) -> str:
        return "model.onnx" if self.fmt == "onnx" else "model.plan"


def model_name_from(path: Path, given: str | None) -> str:
    """--name, or the file's stem with characters Triton refuses replaced by '_'."""
    name = given if given is not None else re.sub(r"[^A-Za-z0-9._-]", "_", path.stem).lstrip("._-") or "srx_model"
    if not NAME_PATTERN.match(name):
        raise BadInput(
            f"model name {name!r}: use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)"
        )
    return name


def _check_common(o: RepoOptions) -> None:
    if o.version < 1:
        raise BadInput(f"--model-version {o.version}: Triton model versions are positive integers; use 1 or more")
    if o.instances < 1:
        raise BadInput(f"--instances {o.instances}: use 1 or more")
    if o.queue_delay_us < 0:
        raise BadInput(f"--max-queue-delay-us {o.queue_delay_us}: cannot be negative; use 0 or more")
    if o.max_batch is not None and o.max_batch < 1:
        raise BadInput(f"--max-batch {o.max_batch}: use 1 or more")
    if o.kind not in INSTANCE_KINDS:
        raise BadInput(f"--kind {o.kind!r}: choose gpu or cpu")
    if o.accelerator is not None and o.accelerator not in ACCELERATORS:
        raise BadInput(f"--accelerator {o.accelerator!r}: choose {', '.join(ACCELERATORS)}")


def _spec_parameters(spec: ModelSpec, source: Path, precision: str) -> dict[str, str]:
    # The file's name, never its path: the repository travels to other machines.
    return {
        "srx.spec": spec.to_json(),
        "srx.scale": str(spec.scale),
        "srx.min_size": str(spec.min_size),
        "srx.size_multiple": str(spec.size_multiple),
        "srx.value_range": ",".join(f"{v:g}" for v in spec.value_range),
        "srx.layout": "NCHW RGB",
        "srx.precision": precision,
        "srx.source": source.name,
        "srx.source_sha256": sha256_file(source),
        "srx.version": __version__,
    }


def plan_entry(model: str | Path, options: RepoOptions | None = None) -> RepoEntry:
    """Read and check an srx ONNX or engine, and decide its configuration (BadInput if impossible)."""
    o = options or RepoOptions()
    _check_common(o)
    path = Path(model)
    if exported_file_ref(path, checkpoints=False).kind == "onnx":
        return _onnx_entry(path, o)
    return _plan_entry(path, o)


def _onnx_entry(path: Path, o: RepoOptions) -> RepoEntry:
    from srx.export.metadata import read_srx_onnx

    info = read_srx_onnx(path)
    spec = info.spec
    n, c, h, w = info.input_dims
    batching = isinstance(n, str)
    accelerator = o.accelerator or ("cuda" if o.kind == "gpu" else "none")
    if o.kind == "cpu" and accelerator != "none":
        raise BadInput(f"--accelerator {accelerator} needs GPU instances: drop it or use --kind gpu")
    notes = []
    if not batching and o.max_batch not in (None, 1):
        raise BadInput(
            f"--max-batch {o.max_batch}: {path} has a fixed batch of {n}; export a dynamic model "
            "(srx export without --static) to batch requests"
        )
    max_batch = (o.max_batch or DEFAULT_MAX_BATCH) if batching else 0
    side = [d if isinstance(d, int) else -1 for d in (h, w)]
    if batching:
        dims, out_dims = [c, *side], [3, *(d * spec.scale if d > 0 else -1 for d in side)]
    else:
        dims = [n, c, *side]
        out_dims = [n, 3, *(d * spec.scale if d > 0 else -1 for d in side)]
    trt: dict[str, str] = {}
    if accelerator == "tensorrt":
        trt = _ort_trt_parameters(spec, info.input_dims, max_batch, o)
        notes.append(
            "onnxruntime builds its TensorRT engine before the first inference (minutes on a small GPU): "
            "keep inputs inside the profile"
        )
    comments = [
        f"{HEADER}: written by srx {__version__} from {path.name}",
        f"# {spec.label}; precision {info.precision}",
        f"# Inputs: FP32 RGB in [0, 1], NCHW, height and width >= {spec.min_size}"
        + (f" and multiples of {spec.size_multiple}" if spec.size_multiple > 1 else "")
        + f"; output x{spec.scale}.",
    ]
    return RepoEntry(
        source=path,
        fmt="onnx",
        name=model_name_from(path, o.name),
        version=o.version,
        spec=spec,
        max_batch_size=max_batch,
        dims=dims,
        out_dims=out_dims,
        queue_delay_us=o.queue_delay_us if max_batch > 1 else None,
        instances=o.instances,
        kind=o.kind,
        accelerator=accelerator,
        parameters=_spec_parameters(spec, path, info.precision),
        comments=comments,
        trt_parameters=trt,
        notes=notes,
    )


def _ort_trt_parameters(spec: ModelSpec, input_dims: list[int | str], max_batch: int, o: RepoOptions) -> dict[str, str]:
    """onnxruntime's TensorRT execution provider, FP32 (FP16 comes from srx's own FP16 ONNX,
    which keeps the normalisations in FP32; TensorRT's FP16 flag over the FP32 graph would not)."""
    params = {"precision_mode": "FP32", "max_workspace_size_bytes": str(TRT_WORKSPACE_BYTES)}
    if all(isinstance(d, int) for d in input_dims):
        return params
    from srx.runtime.profile import make_profile

    batch = f"1:1:{max(1, max_batch)}" if isinstance(input_dims[0], str) else None
    prof = make_profile(spec, input_dims, min_size=o.trt_min, opt_size=o.trt_opt, max_size=o.trt_max, batch=batch)
    for key, shape in zip(("min", "opt", "max"), prof.shapes(spec.in_channels), strict=True):
        params[f"trt_profile_{key}_shapes"] = f"{INPUT_NAME}:" + "x".join(map(str, shape))
    return params


def _plan_entry(path: Path, o: RepoOptions) -> RepoEntry:
    from srx.runtime.sidecar import read_sidecar, spec_of

    side = read_sidecar(path)
    _check_plan(path, side, o)
    spec = spec_of(side)
    prof = _plan_profile(path, side)
    max_batch, dims, out_dims, notes = _plan_batching(path, prof, spec.scale, o)
    return RepoEntry(
        source=path,
        fmt="plan",
        name=model_name_from(path, o.name),
        version=o.version,
        spec=spec,
        max_batch_size=max_batch,
        dims=dims,
        out_dims=out_dims,
        queue_delay_us=o.queue_delay_us if max_batch > 1 else None,
        instances=o.instances,
        kind="gpu",
        accelerator="none",
        parameters=_plan_parameters(path, side, spec, prof),
        comments=_plan_comments(path, side, spec, prof),
        notes=notes,
    )


def _check_plan(path: Path, side: dict[str, Any], o: RepoOptions) -> None:
    """A TensorRT engine that matches its sidecar, and options that apply to a plan."""
    backend = side.get("backend")
    if backend != "tensorrt":
        raise BadInput(
            f"{path} is a {backend} engine; Triton's tensorrt backend loads TensorRT engines only: "
            "build one with 'srx build-engine --backend tensorrt', or serve the ONNX"
        )
    if side.get("engine_sha256") and sha256_file(path) != side["engine_sha256"]:
        raise BadInput(f"{path} does not match its sidecar (the engine was replaced or damaged): rebuild it")
    if o.kind != "gpu":
        raise BadInput("--kind cpu: a TensorRT plan runs on the GPU only; drop --kind or serve the ONNX on the CPU")
    if o.accelerator not in (None, "none"):
        raise BadInput(f"--accelerator {o.accelerator} applies to ONNX models; drop it for a TensorRT plan")
    if o.trt_min or o.trt_opt or o.trt_max:
        raise BadInput("--min/--opt/--max apply to ONNX models; a plan keeps the profile it was built with")


def _plan_profile(path: Path, side: dict[str, Any]) -> Profile:
    from srx.runtime.profile import Profile

    try:
        return Profile.from_dict(side["profile"])
    except (KeyError, TypeError, ValueError, BadInput) as e:
        raise BadInput(f"{path}: its sidecar has no readable profile ({e}); rebuild it with srx build-engine") from e


def _plan_batching(
    path: Path, prof: Profile, scale: int, o: RepoOptions
) -> tuple[int, list[int], list[int], list[str]]:
    """Triton's max_batch_size, input and output dims for the engine's profile, and notes for the user."""
    static_sides = prof.min == prof.max
    h = prof.min.height if static_sides else -1
    w = prof.min.width if static_sides else -1
    lo, _, hi = prof.batch
    notes = []
    if static_sides and lo == hi == 1:
        # A batch of one fixed in the profile: the engine's batch dimension may be static (a
        # --static ONNX), which Triton accepts only without batching. Full dims, max_batch_size 0.
        if o.max_batch not in (None, 1):
            raise BadInput(f"--max-batch {o.max_batch}: {path} was built for batch 1; rebuild it with --batch 1:4:8")
        return 0, [1, 3, h, w], [1, 3, h * scale, w * scale], notes
    if o.max_batch is not None and o.max_batch > hi:
        raise BadInput(
            f"--max-batch {o.max_batch}: {path} was built for batches up to {hi}; "
            f"use --max-batch {hi} or rebuild it with --batch 1:{o.max_batch}:{o.max_batch}"
        )
    if lo > 1:
        raise BadInput(
            f"{path} was built for batches of {lo} or more; Triton sends smaller ones: rebuild with --batch 1:{hi}:{hi}"
        )
    max_batch = o.max_batch or hi
    if max_batch == 1:
        notes.append(
            f"{path.name} was built for batch 1, so Triton cannot batch requests: "
            "rebuild it with 'srx build-engine --batch 1:4:8' for dynamic batching"
        )
    return max_batch, [3, h, w], [3, h * scale if h > 0 else -1, w * scale if w > 0 else -1], notes


def _plan_comments(path: Path, side: dict[str, Any], spec: ModelSpec, prof: Profile) -> list[str]:
    """The header of config.pbtxt: what Triton cannot express (TensorRT version and GPU, the profile)."""
    dev = side.get("device") or {}
    where = dev.get("name") or "an unknown GPU"
    if dev.get("compute_capability"):
        where += f" (compute capability {dev['compute_capability']})"
    lo, _, hi = prof.batch
    return [
        f"{HEADER}: written by srx {__version__} from {path.name}",
        f"# {spec.label}; precision {side.get('precision', '?')}",
        f"# TensorRT plan built with TensorRT {side.get('backend_version', '?')} on {where}: it loads only in a "
        "tritonserver whose TensorRT is that version, on that GPU model.",
        f"# Profile {prof.min} .. {prof.max} (opt {prof.opt}), batch {lo}..{hi}: inputs outside it are refused.",
    ]


def _plan_parameters(path: Path, side: dict[str, Any], spec: ModelSpec, prof: Profile) -> dict[str, str]:
    params = _spec_parameters(spec, path, str(side.get("precision", "unknown")))
    params["srx.profile"] = json.dumps(prof.to_dict(), sort_keys=True)
    params["srx.engine"] = json.dumps(
        {
            "backend_version": side.get("backend_version"),
            "device": side.get("device") or {},
            "network": side.get("network"),
            "created": side.get("created"),
        },
        sort_keys=True,
    )
    return params


# -- config.pbtxt ------------------------------------------------------------------------------


def _quote(s: str) -> str:
    """A protobuf text-format string literal."""
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{out}"'


def _dims(d: list[int]) -> str:
    return "[ " + ", ".join(str(x) for x in d) + " ]"


def config_text(e: RepoEntry) -> str:
    """config.pbtxt for an entry (protobuf text format of inference.ModelConfig)."""
    lines = [*e.comments, ""]
    lines += [
        f"name: {_quote(e.name)}",
        f"backend: {_quote(e.backend)}",
        f"max_batch_size: {e.max_batch_size}",
        "input [",
        "  {",
        f"    name: {_quote(INPUT_NAME)}",
        "    data_type: TYPE_FP32",
        f"    dims: {_dims(e.dims)}",
        "  }",
        "]",
        "output [",
        "  {",
        f"    name: {_quote(OUTPUT_NAME)}",
        "    data_type: TYPE_FP32",
        f"    dims: {_dims(e.out_dims)}",
        "  }",
        "]",
    ]
    if e.queue_delay_us is not None:
        lines += ["dynamic_batching {", f"  max_queue_delay_microseconds: {e.queue_delay_us}", "}"]
    lines += [
        "instance_group [",
        "  {",
        f"    count: {e.instances}",
        f"    kind: {'KIND_GPU' if e.kind == 'gpu' else 'KIND_CPU'}",
        "  }",
        "]",
    ]
    if e.accelerator in ("cuda", "tensorrt"):
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator [",
            "      {",
            f"        name: {_quote(e.accelerator)}",
        ]
        for k, v in e.trt_parameters.items():
            lines.append(f"        parameters {{ key: {_quote(k)} value: {_quote(v)} }}")
        lines += ["      }", "    ]", "  }", "}"]
    for k, v in e.parameters.items():
        lines.append(f"parameters {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}")
    return "\n".join(lines) + "\n"


# -- writing -----------------------------------------------------------------------------------


def _written_by_srx(folder: Path) -> bool:
    try:
        with open(folder / "config.pbtxt", encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(HEADER)
    except OSError:
        return False


def _check_repo_folder(repo: Path) -> bool:
    """Whether the repository folder must be created (its parent must exist and be writable)."""
    if repo.exists() and not repo.is_dir():
        raise BadInput(f"--triton-repo {repo} is a file, not a folder: give a folder for the model repository")
    if repo.is_dir():
        if not os.access(repo, os.W_OK | os.X_OK):
            raise BadInput(f"cannot write in {repo}: check its permissions or choose another folder")
        return False
    parent = repo.parent if str(repo.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"cannot create {repo}: its folder {parent} does not exist; create it or choose another")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create {repo}: no permission to write in {parent}; choose another folder")
    return True


def check_destination(name: str, repo_dir: str | Path) -> None:
    """Refuse, before any work, a destination srx must not write (BadInput)."""
    repo = Path(repo_dir)
    _check_repo_folder(repo)
    target = repo / name
    if target.exists() and not (target.is_dir() and _written_by_srx(target)):
        raise BadInput(
            f"{target} exists and is not a model srx wrote: choose another --name or repository, or remove it"
        )


def _copy(src: Path, dest: Path) -> None:
    with open(src, "rb") as fi, open(dest, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
        fo.flush()
        os.fsync(fo.fileno())


def write_entry(entry: RepoEntry, repo_dir: str | Path) -> dict[str, Any]:
    """Write `repo_dir/<name>/config.pbtxt` and `<version>/model.*`, replacing an entry srx wrote
    before; nothing half-written is left on any failure or interruption."""
    repo = Path(repo_dir)
    check_destination(entry.name, repo)
    created_repo = _check_repo_folder(repo)
    if created_repo:
        repo.mkdir()
    target = repo / entry.name
    token = secrets.token_hex(4)
    tmp = repo / f".{entry.name}.srx-tmp-{token}"
    old = repo / f".{entry.name}.srx-old-{token}"
    text = config_text(entry)
    try:
        tmp.mkdir()
        (tmp / str(entry.version)).mkdir()
        _copy(entry.source, tmp / str(entry.version) / entry.filename)
        with open(tmp / "config.pbtxt", "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.rename(old, target)
        if created_repo:
            with contextlib.suppress(OSError):
                repo.rmdir()
        if isinstance(e, OSError):
            raise BadInput(
                f"cannot write the model repository {repo}: {e.strerror or e}; free some space or choose another folder"
            ) from e
        raise
    shutil.rmtree(old, ignore_errors=True)
    return {
        "repository": str(repo),
        "model": entry.name,
        "version": entry.version,
        "config": str(target / "config.pbtxt"),
        "model_file": str(target / str(entry.version) / entry.filename),
        "backend": entry.backend,
        "max_batch_size": entry.max_batch_size,
        "dynamic_batching": entry.queue_delay_us is not None,
        "max_queue_delay_us": entry.queue_delay_us,
        "instance_group": {"count": entry.instances, "kind": entry.kind},
        "accelerator": entry.accelerator,
        "input": {"name": INPUT_NAME, "dtype": "FP32", "dims": entry.dims},
        "output": {"name": OUTPUT_NAME, "dtype": "FP32", "dims": entry.out_dims},
        "notes": list(entry.notes),
    }


def write_model_repository(
    model: str | Path, repo_dir: str | Path, options: RepoOptions | None = None
) -> dict[str, Any]:
    """An srx ONNX or engine as a Triton model repository entry; returns what was written."""
    return write_entry(plan_entry(model, options), repo_dir)


def format_written(r: dict[str, Any]) -> str:
    """The lines `srx serve-config` (and `srx export --triton-repo`) print for a written entry."""
    batching = (
        f"dynamic batching up to {r['max_batch_size']} (queue delay {r['max_queue_delay_us']} us)"
        if r["dynamic_batching"]
        else f"max_batch_size {r['max_batch_size']}"
    )
    accel = f", {r['accelerator']} accelerator" if r["accelerator"] != "none" else ""
    lines = [
        f"wrote Triton model {r['model']} version {r['version']}: {r['config']}",
        f"  backend     {r['backend']}{accel}, {r['instance_group']['count']} x KIND_{r['instance_group']['kind'].upper()}",
        f"  batching    {batching}",
        f"  run         tritonserver --model-repository={r['repository']}",
    ]
    lines += [f"  note        {n}" for n in r["notes"]]
    return "\n".join(lines)
