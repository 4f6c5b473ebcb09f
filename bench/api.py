"""API benchmark: the catalog and orders units served the production way, on a seeded catalog,
each endpoint beside a bare Flask + pg8000 baseline measured in the same pass.

    uv run --frozen python bench/api.py [--products 1000000] [--duration 10] [--passes 3]
                                        [--concurrency 16] [--client auto|wrk|python]

- Database: a dedicated `imangor_bench` on the local PostgreSQL (BENCH_ADMIN_URL, default
  postgresql://postgres@127.0.0.1:5432/postgres), migrated and seeded once with
  `python -m infra.local.seed` (reused by later runs); Redis db 9 on 127.0.0.1:6379
  (BENCH_REDIS_URL), which no test uses.
- Servers, all started once and kept for every pass: `functions-framework --target <unit>
  --source functions/<unit>/main.py` (gunicorn gthread: 1 worker × 4×CPU threads, as on Cloud
  Run; DB_POOL_SIZE = threads unless --pool-size), and the baselines on the same gunicorn: a
  bare Flask app with one pg8000 connection per thread that reads a product by primary key,
  and one that places an order bare (verify the JWT, then one statement in one transaction:
  take the stock conditionally and insert the order from its RETURNING).
- Load: wrk (bench/load.py; the Python client when wrk is missing), `--concurrency`
  keep-alive connections, a warm-up then a measured run per endpoint; each endpoint gets its
  own slice of distinct requests, so cache misses stay misses and searches are distinct.
  Endpoints run in the same order in every pass; each figure is the median over passes, and
  each ratio the median of the per-pass ratios against the baseline of the same pass.
- Server CPU: user + system seconds of the server's process tree (gunicorn master and
  worker, psutil) over the measured run, divided by the requests answered.
- PostgreSQL connections: `pg_stat_database.sessions` of the bench database before and after
  each measured run (sessions opened = connection churn), and the TCP connections the
  server's processes hold to PostgreSQL after it.

Only 127.0.0.1 is ever targeted; every run is bounded by its duration. Writes
bench/results/api.md and, when matplotlib is installed, bench/results/api.png.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: bench.* importable

from bench.common import free_port, machine_lines, tree_cpu_seconds
from bench.load import UNIQUE, Measured, Request, choose_client, run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
DATABASE = "imangor_bench"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105 - local only
HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to
# Orders rotate over these customers: POST /orders/ allows each 10 a minute.
BENCH_USERS = 5000
ORDER_STOCK = 10_000_000  # the products orders go to never run out during a run
BROAD = 0.05  # a search term is broad when it matches at least this share of the catalog
LIMITS = range(10, 41)  # page sizes a search picks from (part of what makes it distinct)


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


SERVER_ENV: dict[str, str] = {}  # DB_POOL_SIZE / DB_MAX_OVERFLOW / THREADS of every server


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
        **SERVER_ENV,
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
    run_module = [sys.executable, "-m"]
    subprocess.run([*run_module, "imangor.migrate"], env=server_env(), check=True, cwd=ROOT)
    connection = connect(DATABASE)
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM products")
    have = cursor.fetchone()[0]
    connection.close()
    if have >= products:
        print(f"bench database has {have:,} products: reusing it", file=sys.stderr)
        return
    print(f"seeding {products - have:,} products and {orders:,} orders", file=sys.stderr)
    seed = [*run_module, "infra.local.seed", "--products", str(products - have)]
    seed += ["--orders", str(orders), "--seed", str(1000 + have)]
    subprocess.run(seed, env=server_env(), check=True, cwd=ROOT)


@dataclass
class Queries:
    """Search terms by how much of the catalog they match (estimated from pg_stats)."""

    narrow: list[str]  # adjective + noun: a few hundred matches each
    words: list[str]  # one narrower word: 0.1-5 % of the catalog
    broad: list[str]  # one word, or two joined by `or`, each matching >= 5 %
    pairs: list[str]  # two broad words together (AND): what both lists hold, ~0.4 %
    shares: dict[str, tuple[float, float]]  # class -> (lowest, highest) estimated share


@dataclass
class Fixtures:
    product_ids: list[str]
    hot_ids: list[str]
    order_product_ids: list[str]
    tokens: list[str]
    queries: Queries
    categories: list[str]
    total_products: int
    jwt_claims: dict[str, str]


def lexeme_shares(cursor: Any) -> dict[str, float]:
    """Share of products holding each common lexeme: ANALYZE's most_common_elems."""
    cursor.execute(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE tablename = 'products' AND attname = 'search_vector'"
    )
    row = cursor.fetchone()
    if row is None or row[0] is None:
        return {}
    return {lexeme: float(freq) for lexeme, freq in zip(row[0], row[1], strict=False)}


def search_terms(cursor: Any, rng: random.Random) -> Queries:
    from infra.local.seed import ADJECTIVES, BRANDS, CATEGORIES, COLORS, MATERIALS, USES

    shares = lexeme_shares(cursor)
    words = sorted(
        {w for w in (*MATERIALS, *COLORS, *USES, *BRANDS, *ADJECTIVES) if " " not in w}
        | {n for ns, _ in CATEGORIES.values() for n in ns if " " not in n}
    )
    cursor.execute(
        "SELECT w, array_to_string(tsvector_to_array(to_tsvector('english', w)), ' ') "
        "FROM unnest(%s::text[]) AS w",
        (words,),
    )
    share = {}
    for word, lexemes in cursor.fetchall():
        if lexemes and " " not in lexemes and lexemes in shares:
            share[word] = shares[lexemes]
    broad_words = sorted(w for w, s in share.items() if s >= BROAD)
    narrower = sorted(w for w, s in share.items() if 0.001 <= s < BROAD)
    nouns = [n for ns, _ in CATEGORIES.values() for n in ns]
    narrow = [f"{a} {n}" for a in ADJECTIVES for n in nouns]
    broad = broad_words + [f"{a} or {b}" for a in broad_words for b in broad_words if a < b]
    pairs = [f"{a} {b}" for a in broad_words for b in broad_words if a < b]
    words = list(narrower)
    for each in (narrow, words, broad, pairs):
        rng.shuffle(each)
    both = [share.get(a, 0) * share.get(b, 0) for a in broad_words for b in broad_words if a < b]

    def span(values: list[float]) -> tuple[float, float]:
        return (min(values), max(values)) if values else (float("nan"), float("nan"))

    return Queries(
        narrow,
        words,
        broad,
        pairs,
        {
            "broad": span([share[w] for w in broad_words]),
            "words": span([share[w] for w in narrower]),
            "pairs": span(both),
        },
    )


def fixtures(rng: random.Random) -> Fixtures:
    """Ids to read, products to order (restocked), bench customers with tokens, queries."""
    connection = connect(DATABASE)
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM products")
    total = cursor.fetchone()[0]
    cursor.execute("SELECT id::text FROM products TABLESAMPLE SYSTEM (10) LIMIT 100000")
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
    queries = search_terms(cursor, rng)
    connection.commit()
    connection.close()
    # The local Cloud Tasks stand-in's table, which the order baselines and the orders unit
    # (served as make dev serves it) push jobs into.
    from sqlalchemy import create_engine

    from imangor.db import sqlalchemy_url
    from infra.local.tasks import LocalBase

    engine = create_engine(sqlalchemy_url(db_url(DATABASE)))
    LocalBase.metadata.create_all(engine)
    engine.dispose()

    os.environ.update(
        SECRET_KEY=SECRET,
        DATABASE_URL=db_url(DATABASE),
        REDIS_URL=REDIS_URL,
        ACCESS_TOKEN_MINUTES="600",  # noqa: S106 - a lifetime, not a secret; outlives every pass
    )
    from imangor.auth.tokens import issue_access_token
    from imangor.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    tokens = [issue_access_token(user, "customer")[0] for user in users]
    claims = {"BENCH_JWT_ISSUER": settings.jwt_issuer, "BENCH_JWT_AUDIENCE": settings.jwt_audience}
    rest = ids[1000:]
    return Fixtures(rest, rest[:100], order_ids, tokens, queries, categories, total, claims)


# -- servers ---------------------------------------------------------------------------------


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
def serve(command: list[str], port: int, ready_path: str, env: dict[str, str]) -> Iterator[int]:
    """A started server (its pid), stopped on exit: its own process group only."""
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
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# The orders unit runs with the local Cloud Tasks stand-in behind its outbox, as under
# `make dev`; on its own it would find no task backend and log a failed push per order.
SOURCES = {"orders": "bench/orders_unit.py"}


def unit_command(unit: str, port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target",
        unit,
        "--source",
        SOURCES.get(unit, f"functions/{unit}/main.py"),
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
    """Bare Flask apps doing each endpoint's essential work: one pg8000 connection per thread,
    opened once and kept (the cheapest thing a Python service can do per request)."""
    import jwt
    import pg8000.native
    from flask import Flask, Response, request
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["DATABASE_URL"])
    secret = os.environ["SECRET_KEY"]
    issuer, audience = os.environ["BENCH_JWT_ISSUER"], os.environ["BENCH_JWT_AUDIENCE"]
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

    @app.post("/baseline/orders")
    def order() -> Response:
        """Who orders (JWT), then one autocommitted statement: the stock is taken only if
        there is enough, and the order row is inserted from the UPDATE's RETURNING."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], audience=audience, issuer=issuer
            )
        except jwt.PyJWTError:
            return Response(status=401)
        data = request.get_json()
        quantity, product_id = int(data["quantity"]), str(data["product_id"])
        rows = connection().run(
            "WITH taken AS (UPDATE products SET stock = stock - :q, updated_at = now() "
            "WHERE id = :p AND stock >= :q RETURNING price) "
            "INSERT INTO orders (id, user_id, product_id, quantity, unit_price, status) "
            "SELECT :id, :u, :p, :q, price, 'pending' FROM taken "
            "RETURNING id, unit_price, created_at, updated_at",
            q=quantity,
            p=product_id,
            id=str(uuid.uuid4()),
            u=claims["sub"],
        )
        if not rows:
            return Response(status=409)
        ident, price, created, updated = rows[0]
        body = {
            "id": str(ident),
            "user_id": claims["sub"],
            "product_id": product_id,
            "quantity": quantity,
            "unit_price": f"{price:.2f}",
            "total": f"{price * quantity:.2f}",
            "status": "pending",
            "created_at": created.isoformat(),
            "updated_at": updated.isoformat(),
        }
        return Response(json.dumps(body), status=201, mimetype="application/json")

    redis_client = None

    def rate_limit_and(*commands: tuple[str, ...]) -> None:
        """One Redis round trip: a fixed-window counter (the rate limit) plus `commands`."""
        nonlocal redis_client
        if redis_client is None:
            import redis

            redis_client = redis.Redis.from_url(os.environ["REDIS_URL"])
        pipe = redis_client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        pipe.execute()

    @app.post("/baseline/orders-contract")
    def order_with_contract() -> Response:
        """The floor of POST /orders/'s contract, bare: what it must do at the fewest round
        trips. JWT; the rate limit (Redis); one transaction: the account is live and the
        Idempotency-Key claimed (one statement), then stock, order, job, outbox row and the
        stored answer (one statement); the catalog cache bumped (Redis); the job handed to
        the task queue and its outbox row deleted (one statement). A replayed key answers the
        stored response."""
        import hashlib

        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], audience=audience, issuer=issuer
            )
        except jwt.PyJWTError:
            return Response(status=401)
        user, key = claims["sub"], request.headers["Idempotency-Key"]
        window = int(time.time() // 60)
        rate_limit_and(
            ("INCR", f"bench:rl:{user}:{window}"), ("EXPIRE", f"bench:rl:{user}:{window}", "60")
        )
        raw = request.get_data()
        data = json.loads(raw)
        quantity, product_id = int(data["quantity"]), str(data["product_id"])
        fingerprint = hashlib.sha256(b"POST /orders/\n" + raw).hexdigest()
        conn = connection()
        conn.run("BEGIN")
        try:
            claimed = conn.run(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, expires_at) "
                "SELECT :u, :k, :f, now() + interval '1 day' FROM users "
                "WHERE id = :u AND is_active "
                "ON CONFLICT (user_id, key) DO NOTHING RETURNING key",
                u=user,
                k=key,
                f=fingerprint,
            )
            if not claimed:
                stored = conn.run(
                    "SELECT answer FROM idempotency_keys WHERE user_id = :u AND key = :k",
                    u=user,
                    k=key,
                )
                conn.run("ROLLBACK")
                if not stored or stored[0][0] is None:
                    return Response(status=401)
                answer = stored[0][0]
                return Response(
                    answer["body"], status=answer["status"], mimetype="application/json"
                )
            order_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
            rows = conn.run(
                "WITH taken AS (UPDATE products SET stock = stock - :q, updated_at = now() "
                "WHERE id = :p AND stock >= :q RETURNING price), "
                "placed AS (INSERT INTO orders (id, user_id, product_id, quantity, unit_price, "
                "status) SELECT :o, :u, :p, :q, price, 'pending' FROM taken "
                "RETURNING id, unit_price, created_at, updated_at), "
                "job AS (INSERT INTO jobs (id, kind, queue, payload, user_id) "
                "SELECT :j, 'process_order', 'main', jsonb_build_object('order_id', id), :u "
                "FROM placed RETURNING id), "
                "outbox AS (INSERT INTO task_outbox (job_id) SELECT id FROM job), "
                "doc AS (SELECT json_build_object('id', id, 'user_id', :u, 'product_id', :p, "
                "'quantity', :q, 'unit_price', unit_price::text, 'total', "
                "(unit_price * :q)::text, 'status', 'pending', 'created_at', created_at, "
                "'updated_at', updated_at)::text AS body FROM placed), "
                "kept AS (UPDATE idempotency_keys SET answer = jsonb_build_object('status', "
                "201, 'body', (SELECT body FROM doc)) WHERE user_id = :u AND key = :k "
                "AND EXISTS (SELECT FROM doc)) "
                "SELECT body FROM doc",
                q=quantity,
                p=product_id,
                o=order_id,
                u=user,
                j=job_id,
                k=key,
            )
            if not rows:
                conn.run("ROLLBACK")
                return Response(status=409)
            conn.run("COMMIT")
        except Exception:
            conn.run("ROLLBACK")
            raise
        rate_limit_and(("INCR", "bench:catalog:version"))
        conn.run(
            "WITH gone AS (DELETE FROM task_outbox WHERE job_id = :j RETURNING job_id) "
            "INSERT INTO local_tasks (name, queue, url, body, headers) "
            "SELECT 'process_order-' || job_id, 'main', 'http://127.0.0.1/tasks/process_order', "
            "convert_to(json_build_object('job_id', job_id)::text, 'UTF8'), "
            '\'{"Content-Type": "application/json"}\'::jsonb FROM gone',
            j=job_id,
        )
        return Response(rows[0][0], status=201, mimetype="application/json")

    return app


# -- what each endpoint sends ----------------------------------------------------------------


def gets(paths: list[str]) -> list[Request]:
    return [("GET", p, None, {}) for p in paths]


def order_requests(fx: Fixtures, path: str, count: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    requests: list[Request] = []
    for n in range(count):
        body = json.dumps({"product_id": rng.choice(fx.order_product_ids), "quantity": 1})
        headers = {
            "Authorization": f"Bearer {fx.tokens[n % len(fx.tokens)]}",
            "Content-Type": "application/json",
            "Idempotency-Key": UNIQUE,
        }
        requests.append(("POST", path, body.encode(), headers))
    return requests


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


def search_paths(terms: list[str], rng: random.Random) -> Iterator[str]:
    """Distinct search URLs: every term with every page size, in random order."""
    combos = [(t, limit) for t in terms for limit in LIMITS]
    rng.shuffle(combos)
    for term, limit in combos:
        yield f"/products/?q={term.replace(' ', '+')}&limit={limit}"


class Supply:
    """Hands out disjoint slices of a list of distinct requests. Each run bumps the cache
    first, so a pass may start again from the top: only repeats within a run are hits."""

    def __init__(self, items: list[Request]) -> None:
        self.items, self.position = items, 0

    def restart(self) -> None:
        self.position = 0

    def take(self, count: int) -> list[Request]:
        taken = self.items[self.position : self.position + count]
        self.position += len(taken)
        return taken or self.items[:count]


@dataclass
class Endpoint:
    name: str
    server: str
    baseline: str | None  # the endpoint it is compared to (None: it is a baseline)
    supply: Supply
    repeats_ok: bool = False  # sending a request twice measures the same thing (no cache)
    fresh_cache: bool = True  # bump the catalog cache before the run
    # Concurrency of its runs when not the bench's (1: the service time itself, no queueing).
    connections: int | None = None


@dataclass
class Pass:
    measured: Measured
    server_cpu: float
    db_cpu: float
    sessions_opened: int
    held: int
    distinct: int  # distinct requests offered to the client

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu / self.measured.requests if self.measured.requests else 0

    @property
    def db_cpu_ms(self) -> float:
        return 1000 * self.db_cpu / self.measured.requests if self.measured.requests else 0


@dataclass
class Outcome:
    endpoint: Endpoint
    passes: list[Pass] = field(default_factory=list)


# -- measuring -------------------------------------------------------------------------------


class Postgres:
    """Sessions opened to the bench database, and connections a process tree holds to it."""

    def __init__(self) -> None:
        self.admin = connect("postgres")
        self.admin.autocommit = True
        cursor = self.admin.cursor()
        cursor.execute("SHOW port")
        self.port = int(cursor.fetchone()[0])

    def sessions(self) -> int:
        cursor = self.admin.cursor()
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (DATABASE,))
        value: int = cursor.fetchone()[0]
        return value

    def _ports(self, pid: int) -> list[int]:
        """Local ports of the TCP connections a process tree holds to PostgreSQL."""
        import psutil

        root = psutil.Process(pid)
        ports = []
        for proc in [root, *root.children(recursive=True)]:
            for conn in proc.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == self.port and conn.status == "ESTABLISHED":
                    ports.append(conn.laddr.port)
        return ports

    def held_by(self, pid: int) -> int:
        return len(self._ports(pid))

    def backends_cpu(self, pid: int) -> float:
        """CPU seconds used so far by the PostgreSQL backends serving a process tree's
        connections (same machine: psutil reads them by pid)."""
        import psutil

        ports = self._ports(pid)
        if not ports:
            return 0.0
        cursor = self.admin.cursor()
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND client_port = ANY(%s)",
            (DATABASE, ports),
        )
        total = 0.0
        for (backend,) in cursor.fetchall():
            try:
                times = psutil.Process(backend).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def close(self) -> None:
        self.admin.close()


def bump_cache() -> None:
    from imangor.cache import CATALOG, bump
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    get_settings.cache_clear()
    reset_redis()
    bump(CATALOG)


def measure(
    endpoint: Endpoint,
    port: int,
    pid: int,
    postgres: Postgres,
    *,
    client: str,
    connections: int,
    duration: float,
    warmup: float,
    budget: int,  # distinct requests offered per second of a run
) -> Pass:
    connections = endpoint.connections or connections
    if endpoint.fresh_cache:
        bump_cache()
        endpoint.supply.restart()
    warm = endpoint.supply.take(int(warmup * budget))
    run(client, port, warm, connections=connections, seconds=warmup)
    offered = endpoint.supply.take(int(duration * budget))
    time.sleep(0.3)  # settle: the last warm-up answers, the after-answer work
    sessions = postgres.sessions()
    cpu, db_cpu = tree_cpu_seconds(pid), postgres.backends_cpu(pid)
    measured = run(client, port, offered, connections=connections, seconds=duration)
    server_cpu = tree_cpu_seconds(pid) - cpu
    db_cpu = postgres.backends_cpu(pid) - db_cpu
    time.sleep(0.5)  # the last sessions' statistics reach the collector
    opened = postgres.sessions() - sessions
    held = postgres.held_by(pid)
    distinct = len({(m, p, b) for m, p, b, _ in offered})
    outcome = Pass(measured, server_cpu, db_cpu, opened, held, distinct)
    m = measured
    print(
        f"{endpoint.name:44s} {m.rps:7.0f} req/s  p50 {m.p50_ms:7.2f}  p99 {m.p99_ms:7.2f} ms  "
        f"err {m.errors}  cpu {outcome.cpu_ms:5.2f} + db {outcome.db_cpu_ms:5.2f} ms/req  "
        f"sessions +{opened}  held {held}  "
        f"({m.client}, client cpu {1000 * m.client_cpu_seconds / max(m.requests, 1):.2f} ms/req)",
        file=sys.stderr,
    )
    return outcome


# -- plans ---------------------------------------------------------------------------------

EXPLAINED = [
    {"q": "wireless headphones"},
    {"q": "teapot"},
    {"q": "kestrel"},
    {"q": "walnut"},
    {"q": "navy or oak"},
    {"q": "walnut navy"},
    {"q": "teapot", "sort": "price"},
    {"q": "lamp -desk", "sort": "newest"},
    {"category": "kitchen"},
    {"category": "kitchen", "sort": "price", "min_price": "20", "max_price": "80"},
    {"category": "books", "min_price": "10", "max_price": "30"},
    {"sort": "price", "min_price": "100", "max_price": "110"},
    {},
]


def explain_findings() -> list[tuple[str, str, bool, float]]:
    """EXPLAIN ANALYZE of the statement each search's first page starts with, as the
    service builds it: (query, indexes used, sequential scan of products?, execution ms)."""
    from sqlalchemy import ClauseElement, Executable
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.orm import Session

    from imangor.config import get_settings
    from imangor.db import build_engine
    from imangor.schemas.products import ProductQuery
    from imangor.services.products import first_statement

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
        with Session(engine) as session:
            for params in EXPLAINED:
                query = ProductQuery.model_validate(params)
                statement = first_statement(session, query)
                document = session.execute(Explain(statement)).scalar_one()
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


# -- relevance -------------------------------------------------------------------------------


@dataclass
class Relevance:
    """How a class of queries' first pages compare with the exact ts_rank order."""

    name: str
    queries: int
    matches: tuple[int, int]  # fewest and most matches among them
    exact_path: int  # queries the service ranked in full (one window)
    identical: int  # first pages equal to the exact first page, order included
    overlap: tuple[float, float]  # mean and lowest share of the exact first page's ids
    as_relevant: tuple[float, float]  # mean and lowest share ranked >= the exact 20th
    estimate: tuple[float, float]  # lowest and highest estimate / true count
    missed: int  # queries with <= EXACT_UP_TO matches whose page 1 was not the exact one


def relevance(queries: Queries, rng: random.Random, sample: int) -> list[Relevance]:
    """First pages (20 results) of the service against the exact order, on a sample of
    each class; the exact order is computed in full (slow for broad terms, never timed)."""
    from sqlalchemy import text

    from imangor.db import session_scope
    from imangor.schemas.products import ProductQuery
    from imangor.services import products

    exact_page = text(
        "SELECT id, ts_rank(search_vector, websearch_to_tsquery('english', :q))::float8 "
        "FROM products WHERE search_vector @@ websearch_to_tsquery('english', :q) "
        "ORDER BY 2 DESC, id LIMIT 20"
    )
    count = text(
        "SELECT count(*) FROM products WHERE search_vector @@ websearch_to_tsquery('english', :q)"
    )
    ranks_of = text(
        "SELECT id, ts_rank(search_vector, websearch_to_tsquery('english', :q))::float8 "
        "FROM products WHERE id = ANY(:ids)"
    )
    report = []
    with session_scope() as session:
        session.execute(text("SET LOCAL statement_timeout = 0"))
        for name, terms in (
            ("narrow pairs", queries.narrow),
            ("narrower words", queries.words),
            ("broad", queries.broad),
            ("two broad words", queries.pairs),
        ):
            rows = []
            for q in rng.sample(terms, min(sample, len(terms))):
                query = ProductQuery.model_validate({"q": q, "limit": 20})
                ours = [item.id for item in products.search(session, query).items]
                exact = session.execute(exact_page, {"q": q}).all()
                total = session.scalar(count, {"q": q})
                ranks: dict[Any, float] = {
                    row[0]: row[1] for row in session.execute(ranks_of, {"q": q, "ids": ours})
                }
                estimate, _ = products._estimate(session, query)
                bits, _, _ = products._plan(session, query)
                ids = [row[0] for row in exact]
                kth = exact[-1][1] if exact else 0.0
                rows.append(
                    (
                        int(total or 0),
                        bits == 0,
                        ours == ids,
                        len(set(ours) & set(ids)) / len(ids) if ids else 1.0,
                        sum(ranks.get(i, 0.0) >= kth for i in ours) / len(ours) if ours else 1.0,
                        estimate / total if total else float("nan"),
                    )
                )
            if not rows:
                continue
            ratios = [r[5] for r in rows if r[5] == r[5]]
            report.append(
                Relevance(
                    name=name,
                    queries=len(rows),
                    matches=(min(r[0] for r in rows), max(r[0] for r in rows)),
                    exact_path=sum(r[1] for r in rows),
                    identical=sum(r[2] for r in rows),
                    overlap=(statistics.mean(r[3] for r in rows), min(r[3] for r in rows)),
                    as_relevant=(statistics.mean(r[4] for r in rows), min(r[4] for r in rows)),
                    estimate=(min(ratios), max(ratios)) if ratios else (float("nan"),) * 2,
                    missed=sum(r[0] <= products.EXACT_UP_TO and not r[2] for r in rows),
                )
            )
            print(f"relevance {report[-1]}", file=sys.stderr)
    return report


def relevance_lines(report: list[Relevance]) -> list[str]:
    from imangor.services import products

    lines = [
        "## Relevance of the first page against the exact ts_rank order",
        "",
        f"Up to {products.EXACT_UP_TO:,} estimated matches a query is ranked in full; above, "
        f"within windows of the id space holding about {products.WINDOW_MATCHES} matches "
        "each. For a sample of each class, the service's first page (20 results) against the "
        "first 20 of the full order (ts_rank DESC, id): *identical* = same ids in the same "
        "order; *id overlap* = share of the exact page's ids present; *as relevant* = share "
        "of our results whose ts_rank is at least the exact page's 20th (mean / lowest).",
        "",
        "| class | queries | matches | ranked in full | identical | id overlap | as relevant "
        "| estimate ÷ true | ≤ 1,000 matches but not exact |",
        "|---|---:|---|---:|---:|---|---|---|---:|",
    ]
    for r in report:
        lines.append(
            f"| {r.name} | {r.queries} | {r.matches[0]:,}–{r.matches[1]:,} | {r.exact_path} | "
            f"{r.identical} | {r.overlap[0]:.2f} / {r.overlap[1]:.2f} | "
            f"{r.as_relevant[0]:.2f} / {r.as_relevant[1]:.2f} | "
            f"{r.estimate[0]:.2f}–{r.estimate[1]:.2f} | {r.missed} |"
        )
    return lines


# -- report ----------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def fmt_ratio(value: float) -> str:
    return "—" if value != value else f"{value:.2f}×"  # NaN: no baseline to divide by


@dataclass
class Row:
    """An endpoint's medians over passes and its median per-pass ratios to its baseline."""

    name: str
    client: str
    rps: float
    rps_range: tuple[float, float]
    p50: float
    p99: float
    p99_range: tuple[float, float]
    errors: int
    requests: int
    cpu_ms: float
    db_cpu_ms: float
    client_cpu_ms: float
    opened: int
    held: int
    repeats: bool
    ratios: dict[str, float]
    baseline: str | None


def summarise(outcome: Outcome, base: Outcome | None) -> Row:
    passes = outcome.passes
    ratios: dict[str, float] = {}
    if base is not None:
        pairs = list(zip(passes, base.passes, strict=False))
        ratios = {
            "rps": med([ratio(p.measured.rps, b.measured.rps) for p, b in pairs]),
            "p50": med([ratio(p.measured.p50_ms, b.measured.p50_ms) for p, b in pairs]),
            "p99": med([ratio(p.measured.p99_ms, b.measured.p99_ms) for p, b in pairs]),
            "cpu": med([ratio(p.cpu_ms, b.cpu_ms) for p, b in pairs]),
            "db": med([ratio(p.db_cpu_ms, b.db_cpu_ms) for p, b in pairs]),
            "held": med([ratio(p.held, b.held) for p, b in pairs]),
        }
    rps = [p.measured.rps for p in passes]
    p99 = [p.measured.p99_ms for p in passes]
    return Row(
        name=outcome.endpoint.name,
        client=",".join(sorted({p.measured.client for p in passes})),
        rps=med(rps),
        rps_range=(min(rps), max(rps)),
        p50=med([p.measured.p50_ms for p in passes]),
        p99=med(p99),
        p99_range=(min(p99), max(p99)),
        errors=sum(p.measured.errors for p in passes),
        requests=sum(p.measured.requests for p in passes),
        cpu_ms=med([p.cpu_ms for p in passes]),
        db_cpu_ms=med([p.db_cpu_ms for p in passes]),
        client_cpu_ms=med(
            [1000 * p.measured.client_cpu_seconds / max(p.measured.requests, 1) for p in passes]
        ),
        opened=sum(p.sessions_opened for p in passes),
        held=max(p.held for p in passes),
        repeats=(not outcome.endpoint.repeats_ok)
        and any(p.distinct < p.measured.requests for p in passes),
        ratios=ratios,
        baseline=outcome.endpoint.baseline,
    )


def write_report(
    rows: list[Row], meta: dict[str, Any], plans: list[Any], relevant: list[str]
) -> Path:
    lines = [
        "# API benchmark",
        "",
        *machine_lines(),
        "",
        f"{meta['products']:,} products, PostgreSQL {meta['pg']}. Load: {meta['client']}, "
        f"{meta['concurrency']} keep-alive connections, {meta['duration']:.0f} s measured after "
        f"{meta['warmup']:.0f} s warm-up per endpoint, {meta['passes']} passes; every figure is "
        "the median over passes, every ratio the median of per-pass ratios against the "
        "baseline of the same pass. Servers: functions-framework + gunicorn gthread, "
        f"1 worker × {meta['threads']} threads, DB pool {meta['pool']}; the baselines are bare "
        "Flask + pg8000 (one connection per thread) on the same gunicorn. Load generator and "
        "servers share this 2-core machine, which other work shares too: numbers are noisy.",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | errors | server CPU ms/req | PostgreSQL CPU "
        "ms/req | sessions opened | connections held | req/s ÷ base | p50 ÷ base | p99 ÷ base "
        "| server CPU ÷ base | PostgreSQL CPU ÷ base | held ÷ base |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rr = r.ratios
        lines.append(
            f"| {r.name}{' (repeats)' if r.repeats else ''} | {r.rps:,.0f} | {r.p50:.1f} | "
            f"{r.p99:.1f} | {r.errors} | {r.cpu_ms:.2f} | {r.db_cpu_ms:.2f} | {r.opened} | "
            f"{r.held} | "
            + " | ".join(
                fmt_ratio(rr.get(k, float("nan")))
                for k in ("rps", "p50", "p99", "cpu", "db", "held")
            )
            + " |"
        )
    lines += [
        "",
        "Baselines: "
        + "; ".join(f"{r.name} → {r.baseline}" for r in rows if r.baseline)
        + ". *Sessions opened*: new PostgreSQL sessions during the measured runs, all passes "
        "(pg_stat_database.sessions; 0 = no connection churn). *Connections held*: TCP "
        "connections from the server's processes to PostgreSQL after a run (the pool). "
        "*Server CPU*: user + system seconds of the gunicorn master and worker; *PostgreSQL "
        "CPU*: of the backends serving those connections (found by their client ports in "
        "pg_stat_activity), both over the measured run, per answered request.",
        "",
        "Spread over passes (min–max) and the load generator's own CPU:",
        "",
        "| endpoint | client | req/s | p99 ms | requests | client CPU ms/req |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.client} | {r.rps_range[0]:,.0f}–{r.rps_range[1]:,.0f} | "
            f"{r.p99_range[0]:.1f}–{r.p99_range[1]:.1f} | {r.requests:,} | "
            f"{r.client_cpu_ms:.2f} |"
        )
    shares = meta["shares"]
    lines += [
        "",
        "Search classes (distinct queries: each term with page sizes 10–40, the cache bumped "
        "before each run, so the cache never answers): *narrow pairs* = adjective + noun (a "
        "few hundred matches); *narrower words* = one word found in "
        f"{100 * shares['words'][0]:.1f}–{100 * shares['words'][1]:.1f} % of the catalog "
        "(pg_stats); *broad* = one word found in "
        f"{100 * shares['broad'][0]:.1f}–{100 * shares['broad'][1]:.1f} %, or two joined by "
        "`or`; *mixed* = 30 % broad, 70 % narrow pairs and narrower words (the issue's mix); "
        "*two broad words* = both required (an AND of two broad lists: "
        f"{100 * shares['pairs'][0]:.1f}–{100 * shares['pairs'][1]:.1f} % expected).",
        "",
        *relevant,
        "",
        "## Search plans on this catalog (EXPLAIN ANALYZE of the statement each first page "
        "starts with)",
        "",
        "| query | indexes used | seq scan of products | execution ms |",
        "|---|---|---|---:|",
    ]
    for label, indexes, seq, ms in plans:
        lines.append(f"| `{label}` | {indexes} | {'yes' if seq else 'no'} | {ms:.1f} |")
    lines += ["", f"Run with `uv run --frozen python {meta['command']}`.", ""]
    # A partial run (--only) must not replace the committed report the README quotes.
    path = RESULTS / ("api.md" if meta["complete"] else "api.partial.md.tmp")
    path.write_text("\n".join(lines))
    return path


def write_chart(rows: list[Row]) -> Path | None:
    """Throughput, p99 and server CPU per request per endpoint (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (uv add --dev matplotlib)", file=sys.stderr)
        return None
    names = [r.name.replace(" ", "\n", 1) for r in rows]
    colors = ["#888888" if r.name.startswith("baseline") else "#3b6ea5" for r in rows]
    figure, axes = plt.subplots(1, 3, figsize=(18, 6.5))
    axes[0].bar(names, [r.rps for r in rows], color=colors)
    axes[0].set_title("Throughput (req/s, higher is better)")
    axes[1].bar(names, [r.p99 for r in rows], color=colors)
    axes[1].axhline(50, color="#c0392b", linewidth=1, linestyle="--")
    axes[1].set_title("p99 latency (ms, lower is better; dashed: 50 ms)")
    axes[2].bar(names, [r.cpu_ms for r in rows], color=colors, label="server (gunicorn)")
    axes[2].bar(
        names,
        [r.db_cpu_ms for r in rows],
        bottom=[r.cpu_ms for r in rows],
        color="#e0a030",
        label="PostgreSQL backends",
    )
    axes[2].set_title("CPU per request (ms, lower is better)")
    axes[2].legend(fontsize=8)
    for axis in axes:
        axis.tick_params(axis="x", labelrotation=70, labelsize=7)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(
        "Imangor API vs bare Flask + pg8000 baselines (grey); wrk, 16 connections, "
        "medians of passes"
    )
    figure.tight_layout()
    path = RESULTS / "api.png"
    figure.savefig(path, dpi=100)
    return path


# -- main ------------------------------------------------------------------------------------


def endpoints(fx: Fixtures, rng: random.Random) -> list[Endpoint]:
    queries = fx.queries
    searches = {
        name: gets(list(search_paths(terms, rng)))
        for name, terms in (
            ("narrow", queries.narrow),
            ("words", queries.words),
            ("broad", queries.broad),
            ("pairs", queries.pairs),
        )
    }
    # The issue's mix: 30 % broad terms, the rest narrower words and pairs.
    rest = [r for pair in zip(searches["narrow"], searches["words"], strict=False) for r in pair]
    mixed = [
        searches["broad"][i] if rng.random() < 0.3 else rest[i]
        for i in range(min(len(rest), len(searches["broad"])))
    ]
    by_id = gets([f"/products/{i}" for i in fx.product_ids])
    base = "baseline: GET by id"
    return [
        Endpoint(
            base,
            "baseline",
            None,
            Supply(gets([f"/baseline/products/{i}" for i in fx.product_ids])),
            repeats_ok=True,
            fresh_cache=False,
        ),
        Endpoint("GET /products/{id} (cache miss)", "products", base, Supply(by_id)),
        Endpoint(
            "GET /products/{id} (cache hit)",
            "products",
            base,
            Supply(gets([f"/products/{i}" for i in fx.hot_ids])),
            repeats_ok=True,
            fresh_cache=False,
        ),
        Endpoint("GET /products/?q= narrow pairs", "products", base, Supply(searches["narrow"])),
        Endpoint("GET /products/?q= narrower words", "products", base, Supply(searches["words"])),
        Endpoint("GET /products/?q= broad", "products", base, Supply(searches["broad"])),
        Endpoint("GET /products/?q= mixed 30 % broad", "products", base, Supply(mixed)),
        Endpoint("GET /products/?q= two broad words", "products", base, Supply(searches["pairs"])),
        # One connection: what a search costs in time when nothing queues ahead of it (at 16
        # connections on two cores, most of the p99 is waiting for a core).
        Endpoint(
            f"{base}, 1 connection",
            "baseline",
            None,
            Supply(gets([f"/baseline/products/{i}" for i in fx.product_ids])),
            repeats_ok=True,
            fresh_cache=False,
            connections=1,
        ),
        Endpoint(
            "GET /products/?q= mixed 30 % broad, 1 connection",
            "products",
            f"{base}, 1 connection",
            Supply(list(mixed)),
            connections=1,
        ),
        Endpoint(
            "GET /products/?category=",
            "products",
            base,
            Supply(gets(category_pages(rng, fx.categories, 60_000))),
        ),
        Endpoint(
            "baseline: order write",
            "baseline",
            None,
            Supply(order_requests(fx, "/baseline/orders", 20_000, 1)),
            repeats_ok=True,  # the same bodies again are still new orders (unique keys)
            fresh_cache=False,
        ),
        Endpoint(
            "baseline: order with its contract",
            "baseline",
            "baseline: order write",  # its ratio is the contract's floor
            Supply(order_requests(fx, "/baseline/orders-contract", 20_000, 3)),
            repeats_ok=True,
            fresh_cache=False,
        ),
        Endpoint(
            "POST /orders/",
            "orders",
            "baseline: order write",
            Supply(order_requests(fx, "/orders/", 20_000, 2)),
            repeats_ok=True,
            fresh_cache=False,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each run")
    parser.add_argument("--passes", type=int, default=3, help="passes over every endpoint")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--only", help="measure only endpoints whose name contains this")
    parser.add_argument(
        "--relevance-sample", type=int, default=25, help="queries per class compared with ts_rank"
    )
    parser.add_argument("--pool-size", type=int, help="DB_POOL_SIZE (default: the threads)")
    parser.add_argument("--max-overflow", type=int, help="DB_MAX_OVERFLOW of the API servers")
    args = parser.parse_args(argv)
    duration = min(max(args.duration, 1.0), 120.0)  # every run stops by itself
    warmup = min(max(args.warmup, 1.0), 30.0)
    passes = min(max(args.passes, 1), 10)
    concurrency = min(max(args.concurrency, 2), 256)
    client = choose_client(args.client)
    threads = int(os.environ.get("THREADS", (os.cpu_count() or 1) * 4))
    pool = args.pool_size if args.pool_size is not None else threads
    SERVER_ENV.update(THREADS=str(threads), DB_POOL_SIZE=str(pool))
    if args.max_overflow is not None:
        SERVER_ENV["DB_MAX_OVERFLOW"] = str(args.max_overflow)
    overflow = int(SERVER_ENV.get("DB_MAX_OVERFLOW", "0"))

    RESULTS.mkdir(parents=True, exist_ok=True)
    prepare(args.products, args.orders)
    rng = random.Random(7)
    fx = fixtures(rng)
    plan = endpoints(fx, rng)
    if args.only:
        wanted = {e.name for e in plan if args.only in e.name}
        wanted |= {e.baseline for e in plan if e.name in wanted and e.baseline}
        plan = [e for e in plan if e.name in wanted]
    budget = 1200  # distinct requests offered per second: above any uncached rate here

    outcomes = [Outcome(e) for e in plan]
    postgres = Postgres()
    with ExitStack() as stack:
        started: dict[str, tuple[int, int]] = {}
        env = server_env(**fx.jwt_claims)
        for server in sorted({e.server for e in plan}):
            port = free_port()
            if server == "baseline":
                command, ready = baseline_command(port, threads), "/baseline/products/x"
            else:
                command, ready = unit_command(server, port), f"/{server}/"
            started[server] = (port, stack.enter_context(serve(command, port, ready, env)))
        for number in range(passes):
            print(f"-- pass {number + 1} of {passes}", file=sys.stderr)
            for outcome in outcomes:
                port, pid = started[outcome.endpoint.server]
                outcome.passes.append(
                    measure(
                        outcome.endpoint,
                        port,
                        pid,
                        postgres,
                        client=client,
                        connections=concurrency,
                        duration=duration,
                        warmup=warmup,
                        budget=budget,
                    )
                )
    postgres.close()

    by_name = {o.endpoint.name: o for o in outcomes}
    rows = [
        summarise(o, by_name.get(o.endpoint.baseline) if o.endpoint.baseline else None)
        for o in outcomes
    ]
    admin = connect(DATABASE)
    cursor = admin.cursor()
    cursor.execute("SHOW server_version")
    version = cursor.fetchone()[0]
    admin.close()
    meta = {
        "products": fx.total_products,
        "pg": version,
        "threads": threads,
        "pool": f"{pool} + {overflow} overflow",
        "client": "wrk" if client == "wrk" else "the Python client (wrk is not installed)",
        "concurrency": concurrency,
        "duration": duration,
        "warmup": warmup,
        "passes": passes,
        "shares": fx.queries.shares,
        "command": " ".join(["bench/api.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    plans = explain_findings()
    relevant = relevance_lines(relevance(fx.queries, rng, args.relevance_sample))
    report = write_report(rows, {**meta, "complete": not args.only}, plans, relevant)
    chart = write_chart(rows) if not args.only else None
    print(report.read_text())
    if chart:
        print(f"chart: {chart.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
