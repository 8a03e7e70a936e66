"""The networks srx ships (srx/models/defaults.py): names, labels, scores, and what each
command uses without --weights (issue 14, item 3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, assert_one_line_error, run_srx, weight_path
from PIL import Image

from srx.errors import BadInput
from srx.evaluate import torch_upscaler
from srx.imresize import imresize
from srx.metrics import mod_crop, psnr, rgb_to_y, shave
from srx.models import default_model, load_model, seeded_model
from srx.models.checkpoint import read_checkpoint
from srx.models.defaults import SHIPPED, TRAINED_DEFAULT, WEIGHTS, best_model, shipped


def test_shipped_files_exist_are_small_and_scores_match_their_evidence():
    for s in SHIPPED:
        path = WEIGHTS / s.file
        assert path.is_file() and path.stat().st_size < 1_000_000, s.file
        evidence = json.loads((REPO / s.evidence).read_text())
        assert evidence["scale"] == s.scale == 4 and "Set5" in evidence["dataset"]
        assert round(evidence["psnr_y"], 4) == s.set5_psnr_y, (s.name, evidence["psnr_y"])
    assert (WEIGHTS / "NOTICE").is_file() and (WEIGHTS / "LICENSE-SAFMN-Apache-2.0").is_file()


@pytest.mark.shared
def test_shipped_team15_is_the_original():
    ours = load_model("team15").state_dict()
    original = read_checkpoint(weight_path("team15_SAFMN.pth")).state_dict
    assert ours.keys() == original.keys()
    assert all(torch.equal(ours[k], original[k].float()) for k in ours)


def test_names_and_labels():
    seeded = load_model("seeded", scale=3)
    assert not seeded.spec.trained and seeded.spec.scale == 3 and "untrained" in seeded.spec.label
    for a, b in zip(seeded.state_dict().values(), seeded_model(3).state_dict().values(), strict=True):
        assert torch.equal(a, b)
    team15 = load_model("team15")
    assert team15.spec.arch == "safmn-ntire23" and team15.spec.label.startswith("team15 (NTIRE 2023 SAFMN")
    with pytest.raises(BadInput, match="shipped at x4 only"):
        load_model("team15", scale=2)
    with pytest.raises(BadInput, match="--param-key applies to checkpoint files"):
        load_model("default", param_key="params_ema")
    # Where no trained default ships (x2, x3), the default stays the seeded, labelled model.
    assert shipped("default", 2) is None and not default_model(2).spec.trained


def test_default_is_the_paper_architecture_and_upscale_takes_the_best():
    d = default_model(4)
    assert d.spec.arch == "safmn"  # the architecture srx's kernels fuse, for bench and export
    if shipped("default", 4) is not None:
        assert d.spec.trained and d.spec.label.startswith(TRAINED_DEFAULT)
    best = max((s for s in SHIPPED if s.scale == 4), key=lambda s: s.set5_psnr_y)
    assert best_model(4).spec.label.startswith(best.label)


def test_info_names_the_shipped_files():
    proc = run_srx("info", "team15", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["provenance"]["srx.shipped"]["source"] == "team15_SAFMN.pth" and d["spec"]["arch"] == "safmn-ntire23"
    assert "Apache-2.0" in proc.stderr
    assert "built from a seed" in assert_one_line_error(run_srx("info", "seeded"), 2)


def test_bench_default_is_the_paper_architecture():
    proc = run_srx("bench", "--input", "16x16", "--runs", "1", "--warmup", "0", "--backends", "torch", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["model"]["arch"] == "safmn"
    assert d["untrained"] == (shipped("default", 4) is None)


def test_seeded_is_refused_by_eval(tmp_path):
    img = np.zeros((64, 64, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    line = assert_one_line_error(run_srx("eval", "--dataset", str(tmp_path), "--model", "seeded"), 2)
    assert "untrained" in line


@pytest.mark.shared
def test_upscale_without_weights_is_within_half_a_db_of_team15(tmp_path):
    """Acceptance: `srx upscale` with no --weights gives a real SR image on a Set5 image, not noise."""
    hr = mod_crop(np.asarray(Image.open(DATA / "benchmarks" / "Set5" / "HR" / "bird.png").convert("RGB")), 4)
    lr = imresize(hr, 1 / 4)
    Image.fromarray(lr).save(tmp_path / "bird_lr.png")
    proc = run_srx("upscale", str(tmp_path / "bird_lr.png"), "-o", str(tmp_path / "sr.png"), "--backend", "torch")
    assert proc.returncode == 0, proc.stderr
    chosen = best_model(4).spec.label
    assert chosen in proc.stdout  # it says which network it used

    def score(sr: np.ndarray) -> float:
        return psnr(shave(rgb_to_y(hr), 4).astype(float), shave(rgb_to_y(sr), 4).astype(float))

    ours = score(np.asarray(Image.open(tmp_path / "sr.png").convert("RGB")))
    team15 = load_model(weight_path("team15_SAFMN.pth"))
    ref = score(np.rint(np.clip(torch_upscaler(team15)(lr), 0, 1) * 255).astype(np.uint8))
    bicubic = score(imresize(lr, 4.0))
    assert abs(ours - ref) <= 0.5, (ours, ref)
    assert ours > bicubic + 1.0, (ours, bicubic)
