"""Every distribution the pipeline imports is declared in its pyproject (or is the stdlib).

An undeclared import works here by luck (another dependency pulls it in) and
breaks the day that dependency stops doing so; the lock would not pin it as
the pipeline's own.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

PIPELINE = Path(__file__).resolve().parent.parent
PACKAGE = "abide_pipeline"

# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "yaml": "pyyaml"}


def imported_top_level_modules(package_dir: Path) -> dict[str, set[str]]:
    """{top-level module: {files importing it}} over every module of the package (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.relative_to(package_dir).as_posix())
    return found


def declared_distributions(pyproject: Path) -> set[str]:
    deps = tomllib.loads(pyproject.read_text())["project"].get("dependencies", [])
    return {_canonical(re.match(r"[A-Za-z0-9._-]+", d).group(0)) for d in deps}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_declared():
    declared = declared_distributions(PIPELINE / "pyproject.toml")
    undeclared = {}
    for module, files in imported_top_level_modules(PIPELINE / PACKAGE).items():
        if module in sys.stdlib_module_names or module in ("__future__", PACKAGE):
            continue
        if _canonical(DISTRIBUTION.get(module, module)) not in declared:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not in pipelines/abide/pyproject.toml dependencies: {undeclared}"


def test_the_check_sees_imports_inside_functions():
    found = imported_top_level_modules(PIPELINE / PACKAGE)
    assert "report.py" in found["matplotlib"]  # imported inside a function
    assert {"sklearn", "numpy", "yaml"} <= set(found)
