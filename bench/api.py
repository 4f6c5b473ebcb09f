"""API benchmark: the catalog and orders units served the production way, on a seeded catalog,
beside a bare Flask + pg8000 endpoint doing the same primary-key query.

    uv run --frozen python bench/api.py [--products 1000000] [--duration 10] [--concurrency 16]

- Database: a dedicated `imangor_bench` on the local PostgreSQL (BENCH_ADMIN_URL, default
  postgresql://postgres@127.0.0.1:5432/postgres), migrated and seeded once with
  `python -m infra.local.seed` (reused by later runs); Redis db 9 on 127.0.0.1:6379
  (BENCH_REDIS_URL).
- Servers: `functions-framework --target <unit> --source functions/<unit>/main.py` (gunicorn
  gthread: 1 worker × 4×CPU threads, as on Cloud Run) on 127.0.0.1, default pool settings;
  the baseline is the same gunicorn running a bare Flask app with one pg8000 connection per
  thread.
- Load: processes × threads of keep-alive `http.client` connections, each loop bounded by a
  fixed duration after a short warm-up; only 127.0.0.1 is ever targeted.
- Connections: `pg_stat_database.sessions` of the bench database before and after each server's
  life (nothing else connects to it meanwhile), and the peak seen in pg_stat_activity.

Writes bench/results/api.md and, when matplotlib is installed, bench/results/api.png.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
DATABASE = "imangor_bench"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - local only
HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to
BENCH_USERS = 1000  # orders rotate over these customers (10 orders/min each is the limit)
ORDER_STOCK = 10_000_000  # the products orders go to never run out during a run

# Request = (method, path, body or None, headers)
Request = tuple[str, str, bytes | None, dict[str, str]]


# -- setup -----------------------------------------------------------------------------------


def db_url(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def connect(database: str) -> Any:
    import pg8000.dbapi
    from sqlalchemy.engine import make_url

    url = make_url(db_url(database))
    return pg8000.dbapi.connect(
        user=url.username or "postgres",
        password=url.password,
        host=url.host or HOST,
        port=url.port or 5432,
        database=url.database,
    )


POOL: dict[str, str] = {}  # DB_POOL_SIZE / DB_MAX_OVERFLOW given on the command line


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "THREADS", "WORKERS"))}
    env.update(
        DATABASE_URL=db_url(DATABASE),
        REDIS_URL=REDIS_URL,
        SECRET_KEY=SECRET,
        ENVIRONMENT="local",
        LOG_LEVEL="WARNING",  # the access log of every request would measure the terminal
        # One client IP sends everything: the limiter still runs (a Redis call per request)
        # but with a ceiling this load cannot reach. POST /orders/ keeps its own 10/min per
        # customer, so orders rotate over BENCH_USERS customers.
        RATE_LIMIT_DEFAULT="100000000/60",
        PYTHONPATH=str(ROOT),
        **POOL,
        **extra,
    )
    return env


def prepare(products: int, orders: int) -> None:
    """Create, migrate and seed the bench database unless it already holds the catalog."""
    admin = connect("postgres")
    admin.autocommit = True
    cursor = admin.cursor()
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
    if cursor.fetchone() is None:
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    admin.close()
    run = [sys.executable, "-m"]
    subprocess.run([*run, "imangor.migrate"], env=server_env(), check=True, cwd=ROOT)
    connection = connect(DATABASE)
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM products")
    have = cursor.fetchone()[0]
    connection.close()
    if have >= products:
        print(f"bench database has {have:,} products: reusing it", file=sys.stderr)
        return
    print(f"seeding {products - have:,} products and {orders:,} orders", file=sys.stderr)
    seed = [*run, "infra.local.seed", "--products", str(products - have), "--orders", str(orders)]
    subprocess.run([*seed, "--seed", str(1000 + have)], env=server_env(), check=True, cwd=ROOT)


@dataclass
class Fixtures:
    product_ids: list[str]
    hot_ids: list[str]
    order_product_ids: list[str]
    tokens: list[str]
    queries: list[str]
    categories: list[str]
    total_products: int


def fixtures(rng: random.Random) -> Fixtures:
    """Ids to read, products to order (restocked), bench customers with tokens, queries."""
    connection = connect(DATABASE)
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM products")
    total = cursor.fetchone()[0]
    cursor.execute("SELECT id::text FROM products TABLESAMPLE SYSTEM (5) LIMIT 60000")
    ids = [row[0] for row in cursor.fetchall()]
    rng.shuffle(ids)
    order_ids = ids[:1000]
    cursor.execute(
        "UPDATE products SET stock = %s WHERE id = ANY(%s::uuid[])", (ORDER_STOCK, order_ids)
    )
    emails = [f"bench-customer-{n:04d}@example.com" for n in range(BENCH_USERS)]
    cursor.execute(
        "INSERT INTO users (email, full_name, role) SELECT e, 'Bench', 'customer' "
        "FROM unnest(%s::text[]) AS e ON CONFLICT (email) DO NOTHING",
        (emails,),
    )
    cursor.execute("SELECT id FROM users WHERE email = ANY(%s::text[])", (emails,))
    users = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT DISTINCT category FROM products WHERE category IS NOT NULL")
    categories = sorted(row[0] for row in cursor.fetchall())
    connection.commit()
    connection.close()

    os.environ.update(SECRET_KEY=SECRET, DATABASE_URL=db_url(DATABASE), REDIS_URL=REDIS_URL)
    from imangor.auth.tokens import issue_access_token
    from imangor.config import get_settings
    from infra.local.seed import ADJECTIVES, CATEGORIES

    get_settings.cache_clear()
    tokens = [issue_access_token(user, "customer")[0] for user in users]
    nouns = [n for ns, _ in CATEGORIES.values() for n in ns]
    queries = [f"{a} {n}" for a in ADJECTIVES for n in nouns]
    rng.shuffle(queries)
    return Fixtures(ids[1000:], ids[1000:1100], order_ids, tokens, queries, categories, total)


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not answer {path}")


@contextmanager
def serve(command: list[str], port: int, ready_path: str, env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_ready(port, ready_path)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # this server's own process group only
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def unit_command(unit: str, port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target",
        unit,
        "--source",
        f"functions/{unit}/main.py",
        "--host",
        HOST,
        "--port",
        str(port),
    ]


def baseline_command(port: int, threads: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers",
        "1",
        "--threads",
        str(threads),
        "--bind",
        f"{HOST}:{port}",
        "--log-level",
        "error",
        "bench.api:baseline_app()",
    ]


def baseline_app() -> Any:
    """A bare Flask app doing the same primary-key query: one pg8000 connection per thread,
    opened once and kept (the cheapest thing a Python service can do per request)."""
    import pg8000.native
    from flask import Flask, Response
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["DATABASE_URL"])
    app = Flask("baseline")
    local = threading.local()

    def connection() -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = pg8000.native.Connection(
                user=url.username or "postgres",
                password=url.password,
                host=url.host or HOST,
                port=url.port or 5432,
                database=url.database,
            )
        return conn

    @app.get("/baseline/products/<product_id>")
    def product(product_id: str) -> Response:
        rows = connection().run(
            "SELECT id, name, price, stock, attributes, created_at, updated_at "
            "FROM products WHERE id = :id",
            id=product_id,
        )
        if not rows:
            return Response(status=404)
        ident, name, price, stock, attributes, created, updated = rows[0]
        body = {
            "id": str(ident),
            "name": name,
            "price": f"{price:.2f}",
            "stock": stock,
            "attributes": attributes,
            "created_at": created.isoformat(),
            "updated_at": updated.isoformat(),
        }
        return Response(json.dumps(body), mimetype="application/json")

    return app


# -- load ------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _worker(
    port: int,
    make: Callable[[int, int], Iterator[Request]],
    process_index: int,
    processes: int,
    threads: int,
    warmup: float,
    duration: float,
    out: Any,
) -> None:
    """One load process: `threads` keep-alive connections, each sending back to back."""
    start = time.monotonic() + warmup
    stop = start + duration
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    def loop(thread_index: int) -> None:
        nonlocal errors
        requests = make(process_index * threads + thread_index, processes * threads)
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        mine: list[float] = []
        codes: dict[int, int] = {}
        failed = 0
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            method, path, body, headers = next(requests)
            sent = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
                status = 0
            elapsed = (time.perf_counter() - sent) * 1000
            if now >= start:  # warm-up requests are not recorded
                mine.append(elapsed)
                codes[status] = codes.get(status, 0) + 1
                if status == 0 or status >= 400:
                    failed += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n
            errors += failed

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=warmup + duration + 60)
    out.put((latencies, statuses, errors))


def load(
    name: str,
    port: int,
    make: Callable[[int, int], Iterator[Request]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 2.0,
    processes: int = 2,
) -> Result:
    """Bounded load: `concurrency` connections over `processes` processes for `duration` s."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    per = max(1, concurrency // processes)
    children = [
        context.Process(target=_worker, args=(port, make, p, processes, per, warmup, duration, out))
        for p in range(processes)
    ]
    for child in children:
        child.start()
    result = Result(name, seconds=duration)
    for _ in children:
        latencies, statuses, errors = out.get(timeout=warmup + duration + 120)
        result.latencies_ms.extend(latencies)
        for code, n in statuses.items():
            result.statuses[code] = result.statuses.get(code, 0) + n
        result.errors += errors
    for child in children:
        child.join(timeout=30)
    result.requests = len(result.latencies_ms)
    print(
        f"{name:32s} {result.rps:8.0f} req/s  p50 {result.pct(0.5):7.2f} ms  "
        f"p99 {result.pct(0.99):7.2f} ms  errors {result.errors}  {result.statuses}",
        file=sys.stderr,
    )
    return result


def _slice(items: list[str], slot: int, slots: int) -> list[str]:
    """A disjoint share of `items` for one load thread (so cache misses stay misses)."""
    return items[slot::slots] or items


def get_paths(paths: list[str], *, cycle: bool) -> Callable[[int, int], Iterator[Request]]:
    def make(slot: int, slots: int) -> Iterator[Request]:
        mine = _slice(paths, slot, slots)
        source = itertools.cycle(mine) if cycle else iter(mine + mine)
        for path in source:
            yield ("GET", path, None, {})
        while True:  # ran out of unique paths: keep going, counted as what they are
            yield ("GET", random.choice(paths), None, {})

    return make


def order_requests(fx: Fixtures) -> Callable[[int, int], Iterator[Request]]:
    def make(slot: int, slots: int) -> Iterator[Request]:
        rng = random.Random(slot)
        tokens = _slice(fx.tokens, slot, slots)
        for token in itertools.cycle(tokens):
            body = json.dumps({"product_id": rng.choice(fx.order_product_ids), "quantity": 1})
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            yield ("POST", "/orders/", body.encode(), headers)

    return make


def category_pages(rng: random.Random, categories: list[str], count: int) -> list[str]:
    """Category pages in a price band holding ~40% of the category (as a shop's filters do),
    sorted by price or newest; the bands are random, so each URL is a cache miss."""
    from infra.local.seed import CATEGORIES

    pages = []
    for _ in range(count):
        category = rng.choice(categories)
        low, high = CATEGORIES[category][1] if category in CATEGORIES else (1, 1000)
        span = high / low
        start = low * span ** rng.uniform(0, 0.6)
        end = start * span**0.4
        sort = rng.choice(("price", "newest"))
        pages.append(
            f"/products/?category={category}&min_price={start:.2f}&max_price={end:.2f}&sort={sort}"
        )
    return pages


# -- connections -----------------------------------------------------------------------------


class ConnectionWatch:
    """Sessions opened to the bench database while a server runs, and the peak at once."""

    def __init__(self) -> None:
        self.admin = connect("postgres")
        self.admin.autocommit = True
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def sessions(self) -> int:
        cursor = self.admin.cursor()
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (DATABASE,))
        value: int = cursor.fetchone()[0]
        return value

    def _sample(self) -> None:
        watcher = connect("postgres")
        watcher.autocommit = True
        cursor = watcher.cursor()
        while not self._stop.is_set():
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DATABASE,))
            self.peak = max(self.peak, cursor.fetchone()[0])
            self._stop.wait(0.2)
        watcher.close()

    def __enter__(self) -> ConnectionWatch:
        self.before = self.sessions()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        time.sleep(0.5)  # the last sessions' statistics reach the collector
        self.opened = self.sessions() - self.before
        self.admin.close()


# -- plans ---------------------------------------------------------------------------------

EXPLAINED = [
    {"q": "wireless headphones"},
    {"q": "teapot", "sort": "price"},
    {"q": "lamp -desk", "sort": "newest"},
    {"q": "walnut"},
    {"category": "kitchen"},
    {"category": "kitchen", "sort": "price", "min_price": "20", "max_price": "80"},
    {"category": "books", "min_price": "10", "max_price": "30"},
    {"sort": "price", "min_price": "100", "max_price": "110"},
    {},
]


def explain_findings() -> list[tuple[str, str, bool, float]]:
    """EXPLAIN ANALYZE of the service's own search statements on the seeded catalog:
    (query, indexes used, sequential scan of products?, execution ms)."""
    from sqlalchemy import ClauseElement, Executable
    from sqlalchemy.ext.compiler import compiles

    from imangor.config import get_settings
    from imangor.db import build_engine
    from imangor.schemas.products import ProductQuery
    from imangor.services.products import search_statement

    class Explain(Executable, ClauseElement):
        inherit_cache = False

        def __init__(self, statement: Any) -> None:
            self.statement = statement

    @compiles(Explain, "postgresql")
    def _compile(element: Explain, compiler: Any, **kw: Any) -> str:
        return "EXPLAIN (ANALYZE, FORMAT JSON) " + str(compiler.process(element.statement, **kw))

    def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield plan
        for child in plan.get("Plans", []):
            yield from nodes(child)

    get_settings.cache_clear()
    engine = build_engine(get_settings())
    findings = []
    try:
        with engine.connect() as connection:
            for params in EXPLAINED:
                query = ProductQuery.model_validate(params)
                document = connection.execute(Explain(search_statement(query))).scalar_one()
                plan = document[0]["Plan"]
                seen = list(nodes(plan))
                indexes = sorted({n["Index Name"] for n in seen if "Index Name" in n})
                seq = any(
                    n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "products"
                    for n in seen
                )
                label = "&".join(f"{k}={v}" for k, v in params.items()) or "(newest)"
                findings.append((label, ", ".join(indexes), seq, document[0]["Execution Time"]))
    finally:
        engine.dispose()
    return findings


# -- report ----------------------------------------------------------------------------------


def bump_cache() -> None:
    from imangor.cache import CATALOG, bump
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    get_settings.cache_clear()
    reset_redis()
    bump(CATALOG)


def write_report(
    results: list[Result],
    baseline: Result,
    connections: dict[str, tuple[int, int]],
    meta: dict[str, Any],
    plans: list[tuple[str, str, bool, float]],
) -> Path:
    lines = [
        "# API benchmark",
        "",
        f"{meta['products']:,} products, {meta['cpus']} CPUs, PostgreSQL {meta['pg']}, "
        f"{meta['concurrency']} keep-alive connections per run, {meta['duration']:.0f} s per "
        f"endpoint after {meta['warmup']:.0f} s warm-up. Servers: functions-framework + gunicorn "
        f"gthread, 1 worker × {meta['threads']} threads, DB pool {meta['pool']} per process; "
        "the baseline is bare Flask + pg8000 (one connection per thread) on the same gunicorn. "
        "Load generator and servers share the machine.",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | errors | req/s vs baseline | p99 vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [baseline, *results]:
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.pct(0.5):.2f} | {r.pct(0.99):.2f} | {r.errors} | "
            f"{r.rps / baseline.rps:.2f}× | {r.pct(0.99) / baseline.pct(0.99):.2f}× |"
        )
    lines += [
        "",
        "Statuses: "
        + "; ".join(f"{r.name}: {dict(sorted(r.statuses.items()))}" for r in [baseline, *results]),
        "",
        "## PostgreSQL connections",
        "",
        "| server | sessions opened during its run | peak open at once | pool limit |",
        "|---|---:|---:|---:|",
    ]
    for server, (opened, peak) in connections.items():
        lines.append(f"| {server} | {opened} | {peak} | {meta['limits'][server]} |")
    lines += [
        "",
        "## Search plans on this catalog (EXPLAIN ANALYZE of the service's statements)",
        "",
        "| query | indexes used | seq scan of products | execution ms |",
        "|---|---|---|---:|",
    ]
    for label, indexes, seq, ms in plans:
        lines.append(f"| `{label}` | {indexes} | {'yes' if seq else 'no'} | {ms:.1f} |")
    lines += ["", f"Run {meta['when']} with `uv run --frozen python {meta['command']}`.", ""]
    path = RESULTS / "api.md"
    path.write_text("\n".join(lines))
    return path


def write_chart(results: list[Result], baseline: Result) -> Path | None:
    """Throughput and p99 per endpoint beside the baseline (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (uv add --dev matplotlib)", file=sys.stderr)
        return None
    runs = [baseline, *results]
    names = [r.name.replace(" ", "\n", 1) for r in runs]
    colors = ["#888888"] + ["#3b6ea5"] * len(results)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    left.bar(names, [r.rps for r in runs], color=colors)
    left.set_title("Throughput (req/s, higher is better)")
    right.bar(names, [r.pct(0.99) for r in runs], color=colors)
    right.set_title("p99 latency (ms, lower is better)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle("Imangor API vs bare Flask + pg8000 (grey)")
    figure.tight_layout()
    path = RESULTS / "api.png"
    figure.savefig(path, dpi=110)
    return path


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool-size", type=int, help="DB_POOL_SIZE of the API servers")
    parser.add_argument("--max-overflow", type=int, help="DB_MAX_OVERFLOW of the API servers")
    args = parser.parse_args(argv)
    if args.pool_size is not None:
        POOL["DB_POOL_SIZE"] = str(args.pool_size)
    if args.max_overflow is not None:
        POOL["DB_MAX_OVERFLOW"] = str(args.max_overflow)
    duration = min(max(args.duration, 1.0), 120.0)  # every loop stops by itself
    concurrency = min(max(args.concurrency, 2), 256)

    RESULTS.mkdir(parents=True, exist_ok=True)
    prepare(args.products, args.orders)
    rng = random.Random(7)
    fx = fixtures(rng)
    threads = int(os.environ.get("THREADS", (os.cpu_count() or 1) * 4))
    from imangor.config import Settings

    pool = int(POOL.get("DB_POOL_SIZE", Settings.model_fields["db_pool_size"].default))
    overflow = int(POOL.get("DB_MAX_OVERFLOW", Settings.model_fields["db_max_overflow"].default))
    options = {"concurrency": concurrency, "duration": duration, "warmup": args.warmup}
    connections: dict[str, tuple[int, int]] = {}
    results: list[Result] = []

    port = free_port()
    with (
        ConnectionWatch() as watch,
        serve(baseline_command(port, threads), port, "/baseline/products/x", server_env()),
    ):
        baseline = load(
            "baseline GET by id",
            port,
            get_paths([f"/baseline/products/{i}" for i in fx.product_ids], cycle=False),
            **options,
        )
    connections["baseline (Flask + pg8000)"] = (watch.opened, watch.peak)

    port = free_port()
    with (
        ConnectionWatch() as watch,
        serve(unit_command("products", port), port, "/products/?limit=1", server_env()),
    ):
        bump_cache()
        results.append(
            load(
                "GET /products/{id} miss",
                port,
                get_paths([f"/products/{i}" for i in fx.product_ids], cycle=False),
                **options,
            )
        )
        hot = [f"/products/{i}" for i in fx.hot_ids]
        results.append(load("GET /products/{id} hit", port, get_paths(hot, cycle=True), **options))
        searches = [f"/products/?q={q.replace(' ', '+')}" for q in fx.queries]
        results.append(load("GET /products/?q=", port, get_paths(searches, cycle=False), **options))
        by_category = category_pages(rng, fx.categories, 20_000)
        results.append(
            load("GET /products/?category=", port, get_paths(by_category, cycle=False), **options)
        )
    connections["products unit"] = (watch.opened, watch.peak)

    port = free_port()
    with (
        ConnectionWatch() as watch,
        serve(unit_command("orders", port), port, "/orders/", server_env()),
    ):
        results.append(load("POST /orders/", port, order_requests(fx), **options))
    connections["orders unit"] = (watch.opened, watch.peak)

    admin = connect(DATABASE)
    cursor = admin.cursor()
    cursor.execute("SHOW server_version")
    version = cursor.fetchone()[0]
    admin.close()
    meta = {
        "products": fx.total_products,
        "cpus": os.cpu_count(),
        "pg": version,
        "threads": threads,
        "pool": f"{pool} + {overflow} overflow",
        "limits": {
            "baseline (Flask + pg8000)": f"{threads} (one per thread)",
            "products unit": pool + overflow,
            "orders unit": pool + overflow,
        },
        "when": time.strftime("%Y-%m-%d", time.gmtime()) + f" on {platform.machine()}",
        "command": " ".join(["bench/api.py", *(argv if argv is not None else sys.argv[1:])]),
        **options,
    }
    plans = explain_findings()
    report = write_report(results, baseline, connections, meta, plans)
    chart = write_chart(results, baseline)
    print(report.read_text())
    if chart:
        print(f"chart: {chart.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
