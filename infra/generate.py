"""Regenerate the files derived from the registry: the OpenAPI document and the Terraform
inventory (units, their routes and runtime, queues, schedules). `--check` exits 1 instead of
writing when a committed file is stale, so drift fails the build.

    python -m infra.generate [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from imangor.config import get_settings
from imangor.registry import FUNCTIONS_DIR, REGISTRY, load_all_units
from imangor.runtime.openapi import build_openapi

ROOT = Path(__file__).resolve().parents[1]
API_VERSION = "1.0.0"


def derived_files() -> dict[Path, str]:
    """Each derived file's path and the exact text the code says it must have."""
    modules = load_all_units()
    document = build_openapi(
        REGISTRY,
        title=get_settings().project_name,
        version=API_VERSION,
        unit_docs={unit: module.__doc__ or "" for unit, module in modules.items()},
    )
    readme = ROOT / "README.md"
    return {
        FUNCTIONS_DIR / "docs" / "openapi.json": _json(document),
        ROOT / "terraform" / "generated" / "inventory.json": _json(inventory()),
        readme: _with_block(
            _with_block(readme.read_text(), "settings", settings_table()), "units", units_table()
        ),
    }


def settings_table() -> str:
    """Every setting, its default and meaning, read from the Settings model itself."""
    from imangor.config import Settings

    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
        shown = "*(unset)*" if default is None else f"`{_plain(default)}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


def _plain(value: object) -> str:
    secret = getattr(value, "get_secret_value", None)
    if secret is not None:
        value = secret()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value).replace("|", "\\|")


def units_table() -> str:
    """What each unit needs set to run alone (the functions-framework command) and what
    production adds, read from the units' declared needs and the settings' own checks."""
    from imangor.config import NEED_SETTINGS

    alone = ("database", "redis")  # Settings.check_needs: no request could succeed without
    rows = [
        "| Unit | Needs | Set to run it alone | Production also needs |",
        "| --- | --- | --- | --- |",
    ]
    for unit in REGISTRY.units():
        needs = sorted(REGISTRY.deploys[unit].needs)
        local = [NEED_SETTINGS[n] for n in needs if n in alone]
        more = (["SECRET_KEY (32+ characters)"] if "database" in needs else []) + [
            NEED_SETTINGS[n] for n in needs if n in ("tasks", "mail")
        ]
        rows.append(
            f"| {unit} | {', '.join(needs) or 'nothing'} | {'; '.join(local) or 'nothing'} "
            f"| {'; '.join(more) or 'nothing'} |"
        )
    return "\n".join(rows)


def _with_block(text: str, name: str, content: str) -> str:
    """Replace what sits between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    if not rest:
        return text
    return f"{head}{start}\n{content}\n{end}{tail}"


def inventory() -> dict[str, object]:
    """What Terraform deploys and the local stack runs, read from the one registry: a Cloud
    Run service per unit (with the path prefixes the load balancer sends to it), the task
    queues, which queue each task goes to, the Cloud Scheduler jobs and the API-key scopes."""
    from imangor.config import Settings

    load_all_units()
    defaults = Settings.model_fields
    prefixes = REGISTRY.path_prefixes()
    units = {}
    for unit in REGISTRY.units():
        deploy = asdict(REGISTRY.deploys[unit])
        deploy["needs"] = sorted(deploy["needs"])
        units[unit] = {
            **deploy,
            # DB_POOL_SIZE of the unit: one connection per request it may serve at once (its
            # concurrency, = gunicorn's request threads), none without a database. Terraform's
            # connection budget multiplies it by the unit's max instances.
            "pool_size": deploy["concurrency"] if "database" in deploy["needs"] else 0,
            "paths": sorted(p for p, owner in prefixes.items() if owner == unit),
            "routes": sorted(f"{e.method} {e.path}" for e in REGISTRY.for_unit(unit)),
            "entry_point": unit,
            "source": f"functions/{unit}/main.py",
        }
    return {
        "units": units,
        "database_pool": {
            "pool_size": defaults["db_pool_size"].default,
            "max_overflow": defaults["db_max_overflow"].default,
        },
        "queues": {name: asdict(q) for name, q in sorted(REGISTRY.queues.items())},
        "tasks": {
            name: {"queue": task.queue, "path": task.path}
            for name, task in sorted(REGISTRY.tasks.items())
        },
        "schedules": {
            name: {
                "schedule": job.schedule,
                "time_zone": job.time_zone,
                "path": job.path,
                "description": job.description,
            }
            for name, job in sorted(REGISTRY.schedules.items())
        },
        "api_key_scopes": sorted(REGISTRY.grantable_scopes),
    }


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in derived_files().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"out of date (run `make inventory`): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
