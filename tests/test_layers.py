"""The layers of docs/architecture.md, enforced: an import that climbs a layer fails the suite.

The contract is in pyproject.toml (`[tool.importlinter]`) and import-linter checks it: it
reads every import statement, including those inside functions and behind
`try`/`except ImportError`, so "only when installed" is no way round a layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"

pytest.importorskip("importlinter")


def lint_imports(repository: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the package of `repository` (its pyproject.toml's contract)."""
    environment = {**os.environ, "PYTHONPATH": str(repository)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=repository, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_imports_point_down_the_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_that_climbs_a_layer_breaks_the_contract(tmp_path: Path) -> None:
    """The contract is not vacuous: one upward import, hidden in a function, breaks it."""
    shutil.copytree(ROOT / "termshift", tmp_path / "termshift",
                    ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "termshift" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + textwrap.dedent("""

        def _climb():
            from termshift.web import app  # the bottom layer reaching for the viewer

            return app
        """), encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "termshift.errors is not allowed to import termshift.web" in result.stdout, result.stdout


def test_every_module_has_its_line_in_the_architecture_document() -> None:
    """docs/architecture.md says, for each module, what it owns: a new module gets its line."""
    import pkgutil

    import termshift

    listed = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    names = [info.name for info in pkgutil.walk_packages(termshift.__path__, "termshift.")]
    assert len(names) > 50
    missing = [name for name in names if f"- `{name}`: " not in listed and name != "termshift.trackers"]
    assert missing == [], f"add a line for each to docs/architecture.md's module list: {missing}"
