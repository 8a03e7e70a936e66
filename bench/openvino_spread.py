"""How much openvino-int8's ratio to torch.compile moves between `srx bench` runs on this machine.

Usage: python bench/openvino_spread.py OUTDIR --int8 MODEL.int8.onnx [--repeats 6] [--runs 10] [--rounds 1]

Runs `srx bench --input 320x180 --weights default --model MODEL.int8.onnx` --repeats times,
each in a quiet window (openvino_fp32.quiet), with the two backends in alternating order
(torch-compile first, then openvino-int8 first: srx bench times them one after the other
in the order given; with --rounds N > 1, srx bench's own rounds, the backends taking
turns), and writes each run's text and JSON (run_K.{txt,json}) and spread.json / spread.md:
per run the order, both medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from machine import write_environment
from openvino_fp32 import bench
from portable import write_json, write_text

ORDERS = ("torch-compile,openvino-int8", "openvino-int8,torch-compile")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--int8", type=Path, required=True, help="an INT8 file OpenVINO runs in INT8 kernels here")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--runs", default="10")
    ap.add_argument("--rounds", default="1", help="srx bench --rounds")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    write_environment(a.out, "python bench/openvino_spread.py " + " ".join(sys.argv[1:]))
    rows = []
    for k in range(a.repeats):
        order = ORDERS[k % 2]
        bench(a.out, f"run_{k + 1}", "--weights", "default", "--model", str(a.int8),
              "--backends", order, "--runs", a.runs, "--rounds", a.rounds)  # fmt: skip
        results = json.loads((a.out / f"run_{k + 1}.json").read_text())["results"]
        ms = {r["backend"]: r["latency_ms"]["median"] for r in results if r.get("status") == "ok"}
        rows.append({"run": k + 1, "first": order.split(",")[0], **ms,
                     "ratio": ms["torch-compile"] / ms["openvino-int8"]})  # fmt: skip
    ratios = [r["ratio"] for r in rows]
    write_json(
        a.out / "spread.json", {"input": "320x180", "batch": 1, "runs": a.runs, "rounds": a.rounds, "rows": rows}
    )
    lines = ["| run | first | torch-compile ms | openvino-int8 ms | ratio |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['run']} | {r['first']} | {r['torch-compile']:.1f} | {r['openvino-int8']:.1f} | {r['ratio']:.2f}x |"
              for r in rows]  # fmt: skip
    lines += ["", f"ratio: min {min(ratios):.2f}x, max {max(ratios):.2f}x"]
    write_text(a.out / "spread.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
