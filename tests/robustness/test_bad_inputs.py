"""Every command against bad input: one line on stderr that says what to do, exit 2, nothing written.

The case table below is the suite: one row per (command, bad input). Each row runs
in-process (robust.run_inprocess, the same `srx.cli.main` the console script runs);
`test_subprocess_agrees` runs a representative subset again as a real subprocess and
requires the same exit code and the same stderr. Cases that need the operating system to
enforce something on srx (unreadable folders, unwritable folders, a full disk) run as
restricted subprocesses in `test_restricted`.

After every case: exit code as expected, exactly one stderr line `srx: error: ...` with
no traceback, naming a next step; the output folder holds nothing new (no output, no
`.*.part` temp file, no empty folder); the input workspace is unchanged; the pickle canary
never appeared; /dev/full is still a device.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import workspace
from conftest import REPO, assert_one_line_error, run_srx
from robust import Result, files_under, permissions_are_enforced, run_inprocess, run_restricted, save_image

# A next step for the user: the line must contain one of these verbs (what to do), not only what is wrong.
ADVICE = re.compile(
    r"\b(use|give|check|choose|pass|drop|export|build|re-save|save|download|free|create|write|split|shrink|"
    r"pad|crop|install|evaluate|name|request|add|re-export|remove|convert|ask|retry|run|point|see)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Case:
    """`args`: the command line, {ws} = the input workspace, {out} = a fresh output folder that
    holds one regular file, file.txt. `expect`: part of the error line."""

    args: str
    expect: str
    code: int = 2
    bug: str = ""  # a known bug: the case is expected to fail until it is fixed

    def argv(self, ws: Path, out: Path) -> list[str]:
        return [a.replace("{ws}", str(ws)).replace("{out}", str(out)) for a in self.args.split()]


GOOD = "--weights {ws}/ckpt/good_x2.pth"
IMG = "{ws}/img/good.png"
UP = f"upscale {IMG} -o {{out}}/o.png"
Q = "quantize {ws}/onnx/good_x2.onnx --calib-dir {ws}/dirs/good -o {out}/q.onnx"
B = "build-engine {ws}/onnx/good_x2.onnx --fp16 --backend tensorrt-rtx -o {out}/e.engine"

CASES: dict[str, Case] = {
    # -- srx info: checkpoints ---------------------------------------------------------------
    "info-ckpt-missing": Case("info {ws}/ckpt/missing.pth", "does not exist"),
    "info-ckpt-empty": Case("info {ws}/ckpt/empty.pth", "is empty (0 bytes)"),
    "info-ckpt-truncated": Case("info {ws}/ckpt/truncated.pth", "truncated or corrupt"),
    "info-ckpt-random": Case("info {ws}/ckpt/random.pth", "truncated or corrupt"),
    "info-ckpt-foreign": Case("info {ws}/ckpt/foreign.pth", "not a SAFMN-family checkpoint"),
    "info-ckpt-partial": Case(
        "info {ws}/ckpt/partial.pth",
        "incomplete or modified",
    ),
    "info-ckpt-reshaped": Case(
        "info {ws}/ckpt/reshaped.pth",
        "incomplete or modified",
    ),
    "info-ckpt-scalar-layer": Case("info {ws}/ckpt/scalar.pth", "incomplete or modified"),
    "info-ckpt-nan": Case(
        "info {ws}/ckpt/nan.pth",
        "NaN or infinite",
    ),
    "info-ckpt-huge": Case("info {ws}/ckpt/huge.pth", "at most tens of MB"),
    "info-ckpt-pickle-zip": Case("info {ws}/ckpt/evil_zip.pth", "refused to load"),
    "info-ckpt-pickle-raw": Case("info {ws}/ckpt/evil_raw.pth", "refused to load"),
    "info-ckpt-list": Case("info {ws}/ckpt/list.pth", "not a state dict"),
    "info-ckpt-folder": Case("info {ws}/ckpt/folder.pth", "is a folder"),
    "info-safetensors-truncated": Case("info {ws}/ckpt/truncated.safetensors", "not a readable .safetensors"),
    "info-safetensors-random": Case("info {ws}/ckpt/random.safetensors", "not a readable .safetensors"),
    "info-param-key-missing": Case("info {ws}/ckpt/good_x2.pth --param-key nope", "has no key 'nope'"),
    # -- srx info: ONNX, engines, other files, outputs ---------------------------------------
    "info-onnx-garbage": Case("info {ws}/onnx/garbage.onnx", "not a readable ONNX file"),
    "info-onnx-truncated": Case("info {ws}/onnx/truncated.onnx", "not a readable ONNX file"),
    "info-onnx-empty": Case("info {ws}/onnx/empty.onnx", "not an ONNX model"),
    "info-onnx-external-data": Case("info {ws}/onnx/external.onnx", "external data files"),
    "info-onnx-path-traversal": Case("info {ws}/onnx/traversal.onnx", "external data files"),
    "info-onnx-huge": Case("info {ws}/onnx/huge.onnx", "larger than any single-file ONNX"),
    "info-onnx-param-key": Case("info {ws}/onnx/good_x2.onnx --param-key params", "drop it"),
    "info-engine-missing": Case("info {ws}/engine/missing.engine", "does not exist"),
    "info-unknown-type": Case("info {ws}/file.txt", "unknown file type .txt"),
    "info-json-dev-full": Case("info {ws}/ckpt/good_x2.pth --json /dev/full", "not a regular file"),
    "info-json-under-file": Case(
        "info {ws}/ckpt/good_x2.pth --json {out}/file.txt/i.json",
        "is a file",
    ),
    # -- srx export --------------------------------------------------------------------------
    "export-ckpt-missing": Case("export --weights {ws}/ckpt/missing.pth -o {out}/m.onnx", "does not exist"),
    "export-ckpt-empty": Case("export --weights {ws}/ckpt/empty.pth -o {out}/m.onnx", "is empty"),
    "export-ckpt-truncated": Case("export --weights {ws}/ckpt/truncated.pth -o {out}/m.onnx", "truncated"),
    "export-ckpt-random": Case(
        "export --weights {ws}/ckpt/random.pth -o {out}/m.onnx",
        "truncated or corrupt",
    ),
    "export-ckpt-foreign": Case("export --weights {ws}/ckpt/foreign.pth -o {out}/m.onnx", "not a SAFMN-family"),
    "export-ckpt-partial": Case(
        "export --weights {ws}/ckpt/partial.pth -o {out}/m.onnx",
        "incomplete or modified",
    ),
    "export-ckpt-nan": Case(
        "export --weights {ws}/ckpt/nan.pth -o {out}/m.onnx",
        "NaN or infinite",
    ),
    "export-ckpt-huge": Case("export --weights {ws}/ckpt/huge.pth -o {out}/m.onnx", "at most tens of MB"),
    "export-ckpt-pickle-zip": Case("export --weights {ws}/ckpt/evil_zip.pth -o {out}/m.onnx", "refused to load"),
    "export-ckpt-pickle-raw": Case("export --weights {ws}/ckpt/evil_raw.pth -o {out}/m.onnx", "refused to load"),
    "export-ckpt-is-onnx": Case(
        "export --weights {ws}/onnx/good_x2.onnx -o {out}/m.onnx",
        "is an ONNX model",
    ),
    "export-scale-1": Case("export --scale 1 -o {out}/m.onnx", "--scale 1 is not supported"),
    "export-scale-0": Case("export --scale 0 -o {out}/m.onnx", "--scale 0 is not supported"),
    "export-scale-negative": Case("export --scale -2 -o {out}/m.onnx", "--scale -2 is not supported"),
    "export-scale-word": Case("export --scale two -o {out}/m.onnx", "'two' is not a valid integer"),
    "export-scale-contradicts": Case(f"export {GOOD} --scale 3 -o {{out}}/m.onnx", "--scale 3 contradicts"),
    "export-size-zero": Case("export --input 0x180 -o {out}/m.onnx", "has a zero side"),
    "export-size-negative": Case("export --input -5x10 -o {out}/m.onnx", "is not WIDTHxHEIGHT"),
    "export-size-unparsable": Case("export --input 1e3x5 -o {out}/m.onnx", "is not WIDTHxHEIGHT"),
    "export-size-half": Case("export --input 320x -o {out}/m.onnx", "is not WIDTHxHEIGHT"),
    "export-size-below-minimum": Case(f"export {GOOD} --input 7x9 -o {{out}}/m.onnx", "minimum of 8x8"),
    "export-size-absurd": Case("export --input 99999999999999999999x5 -o {out}/m.onnx", "larger than 16384"),
    "export-size-out-of-memory": Case("export --input 16384x16384 -o {out}/m.onnx", "of memory"),
    "export-opset": Case("export --opset 5 -o {out}/m.onnx", "--opset 5 is not supported"),
    "export-out-under-file": Case(
        f"export {GOOD} -o {{out}}/file.txt/m.onnx",
        "is a file",
    ),
    "export-out-dev-full": Case(f"export {GOOD} -o /dev/full", "not a regular file"),
    "export-out-directory": Case(f"export {GOOD} -o {{out}}", "is a directory"),
    "export-out-missing-folder": Case(f"export {GOOD} -o {{out}}/no/m.onnx", "does not exist"),
    "export-json-under-file": Case(
        f"export {GOOD} -o {{out}}/m.onnx --json {{out}}/file.txt/r.json",
        "is a file",
    ),
    # -- srx eval ----------------------------------------------------------------------------
    "eval-dataset-missing": Case("eval --dataset {ws}/dirs/missing", "does not exist"),
    "eval-dataset-file": Case("eval --dataset {ws}/file.txt", "is not a folder"),
    "eval-dataset-empty": Case("eval --dataset {ws}/dirs/empty", "is empty"),
    "eval-dataset-no-images": Case("eval --dataset {ws}/dirs/textonly", "has no images"),
    "eval-image-truncated": Case("eval --dataset {ws}/dirs/one_bad", "truncated"),
    "eval-image-bomb": Case("eval --dataset {ws}/dirs/bombs", "decompression-bomb"),
    "eval-image-bomb-warning": Case("eval --dataset {ws}/dirs/bomb_warn", "decompression-bomb"),
    "eval-ckpt-pickle": Case("eval --dataset {ws}/dirs/one_bad --model {ws}/ckpt/evil_raw.pth", "refused to load"),
    "eval-ckpt-random": Case("eval --dataset {ws}/dirs/one_bad --weights {ws}/ckpt/random.pth", "corrupt"),
    "eval-ckpt-foreign": Case("eval --dataset {ws}/img --model {ws}/ckpt/foreign.pth", "not a SAFMN-family"),
    "eval-scale": Case("eval --dataset {ws}/img --scale 5", "--scale 5 is not supported"),
    "eval-scale-word": Case("eval --dataset {ws}/img --scale two", "'two' is not a valid integer"),
    "eval-scale-contradicts": Case(f"eval --dataset {{ws}}/img {GOOD} --scale 3", "--scale 3 contradicts"),
    "eval-scale-contradicts-onnx": Case(
        "eval --dataset {ws}/img --model {ws}/onnx/good_x2.onnx --scale 4", "--scale 4 contradicts"
    ),
    "eval-model-missing": Case("eval --dataset {ws}/img --model {ws}/onnx/missing.onnx", "nor an existing file"),
    "eval-model-and-weights": Case(f"eval --dataset {{ws}}/img {GOOD} --model bicubic-rgb", "not both"),
    "eval-ckpt-empty": Case("eval --dataset {ws}/img --model {ws}/ckpt/empty.pth", "is empty (0 bytes)"),
    "eval-ckpt-truncated": Case("eval --dataset {ws}/img --model {ws}/ckpt/truncated.pth", "truncated or corrupt"),
    "eval-ckpt-partial": Case("eval --dataset {ws}/img --model {ws}/ckpt/partial.pth", "incomplete or modified"),
    "eval-ckpt-pickle-zip": Case("eval --dataset {ws}/img --model {ws}/ckpt/evil_zip.pth", "refused to load"),
    "eval-param-key": Case(f"eval --dataset {{ws}}/img {GOOD} --param-key nope", "has no key 'nope'"),
    "eval-onnx-garbage": Case("eval --dataset {ws}/img --model {ws}/onnx/garbage.onnx", "not a readable ONNX"),
    "eval-onnx-truncated": Case("eval --dataset {ws}/img --model {ws}/onnx/truncated.onnx", "not a readable ONNX"),
    "eval-onnx-empty": Case("eval --dataset {ws}/img --model {ws}/onnx/empty.onnx", "not an ONNX model"),
    "eval-onnx-not-image-model": Case("eval --dataset {ws}/img --model {ws}/onnx/relu.onnx", "not an srx image model"),
    "eval-onnx-huge": Case("eval --dataset {ws}/img --model {ws}/onnx/huge.onnx", "larger than any single-file"),
    "eval-engine-garbage": Case("eval --dataset {ws}/img --model {ws}/engine/garbage.engine", "has no sidecar"),
    "eval-engine-bad-sidecar": Case("eval --dataset {ws}/img --model {ws}/engine/badjson.engine", "not readable JSON"),
    "eval-json-under-file": Case(f"eval --dataset {{ws}}/img {GOOD} --json {{out}}/file.txt/r.json", "is a file"),
    "eval-json-dev-full": Case(
        f"eval --dataset {{ws}}/dirs/textonly {GOOD} --json /dev/full",
        "not a regular file",
    ),
    # -- srx bench ---------------------------------------------------------------------------
    "bench-size-zero": Case("bench --input 0x0", "has a zero side"),
    "bench-size-unparsable": Case("bench --input axb", "is not WIDTHxHEIGHT"),
    "bench-size-below-minimum": Case(f"bench {GOOD} --input 4x4", "minimum of 8x8"),
    "bench-size-absurd": Case("bench --input 16385x16385", "larger than 16384"),
    "bench-size-out-of-memory": Case("bench --input 16384x16384", "of memory"),
    "bench-runs": Case("bench --runs 0", "need at least 1"),
    "bench-warmup": Case("bench --warmup -1", "cannot be negative"),
    "bench-threads": Case("bench --threads 0", "need at least 1"),
    "bench-backend-unknown": Case("bench --backends torch,nope", "unknown backend 'nope'"),
    "bench-ckpt-partial": Case(
        "bench --weights {ws}/ckpt/partial.pth",
        "incomplete or modified",
    ),
    "bench-ckpt-pickle": Case("bench --weights {ws}/ckpt/evil_zip.pth", "refused to load"),
    "bench-onnx-garbage": Case("bench --model {ws}/onnx/garbage.onnx --input 16x16", "not a readable ONNX"),
    "bench-onnx-truncated": Case("bench --model {ws}/onnx/truncated.onnx --input 16x16", "not a readable ONNX"),
    "bench-onnx-not-image-model": Case("bench --model {ws}/onnx/relu.onnx --input 16x16", "not an srx image model"),
    "bench-onnx-forged": Case(
        "bench --model {ws}/onnx/forged.onnx --input 16x16 --runs 1",
        "expected (1, 3, 32, 32)",
    ),
    "bench-onnx-path-traversal": Case("bench --model {ws}/onnx/traversal.onnx --input 16x16", "external data"),
    "bench-engine-garbage": Case("bench --model {ws}/engine/garbage.engine --input 16x16", "has no sidecar"),
    "bench-engine-bad-sidecar": Case("bench --model {ws}/engine/badjson.engine --input 16x16", "not readable JSON"),
    "bench-engine-other-device": Case("bench --model {ws}/engine/other.engine --input 16x16", "no backend can run"),
    "bench-images-empty": Case("bench --images {ws}/dirs/empty --input 16x16", "no PNG, JPEG, WebP, BMP or TIFF"),
    "bench-images-file": Case("bench --images {ws}/file.txt --input 16x16", "is not a folder"),
    "bench-images-truncated": Case(f"bench {GOOD} --images {{ws}}/dirs/one_bad --input 16x16", "truncated"),
    "bench-json-dev-full": Case("bench --json /dev/full", "not a regular file"),
    "bench-plot-under-file": Case(
        "bench --plot {out}/file.txt/p.png",
        "is a file",
    ),
    "bench-compare-not-json": Case("bench --compare {ws}/bad.json", "not a JSON file written by srx bench"),
    "bench-compare-missing": Case("bench --compare {ws}/missing.json", "does not exist"),
    "bench-device-cuda": Case("bench --device cuda --input 16x16", "use --device cpu"),
    # -- srx upscale: images and folders -----------------------------------------------------
    "upscale-image-text": Case(f"upscale {{ws}}/img/text.png -o {{out}}/o.png {GOOD}", "not an image"),
    "upscale-image-empty": Case(f"upscale {{ws}}/img/empty.png -o {{out}}/o.png {GOOD}", "empty file"),
    "upscale-image-truncated": Case(f"upscale {{ws}}/img/truncated.png -o {{out}}/o.png {GOOD}", "truncated"),
    "upscale-image-random": Case(f"upscale {{ws}}/img/random.jpg -o {{out}}/o.png {GOOD}", "not an image"),
    "upscale-image-gif": Case(f"upscale {{ws}}/img/anim.gif -o {{out}}/o.png {GOOD}", "GIF images are not supported"),
    "upscale-image-bomb": Case(f"upscale {{ws}}/img/bomb.png -o {{out}}/o.png {GOOD}", "decompression-bomb"),
    "upscale-image-bomb-warning": Case(f"upscale {{ws}}/img/bomb_warn.png -o {{out}}/o.png {GOOD}", "decompression"),
    "upscale-image-missing": Case(f"upscale {{ws}}/img/missing.png -o {{out}}/o.png {GOOD}", "does not exist"),
    "upscale-folder-empty": Case(f"upscale {{ws}}/dirs/empty -o {{out}}/o {GOOD}", "holds no PNG"),
    "upscale-folder-no-images": Case(f"upscale {{ws}}/dirs/textonly -o {{out}}/o {GOOD}", "holds no PNG"),
    "upscale-folder-one-bad": Case(f"upscale {{ws}}/dirs/one_bad -o {{out}}/o {GOOD}", "truncated"),
    "upscale-same-name-twice": Case(f"upscale {IMG} {IMG} -o {{out}}/o {GOOD}", "would both be written"),
    "upscale-overwrite-input": Case(f"upscale {IMG} -o {IMG} {GOOD}", "would overwrite the input"),
    # -- srx upscale: outputs ----------------------------------------------------------------
    "upscale-out-under-file": Case(
        f"upscale {IMG} -o {{out}}/file.txt/o.png {GOOD}",
        "is a file",
    ),
    "upscale-out-dev-full": Case(
        f"upscale {IMG} -o /dev/full {GOOD}",
        "not a folder",
    ),
    "upscale-out-existing-file": Case(
        f"upscale {IMG} -o {{out}}/file.txt {GOOD}",
        "not a folder",
    ),
    "upscale-out-gif": Case(
        f"upscale {IMG} -o {{out}}/o.gif {GOOD}",
        "cannot write GIF",
    ),
    "upscale-json-dev-full": Case(f"{UP} {GOOD} --json /dev/full", "not a regular file"),
    # -- srx upscale: models and options -----------------------------------------------------
    "upscale-ckpt-truncated": Case(f"{UP} --weights {{ws}}/ckpt/truncated.pth", "truncated or corrupt"),
    "upscale-ckpt-partial": Case(
        f"{UP} --weights {{ws}}/ckpt/partial.pth",
        "incomplete or modified",
    ),
    "upscale-ckpt-nan": Case(
        f"{UP} --weights {{ws}}/ckpt/nan.pth",
        "NaN or infinite",
    ),
    "upscale-ckpt-pickle-zip": Case(f"{UP} --weights {{ws}}/ckpt/evil_zip.pth", "refused to load"),
    "upscale-ckpt-pickle-raw": Case(f"{UP} --weights {{ws}}/ckpt/evil_raw.pth", "refused to load"),
    "upscale-onnx-garbage": Case(f"{UP} --model {{ws}}/onnx/garbage.onnx", "not a readable ONNX"),
    "upscale-onnx-empty": Case(f"{UP} --model {{ws}}/onnx/empty.onnx", "not an ONNX model (no graph)"),
    "upscale-onnx-not-image-model": Case(f"{UP} --model {{ws}}/onnx/relu.onnx", "not an srx image model"),
    "upscale-onnx-forged": Case(
        f"{UP} --model {{ws}}/onnx/forged.onnx",
        "expected (1, 3, 48, 56)",
    ),
    "upscale-onnx-nan-output": Case(f"{UP} --model {{ws}}/onnx/nan.onnx", "NaN or infinite", code=1),
    "upscale-onnx-external-data": Case(f"{UP} --model {{ws}}/onnx/external.onnx", "external data files"),
    "upscale-onnx-huge": Case(f"{UP} --model {{ws}}/onnx/huge.onnx", "larger than any single-file ONNX"),
    "upscale-onnx-scale": Case(f"{UP} --model {{ws}}/onnx/good_x2.onnx --scale 4", "--scale 4 contradicts"),
    "upscale-engine-garbage": Case(f"{UP} --model {{ws}}/engine/garbage.engine", "has no sidecar"),
    "upscale-engine-other-device": Case(f"{UP} --model {{ws}}/engine/other.engine", "cannot run"),
    "upscale-scale": Case(f"{UP} --scale 7", "--scale 7 is not supported"),
    "upscale-tile-below-minimum": Case(f"{UP} {GOOD} --tile 4", "smaller than this model's minimum"),
    "upscale-tile-negative": Case(f"{UP} {GOOD} --tile -5", "smaller than this model's minimum"),
    "upscale-overlap-negative": Case(f"{UP} {GOOD} --tile-overlap -1", "cannot be negative"),
    "upscale-backend-unknown": Case(f"{UP} {GOOD} --backend tensort", "unknown backend"),
    "upscale-device-cuda": Case(f"{UP} {GOOD} --device cuda", "cannot run"),
    # -- srx quantize ------------------------------------------------------------------------
    "quantize-onnx-missing": Case(Q.replace("good_x2", "missing"), "does not exist"),
    "quantize-onnx-garbage": Case(Q.replace("good_x2", "garbage"), "not a readable ONNX file"),
    "quantize-onnx-truncated": Case(Q.replace("good_x2", "truncated"), "not a readable ONNX file"),
    "quantize-onnx-empty": Case(Q.replace("good_x2", "empty"), "not an ONNX model (no graph)"),
    "quantize-onnx-not-image-model": Case(Q.replace("good_x2", "relu"), "not an srx image model"),
    "quantize-onnx-external-data": Case(Q.replace("good_x2", "external"), "external data files"),
    "quantize-onnx-path-traversal": Case(Q.replace("good_x2", "traversal"), "external data files"),
    "quantize-onnx-huge": Case(Q.replace("good_x2", "huge"), "larger than any single-file ONNX"),
    "quantize-onnx-forged": Case(Q.replace("good_x2", "forged"), "no convolutions to quantize"),
    "quantize-ckpt-given": Case(
        Q.replace("onnx/good_x2.onnx", "ckpt/good_x2.pth"), "is a checkpoint, not an ONNX model"
    ),
    "quantize-calib-missing": Case(Q.replace("dirs/good", "dirs/missing"), "does not exist"),
    "quantize-calib-file": Case(Q.replace("dirs/good", "file.txt"), "not a folder"),
    "quantize-calib-empty": Case(Q.replace("dirs/good", "dirs/empty"), "holds no images"),
    "quantize-calib-no-images": Case(Q.replace("dirs/good", "dirs/textonly"), "holds no images"),
    "quantize-calib-one-image": Case(Q.replace("dirs/good", "dirs/one_bad"), "needs at least 2"),
    "quantize-calib-bomb": Case(Q.replace("dirs/good", "dirs/calib_bomb"), "decompression-bomb"),
    "quantize-calib-truncated": Case(Q.replace("dirs/good", "dirs/calib_bad"), "damaged or truncated"),
    "quantize-calib-images-zero": Case(f"{Q} --calib-images 0", "--calib-images 0: must be at least 1"),
    "quantize-held-out-zero": Case(f"{Q} --held-out 0", "--held-out 0: must be at least 1"),
    "quantize-crop-too-small": Case(f"{Q} --crop 4", "--crop 4: must be at least 8"),
    "quantize-sensitivity-crops-zero": Case(f"{Q} --sensitivity-crops 0", "must be at least 1"),
    "quantize-target-drop-negative": Case(f"{Q} --target-drop -1", "must be >= 0 dB"),
    "quantize-max-drop-nan": Case(f"{Q} --max-psnr-drop nan", "must be >= 0 dB"),
    "quantize-method-unknown": Case(f"{Q} --method best", "Invalid value for '--method'"),
    "quantize-out-under-file": Case(Q.replace("{out}/q.onnx", "{out}/file.txt/q.onnx"), "is a file"),
    "quantize-out-dev-full": Case(Q.replace("{out}/q.onnx", "/dev/full"), "not a regular file"),
    "quantize-out-directory": Case(Q.replace("{out}/q.onnx", "{out}"), "is a directory"),
    "quantize-out-is-input": Case(Q.replace("{out}/q.onnx", "{ws}/onnx/good_x2.onnx"), "is the input model"),
    "quantize-json-dev-full": Case(f"{Q} --json /dev/full", "not a regular file"),
    # -- srx build-engine --------------------------------------------------------------------
    "build-onnx-missing": Case(B.replace("good_x2", "missing"), "does not exist"),
    "build-onnx-garbage": Case(B.replace("good_x2", "garbage"), "not a readable ONNX file"),
    "build-onnx-truncated": Case(B.replace("good_x2", "truncated"), "not a readable ONNX file"),
    "build-onnx-not-image-model": Case(B.replace("good_x2", "relu"), "not an srx image model"),
    "build-onnx-external-data": Case(B.replace("good_x2", "external"), "external data files"),
    "build-onnx-huge": Case(B.replace("good_x2", "huge"), "larger than any single-file ONNX"),
    "build-ckpt-given": Case(B.replace("onnx/good_x2.onnx", "ckpt/good_x2.pth"), "is a checkpoint, not an ONNX model"),
    "build-engine-given": Case(
        B.replace("onnx/good_x2.onnx", "engine/garbage.engine"), "is a TensorRT engine, not an ONNX model"
    ),
    "build-backend-not-installed": Case(B.replace("tensorrt-rtx", "tensorrt"), "which is not installed"),
    "build-two-precisions": Case(f"{B} --int8", "give one precision"),
    "build-int8-without-calibration": Case(B.replace("--fp16", "--int8"), "--int8 needs calibration images"),
    "build-int8-calib-empty": Case(f"{B.replace('--fp16', '--int8')} --calib-dir {{ws}}/dirs/empty", "holds no images"),
    "build-int8-calib-bomb": Case(f"{B.replace('--fp16', '--int8')} --calib-dir {{ws}}/dirs/calib_bomb", "bomb"),
    "build-min-zero": Case(f"{B} --min 0x0", "has a zero side"),
    "build-min-unparsable": Case(f"{B} --min abc", "is not WIDTHxHEIGHT"),
    "build-min-below-minimum": Case(f"{B} --min 4x4", "below this model's minimum input 8x8"),
    "build-min-above-max": Case(f"{B} --min 256x256 --max 128x128", "larger than --max"),
    "build-opt-outside": Case(f"{B} --opt 4000x4000", "is outside --min"),
    "build-max-absurd": Case(f"{B} --max 99999x99999", "larger than 16384"),
    "build-batch-zero": Case(f"{B} --batch 0", "--batch '0'"),
    "build-batch-order": Case(f"{B} --batch 3:2:1", "needs MIN <= OPT <= MAX"),
    "build-batch-word": Case(f"{B} --batch x", "--batch 'x'"),
    "build-workspace-zero": Case(f"{B} --workspace 0", "at least 1"),
    "build-dla-without-jetson": Case(f"{B} --dla-core 0", "needs --target jetson"),
    "build-dla-negative": Case(f"{B} --dla-core -1 --target jetson", "N >= 0"),
    "build-rtx-targets": Case(f"{B} --rtx-targets 9.9", "TensorRT-RTX targets are"),
    "build-timing-cache-rtx": Case(f"{B} --timing-cache {{out}}/t.cache", "has no timing cache"),
    "build-timing-cache-under-file": Case(
        f"{B} --timing-cache {{out}}/file.txt/t.cache", "choose another --timing-cache"
    ),
    "build-out-under-file": Case(B.replace("{out}/e.engine", "{out}/file.txt/e.engine"), "is a file"),
    "build-out-dev-full": Case(B.replace("{out}/e.engine", "/dev/full"), "must end in"),
    "build-out-directory": Case(B.replace("{out}/e.engine", "{out}"), "must end in"),
    "build-out-is-input": Case(B.replace("{out}/e.engine", "{ws}/onnx/good_x2.onnx"), "must end in"),
    "build-json-dev-full": Case(f"{B} --json /dev/full", "not a regular file"),
}

# Run again as real subprocesses (one per command and per kind of failure): the in-process
# runner must give the same exit code and the same stderr.
SUBPROCESS = [
    "info-ckpt-pickle-raw",
    "info-onnx-truncated",
    "export-size-below-minimum",
    "export-out-dev-full",
    "eval-image-bomb",
    "bench-onnx-forged",
    "upscale-image-truncated",
    "upscale-folder-one-bad",
    "upscale-onnx-forged",
    "quantize-calib-bomb",
    "build-min-below-minimum",
]


def _params(ids: list[str]) -> list[object]:
    out = []
    for name in ids:
        case = CASES[name]
        marks = [pytest.mark.xfail(reason=case.bug, strict=True)] if case.bug else []
        out.append(pytest.param(case, id=name, marks=marks))
    return out


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return workspace.build(tmp_path_factory.mktemp("robustness-inputs"))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "file.txt").write_text("a regular file\n")
    return folder


def check_failure(result: Result, case: Case, ws: Path, out: Path, ws_before: set[str]) -> str:
    line = assert_one_line_error(result, case.code)
    assert case.expect in line, f"expected {case.expect!r} in: {line}"
    assert ADVICE.search(line.split(":", 2)[-1]), f"the message does not say what to do: {line}"
    left = files_under(out) - {"file.txt"}
    assert not left, f"left behind in the output folder: {sorted(left)}"
    assert files_under(ws) == ws_before, f"the input workspace changed: {sorted(files_under(ws) ^ ws_before)}"
    assert not (ws / workspace.CANARY).exists(), "a pickle ran code"
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode), "/dev/full was replaced"
    assert (out / "file.txt").read_text() == "a regular file\n"
    return line


@pytest.mark.parametrize("case", _params(list(CASES)))
def test_bad_input(case: Case, ws: Path, out: Path) -> None:
    before = files_under(ws)
    check_failure(run_inprocess(*case.argv(ws, out)), case, ws, out, before)


@pytest.mark.parametrize("case", _params(SUBPROCESS))
def test_subprocess_agrees(case: Case, ws: Path, out: Path) -> None:
    before = files_under(ws)
    proc = run_srx(*case.argv(ws, out))
    line = check_failure(proc, case, ws, out, before)
    again = run_inprocess(*case.argv(ws, out))
    assert (again.returncode, again.stderr.strip()) == (proc.returncode, line)


MEMORY = {
    "export-out-of-memory": f"export {GOOD} -o {{out}}/m.onnx",
    "bench-out-of-memory": f"bench {GOOD} --input 16x16 --runs 1",
    "upscale-out-of-memory": f"{UP} {GOOD} --tile -1 --backend torch",
}


@pytest.mark.parametrize("args", list(MEMORY.values()), ids=list(MEMORY))
def test_memory_guard(args: str, ws: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work that cannot fit is refused before it starts (here: a machine with 100 kB free)."""
    import srx.resources

    monkeypatch.setattr(srx.resources, "available_memory", lambda: 100_000)
    before = files_under(ws)
    check_failure(run_inprocess(*Case(args, "").argv(ws, out)), Case(args, "MB available here"), ws, out, before)


# -- cases the operating system must enforce -------------------------------------------------


@dataclass(frozen=True)
class Restricted:
    """Like Case, run as a subprocess that obeys file modes (also as root). `lock`: a path
    (in {out}) to chmod before the run; `max_file_bytes`: writes beyond it fail (a full disk)."""

    args: str
    expect: str
    lock: str = ""
    mode: int = 0
    max_file_bytes: int | None = None
    bug: str = ""


RESTRICTED: dict[str, Restricted] = {
    "upscale-folder-unreadable": Restricted(
        f"upscale {{out}}/locked -o {{out}}/o {GOOD}",
        "cannot",
        "locked",
    ),
    "upscale-image-unreadable": Restricted(
        f"upscale {{out}}/locked.png -o {{out}}/o.png {GOOD}",
        "cannot read",
        "locked.png",
    ),
    "eval-dataset-unreadable": Restricted(
        f"eval --dataset {{out}}/locked {GOOD}",
        "cannot",
        "locked",
    ),
    "bench-images-unreadable": Restricted(
        f"bench {GOOD} --images {{out}}/locked --input 16x16",
        "cannot",
        "locked",
    ),
    "info-ckpt-unreadable": Restricted(
        "info {out}/locked.pth",
        "cannot read",
        "locked.pth",
    ),
    "export-out-unwritable": Restricted(f"export {GOOD} -o {{out}}/ro/m.onnx", "no permission", "ro", 0o555),
    "upscale-out-unwritable": Restricted(f"{UP.replace('o.png', 'ro/o.png')} {GOOD}", "no permission", "ro", 0o555),
    "upscale-folder-out-unwritable": Restricted(
        f"upscale {{ws}}/img -o {{out}}/ro/new {GOOD}", "cannot create", "ro", 0o555
    ),
    "export-disk-full": Restricted(f"export {GOOD} -o {{out}}/m.onnx", "free some space", max_file_bytes=2000),
    "upscale-disk-full": Restricted(f"{UP} {GOOD} --backend torch", "free some space", max_file_bytes=500),
    "upscale-json-disk-full": Restricted(
        f"{UP} {GOOD} --backend torch --json {{out}}/r.json", "free some space", max_file_bytes=100
    ),
    "bench-json-disk-full": Restricted(
        f"bench {GOOD} --input 16x16 --runs 1 --backends torch --json {{out}}/r.json",
        "free some space",
        max_file_bytes=100,
    ),
    "quantize-calib-unreadable": Restricted(Q.replace("{ws}/dirs/good", "{out}/locked"), "cannot", "locked"),
    "quantize-out-unwritable": Restricted(Q.replace("{out}/q.onnx", "{out}/ro/q.onnx"), "no permission", "ro", 0o555),
    "quantize-disk-full": Restricted(Q, "free some space", max_file_bytes=2000),
    "build-int8-calib-unreadable": Restricted(
        B.replace("--fp16", "--int8") + " --calib-dir {out}/locked", "cannot", "locked"
    ),
    "build-out-unwritable": Restricted(B.replace("{out}/e.engine", "{out}/ro/e.engine"), "no permission", "ro", 0o555),
    "build-disk-full": Restricted(B, "free some space", max_file_bytes=2000),
}


def _setup_lock(spec: Restricted, ws: Path, out: Path) -> Path | None:
    if not spec.lock:
        return None
    target = out / spec.lock
    if spec.lock.endswith(".png"):
        save_image(target, 16, 16)
    elif spec.lock.endswith(".pth"):
        target.write_bytes((ws / "ckpt/good_x2.pth").read_bytes())
    else:
        target.mkdir()
        if spec.mode == 0:
            save_image(target / "a.png", 16, 16)
    target.chmod(spec.mode)
    return target


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(s, id=k, marks=[pytest.mark.xfail(reason=s.bug, strict=True)] if s.bug else [])
        for k, s in RESTRICTED.items()
    ],
)
def test_restricted(spec: Restricted, ws: Path, out: Path) -> None:
    if spec.lock:
        why = permissions_are_enforced(out)
        if why:
            pytest.skip(why)
    locked = _setup_lock(spec, ws, out)
    before = files_under(ws)
    try:
        result = run_restricted(*Case(spec.args, spec.expect).argv(ws, out), max_file_bytes=spec.max_file_bytes)
    finally:
        if locked is not None:
            locked.chmod(0o755 if locked.is_dir() else 0o644)
    line = assert_one_line_error(result, 2)
    assert spec.expect in line, f"expected {spec.expect!r} in: {line}"
    assert ADVICE.search(line.split(":", 2)[-1]), f"the message does not say what to do: {line}"
    kept = {"file.txt"} | ({str(p.relative_to(out)) for p in [locked, *locked.rglob("*")]} if locked else set())
    left = files_under(out) - kept
    assert not left, f"left behind in the output folder: {sorted(left)}"
    assert files_under(ws) == before


def test_readme_states_the_case_count() -> None:
    """README's Security section quotes how many bad inputs this suite covers; keep it true."""
    from test_engine_guard_cli import CHANGES, COMMANDS

    count = len(CASES) + len(RESTRICTED) + len(MEMORY) + len(CHANGES) * len(COMMANDS)
    readme = (REPO / "README.md").read_text()
    stated = re.search(r"\*\*(\d+) bad inputs\*\*", readme)
    assert stated is not None, "README.md: no '**N bad inputs**' in the Security section"
    assert int(stated.group(1)) == count, f"README says {stated.group(1)} bad inputs, the suite has {count}"
