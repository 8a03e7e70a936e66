"""Short functions, thin commands, a one-way import graph (issue 24), read from the source with `ast`.

- No function under srx/ over 80 lines: a longer procedure is split into named stages.
- None over 60 in the CLI (srx/cli/ as a package, srx/cli.py while it is one module): a
  command parses, calls the library and prints.
- No library module imports srx.cli: the CLI sits on top, nothing runs back up into it
  (srx/__main__.py, which starts the CLI, and the CLI's own modules are the exceptions).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO

SRC = REPO / "srx"
LIBRARY_LIMIT = 80
CLI_LIMIT = 60


def _in_cli(rel: Path) -> bool:
    return rel.parts[:2] in (("srx", "cli.py"), ("srx", "cli"))


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, node.end_lineno - node.lineno + 1  # decorators not counted, the docstring is


def _too_long() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(REPO)
        limit = CLI_LIMIT if _in_cli(rel) else LIBRARY_LIMIT
        out += [f"{rel}:{f.lineno} {f.name}: {n} lines" for f, n in _functions(path) if n > limit]
    return out


def _imports_of_the_cli() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(REPO)
        if _in_cli(rel) or rel == Path("srx/__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(n == "srx.cli" or n.startswith("srx.cli.") for n in names):
                out.append(f"{rel}:{node.lineno}")
    return out


def test_no_function_is_longer_than_its_limit():
    long = _too_long()
    assert not long, (
        f"functions over {LIBRARY_LIMIT} lines ({CLI_LIMIT} in the CLI): split them into named stages:\n"
        + "\n".join(long)
    )


def test_no_library_module_imports_the_cli():
    """srx.cli is the top: the library (srx.program for the one-line errors, srx.modelref for the
    model a user named) never imports it, not even another entry point such as the load test."""
    found = _imports_of_the_cli()
    assert not found, "library modules importing srx.cli (move what they need into the library):\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for(tmp_path, monkeypatch):
    """The control: a long library function, a 61-line command and an import back up are found."""
    (tmp_path / "srx" / "cli").mkdir(parents=True)
    body = "def {name}():\n" + "    x = 1\n" * 80
    (tmp_path / "srx" / "lib.py").write_text(
        body.format(name="long") + "\n\ndef fits():\n" + "    x = 1\n" * 79 + "\n\nimport srx.cli.common\n"
    )
    (tmp_path / "srx" / "cli" / "bench.py").write_text("def bench():\n" + "    x = 1\n" * 60)
    (tmp_path / "srx" / "__main__.py").write_text("from srx.cli import main\n")
    (tmp_path / "srx" / "serve.py").write_text("def f():\n    from srx.cli import errors\n")
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "SRC", tmp_path / "srx")
    monkeypatch.setattr(here, "REPO", tmp_path)
    assert _too_long() == ["srx/cli/bench.py:1 bench: 61 lines", "srx/lib.py:1 long: 81 lines"]
    assert [where.split(":")[0] for where in _imports_of_the_cli()] == ["srx/lib.py", "srx/serve.py"]
