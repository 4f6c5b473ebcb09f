"""What production ships never depends on what imitates Google on a laptop: no module of the
shared library or of a unit imports `infra` (the dev server, embedded servers, local task
dispatcher, scheduler, OIDC signer, storage emulator, seeder), not even inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = sorted(
    [*(ROOT / "shared" / "imangor").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


@pytest.mark.parametrize("path", PRODUCTION, ids=lambda p: str(p.relative_to(ROOT)))
def test_production_code_never_imports_infra(path: Path) -> None:
    local = sorted(m for m in imported_modules(path) if m == "infra" or m.startswith("infra."))
    assert local == [], f"{path.relative_to(ROOT)} imports {local}"


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    """The mutation: a function-local import of the local stack is caught."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def push():\n    from infra.local.tasks import LocalBackend\n")
    assert "infra.local.tasks" in imported_modules(sneaky)
