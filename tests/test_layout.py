"""The shape of the code DESIGN.md asks for (issue 18): imports follow the data, commands stay short.

Read from the source with `ast`: an import that runs back up a layer (calibration reading
`srx.evaluate`, the run path importing the precision passes) or a command function that
grows past a screenful fails here with the place named.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SRC = REPO / "srx"

# What each package may import from srx (besides the base modules every layer uses).
BASE = {
    "errors",
    "spec",
    "fileio",
    "filekinds",
    "sizes",
    "progress",
    "interrupt",
    "resources",
    "synthetic",
    "modelref",
}
ALLOWED = {
    "models": {"models"},
    "export": {"export", "models"},
    "precision": {"precision", "export", "images", "imresize", "metrics"},
    "engines": {"engines", "precision", "export", "runtime"},
    "runtime": {"runtime", "export", "models", "kernels"},
}
# Commands' libraries and the command line: nothing in the library imports them.
TOP = {"cli", "evaluate", "upscale", "inspect", "__main__", "train", "video"}
# Commands in a package (a click command or a command's work, and its library), at the
# level of srx/evaluate.py: `srx train --val` validates with srx eval's protocol, video
# upscaling shares srx upscale's output rules.
COMMAND_PACKAGES = {"train", "video", "cli"}


def _srx_imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("srx."):
            found.append((node.module.split(".")[1], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], node.lineno) for a in node.names if a.name.startswith("srx.")]
    return found


def test_imports_follow_the_data():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((SRC / package).rglob("*.py")):
            for target, line in _srx_imports(path):
                if target not in allowed | BASE:
                    wrong.append(f"{path.relative_to(REPO)}:{line} imports srx.{target}")
    for path in sorted(SRC.rglob("*.py")):
        if (path.parent == SRC and path.stem in TOP) or path.relative_to(SRC).parts[0] in COMMAND_PACKAGES:
            continue
        wrong += [f"{path.relative_to(REPO)}:{line} imports srx.{t}" for t, line in _srx_imports(path) if t in TOP]
    assert not wrong, wrong


def test_only_the_command_line_imports_it():
    """srx.cli is the top: the library (srx.program for the one-line errors, srx.modelref for the
    model a user named) never imports it, not even another entry point such as the load test."""
    wrong = [
        f"{path.relative_to(REPO)}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "cli" and path.name != "__main__.py"
        for target, line in _srx_imports(path)
        if target == "cli"
    ]
    assert not wrong, wrong
    assert _srx_imports(SRC / "__main__.py") == [("cli", 1)]


def _long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{path.relative_to(REPO)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno + 1 > limit
    ]


def test_commands_and_the_engine_build_stay_short():
    """A command parses, calls the library and prints (issue 24): none over 60 lines."""
    long = [f for path in sorted((SRC / "cli").glob("*.py")) for f in _long_functions(path, 60)]
    long += [f for f in _long_functions(SRC / "engines" / "build.py", 80) if "engine_from_onnx" in f]
    assert not long, long
