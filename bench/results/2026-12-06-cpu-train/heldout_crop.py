"""The shipped defaults against bicubic on the held-out crop tests/test_defaults.py uses
(Set14 monarch, 192x192 at (96, 240): neither training data nor the validation set).

    PYTHONPATH=. python bench/results/2026-12-06-cpu-train/heldout_crop.py
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))
from conftest import DATA  # noqa: E402
from test_defaults import HELD_OUT  # noqa: E402

from srx.evaluate import torch_upscaler  # noqa: E402
from srx.imresize import imresize  # noqa: E402
from srx.metrics import psnr, rgb_to_y, shave  # noqa: E402
from srx.models import default_model  # noqa: E402

name, file, (top, left, h, w) = HELD_OUT
img = np.asarray(Image.open(DATA / "benchmarks" / name / "HR" / file).convert("RGB"))
hr = img[top : top + h, left : left + w]
for scale in (2, 3, 4):
    lr = imresize(hr, 1 / scale)
    model = default_model(scale)
    sr = np.rint(np.clip(torch_upscaler(model)(lr), 0, 1) * 255).astype(np.uint8)

    def score(out, scale=scale):
        return psnr(shave(rgb_to_y(hr), scale).astype(float), shave(rgb_to_y(out), scale).astype(float))

    ours, ref = score(sr), score(imresize(lr, float(scale)))
    print(f"x{scale} {model.spec.label}: {ours:.3f} dB, bicubic {ref:.3f} dB, +{ours - ref:.3f} dB")
