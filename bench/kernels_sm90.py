"""Compile every kernel the fused default model launches for sm_90 (H100/H200) on this machine,
with no GPU, and report what the compiled code does: registers, spills, shared memory and
the instructions that matter (tensor cores, vector and asynchronous loads).

    python bench/kernels_sm90.py                         # 320x180 and 1280x720, every mode, every candidate config
    python bench/kernels_sm90.py --defaults-only --json sm90.json
    python bench/kernels_sm90.py --sizes 320x180 --modes fp16

How: the fused model's forward runs under srx.kernels.tuning.record(), which collects each
launch (kernel, arguments, constexprs, candidate configurations) without running it; each
distinct launch is then specialised exactly as Triton's JIT would on a GPU (its own binder:
argument types, 16-byte alignment, integer divisibility) and compiled for
GPUTarget("cuda", 90, 32). The cubin is read with the cuobjdump and nvdisasm that ship in
Triton's backends/nvidia/bin. Columns (per kernel, per configuration):

  REG / STACK / SHARED   registers per thread, stack frame bytes (> 0: spills to local memory), static shared memory
  HGMMA / HMMA           Hopper warpgroup tensor-core instructions / the older per-warp ones
  FFMA                   FP32 fused multiply-adds on the CUDA cores
  LDGSTS                 asynchronous global->shared copies (software-pipelined operand loads)
  LDG / LDG128           global loads / of them 16-byte vector loads;  STG: global stores
  LDG16 / LDG32 / LDG64  the other global loads by width (2, 4, 8 bytes): a wide load moves more per instruction
  BAR_SYNC               block-wide barriers (BAR.SYNC) in the SASS; with LOOPS = 0 each runs once per tile
  LOOPS                  backward branches (loops that survived unrolling; then BAR_SYNC counts a loop body once, not per tile)
  LDL / STL              local-memory loads / stores (spills)
  CTAS                   CTAs per SM on an H100/H200 (the lowest of the three limits below, at most 32)
  CTAS_REG / _WARP / _SMEM  the limits: 64K registers (allocated per warp in units of 256), 64 warps,
                         228 KiB shared memory (each CTA: its reservation in units of 128 B + 1 KiB the system keeps)
  gemm                   the kernel does GEMM-shaped work (a tl.dot) and so should use tensor cores

Modes: fp16, bf16, and FP32 activations in each srx FP32 precision (ieee: exact, CUDA
cores; tf32x3 and tf32: tensor cores). tests/test_kernels_sm90.py runs the default
configurations and fails on spills or on a GEMM kernel without tensor-core instructions
(FP16, BF16, and the TF32 modes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = {
    "fp16": ("float16", "tf32x3"),
    "bf16": ("bfloat16", "tf32x3"),
    "fp32-ieee": ("float32", "ieee"),
    "fp32-tf32x3": ("float32", "tf32x3"),
    "fp32-tf32": ("float32", "tf32"),
}
COLUMNS = ("REG", "STACK", "SHARED", "HGMMA", "HMMA", "FFMA", "LDGSTS", "LDG", "LDG128", "STG", "LDL", "STL")
# Added 2026-12-06 (issue 22): what serialises a tile and how many tiles an SM holds.
SCHEDULE = ("BAR_SYNC", "LOOPS", "LDG16", "LDG32", "LDG64", "CTAS", "CTAS_REG", "CTAS_WARP", "CTAS_SMEM")
# H100 / H200 (sm_90) per-SM resources, from NVIDIA's occupancy tables for compute capability 9.0.
SM90_REGS, SM90_WARPS, SM90_SMEM, SM90_CTAS = 65536, 64, 228 * 1024, 32
SM90_REG_UNIT, SM90_SMEM_UNIT, SM90_SMEM_RESERVED = 256, 128, 1024
TENSOR_CORE_MODES = ("fp16", "bf16", "fp32-tf32x3", "fp32-tf32")


@dataclass(frozen=True)
class Report:
    resources: dict[str, int]
    opcodes: Counter
    gemm: bool  # the Triton IR has a tt.dot


def tools_dir() -> Path:
    import triton

    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


def read_cubin(cubin: bytes, workdir: Path, gemm: bool) -> Report:
    """Registers, stack, shared memory (cuobjdump) and opcode counts (nvdisasm) of one cubin."""
    path = workdir / "kernel.cubin"
    path.write_bytes(cubin)
    tools = tools_dir()
    usage = subprocess.run(
        [str(tools / "cuobjdump"), "--dump-resource-usage", str(path)], capture_output=True, text=True, check=True
    ).stdout
    res = {k: int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage)}
    sass = subprocess.run([str(tools / "nvdisasm"), str(path)], capture_output=True, text=True, check=True).stdout
    return Report(res, sass_counts(sass), gemm)


def sass_counts(sass: str) -> Counter:
    """Opcode counts, global loads by width, block-wide barriers and loops of one kernel's SASS."""
    ops: Counter = Counter()
    labels: set[str] = set()
    previous = ""
    for line in sass.splitlines():
        label = re.match(r"(\.L_x_\d+):", line)
        if label:
            labels.add(label.group(1))
            previous = label.group(1)
            continue
        m = re.match(r"\s*/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*)", line)
        if not m:
            continue
        full = m.group(1)
        op = full.split(".")[0]
        ops[op] += 1
        if op == "LDG":
            mods = set(full.split(".")[1:])
            width = (
                "LDG128" if "128" in mods else "LDG64" if "64" in mods else "LDG16" if mods & {"U16", "S16"} else None
            )
            width = width or ("LDG8" if mods & {"U8", "S8"} else "LDG32")
            ops[width] += 1
        if full.startswith("BAR.SYNC"):
            ops["BAR_SYNC"] += 1
        target = re.search(r"`\((\.L_x_\d+)\)", m.group(2))
        # A branch back to a label already seen closes a loop; the trailing `L: BRA L` after
        # EXIT (a label right before its own branch) is the idle loop ptxas appends, not one.
        if op == "BRA" and target and target.group(1) in labels and target.group(1) != previous:
            ops["LOOPS"] += 1
        previous = ""
    return ops


def ctas_per_sm(regs: int, warps: int, shared: int) -> dict[str, int]:
    """CTAs of one launch an H100/H200 SM holds at once, and the limit each resource sets."""
    reg_unit = SM90_REG_UNIT
    regs_per_warp = -(-max(regs, 1) * 32 // reg_unit) * reg_unit
    smem = -(-shared // SM90_SMEM_UNIT) * SM90_SMEM_UNIT + SM90_SMEM_RESERVED
    limits = {
        "CTAS_REG": SM90_REGS // (regs_per_warp * warps),
        "CTAS_WARP": SM90_WARPS // warps,
        "CTAS_SMEM": SM90_SMEM // smem,
    }
    return {"CTAS": min(SM90_CTAS, *limits.values()), **limits}


def specialised(kernel: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """ASTSource and options exactly as Triton's JIT builds them for these arguments (sm_90)."""
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource
    from triton.runtime.jit import create_function_from_signature

    backend = CUDABackend(GPUTarget("cuda", 90, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, spec, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, spec, options)
    return ASTSource(kernel, signature, constexprs, attrs), options.__dict__


def compile_sm90(kernel: Any, args: tuple, kwargs: dict[str, Any], workdir: Path) -> Report:
    import triton
    from triton.backends.compiler import GPUTarget

    src, options = specialised(kernel, args, kwargs)
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
    rep = read_cubin(compiled.asm["cubin"], workdir, "tt.dot" in compiled.asm["ttir"])
    rep.resources["SHARED"] = compiled.metadata.shared  # dynamic shared memory, what the launch reserves
    return rep


def variant(launch: Any) -> str:
    """What distinguishes launches of one kernel (flags that change the compiled code)."""
    flags = [k.lower() for k, v in launch.constexprs.items() if isinstance(v, bool) and v]
    return "+".join(flags) or "-"


def recorded_launches(size: tuple[int, int], mode: str, batch: int, arch: str = "safmn") -> list[Any]:
    """The launches of one forward of the default x4 model of `arch` (dim 36, 8 blocks)."""
    import torch

    import srx.kernels
    from srx.kernels import tuning
    from srx.models import build_model

    dtype, precision = MODES[mode]
    model = build_model(arch, 4, seed=0)
    model = srx.kernels.fuse(model, strict=True, fp32_precision=precision).to(getattr(torch, dtype))
    h, w = size
    x = torch.zeros((batch, 3, h, w), dtype=getattr(torch, dtype))
    with tuning.record() as launches, torch.no_grad():
        model(x)
    return launches


def launch_key(launch: Any) -> tuple:
    def spec(a: Any) -> Any:
        if hasattr(a, "dtype") and hasattr(a, "data_ptr"):
            return str(a.dtype)
        if isinstance(a, int):
            return ("int", a == 1, a % 16 == 0)
        return type(a).__name__

    return (launch.kernel.fn.__name__, tuple(spec(a) for a in launch.args), tuple(sorted(launch.constexprs.items())))


def _job(launch: Any, kwargs: dict[str, Any]) -> tuple[str, str, tuple, dict[str, Any]]:
    """A picklable compile job: the kernel by module and name, tensors by dtype (all the
    specialisation looks at, besides alignment, which a fresh allocation also has)."""
    fn = launch.kernel.fn
    args = tuple(("tensor", str(a.dtype).removeprefix("torch.")) if hasattr(a, "data_ptr") else a for a in launch.args)
    return fn.__module__, fn.__name__, args, kwargs


def _compile_job(job: tuple[str, str, tuple, dict[str, Any]], read: bool = True) -> dict[str, Any]:
    import importlib
    import tempfile

    import torch

    module, name, specs, kwargs = job
    kernel = getattr(importlib.import_module(module), name)
    args = tuple(
        torch.empty(64, dtype=getattr(torch, a[1])) if isinstance(a, tuple) and a[:1] == ("tensor",) else a
        for a in specs
    )
    if not read:  # only fill Triton's cache (the JIT finds the same key on the GPU)
        import triton
        from triton.backends.compiler import GPUTarget

        src, options = specialised(kernel, args, kwargs)
        triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
        return {}
    with tempfile.TemporaryDirectory(prefix="srx-sm90-") as tmp:
        rep = compile_sm90(kernel, args, kwargs, Path(tmp))
    row = {c: rep.resources.get(c, rep.opcodes.get(c, 0)) for c in COLUMNS + SCHEDULE}
    row.update(ctas_per_sm(row["REG"], kwargs["num_warps"], row["SHARED"]))
    return {**row, "gemm": rep.gemm}


def _warm_job(job: tuple[str, str, tuple, dict[str, Any]]) -> dict[str, Any]:
    return _compile_job(job, read=False)


def warm_cache(sizes: list[tuple[int, int]], batch: int, workers: int) -> int:
    """Compile every candidate of every launch both architectures make, in every mode, into
    Triton's cache, in parallel: on a GPU machine the benchmark's and tuning's compiles then
    hit the cache instead of compiling one by one in the timed session. Returns the count."""
    jobs = {}
    for arch in ("safmn", "safmn-ntire23"):
        for mode in MODES:
            for h, w in sizes:
                for launch in recorded_launches((h, w), mode, batch, arch):
                    for cfg in launch.candidates:
                        kwargs = {**launch.constexprs, **cfg.kwargs(launch.kernel)}
                        jobs.setdefault((*launch_key(launch), cfg), _job(launch, kwargs))
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_warm_job, jobs.values()))
    return len(jobs)


def run(
    sizes: list[tuple[int, int]], modes: list[str], defaults_only: bool, batch: int = 1, workers: int = 1
) -> list[dict[str, Any]]:
    """One row per distinct launch of the fused forward (per mode and size) and configuration."""
    rows: list[dict[str, Any]] = []
    jobs: dict[tuple, tuple[str, str, tuple, dict[str, Any]]] = {}
    for mode in modes:
        for h, w in sizes:
            counts: Counter = Counter(launch_key(launch) for launch in recorded_launches((h, w), mode, batch))
            firsts = {}
            for launch in recorded_launches((h, w), mode, batch):
                firsts.setdefault(launch_key(launch), launch)
            for lk, launch in firsts.items():
                configs = launch.candidates[:1] if defaults_only else launch.candidates
                for i, cfg in enumerate(configs):
                    jobs.setdefault((*lk, cfg), _job(launch, {**launch.constexprs, **cfg.kwargs(launch.kernel)}))
                    rows.append(
                        {
                            "kernel": launch.kernel.fn.__name__.strip("_").removesuffix("_kernel"),
                            "variant": variant(launch),
                            "dtype": MODES[mode][0],
                            "mode": mode,
                            "input": f"{w}x{h}",
                            "batch": batch,
                            "launches": counts[lk],
                            "config": str(cfg),
                            "default": i == 0,
                            "_job": (*lk, cfg),
                        }
                    )
    keys = list(jobs)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            results = dict(zip(keys, pool.map(_compile_job, [jobs[k] for k in keys]), strict=True))
    else:
        results = {k: _compile_job(jobs[k]) for k in keys}
    for r in rows:
        r.update(results[r.pop("_job")])
    return rows


def doc_table(rows: list[dict[str, Any]]) -> str:
    """docs/kernels.md's table: each launcher's default configuration at the first input size."""
    first = rows[0]["input"]
    cols = ("REG", "STACK", "SHARED", "CTAS", "BAR_SYNC", "HGMMA", "FFMA", "LDGSTS", "LDG", "LDG128", "LDG16", "STG")
    lines = ["| kernel | launches | mode | config | " + " | ".join(cols) + " |", "|" + " --- |" * (4 + len(cols))]
    for r in rows:
        if r["default"] and r["input"] == first:
            kernel = r["kernel"] + (f" ({r['variant']})" if r["variant"] != "-" else "")
            vals = (kernel, str(r["launches"]), r["mode"], r["config"], *(str(r.get(c, "")) for c in cols))
            lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("kernel", "variant", "launches", "mode", "input", "config", *COLUMNS, *SCHEDULE, "gemm")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cfg = r["config"] + (" (default)" if r["default"] else "")
        vals = (r["kernel"], r["variant"], str(r["launches"]), r["mode"], r["input"], cfg)
        vals += (*(str(r.get(c, "")) for c in COLUMNS + SCHEDULE), "yes" if r["gemm"] else "no")
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)


DIFF_COLUMNS = (
    "REG",
    "STACK",
    "SHARED",
    "CTAS",
    "BAR_SYNC",
    "LOOPS",
    "HGMMA",
    "LDGSTS",
    "LDG128",
    "LDG64",
    "LDG32",
    "LDG16",
)


def diff_table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """Default configurations side by side, `before -> after` where a column changed."""

    def flags(r: dict[str, Any]) -> set[str]:
        return set(r["variant"].split("+")) - {"-"}

    old: dict[tuple, list[dict[str, Any]]] = {}
    for r in before:
        if r["default"]:
            old.setdefault((r["kernel"], r["mode"], r["input"]), []).append(r)
    lines = [
        "| kernel | mode | input | config | " + " | ".join(DIFF_COLUMNS) + " |",
        "|" + " --- |" * (4 + len(DIFF_COLUMNS)),
    ]
    for r in after:
        # The same launch before: its variant, or one whose flags the new variant only adds to
        # (a constexpr flag a change introduced).
        same = [o for o in old.get((r["kernel"], r["mode"], r["input"]), []) if flags(o) <= flags(r)]
        if not r["default"] or not same:
            continue
        o = max(same, key=lambda o: len(flags(o)))
        cells = []
        for c in DIFF_COLUMNS:
            a, b = o.get(c, ""), r.get(c, "")
            cells.append(f"{a}" if a == b else f"**{a} -> {b}**")
        config = r["config"] if r["config"] == o["config"] else f"{o['config']} -> {r['config']}"
        kernel = r["kernel"] + (f" ({r['variant']})" if r["variant"] != "-" else "")
        lines.append(f"| {kernel} | {r['mode']} | {r['input']} | {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def problems(rows: list[dict[str, Any]]) -> list[str]:
    """What the CI test refuses: spills anywhere; a GEMM kernel without tensor cores where it should use them."""
    out = []
    for r in rows:
        where = f"{r['kernel']} [{r['variant']}] {r['mode']} {r['input']} {r['config']}"
        if r["STACK"] > 0 or r["LDL"] or r["STL"]:
            out.append(f"{where}: spills ({r['STACK']} bytes of stack, {r['LDL']} LDL, {r['STL']} STL)")
        if r["gemm"] and r["mode"] in TENSOR_CORE_MODES and not (r["HGMMA"] or r["HMMA"]):
            out.append(f"{where}: a GEMM kernel with no tensor-core instruction (HGMMA/HMMA)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="320x180,1280x720", help="WIDTHxHEIGHT list (default: 320x180,1280x720)")
    ap.add_argument("--modes", default=",".join(m for m in MODES if m != "bf16"), help=f"of {', '.join(MODES)}")
    ap.add_argument("--defaults-only", action="store_true", help="compile only each launcher's default configuration")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    ap.add_argument("--doc-table", action="store_true", help="print docs/kernels.md's table (defaults, first size)")
    ap.add_argument("--from-json", type=Path, help="print the tables of an earlier --json run instead of compiling")
    ap.add_argument(
        "--diff", type=Path, help="with --from-json: compare an earlier --json run (before) with it (after)"
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="compile in parallel processes")
    ap.add_argument(
        "--warm-cache",
        action="store_true",
        help="only compile every candidate of both architectures in every mode into Triton's cache (on the GPU machine)",
    )
    args = ap.parse_args()
    os.environ.pop("TRITON_INTERPRET", None)
    sizes = []
    for s in args.sizes.split(","):
        w, h = (int(v) for v in s.lower().split("x"))
        sizes.append((h, w))
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"kernels_sm90: unknown mode {unknown[0]!r}: use {', '.join(MODES)}", file=sys.stderr)
        return 2
    import triton

    if args.from_json:
        rows = json.loads(args.from_json.read_text())["rows"]
        if args.diff:
            print(diff_table(json.loads(args.diff.read_text())["rows"], rows))
            return 0
        print(doc_table(rows) if args.doc_table else table(rows))
        return 0
    t0 = time.time()
    if args.warm_cache:
        n = warm_cache(sizes, 1, args.workers)
        print(f"kernels_sm90: {n} kernels compiled into Triton's cache in {time.time() - t0:.0f} s")
        return 0
    rows = run(sizes, modes, args.defaults_only, workers=args.workers)
    print(f"srx kernels compiled for sm_90 with Triton {triton.__version__} in {time.time() - t0:.0f} s (no GPU used)")
    print(doc_table(rows) if args.doc_table else table(rows))
    bad = problems(rows)
    for line in bad:
        print("PROBLEM:", line)
    if args.json:
        meta = {"triton": triton.__version__, "target": "cuda sm_90", "command": " ".join(sys.argv)}
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        tmp.replace(args.json)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
