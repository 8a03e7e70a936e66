"""Each fact is defined once (issue 18): a second definition is where two commands start to disagree.

Read from the source with `ast`, so a constant defined in two modules, a class name used
twice, the same literal value given two names in two modules (issue 24: the image-suffix
lists), or the hand-rolled "first line of an error" idiom fails here, naming the places.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

from conftest import REPO

SRC = REPO / "srx"


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _definitions(kind: type) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if kind is ast.Assign and isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
            elif isinstance(node, kind):
                names = [node.name]  # type: ignore[attr-defined]
            else:
                continue
            for name in names:
                found[name].append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_constant_is_defined_in_one_module():
    repeated = {name: where for name, where in _definitions(ast.Assign).items() if len(where) > 1}
    assert not repeated, f"constants defined more than once: {repeated}"


# Module-level numbers that are equal by coincidence although their names share a word: each
# pair is two facts that may change apart. (Numbers whose names share no word are not
# compared at all: 16 patches and a 16-lane dot product are not one fact.)
COINCIDENCES = {
    0: "srx.bench.inputs.INPUT_SEED (the synthetic bench image) and srx.models.DEFAULT_SEED (weight init)",
    17: "srx.export.MIN_OPSET (the oldest opset srx exports) and srx.runtime.trt.TRT86_MAX_OPSET (TensorRT 8.6)",
    19: "srx.export.DEFAULT_OPSET and srx.precision.int8.MIN_FP16_QDQ_OPSET (FP16 scales in DequantizeLinear)",
}
GENERIC_WORDS = frozenset({"DEFAULT", "MIN", "MAX", "S", "MS", "MIB"})  # limits and units, not facts


def _literals() -> list[tuple[str, str, object]]:
    """(module, constant name, value) for every module-level UPPER_CASE name bound to a literal."""
    out = []
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue  # computed, not a literal: it names where it comes from
            out += [(str(path.relative_to(REPO)), name, value) for name in names]
    return out


def _words(name: str) -> set[str]:
    return set(name.strip("_").split("_")) - GENERIC_WORDS


def _same_fact(a: tuple[str, str, object], b: tuple[str, str, object]) -> bool:
    """Whether two literals in two modules restate one fact: equal strings or dicts, a
    collection equal to or inside another (a suffix list and its longer copy), equal
    numbers whose names share a word and are not a known coincidence."""
    (_, name_a, x), (_, name_b, y) = a, b
    if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
        return False
    if isinstance(x, int | float) and isinstance(y, int | float):
        return x == y and bool(_words(name_a) & _words(name_b)) and x not in COINCIDENCES
    if isinstance(x, str | bytes | dict) or isinstance(y, str | bytes | dict):
        return type(x) is type(y) and x == y and bool(x)
    collections = tuple | list | set | frozenset
    if isinstance(x, collections) and isinstance(y, collections):
        small, large = sorted((set(x), set(y)), key=len)
        return len(small) >= 2 and small <= large
    return False


def _repeated_values() -> list[str]:
    found = _literals()
    return [
        f"{ma}:{na} = {mb}:{nb} ({va!r})"
        for i, (ma, na, va) in enumerate(found)
        for (mb, nb, vb) in found[i + 1 :]
        if ma != mb and _same_fact((ma, na, va), (mb, nb, vb))
    ]


def test_no_literal_value_is_defined_in_two_modules():
    """A value written out twice drifts apart (issue 24: 4, 7 and 8 image suffixes): the
    second module imports the first module's name instead."""
    repeated = _repeated_values()
    assert not repeated, "the same value defined in two modules (import one from the other):\n" + "\n".join(repeated)


def test_the_value_check_sees_the_old_suffix_lists(tmp_path, monkeypatch):
    """The control: srx before issue 24 (filekinds' 4 image suffixes, video/upscale's 8), a
    repeated env var name and a repeated default size are found; coincidences are not."""
    (tmp_path / "filekinds.py").write_text(
        'IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")\nENV = "SRX_CACHE"\nDEFAULT_TILE = 256\nPATCHES = 16\n'
    )
    (tmp_path / "upscale.py").write_text(
        '_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")\n'
        'CACHE_VAR = "SRX_CACHE"\nTILE = 256\nLANES = 16\nVERBOSE = True\nQUIET = True\n'
    )
    (tmp_path / "other.py").write_text('VIDEO = (".mp4", ".mkv")\nONE = (".png",)\nOPSET = 19\nMIN_QDQ_OPSET = 19\n')
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "SRC", tmp_path)
    monkeypatch.setattr(here, "REPO", tmp_path)
    assert sorted(r.split(" (")[0] for r in _repeated_values()) == [
        "filekinds.py:DEFAULT_TILE = upscale.py:TILE",
        "filekinds.py:ENV = upscale.py:CACHE_VAR",
        "filekinds.py:IMAGE_SUFFIXES = upscale.py:_IMAGE_SUFFIXES",
    ]


def test_every_class_name_is_used_once():
    repeated = {name: where for name, where in _definitions(ast.ClassDef).items() if len(where) > 1}
    assert not repeated, f"classes with the same name: {repeated}"


def test_the_shared_readers_exist_once():
    functions = _definitions(ast.FunctionDef)
    for name in ("read_srx_onnx", "read_sidecar", "read_rgb8", "first_line", "file_kind", "auto_backend"):
        assert len(functions[name]) == 1, (name, functions[name])
    for gone in ("load_srx_onnx", "_first_line", "read_rgb", "_read_rgb", "spec_from_engine_sidecar", "_images_in"):
        assert gone not in functions, (gone, functions[gone])


def test_one_image_suffix_list_and_one_folder_lister():
    """Issue 24: srx.filekinds holds the readable image suffixes and the folder lister; the
    lists that disagreed (dataset suffixes, dataset decoders, video's own image list) are gone."""
    functions, constants = _definitions(ast.FunctionDef), _definitions(ast.Assign)
    assert len(functions["files_in"]) == 1 and functions["files_in"][0].startswith("srx/filekinds.py:")
    assert len(functions["image_files"]) == 1 and functions["image_files"][0].startswith("srx/filekinds.py:")
    assert len(constants["IMAGE_SUFFIXES"]) == 1 and constants["IMAGE_SUFFIXES"][0].startswith("srx/filekinds.py:")
    for gone in ("DATASET_IMAGE_SUFFIXES", "DATASET_DECODERS", "_IMAGE_SUFFIXES"):
        assert gone not in constants, (gone, constants[gone])


def test_no_module_cuts_error_messages_by_hand():
    """`first_line` (srx.errors) is the one way to quote a library's message inside an srx error."""
    idiom = ".strip().splitlines() or ["
    users = [str(p.relative_to(REPO)) for p in _modules() if idiom in p.read_text()]
    assert not users, users


def test_the_check_sees_a_repeat(tmp_path, monkeypatch):
    """The checks above would catch what they look for (the control)."""
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("LIMIT = 1\n\n\nclass Pair:\n    pass\n")
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "SRC", tmp_path)
    monkeypatch.setattr(here, "REPO", tmp_path)
    assert len(_definitions(ast.Assign)["LIMIT"]) == 2
    assert len(_definitions(ast.ClassDef)["Pair"]) == 2


def test_the_kernels_are_checked_too():
    """srx/kernels is no exception: its per-kernel launch tables carry the kernel's name."""
    checked = {p.relative_to(SRC).parts[0] for p in _modules()}
    assert "kernels" in checked
    assert len(_definitions(ast.Assign)["INTERPRETER"]) == 1
