"""Capacity model: what it takes to serve a load of a stated request mix on Google Cloud,
and where the first wall stands. Fed by the measured figures in bench/results (one unit
instance's throughput per endpoint, sign-in and task rates) and by the generated inventory
(units, pools, queues); each environment's sizes are checked against it
(tests/infra/test_capacity.py) and README.md's Capacity section is its output.

    python -m infra.capacity [--rps 10000]

Assumptions, each stated where it is used: a Cloud Run instance (1 vCPU) serves what one unit
process served on the bench machine (the process is one gunicorn worker, bound to one core
by the GIL); the autoscaler keeps instances near 60 % CPU; PostgreSQL's CPU per request is an
estimate (the bench shares a machine with its database and cannot separate it), except
full-text search, measured on 1,000,000 products.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "results"
INVENTORY = ROOT / "terraform" / "generated" / "inventory.json"

INSTANCE_UTILIZATION = 0.6  # Cloud Run's autoscaler aims at about 60 % CPU per instance
DB_UTILIZATION = 0.7  # Cloud SQL kept below 70 % CPU (the alert fires at 80 %)
REDIS_OPS_PER_SECOND = 100_000  # planning figure for one Memorystore primary (not measured)
CLOUD_TASKS_MAX_DISPATCHES = 500.0  # Cloud Tasks' limit per queue, per second
LARGEST_SQL_VCPUS = 96  # the largest Cloud SQL Enterprise custom tier
# Full-text search measured on 1,000,000 products (docs/ARCHITECTURE "facts"): 7-17 ms of
# PostgreSQL for a term matching a few hundred rows, about 230 ms for one matching 6 %.
SEARCH_MS_TYPICAL, SEARCH_MS_WORST = 12.0, 230.0

# Environments are sized for these peak loads of the mix below (requests per second).
DESIGN_LOAD = {"dev": 20.0, "prod": 600.0}


@dataclass(frozen=True)
class Figure:
    """One measured rate of one unit process: requests (or logins, or tasks) per second."""

    per_second: float
    source: str


def _table_rate(path: Path, row: str, column: int) -> Figure:
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == row:
            return Figure(float(cells[column].replace(",", "")), f"{path.name}: {row}")
    raise LookupError(f"{path.name} has no row {row!r}")


def bench_figures(bench: Path = BENCH) -> dict[str, Figure]:
    """The figures the model uses, read from the bench reports as they are committed."""
    api = bench / "api.md"
    return {
        "product hit": _table_rate(api, "GET /products/{id} (cache hit)", 1),
        "product miss": _table_rate(api, "GET /products/{id} (cache miss)", 1),
        "category list": _table_rate(api, "GET /products/?category=", 1),
        "search": _table_rate(api, "GET /products/?q= mixed 30 % broad", 1),
        "order write": _table_rate(api, "POST /orders/", 1),
        "sign-in": _table_rate(bench / "login.md", "4 (Terraform)", 2),
        "task": _table_rate(bench / "tasks.md", "dispatcher as shipped (queue limits)", 1),
    }


@dataclass(frozen=True)
class Share:
    """A part of the mix: which unit serves it, its share of all requests, the bench figure
    of one instance serving it, its PostgreSQL CPU (ms), Redis commands, and tasks enqueued."""

    unit: str
    what: str
    share: float
    figure: str
    db_ms: float
    redis_ops: float
    tasks: dict[str, float] = field(default_factory=dict)


# The stated mix: a catalogue read far more than written. 89 % reads, 10 % writes, 1 % sign-ins.
# Keyed reads of other resources are costed like a product read that misses the cache, writes
# like placing an order (one transaction); redis_ops: the rate limit (1 script), the cache
# (version + value; + a write on a miss), a cache bump after a write.
MIX = (
    Share("products", "product by id, cache hit", 0.40, "product hit", 0.0, 3),
    Share("products", "product by id, cache miss", 0.15, "product miss", 0.3, 4),
    Share("products", "list by category", 0.15, "category list", 0.5, 4),
    Share("products", "full-text search", 0.05, "search", SEARCH_MS_TYPICAL, 4),
    Share("items", "items: list and read", 0.06, "product miss", 0.3, 1),
    Share("orders", "orders: list and read", 0.04, "product miss", 0.3, 1),
    Share("users", "users and API keys: read", 0.02, "product miss", 0.3, 1),
    Share("jobs", "background job status", 0.02, "product miss", 0.3, 1),
    Share("orders", "place an order", 0.05, "order write", 1.0, 2, {"main": 1}),
    Share("items", "items: create, change", 0.03, "order write", 1.0, 2),
    Share("files", "uploads: signed URL, complete", 0.02, "order write", 1.0, 2, {"main": 0.5}),
    Share("auth", "sign-in (Argon2id)", 0.01, "sign-in", 0.5, 3),
)


@dataclass(frozen=True)
class Plan:
    rps: float
    instances: dict[str, int]  # per unit, to serve rps at INSTANCE_UTILIZATION
    per_instance: dict[str, float]  # requests/s one instance of the unit serves at 100 % CPU
    connections: int  # every instance's pool
    db_vcpus: float  # PostgreSQL CPU at DB_UTILIZATION
    db_vcpus_worst_search: float  # the same if every search matched 6 % of the catalogue
    redis_ops: float  # commands per second
    dispatches: dict[str, float]  # per queue, tasks per second


def _mix_check() -> None:
    total = sum(s.share for s in MIX)
    if not math.isclose(total, 1.0):
        raise ValueError(f"the mix adds up to {total}, not 1")


def plan(rps: float, figures: dict[str, Figure], inventory: dict[str, object]) -> Plan:
    _mix_check()
    units: dict[str, dict[str, object]] = inventory["units"]  # type: ignore[assignment]
    busy: dict[str, float] = {}  # instance-seconds per second at 100 % CPU
    served: dict[str, float] = {}
    dispatches: dict[str, float] = {}
    db_ms = db_ms_worst = redis = 0.0
    for part in MIX:
        rate = rps * part.share
        busy[part.unit] = busy.get(part.unit, 0.0) + rate / figures[part.figure].per_second
        served[part.unit] = served.get(part.unit, 0.0) + rate
        db_ms += rate * part.db_ms
        worst = SEARCH_MS_WORST if part.figure == "search" else part.db_ms
        db_ms_worst += rate * worst
        redis += rate * part.redis_ops
        for queue, per_request in part.tasks.items():
            dispatches[queue] = dispatches.get(queue, 0.0) + rate * per_request
    tasks = sum(dispatches.values())
    busy["tasks"] = tasks / figures["task"].per_second
    served["tasks"] = tasks
    instances = {unit: math.ceil(b / INSTANCE_UTILIZATION - 1e-9) for unit, b in busy.items()}
    per_instance = {unit: served[unit] / busy[unit] for unit in busy if busy[unit]}
    connections = sum(n * int(units[u]["pool_size"]) for u, n in instances.items())  # type: ignore[call-overload]
    return Plan(
        rps=rps,
        instances=dict(sorted(instances.items())),
        per_instance=per_instance,
        connections=connections,
        db_vcpus=db_ms / 1000 / DB_UTILIZATION,
        db_vcpus_worst_search=db_ms_worst / 1000 / DB_UTILIZATION,
        redis_ops=redis,
        dispatches=dispatches,
    )


@dataclass(frozen=True)
class Sizes:
    """An environment's committed sizes, as Terraform would deploy them."""

    max_instances: dict[str, int]  # per unit: min(Deploy.max_instances, max_instances_cap)
    db_vcpus: int  # of the Cloud SQL tier
    connections_allowed: int  # 75 % of max_connections minus the reserve
    queue_rates: dict[str, float]  # max_dispatches_per_second per queue (from the code)


def walls(
    sizes: Sizes, figures: dict[str, Figure], inventory: dict[str, object]
) -> list[tuple[float, str]]:
    """(load in req/s of the mix at which it is reached, what) for every limit of these
    sizes, lowest first: the first is the environment's first wall."""
    per_load = plan(1.0, figures, inventory)  # what one request/s of the mix costs
    found: list[tuple[float, str]] = []
    for unit in per_load.per_instance:
        busy = _busy(per_load, unit, figures)
        limit = sizes.max_instances.get(unit, 0)
        found.append((limit * INSTANCE_UTILIZATION / busy, f"{unit}: {limit} instances"))
    for queue, per_request in per_load.dispatches.items():
        rate = sizes.queue_rates.get(queue, 0.0)
        found.append((rate / per_request, f"Cloud Tasks queue {queue}: {rate:g} dispatches/s"))
    found.append(
        (
            sizes.db_vcpus / per_load.db_vcpus,
            f"Cloud SQL CPU: {sizes.db_vcpus} vCPU at {DB_UTILIZATION:.0%}",
        )
    )
    found.append(
        (REDIS_OPS_PER_SECOND / per_load.redis_ops, f"Redis: {REDIS_OPS_PER_SECOND:,} commands/s")
    )
    return sorted(found)


def hard_walls(figures: dict[str, Figure], inventory: dict[str, object]) -> list[tuple[float, str]]:
    """Limits no size in Terraform moves, lowest first: where the design itself has to change."""
    per_load = plan(1.0, figures, inventory)
    largest = LARGEST_SQL_VCPUS
    found = [
        (
            CLOUD_TASKS_MAX_DISPATCHES / per_request,
            f"Cloud Tasks' {CLOUD_TASKS_MAX_DISPATCHES:g} dispatches/s per queue ({queue})",
        )
        for queue, per_request in per_load.dispatches.items()
    ]
    found.append(
        (
            largest / per_load.db_vcpus,
            f"the largest Cloud SQL tier ({largest} vCPU), typical search terms",
        )
    )
    found.append(
        (
            largest / per_load.db_vcpus_worst_search,
            f"the largest Cloud SQL tier ({largest} vCPU) if every search matched 6 %",
        )
    )
    found.append(
        (
            REDIS_OPS_PER_SECOND / per_load.redis_ops,
            f"one Redis primary ({REDIS_OPS_PER_SECOND:,} commands/s)",
        )
    )
    return sorted(found)


def _busy(per_load: Plan, unit: str, figures: dict[str, Figure]) -> float:
    """Instance-seconds per second, at 100 % CPU, that one request/s of the mix gives `unit`."""
    if unit == "tasks":
        return sum(per_load.dispatches.values()) / figures["task"].per_second
    return sum(s.share / figures[s.figure].per_second for s in MIX if s.unit == unit)


def problems(
    sizes: Sizes, rps: float, figures: dict[str, Figure], inventory: dict[str, object]
) -> list[str]:
    """What these sizes cannot serve at `rps` of the mix (empty: they can)."""
    need = plan(rps, figures, inventory)
    found = []
    for unit, n in need.instances.items():
        if n > sizes.max_instances.get(unit, 0):
            found.append(f"{unit} needs {n} instances, may run {sizes.max_instances.get(unit, 0)}")
    if need.db_vcpus > sizes.db_vcpus:
        found.append(f"Cloud SQL needs {need.db_vcpus:.1f} vCPU, has {sizes.db_vcpus}")
    if need.connections > sizes.connections_allowed:
        found.append(f"{need.connections} connections, {sizes.connections_allowed} allowed")
    for queue, rate in need.dispatches.items():
        if rate > sizes.queue_rates.get(queue, 0.0):
            allowed = sizes.queue_rates.get(queue, 0.0)
            found.append(f"queue {queue} needs {rate:.0f} dispatches/s, allows {allowed:g}")
    if need.redis_ops > REDIS_OPS_PER_SECOND:
        found.append(f"Redis needs {need.redis_ops:,.0f} commands/s")
    return found


def tier_vcpus(tier: str) -> int:
    """vCPUs of a Cloud SQL Enterprise tier name (db-custom-N-MB)."""
    match = re.fullmatch(r"db-custom-(\d+)-\d+", tier)
    if not match:
        raise ValueError(f"not a custom tier: {tier}")
    return int(match.group(1))


def render(rps: float, figures: dict[str, Figure], inventory: dict[str, object]) -> str:
    """The README's table for `rps` of the mix."""
    need = plan(rps, figures, inventory)
    lines = [
        f"| {rps:,.0f} req/s of the mix | needs | from |",
        "|---|---:|---|",
    ]
    util = f"{INSTANCE_UTILIZATION:.0%}"
    for unit, n in need.instances.items():
        tasks = unit == "tasks"
        served = (
            sum(need.dispatches.values())
            if tasks
            else sum(rps * s.share for s in MIX if s.unit == unit)
        )
        per = need.per_instance[unit]
        lines.append(
            f"| {unit} instances ({served:,.0f} {'tasks/s' if tasks else 'req/s'}) | {n} | "
            f"{per:,.0f} per instance at 100 % CPU, run at {util} |"
        )
    db = f"{DB_UTILIZATION:.0%}"
    lines += [
        f"| database connections (every instance's pool) | {need.connections:,} "
        "| pool = concurrency (4) per instance |",
        f"| Cloud SQL vCPU (typical search terms) | {need.db_vcpus:.1f} "
        f"| at {db}; search is {_search_share(rps):.0%} of it |",
        f"| Cloud SQL vCPU (every search a 6 %-match term) | {need.db_vcpus_worst_search:.0f} "
        f"| the largest Enterprise tier has {LARGEST_SQL_VCPUS} |",
        f"| Redis commands/s | {need.redis_ops:,.0f} "
        f"| of about {REDIS_OPS_PER_SECOND:,} for one primary |",
    ]
    for queue, rate in sorted(need.dispatches.items()):
        lines.append(
            f"| Cloud Tasks dispatches/s, queue {queue} | {rate:,.0f} "
            f"| Cloud Tasks allows {CLOUD_TASKS_MAX_DISPATCHES:g} per queue |"
        )
    lines.append("")
    lines += [f"- {load:,.0f} req/s: {what}" for load, what in hard_walls(figures, inventory)]
    return "\n".join(lines)


def _search_share(rps: float) -> float:
    total = sum(rps * s.share * s.db_ms for s in MIX)
    return sum(rps * s.share * s.db_ms for s in MIX if s.figure == "search") / total


def load_inventory() -> dict[str, object]:
    data: dict[str, object] = json.loads(INVENTORY.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rps", type=float, default=10_000)
    args = parser.parse_args(argv)
    print(render(args.rps, bench_figures(), load_inventory()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
