"""The bad (and good) inputs the robustness suite feeds to every command, built once.

Layout (names are what the case table refers to as {ws}/...):
  ckpt/   good_x2.pth, empty.pth, truncated.pth, random.pth, foreign.pth (a ResNet stem),
          partial.pth (half of a SAFMN state dict), reshaped.pth (SAFMN keys, a wrong shape),
          nan.pth (a complete SAFMN state dict with a NaN weight), scalar.pth (a layer is a scalar),
          huge.pth (3 GB, sparse),
          evil_zip.pth / evil_raw.pth (pickles that would `touch CANARY`), list.pth (not a dict),
          folder.pth/ (a folder), truncated.safetensors, random.safetensors
  onnx/   good_x2.onnx, garbage.onnx, truncated.onnx, empty.onnx, relu.onnx (valid, not an
          image model), forged.onnx (Identity lr -> sr carrying a real srx.spec), nan.onnx
          (x2 nearest times NaN, with the same srx.spec), external.onnx (+ external.bin: weights
          in an external data file), traversal.onnx (external data at ../../../../etc/hostname),
          huge.onnx (3 GB, sparse)
  engine/ garbage.engine (no sidecar), badjson.engine (+ sidecar that is not JSON),
          other.engine (+ sidecar of an engine built on another GPU)
  img/    good.png, text.png, empty.png, truncated.png, random.jpg, anim.gif, scan.tif,
          bitmap.png (a BMP),
          bomb.png (above 2x Pillow's pixel limit), bomb_warn.png (between 1x and 2x)
  dirs/   empty/, textonly/ (a .txt only), one_bad/ (one truncated PNG), bombs/, bomb_warn/ (one bomb each),
          good/ (two good images), calib_bomb/ and calib_bad/ (two good images and a bomb, or
          a truncated PNG)
  bad.json (a --compare file that is not JSON), file.txt (a regular file to put paths under)
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import zlib
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper
from robust import save_checkpoint, save_image, tiny_model

CANARY = "CANARY"


class RunsCommand:
    """Unpickling this calls os.system, which would create the canary file."""

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _png(path: Path, width: int, height: int) -> None:
    """A real 1-bit gray PNG of zeros: tiny on disk, `width * height` pixels when decoded."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def build(ws: Path) -> Path:
    for d in (
        "ckpt",
        "onnx",
        "engine",
        "img",
        "dirs/empty",
        "dirs/textonly",
        "dirs/one_bad",
        "dirs/bombs",
        "dirs/bomb_warn",
        "dirs/good",
        "dirs/calib_bomb",
        "dirs/calib_bad",
    ):
        (ws / d).mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    good = save_checkpoint(ws / "ckpt/good_x2.pth", model)
    data = good.read_bytes()
    ck = ws / "ckpt"
    (ck / "empty.pth").write_bytes(b"")
    (ck / "truncated.pth").write_bytes(data[: len(data) // 2])
    (ck / "random.pth").write_bytes(_bytes(4096, 1))
    torch.save(
        {"conv1.weight": torch.zeros(8, 3, 7, 7), "bn1.weight": torch.ones(8), "fc.weight": torch.zeros(10, 8)},
        ck / "foreign.pth",
    )
    sd = model.state_dict()
    torch.save({"params": dict(list(sd.items())[: len(sd) // 2])}, ck / "partial.pth")
    reshaped = dict(sd)
    key = next(k for k in reshaped if k.startswith("to_img"))
    reshaped[key] = torch.zeros(5, *reshaped[key].shape[1:])
    torch.save({"params": reshaped}, ck / "reshaped.pth")
    torch.save({"params": {**sd, "to_img.0.weight": torch.tensor(1.0)}}, ck / "scalar.pth")
    poisoned = {k: v.clone() for k, v in sd.items()}
    poisoned["to_feat.weight"].view(-1)[0] = float("nan")
    torch.save({"params": poisoned}, ck / "nan.pth")
    payload = {"params": sd, "hook": RunsCommand(str(ws / CANARY))}
    torch.save(payload, ck / "evil_zip.pth")
    with open(ck / "evil_raw.pth", "wb") as f:
        pickle.dump(payload, f, protocol=2)
    torch.save([torch.zeros(3)], ck / "list.pth")
    (ck / "folder.pth").mkdir()
    from safetensors.torch import save_file

    save_file(sd, str(ck / "good.safetensors"))
    st = (ck / "good.safetensors").read_bytes()
    (ck / "truncated.safetensors").write_bytes(st[: len(st) // 3])
    (ck / "good.safetensors").unlink()
    (ck / "random.safetensors").write_bytes(_bytes(2048, 2))

    from srx.export.model import onnx_from_model

    proto = onnx_from_model(model)
    on = ws / "onnx"
    onnx.save(proto, str(on / "good_x2.onnx"))
    raw = proto.SerializeToString()
    (on / "garbage.onnx").write_bytes(b"\x08\x07not an onnx model at all" * 10)
    (on / "truncated.onnx").write_bytes(raw[: len(raw) // 2])
    (on / "empty.onnx").write_bytes(b"")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    onnx.save(
        helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])),
        str(on / "relu.onnx"),
    )
    lr = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    sr = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    forged = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["lr"], ["sr"])], "forged", [lr], [sr]),
        opset_imports=[helper.make_opsetid("", 19)],
        ir_version=9,  # one onnxruntime loads: the graph must get as far as running
    )
    forged.metadata_props.extend(p for p in proto.metadata_props if p.key == "srx.spec")
    onnx.save(forged, str(on / "forged.onnx"))
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    nan = helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])
    poisoned = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Resize", ["lr", "", "scales"], ["up"], mode="nearest"),
                helper.make_node("Mul", ["up", "nan"], ["sr"]),
            ],
            "nan",
            [lr],
            [sr],
            initializer=[scales, nan],
        ),
        opset_imports=[helper.make_opsetid("", 19)],
        ir_version=9,
    )
    poisoned.metadata_props.extend(p for p in proto.metadata_props if p.key == "srx.spec")
    onnx.save(poisoned, str(on / "nan.onnx"))

    external = onnx.load(str(on / "good_x2.onnx"))
    onnx.save(
        external, str(on / "external.onnx"), save_as_external_data=True, location="external.bin", size_threshold=0
    )
    for t in external.graph.initializer:  # the same model, its weights "in" a file outside its folder
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../../../../etc/hostname"
    onnx.save(external, str(on / "traversal.onnx"))
    for name in ("ckpt/huge.pth", "onnx/huge.onnx"):
        with open(ws / name, "wb") as f:  # sparse: 3 GB long, no disk used
            f.truncate(3 * 2**30)

    en = ws / "engine"
    (en / "garbage.engine").write_bytes(_bytes(4096, 3))
    (en / "badjson.engine").write_bytes(_bytes(4096, 4))
    (en / "badjson.engine.json").write_text("{not json")
    (en / "other.engine").write_bytes(_bytes(4096, 5))
    sidecar = {
        "format": "srx-engine",
        "format_version": 1,
        "spec": model.spec.to_dict(),
        "backend": "tensorrt",
        "backend_version": "10.3.0",
        "precision": "fp16",
        "device": {"name": "Orin (nvgpu)", "compute_capability": "8.7"},
    }
    (en / "other.engine.json").write_text(json.dumps(sidecar))

    im = ws / "img"
    save_image(im / "good.png", 24, 28)
    (im / "text.png").write_text("this is not an image\n")
    (im / "empty.png").write_bytes(b"")
    (im / "truncated.png").write_bytes((im / "good.png").read_bytes()[:100])
    (im / "random.jpg").write_bytes(_bytes(3000, 6))
    save_image(im / "anim.gif", 24, 24, format="GIF")
    save_image(im / "scan.tif", 24, 24, format="TIFF")
    save_image(im / "bitmap.png", 24, 24, format="BMP")  # a BMP named .png
    _png(im / "bomb.png", 20_000, 10_000)  # 200 M pixels > 2 x 89.5 M: Pillow raises
    _png(im / "bomb_warn.png", 12_000, 10_000)  # 120 M pixels: Pillow only warns; srx refuses

    (ws / "dirs/textonly/readme.txt").write_text("no images here\n")
    (ws / "dirs/one_bad/broken.png").write_bytes((im / "good.png").read_bytes()[:100])
    save_image(ws / "dirs/good/a.png", 16, 24, seed=1)
    save_image(ws / "dirs/good/b.jpg", 20, 16, seed=2)
    for name in ("calib_bomb", "calib_bad"):
        save_image(ws / "dirs" / name / "a.png", 24, 24, seed=3)
        save_image(ws / "dirs" / name / "c.png", 24, 24, seed=4)
    (ws / "dirs/calib_bomb/b.png").write_bytes((im / "bomb.png").read_bytes())
    (ws / "dirs/calib_bad/b.png").write_bytes((im / "good.png").read_bytes()[:100])
    (ws / "dirs/bombs/bomb.png").write_bytes((im / "bomb.png").read_bytes())
    (ws / "dirs/bomb_warn/bomb_warn.png").write_bytes((im / "bomb_warn.png").read_bytes())
    (ws / "bad.json").write_text("{this is not json")
    (ws / "file.txt").write_text("a regular file\n")
    return ws
