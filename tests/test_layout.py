"""The shape of the code docs/architecture.md#import-rules describes (issues 18, 24): imports follow the data, commands stay short.

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
