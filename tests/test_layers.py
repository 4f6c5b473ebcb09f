"""Imports point one way, down the layers, at any depth of the code.

- What production ships never depends on what imitates Google on a laptop: no module of the
  shared library or of a unit imports `infra` (the dev server, embedded servers, local task
  dispatcher, scheduler, OIDC signer, storage emulator, seeder).
- Each module of the shared library sits in one layer of `LAYERS` and imports only from its
  own layer or those below: the domain never reaches back into the HTTP runtime, the
  adapters never into the domain. Imports under `TYPE_CHECKING` and inside functions count:
  they are the ones that creep back.
- HTTP (flask, werkzeug, functions-framework) is for the runtime and the units only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "shared"
LIBRARY_FILES = sorted((LIBRARY / "imangor").rglob("*.py"))
UNIT_FILES = sorted((ROOT / "functions").rglob("*.py"))
PRODUCTION = [*LIBRARY_FILES, *UNIT_FILES]

# Bottom first. A module belongs to the layer of its longest matching name below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What everything declares into or raises; imports no other layer.
    (
        "declarations",
        (
            "imangor",
            "imangor.registry",
            "imangor.errors",
            "imangor.config",
            "imangor.tasks.declare",  # payload classes and @task/@scheduled: registry entries
            "imangor.tasks.queues",
        ),
    ),
    (
        "data and plumbing",
        (
            "imangor.db",
            "imangor.models",
            "imangor.schemas",
            "imangor.observability",
            "imangor.metrics",
            "imangor.redis_client",
        ),
    ),
    (
        "adapters",
        ("imangor.auth", "imangor.ratelimit", "imangor.cache", "imangor.storage", "imangor.mail"),
    ),
    ("background work", ("imangor.tasks",)),
    ("domain", ("imangor.services",)),
    ("entry points", ("imangor.runtime", "imangor.migrate")),
    ("units", ("functions",)),
)
HTTP = ("flask", "werkzeug", "functions_framework")
SPEAKS_HTTP = {"entry points", "units"}


def module_name(path: Path) -> str:
    """imangor.auth.tokens for shared/imangor/auth/tokens.py; functions.orders for a unit."""
    base = LIBRARY if path.is_relative_to(LIBRARY) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] in ("__init__", "main"):
        parts.pop()
    return ".".join(parts)


KNOWN = {module_name(p) for p in LIBRARY_FILES}


def layer_of(module: str) -> tuple[int, str]:
    """(index, name) of the layer a module belongs to."""
    best: tuple[int, int, str] | None = None  # (prefix length, index, name)
    for index, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index, name)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best[1], best[2]


def imported_modules(path: Path, package: str = "") -> set[str]:
    """Every module a file imports, at any depth of its code: `from x import y` counts as
    x.y when y is a module of the library (else as x), relative imports are resolved
    against `package`, and `importlib.import_module("...")` with a literal name counts too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            modules = {f"{base}.{a.name}" for a in node.names} & KNOWN
            found.update(modules)
            if len(modules) < len(node.names):  # names defined by `base` itself
                found.add(base)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def upward_imports(path: Path, module: str) -> list[str]:
    """The imports of `module` (read from `path`) that reach a layer above its own."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    own, own_name = layer_of(module)
    found = []
    for imported in sorted(imported_modules(path, package)):
        top = imported.split(".")[0]
        if top == "imangor":
            index, name = layer_of(imported)
            if index > own:
                found.append(f"{imported} ({name}) from {module} ({own_name})")
        elif top in HTTP and own_name not in SPEAKS_HTTP:
            found.append(f"{imported} (HTTP) from {module} ({own_name})")
    return found


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_production_code_never_imports_infra() -> None:
    local = [
        f"{_id(path)} imports {module}"
        for path in PRODUCTION
        for module in sorted(imported_modules(path))
        if module == "infra" or module.startswith("infra.")
    ]
    assert PRODUCTION and local == []


def test_imports_point_down_the_layers() -> None:
    upward = [found for path in PRODUCTION for found in upward_imports(path, module_name(path))]
    assert upward == []


def test_every_layer_names_modules_that_exist() -> None:
    """A renamed module must not leave a stale name here that quietly matches nothing."""
    names = KNOWN | {"functions"}
    stale = [p for _, prefixes in LAYERS for p in prefixes if p not in names]
    assert stale == []


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    """The mutation: a function-local import of the local stack is caught."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def push():\n    from infra.local.tasks import LocalBackend\n")
    assert "infra.local.tasks" in imported_modules(sneaky)


@pytest.mark.parametrize(
    ("module", "code", "caught"),
    [
        # What auth and ratelimit did: the runtime's Context, if only for type checking.
        (
            "imangor.auth",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from imangor.runtime.context import Context\n",
            "imangor.runtime.context (entry points) from imangor.auth (adapters)",
        ),
        (
            "imangor.ratelimit",
            "def enforce():\n    from imangor.runtime import Context\n",
            "imangor.runtime (entry points) from imangor.ratelimit (adapters)",
        ),
        # What auth did to check a key: reach up into the domain.
        (
            "imangor.auth",
            "def key():\n    from imangor.services.api_keys import create_key\n",
            "imangor.services.api_keys (domain) from imangor.auth (adapters)",
        ),
        (
            "imangor.services.orders",
            "from imangor import runtime\n",
            "imangor.runtime (entry points) from imangor.services.orders (domain)",
        ),
        (
            "imangor.models.user",
            "import importlib\nimportlib.import_module('imangor.services.users')\n",
            "imangor.services.users (domain) from imangor.models.user (data and plumbing)",
        ),
        (
            "imangor.services.users",
            "from flask import request\n",
            "flask (HTTP) from imangor.services.users (domain)",
        ),
        (
            "imangor.tasks.outbox",
            "from ..services import orders\n",
            "imangor.services.orders (domain) from imangor.tasks.outbox (background work)",
        ),
    ],
)
def test_the_check_catches_an_upward_import(
    tmp_path: Path, module: str, code: str, caught: str
) -> None:
    """The mutations: each kind of upward import, wherever it hides, is reported."""
    mutant = tmp_path / "mutant.py"
    mutant.write_text(code)
    assert upward_imports(mutant, module) == [caught]


def test_the_check_allows_imports_down_and_within_a_layer(tmp_path: Path) -> None:
    fine = tmp_path / "fine.py"
    fine.write_text(
        "from imangor import cache, errors\n"
        "from imangor.auth.principal import Principal\n"
        "from imangor.services.pagination import paginate\n"
        "from imangor.tasks import enqueue\n"
        "def later():\n    from imangor.storage import signed_url\n"
    )
    assert upward_imports(fine, "imangor.services.orders") == []
