"""Seed a database with realistic, deterministic catalog data, fast.

    python -m infra.local.seed --products 1000000 --orders 200000 [--users 200] [--seed 42]

Products (names, categories, descriptions, prices, stock, free-form attributes) come from
word lists through a seeded PRNG, so the same seed always gives the same catalog, ids
included. Rows stream to PostgreSQL with COPY (pg8000), generated while the server indexes
the previous chunk; a progress line goes to stderr. Orders go to seed customers
(`seed-customer-NNNN@example.com`, no password: they cannot sign in) and reference the
products of this run, or existing ones when `--products 0`. Seeded orders are history: they
do not take stock.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from infra.local.embedded import EmbeddedServerError
from infra.local.state import NotRunning, running

# -- word lists ------------------------------------------------------------------------------
# fmt: off

CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    # category: (nouns, (min price, max price))
    "electronics": (
        ("headphones", "speaker", "charger", "keyboard", "mouse", "monitor", "webcam",
         "router", "tablet", "earbuds", "microphone", "projector"),
        (9, 1500),
    ),
    "books": (
        ("novel", "cookbook", "atlas", "biography", "anthology", "journal", "guidebook",
         "dictionary", "memoir", "textbook", "comic", "poetry collection"),
        (5, 80),
    ),
    "clothing": (
        ("jacket", "sweater", "shirt", "jeans", "dress", "hoodie", "scarf", "coat",
         "shorts", "socks", "raincoat", "cardigan"),
        (8, 400),
    ),
    "home": (
        ("lamp", "rug", "cushion", "curtain", "blanket", "mirror", "vase", "clock",
         "shelf", "candle", "frame", "basket"),
        (6, 600),
    ),
    "kitchen": (
        ("kettle", "skillet", "blender", "knife set", "mug", "teapot", "toaster",
         "cutting board", "saucepan", "grinder", "whisk", "colander"),
        (4, 700),
    ),
    "sports": (
        ("yoga mat", "dumbbell", "racket", "football", "helmet", "jump rope", "kettlebell",
         "treadmill", "bicycle", "skateboard", "water bottle", "gloves"),
        (5, 2000),
    ),
    "toys": (
        ("puzzle", "robot", "doll", "kite", "building blocks", "board game", "plush bear",
         "train set", "yo-yo", "drone", "marble run", "puppet"),
        (3, 300),
    ),
    "beauty": (
        ("serum", "moisturizer", "lipstick", "shampoo", "perfume", "face mask", "brush set",
         "nail polish", "sunscreen", "conditioner", "cleanser", "hair dryer"),
        (3, 250),
    ),
    "garden": (
        ("planter", "hose", "shovel", "pruner", "wheelbarrow", "seed kit", "sprinkler",
         "rake", "bird feeder", "trellis", "compost bin", "lantern"),
        (4, 900),
    ),
    "office": (
        ("notebook", "pen set", "desk", "chair", "stapler", "organizer", "whiteboard",
         "planner", "desk lamp", "file cabinet", "label maker", "calculator"),
        (2, 1200),
    ),
    "pets": (
        ("dog bed", "cat tree", "leash", "collar", "aquarium", "bird cage", "chew toy",
         "litter box", "pet carrier", "feeder", "grooming brush", "scratching post"),
        (3, 500),
    ),
    "outdoors": (
        ("tent", "sleeping bag", "backpack", "headlamp", "hammock", "camp stove", "compass",
         "trekking poles", "cooler", "binoculars", "canteen", "tarp"),
        (6, 1100),
    ),
}
ADJECTIVES = (
    "wireless", "compact", "portable", "classic", "premium", "ergonomic", "lightweight",
    "durable", "vintage", "modern", "rustic", "sleek", "cozy", "rechargeable", "foldable",
    "waterproof", "handmade", "organic", "smart", "heavy-duty", "minimalist", "deluxe",
    "adjustable", "eco-friendly", "professional", "quiet", "insulated", "noise-cancelling",
    "ultra-thin", "stackable", "elegant", "rugged", "breathable", "padded", "retro",
    "magnetic", "collapsible", "reversible", "scented", "glossy", "matte", "hand-painted",
    "weatherproof", "non-stick", "bluetooth", "solar-powered", "reinforced", "artisan",
    "limited-edition", "travel-size", "oversized", "slim", "soft", "sturdy", "versatile",
    "washable", "cordless", "dimmable", "refillable", "modular",
)
MATERIALS = (
    "bamboo", "steel", "oak", "leather", "cotton", "wool", "ceramic", "glass", "linen",
    "aluminium", "silicone", "walnut", "copper", "recycled plastic", "canvas", "marble",
)
COLORS = (
    "black", "white", "navy", "olive", "crimson", "sand", "charcoal", "teal", "ivory",
    "mustard", "coral", "slate", "forest green", "sky blue", "burgundy", "silver",
)
BRANDS = (
    "Aldenmoor", "Brightwell", "Corvale", "Dunmere", "Elsworth", "Fernhollow", "Gildcrest",
    "Harrowgate", "Ironbark", "Juniper & Co", "Kestrel", "Larchfield", "Marlowe", "Northwind",
    "Oakhaven", "Pinecrest", "Quillon", "Rosemont", "Silverbrook", "Thornbury", "Umberly",
    "Valewood", "Westmarch", "Yarrowby",
)
USES = (
    "everyday use", "travel", "small apartments", "weekend trips", "gifts", "the office",
    "families", "beginners", "professionals", "outdoor adventures", "long evenings",
    "busy mornings",
)
FEATURES = (
    "built to last for years", "easy to clean", "backed by a two-year warranty",
    "designed in small batches", "tested by our team", "with a soft-touch finish",
    "shipped in plastic-free packaging", "with replaceable parts", "that packs flat",
    "with a satisfying weight", "finished by hand", "with reinforced seams",
)
SIZES = ("XS", "S", "M", "L", "XL")
# fmt: on

# Timestamps fall in the year before this fixed instant, so a seed is fully deterministic.
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
PRODUCT_COLUMNS = ("id", "name", "price", "stock", "attributes", "created_at", "updated_at")
ORDER_COLUMNS = (
    "id", "user_id", "product_id", "quantity", "unit_price", "status", "created_at",
    "updated_at",
)  # fmt: skip
ORDERABLE = 100_000  # orders reference at most this many of the new products (memory)
ORDER_STATUS_WEIGHTS = (("pending", 15), ("confirmed", 25), ("shipped", 50), ("cancelled", 10))


@dataclass(frozen=True)
class SeededProduct:
    id: uuid.UUID
    price: Decimal
    created_at: datetime


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def product_rows(count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """`count` product rows in PRODUCT_COLUMNS order; equal seeds give equal rows."""
    rng = random.Random(seed)  # noqa: S311 - deterministic test data  # nosec B311
    categories = list(CATEGORIES.items())
    for _ in range(count):
        category, (nouns, (low, high)) = rng.choice(categories)
        noun, adjective, material = rng.choice(nouns), rng.choice(ADJECTIVES), rng.choice(MATERIALS)
        color, brand = rng.choice(COLORS), rng.choice(BRANDS)
        name = f"{brand} {adjective} {color} {noun}"
        if rng.random() < 0.3:
            name += f" {rng.choice('ABCDEFGHJKMNPRSTVXZ')}{rng.randint(100, 999)}"
        description = (
            f"A {adjective} {noun} in {color}, made of {material} and "
            f"{rng.choice(FEATURES)}. Ideal for {rng.choice(USES)}, and "
            f"{rng.choice(ADJECTIVES)} too."
        )
        # Log-uniform prices: many cheap products, a few expensive ones.
        price = Decimal(round(low * (high / low) ** rng.random(), 2)).quantize(Decimal("0.01"))
        attributes: dict[str, Any] = {
            "category": category,
            "description": description,
            "brand": brand,
            "color": color,
            "material": material,
        }
        if category == "clothing":
            attributes["sizes"] = sorted(rng.sample(SIZES, rng.randint(1, 5)), key=SIZES.index)
        if rng.random() < 0.2:
            attributes["rating"] = round(rng.uniform(2.5, 5.0), 1)
        created = ANCHOR - timedelta(seconds=rng.randrange(YEAR_SECONDS))
        stock = 0 if rng.random() < 0.05 else rng.randint(1, 500)
        yield (
            _uuid(rng),
            name,
            price,
            stock,
            json.dumps(attributes, separators=(",", ":")),
            created,
            created,
        )


def order_rows(
    count: int, seed: int, users: Sequence[uuid.UUID], products: Sequence[SeededProduct]
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed + 1)  # noqa: S311 - deterministic test data  # nosec B311
    statuses = [s for s, _ in ORDER_STATUS_WEIGHTS]
    weights = [w for _, w in ORDER_STATUS_WEIGHTS]
    # A few products sell far more than others, as in any shop.
    hot = products[: max(1, len(products) // 50)]
    for _ in range(count):
        product = rng.choice(hot) if rng.random() < 0.3 else rng.choice(products)
        created = product.created_at + timedelta(
            seconds=rng.randrange(max(1, int((ANCHOR - product.created_at).total_seconds())))
        )
        yield (
            _uuid(rng),
            rng.choice(users),
            product.id,
            rng.choices((1, 1, 1, 2, 2, 3, 5))[0],
            product.price,
            rng.choices(statuses, weights)[0],
            created,
            created,
        )


# -- loading ---------------------------------------------------------------------------------


class Progress:
    """A one-line progress report on stderr (rows, rate, ETA), at most a few times a second."""

    def __init__(self, label: str, total: int, out: TextIO = sys.stderr) -> None:
        self.label, self.total, self.out = label, total, out
        self.started = self.shown = time.monotonic()
        self.done = 0

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown >= 0.5 or self.done >= self.total:
            self.shown = now
            rate = self.done / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / rate if rate else 0
            percent = 100 * self.done / max(self.total, 1)
            self.out.write(
                f"\r{self.label}: {self.done:,}/{self.total:,} ({percent:5.1f}%) "
                f"{rate:,.0f} rows/s, ETA {eta:,.0f} s   "
            )
            self.out.flush()

    def close(self) -> None:
        elapsed = time.monotonic() - self.started
        self.out.write(f"\r{self.label}: {self.done:,} rows in {elapsed:,.1f} s{' ' * 30}\n")
        self.out.flush()


def _csv_chunks(
    rows: Iterator[tuple[Any, ...]], progress: Progress | None, chunk: int = 2000
) -> Iterator[str]:
    """CSV text in chunks of `chunk` rows (what pg8000 streams as COPY data)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    pending = 0
    for row in rows:
        writer.writerow(row)
        pending += 1
        if pending == chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if progress:
                progress.advance(pending)
            pending = 0
    if pending:
        yield buffer.getvalue()
        if progress:
            progress.advance(pending)


def copy_rows(
    cursor: Any,
    table: str,
    columns: Sequence[str],
    rows: Iterator[tuple[Any, ...]],
    progress: Progress | None = None,
) -> None:
    """COPY rows into table through a pg8000 DB-API cursor."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    cursor.execute(statement, stream=_csv_chunks(rows, progress))


def seed_users(cursor: Any, count: int) -> list[uuid.UUID]:
    """The seed customers (created once; re-running reuses them)."""
    emails = [f"seed-customer-{n:04d}@example.com" for n in range(count)]
    cursor.execute(
        "INSERT INTO users (email, full_name, role) "
        "SELECT e, 'Seed customer', 'customer' FROM unnest(%s::text[]) AS e "
        "ON CONFLICT (email) DO NOTHING",
        (emails,),
    )
    cursor.execute("SELECT id FROM users WHERE email = ANY(%s::text[]) ORDER BY email", (emails,))
    return [row[0] for row in cursor.fetchall()]


def seed(
    connection: Any,
    *,
    products: int,
    orders: int,
    users: int = 100,
    seed_value: int = 42,
    quiet: bool = False,
) -> dict[str, int]:
    """Load the data through a pg8000 DB-API connection and commit; returns row counts."""
    cursor = connection.cursor()
    cursor.execute("SET LOCAL statement_timeout = 0")  # one COPY may take minutes
    seeded: list[SeededProduct] = []
    stride = max(1, products // ORDERABLE)

    def remember(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
        for index, row in enumerate(rows):
            if orders and index % stride == 0:
                seeded.append(SeededProduct(row[0], row[2], row[5]))
            yield row

    if products:
        first = next(product_rows(1, seed_value))[0]
        cursor.execute("SELECT 1 FROM products WHERE id = %s", (first,))
        if cursor.fetchone():
            raise SystemExit(
                f"products of seed {seed_value} are already loaded; pass another --seed to add"
            )
        progress = None if quiet else Progress("products", products)
        copy_rows(
            cursor,
            "products",
            PRODUCT_COLUMNS,
            remember(product_rows(products, seed_value)),
            progress,
        )
        if progress:
            progress.close()
    if orders:
        if not seeded:
            cursor.execute(
                "SELECT id, price, created_at FROM products ORDER BY id LIMIT %s", (ORDERABLE,)
            )
            seeded = [SeededProduct(*row) for row in cursor.fetchall()]
        if not seeded:
            raise SystemExit("no products to order: seed some with --products N")
        customers = seed_users(cursor, max(users, 1))
        progress = None if quiet else Progress("orders", orders)
        copy_rows(
            cursor, "orders", ORDER_COLUMNS, order_rows(orders, seed_value, customers, seeded),
            progress,
        )  # fmt: skip
        if progress:
            progress.close()
    cursor.execute("ANALYZE products")  # fresh statistics, so the planner uses the indexes
    cursor.execute("ANALYZE orders")
    connection.commit()
    return {"products": products, "orders": orders}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1000, help="products to add")
    parser.add_argument("--orders", type=int, default=0, help="orders to add")
    parser.add_argument("--users", type=int, default=100, help="seed customers placing them")
    parser.add_argument("--seed", type=int, default=42, help="PRNG seed (same seed, same data)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if args.products < 0 or args.orders < 0 or args.users < 1:
        parser.error("counts must be positive")

    from imangor.cache import CATALOG, bump
    from imangor.config import ConfigurationError
    from imangor.db import get_engine

    started = time.monotonic()
    with ExitStack() as stack:
        try:
            where = _database(stack)
        except (ConfigurationError, NotRunning, EmbeddedServerError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"seeding {where}", file=sys.stderr)
        raw = get_engine().raw_connection()
        try:
            seed(
                raw.driver_connection,
                products=args.products,
                orders=args.orders,
                users=args.users,
                seed_value=args.seed,
                quiet=args.quiet,
            )
        finally:
            raw.close()
        bump(CATALOG)  # cached answers predate the new rows
    print(
        f"seeded {args.products:,} products and {args.orders:,} orders "
        f"in {time.monotonic() - started:,.1f} s",
        file=sys.stderr,
    )
    return 0


def _database(stack: ExitStack) -> str:
    """Point the settings at the database to seed: DATABASE_URL when set; else the one a
    running `make dev` uses; else make dev's embedded PostgreSQL (and Redis, whose cached
    catalog answers must be dropped too), started for the seeding and migrated first."""
    from imangor.config import get_settings
    from imangor.db import dispose_engine

    if os.environ.get("DATABASE_URL") or os.environ.get("INSTANCE_CONNECTION_NAME"):
        get_settings()  # a readable ConfigurationError here, not a traceback later
        return "DATABASE_URL"
    try:
        dev = running()
        os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = dev["database_url"], dev["redis_url"]
        where = "the database of the running make dev"
    except NotRunning:
        from imangor.migrate import migrate
        from infra.local.dev import start_services

        start_services(stack, storage=False)
        get_settings.cache_clear()
        migrate()
        where = "make dev's embedded database (.local/postgres)"
    get_settings.cache_clear()
    stack.callback(dispose_engine)
    return where


if __name__ == "__main__":
    sys.exit(main())
