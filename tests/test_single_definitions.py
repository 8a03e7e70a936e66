"""Each fact is defined once (issue 18): a second definition is where two commands start to disagree.

Read from the source with `ast`, so a constant defined in two modules, a class name used
twice, or the hand-rolled "first line of an error" idiom fails here, naming the places.
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


def test_every_class_name_is_used_once():
    repeated = {name: where for name, where in _definitions(ast.ClassDef).items() if len(where) > 1}
    assert not repeated, f"classes with the same name: {repeated}"


def test_the_shared_readers_exist_once():
    functions = _definitions(ast.FunctionDef)
    for name in ("read_srx_onnx", "read_sidecar", "read_rgb8", "first_line", "file_kind", "auto_backend"):
        assert len(functions[name]) == 1, (name, functions[name])
    for gone in ("load_srx_onnx", "_first_line", "read_rgb", "_read_rgb", "spec_from_engine_sidecar"):
        assert gone not in functions, (gone, functions[gone])


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
