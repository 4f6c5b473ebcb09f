"""orders unit: place, list, read and cancel orders."""

from imangor.runtime import Context, Deploy, RateLimit, Unit
from imangor.schemas.common import PageQuery
from imangor.schemas.orders import OrderIn, OrderOut, OrderPage, OrderPath

unit = Unit("orders", Deploy(needs=("database", "redis", "tasks")))  # enqueues process_order
# Placing orders takes stock: a tighter limit per customer than RATE_LIMIT_DEFAULT, whose
# behaviour while Redis is down ORDER_LIMIT_FAIL_CLOSED decides.
PLACE_LIMIT = RateLimit(10, 60, fail_closed="order_limit_fail_closed")


@unit.post("/orders/", status=201, rate_limit=PLACE_LIMIT, errors=(409,), idempotent=True)
def place_order(body: OrderIn, ctx: Context) -> OrderOut:
    """Order a quantity of a product: a pending order, its stock taken at once (409 if short).

    With an `Idempotency-Key`, a retry of the same request gets the first answer (marked
    `Idempotent-Replayed: true`) instead of a second order.
    """
    from imangor.services import orders

    order = orders.place_order(ctx.db, ctx.user, body)
    ctx.response_headers["Location"] = f"/orders/{order.id}"
    return order


@unit.get("/orders/")
def list_orders(query: PageQuery, ctx: Context) -> OrderPage:
    """List your orders, newest first (staff: every order)."""
    from imangor.services import orders

    return orders.list_orders(ctx.db, ctx.user, query)


@unit.get("/orders/{order_id}")
def read_order(path: OrderPath, ctx: Context) -> OrderOut:
    """Read one of your orders (another user's order is a 404)."""
    from imangor.services import orders

    return orders.get_order(ctx.db, ctx.user, path.order_id)


@unit.post("/orders/{order_id}/cancel", errors=(409,))
def cancel_order(path: OrderPath, ctx: Context) -> OrderOut:
    """Cancel an order that has not shipped; its quantity goes back in stock (409 otherwise)."""
    from imangor.services import orders

    return orders.cancel_order(ctx.db, ctx.user, path.order_id)


orders = unit.entry_point()
