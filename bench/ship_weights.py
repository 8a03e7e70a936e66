"""Write the networks srx ships into srx/models/weights/ (safetensors, reproducibly).

    python bench/ship_weights.py team15                   # ../shared/weights/team15_SAFMN.pth -> team15_SAFMN_x4.safetensors
    python bench/ship_weights.py default RUN/best.safetensors   # a `srx train` checkpoint -> safmn_x{2,3,4}.safetensors

The state dict is copied unchanged (float32, the same names; strict srx loading is checked
before writing); the safetensors metadata records where it came from (file name, sha256,
license or training summary). The same input gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from srx.fileio import sha256_file  # noqa: E402
from srx.models import load_model  # noqa: E402
from srx.models.checkpoint import read_checkpoint  # noqa: E402
from srx.models.defaults import WEIGHTS  # noqa: E402

SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))


def write(dest: Path, source: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    model = load_model(source)  # detection + strict loading + finite values: refuse a damaged file here
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {**meta, "source": source.name, "source_sha256": sha256_file(source), "arch": model.spec.arch}
    save_file(sd, str(dest), metadata={"srx.shipped": json.dumps(meta, sort_keys=True)})
    print(f"wrote {dest.relative_to(REPO)} ({dest.stat().st_size:,} bytes) from {source.name}: {model.spec.label}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=["team15", "default"])
    p.add_argument("checkpoint", nargs="?", help="default: the srx train checkpoint to ship (best.safetensors)")
    a = p.parse_args()
    if a.name == "team15":
        src = SHARED / "weights" / "team15_SAFMN.pth"
        if read_checkpoint(src).param_key != "params":
            sys.exit("team15_SAFMN.pth: expected its 'params' entry")
        write(
            WEIGHTS / "team15_SAFMN_x4.safetensors",
            src,
            {"license": "Apache-2.0 (SAFMN, Long Sun et al.; see NOTICE)", "param_key": "params"},
        )
        return
    if a.checkpoint is None:
        sys.exit("default: give the srx train checkpoint to ship (RUN/best.safetensors)")
    ckpt = Path(a.checkpoint)
    run = json.loads(ckpt.with_suffix(".json").read_text())
    summary = {
        "trained_by": "srx train",
        "iteration": run["iteration"],
        "config": {k: run["config"][k] for k in ("iters", "batch", "patch", "lr", "warmup", "seed", "weights", "bf16")},
        "teacher": run["teacher"],
        "data": {k: run["data"][k] for k in ("images", "hr_pixels", "fingerprint")},
        "val": run["scores"]["best"],
        "commit": run["sessions"][0].get("commit"),
    }
    if run.get("init"):  # x2 / x3 start from the shipped x4 body: say so in the file
        summary["init"] = {k: run["init"][k] for k in ("source", "sha256", "copied")}
    # The file is named by the network's scale, so an x2 run can never overwrite the x4 default.
    write(WEIGHTS / f"safmn_x{run['model']['scale']}.safetensors", ckpt, summary)


if __name__ == "__main__":
    main()
