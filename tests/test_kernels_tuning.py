"""srx.kernels.tuning: which launch configuration a kernel gets, and recording launches.

Stand-in kernels (objects with `arg_names` and `kernel[grid](...)`) record their calls, so
the choice logic is tested without Triton or a GPU; the measurement itself (CUDA events)
runs in the GPU benchmark."""

from __future__ import annotations

import pytest

from srx.kernels import tuning

CANDIDATES = (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3), tuning.Config(256, 8, 2))
INTERPRETER = tuning.Config(512, 4, 1)


class StandInKernel:
    arg_names = ("X", "Y", "BLOCK_P", "NUM_STAGES")

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict]] = []

    def __getitem__(self, grid):
        def call(*args, **kwargs):
            self.calls.append((grid, kwargs))

        return call


class InterpretedFunction(StandInKernel):  # the interpreter's class name is what marks it
    pass


@pytest.fixture(autouse=True)
def _fresh_choices(monkeypatch):
    tuning.reset()
    monkeypatch.delenv("SRX_KERNEL_TUNING", raising=False)
    yield
    tuning.reset()


def _launch(kernel, key=("k", 1), **kw):
    return tuning.launch(
        kernel, key, lambda cfg: (cfg.block_p,), ("x", "y"), {"C": 36}, CANDIDATES, interpreter=INTERPRETER, **kw
    )


def test_config_passes_only_the_constexprs_the_kernel_takes():
    assert tuning.Config(64, 4, 3).kwargs(StandInKernel()) == {
        "num_warps": 4,
        "num_stages": 3,
        "BLOCK_P": 64,
        "NUM_STAGES": 3,
    }

    class NoTile:
        arg_names = ("X",)

    assert tuning.Config(64, 4, 3).kwargs(NoTile()) == {"num_warps": 4, "num_stages": 3}


def test_record_collects_launches_without_running_them():
    k = StandInKernel()
    with tuning.record() as launches:
        assert _launch(k) == CANDIDATES[0]
    assert k.calls == [] and len(launches) == 1
    assert launches[0].candidates == CANDIDATES and launches[0].constexprs == {"C": 36}
    assert not tuning.recording()


def test_the_interpreter_gets_its_own_configuration():
    k = InterpretedFunction()
    assert _launch(k) == INTERPRETER
    assert k.calls[0][1]["BLOCK_P"] == 512 and tuning.choices() == {}


def test_tuning_off_launches_the_default_and_remembers_it(monkeypatch):
    monkeypatch.setenv("SRX_KERNEL_TUNING", "off")
    monkeypatch.setattr(tuning, "_measure", lambda *a: pytest.fail("measured with tuning off"))
    k = StandInKernel()
    assert _launch(k) == CANDIDATES[0]
    assert tuning.choices() == {"k / 1": str(CANDIDATES[0])}


def test_the_measured_choice_is_kept_per_key(monkeypatch):
    measured = []

    def fake_measure(key, candidates, run):
        measured.append(key)
        return candidates[1]

    monkeypatch.setattr(tuning, "_measure", fake_measure)
    k = StandInKernel()
    assert _launch(k) == CANDIDATES[1] and _launch(k) == CANDIDATES[1]
    assert _launch(k, key=("k", 2)) == CANDIDATES[1]
    assert measured == [("k", 1), ("k", 2)]  # once per key
    assert [c[1]["BLOCK_P"] for c in k.calls] == [64, 64, 64]
    assert _launch(k, config=CANDIDATES[2]) == CANDIDATES[2]  # a forced configuration wins


def test_a_cuda_graph_capture_never_measures_and_does_not_fix_the_choice(monkeypatch):
    monkeypatch.setattr(tuning, "_capturing", lambda: True)
    monkeypatch.setattr(tuning, "_measure", lambda *a: pytest.fail("measured inside a capture"))
    assert _launch(StandInKernel()) == CANDIDATES[0]
    assert tuning.choices() == {}


def test_size_class_groups_sizes_within_a_factor_of_two():
    assert tuning.size_class(320 * 180) == tuning.size_class(330 * 180)
    assert tuning.size_class(320 * 180) != tuning.size_class(1280 * 720)
