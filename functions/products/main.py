"""products unit: the catalog (public, cached reads; staff writes) and its order report."""

from imangor.runtime import Context, Deploy, Unit
from imangor.schemas.products import (
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductPath,
    ProductQuery,
    ProductReport,
    ReportQuery,
)

unit = Unit("products", Deploy(needs=("database", "redis", "tasks")))
# Browsers and CDNs may keep a public answer 30 s; the ETag makes revalidation a bodiless 304.
CACHEABLE = "public, max-age=30"


@unit.get("/products/", access="public", cache_control=CACHEABLE)
def search_products(query: ProductQuery, ctx: Context) -> ProductPage:
    """Search and filter products.

    `q` is full-text in web-search syntax (`wireless headphones`, `"noise cancelling"`,
    `lamp -desk`, `mug or cup`) ranked by relevance; `category`, `min_price` and `max_price`
    filter; `sort` is relevance (the default with `q`), price or newest (the default without
    `q`). Prices are decimal strings with two places.
    """
    from imangor.services import products

    return products.search_products(lambda: ctx.db, query)


@unit.post("/products/", access="staff", status=201)
def create_product(body: ProductIn, ctx: Context) -> ProductOut:
    """Add a product (staff). `price` may be sent as a string or a number."""
    from imangor.services import products

    product = products.create_product(ctx.db, body)
    ctx.response_headers["Location"] = f"/products/{product.id}"
    return product


@unit.get("/products/{product_id}", access="public", cache_control=CACHEABLE)
def read_product(path: ProductPath, ctx: Context) -> ProductOut:
    """Read a product."""
    from imangor.services import products

    return products.read_product(lambda: ctx.db, path.product_id)


@unit.patch("/products/{product_id}", access="staff")
def update_product(path: ProductPath, body: ProductPatch, ctx: Context) -> ProductOut:
    """Change a product (staff); `attributes`, when given, replaces the whole object."""
    from imangor.services import products

    return products.update_product(ctx.db, path.product_id, body)


@unit.delete("/products/{product_id}", access="staff", errors=(409,))
def delete_product(path: ProductPath, ctx: Context) -> None:
    """Delete a product that was never ordered (staff); 409 if it has orders."""
    from imangor.services import products

    products.delete_product(ctx.db, path.product_id)


@unit.get("/reports/products", access="staff")
def product_order_report(query: ReportQuery, ctx: Context) -> ProductReport:
    """Order counts per product of a category (staff), most ordered first.

    Cancelled orders do not count; `min_orders` keeps products ordered at least that often.
    """
    from imangor.services import products

    return products.order_counts(ctx.db, query)


products = unit.entry_point()
