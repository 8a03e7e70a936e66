"""How much time OpenVINO's non-convolution nodes may take for issue 21's targets on this CPU.

Usage: python bench/openvino_ceiling.py OUTDIR --interleaved INTERLEAVED.json
                                       [--int8 MODEL.int8.onnx] [--runs 10]

Without --int8, the tables are made again from OUTDIR's profile JSON files, if any.

1. From the `interleaved.json` of bench/openvino_int8.py (torch.compile timed alone, then
   the OpenVINO rows interleaved, each with OpenVINO's node times per kind from a profiled
   compile whose node times add up to more than the timed median), per OpenVINO row:
   * convolutions: the convolution nodes' share of the node time, times the row's median;
   * the rest: the median less that (LayerNorm statistics, element-wise, split,
     concatenation, pooling, resize, layout);
   * issue 21's target (FP32 1.2x, INT8 2x torch.compile) as a time, what it leaves for the
     rest with the convolutions as they are, and the ratio with the rest at zero.
2. With --int8 (the 7-bit file on a CPU without VNNI), `srx bench --input 320x180 --profile`
   on the FP32 network (torch-compile, openvino) and on that file (torch-compile,
   openvino-int8), each in a quiet window: torch.compile's own time outside its
   convolutions next to OpenVINO's, and the same allowance per OpenVINO row.
Writes OUTDIR/ceiling.md, profile_fp32.{txt,json}, profile_int8.{txt,json}, environment.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from machine import write_environment
from openvino_fp32 import bench
from portable import write_text

TARGETS = {"openvino (FP32)": 1.2}  # every other row is an INT8 one: 2x
INT8_TARGET = 2.0


def is_convolution(kind: str) -> bool:
    return kind.startswith(("Convolution ", "GroupConvolution "))


def allowance(path: Path) -> list[str]:
    record = json.loads(path.read_text())
    rows, nodes = record["rows"], record["node_ms_per_run"]
    peer = rows["torch-compile"]["median_ms"]
    lines = [
        f"From `{path.name}` (320x180 x4, batch 1; torch.compile median {peer:.1f} ms in the same window).",
        "",
        "| row | median ms | vs torch.compile | convolutions ms | rest ms | target | rest allowed ms | rest at 0 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, kinds in nodes.items():
        median = rows[name]["median_ms"]
        conv = median * sum(ms for kind, ms in kinds.items() if is_convolution(kind)) / sum(kinds.values())
        target = TARGETS.get(name, INT8_TARGET)
        lines.append(f"| {name} | {median:.1f} | {peer / median:.2f}x | {conv:.1f} | {median - conv:.1f} | "
                     f"{target:.1f}x = {peer / target:.1f} ms | {peer / target - conv:.1f} | {peer / conv:.2f}x |")  # fmt: skip
    return lines


def profiles(out: Path, names: list[str]) -> list[str]:
    """Per row of each `srx bench --profile` JSON: the timed median, the profiled time, how
    much of it is convolution, and for OpenVINO the same allowance as `allowance` against
    the run's torch.compile median (the convolutions' share of the profile, times the median)."""
    lines = [
        "`srx bench --profile` (ms per run of the profiled runs; torch.compile: torch.profiler's CPU "
        "operators, OpenVINO: its node times):",
        "",
        "| run | row | timed median ms | profiled ms | convolutions ms | rest ms | target | rest allowed ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        rows = [r for r in json.loads((out / f"{name}.json").read_text())["results"] if r.get("status") == "ok"]
        peer = next(r["latency_ms"]["median"] for r in rows if r["backend"] == "torch-compile")
        for row in rows:
            p, median = row["profile"], row["latency_ms"]["median"]
            conv = p["categories"]["convolution"]["ms"]
            cells = [
                name,
                row["backend"],
                f"{median:.1f}",
                f"{p['total_ms']:.1f}",
                f"{conv:.1f}",
                f"{p['total_ms'] - conv:.1f}",
            ]
            if row["backend"].startswith("openvino"):
                target = 1.2 if row["backend"] == "openvino" else INT8_TARGET
                cells += [
                    f"{target:.1f}x = {peer / target:.1f} ms",
                    f"{peer / target - median * conv / p['total_ms']:.1f}",
                ]
            else:
                cells += ["-", "-"]
            lines.append(f"| {' | '.join(cells)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--interleaved", type=Path, required=True, help="bench/openvino_int8.py's interleaved.json")
    ap.add_argument("--int8", type=Path, help="an INT8 file OpenVINO runs in INT8 kernels on this CPU")
    ap.add_argument("--runs", default="10")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    lines = allowance(a.interleaved)
    if a.int8:
        write_environment(a.out, "python bench/openvino_ceiling.py " + " ".join(sys.argv[1:]))
        bench(a.out, "profile_fp32", "--backends", "torch-compile,openvino", "--profile", "--runs", a.runs)
        bench(a.out, "profile_int8", "--weights", "default", "--model", str(a.int8),
              "--backends", "torch-compile,openvino-int8", "--profile", "--runs", a.runs)  # fmt: skip
    if (a.out / "profile_int8.json").exists():  # this run's, or (without --int8) an earlier one's
        lines += ["", *profiles(a.out, ["profile_fp32", "profile_int8"])]
    write_text(a.out / "ceiling.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
