"""Orders: placing one takes stock atomically; status moves along a fixed path.

    pending ──► confirmed ──► shipped
       └───────────┴──► cancelled        (only before shipping; cancelling restores stock)

`transition` holds the rule; `confirm_order` and `ship_order` are safe to call from a
background task delivered more than once (a repeat finds the order already there and does
nothing).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Integer, String, Uuid, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from imangor import cache
from imangor.auth.principal import Principal
from imangor.errors import Conflict, FieldError, NotFound
from imangor.models import Job, Order, OutboxEntry, Product
from imangor.schemas.common import PageQuery
from imangor.schemas.orders import OrderIn, OrderOut, OrderPage
from imangor.schemas.tasks import ProcessOrder
from imangor.services.items import newest_key
from imangor.services.ownership import visible
from imangor.services.pagination import decode_cursor, fingerprint, paginate
from imangor.tasks import outbox

PENDING, CONFIRMED, SHIPPED, CANCELLED = "pending", "confirmed", "shipped", "cancelled"
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({CONFIRMED, CANCELLED}),
    CONFIRMED: frozenset({SHIPPED, CANCELLED}),
    SHIPPED: frozenset(),
    CANCELLED: frozenset(),
}


def transition(order: Order, target: str) -> None:
    """Move `order` to `target`, or raise Conflict if the path does not allow it."""
    if target not in TRANSITIONS[order.status]:
        raise Conflict(f"an order that is {order.status} cannot become {target}")
    order.status = target


# -- placing ---------------------------------------------------------------------------------


def place_order(session: Session, user: Principal, data: OrderIn) -> OrderOut:
    """Create a pending order and take its stock in one transaction.

    Raises Conflict when the stock is short (also when concurrent buyers take the last units
    first) and a FieldError on `product_id` for an unknown product.
    """
    # One statement does the whole write: the UPDATE checks and takes the stock (concurrent
    # buyers queue on the row lock and each re-checks `stock >= quantity` against the
    # committed value, so stock never goes below zero); the order row is inserted from its
    # RETURNING, and the confirmation job with its outbox row from the order's. No stock
    # taken, no order, no job. The job is pushed after commit like any `tasks.enqueue`d one.
    order_id, job_id = uuid.uuid4(), uuid.uuid4()
    taken = (
        update(Product)
        .where(Product.id == data.product_id, Product.stock >= data.quantity)
        .values(stock=Product.stock - data.quantity, updated_at=func.now())
        .returning(Product.price)
        .cte("taken")
    )
    orders = Order.__table__.c
    placed = (
        insert(Order)
        .from_select(
            ["id", "user_id", "product_id", "quantity", "unit_price", "status"],
            select(
                literal(order_id, Uuid()),
                literal(user.user_id, Uuid()),
                literal(data.product_id, Uuid()),
                literal(data.quantity, Integer()),
                taken.c.price,
                literal(PENDING, String()),
            ),
        )
        .returning(orders.id, orders.unit_price, orders.created_at, orders.updated_at)
        .cte("placed")
    )
    payload = ProcessOrder(order_id=order_id)
    job = (
        insert(Job)
        .from_select(
            ["id", "kind", "queue", "payload", "user_id", "status", "attempts"],
            select(
                literal(job_id, Uuid()),
                literal(payload.task_name, String()),
                literal(payload.queue, String()),
                literal(payload.model_dump(mode="json"), JSONB()),
                literal(user.user_id, Uuid()),
                literal("queued", String()),
                literal(0, Integer()),
            ).select_from(placed),
        )
        .returning(Job.__table__.c.id)
        .cte("job")
    )
    queued = (
        insert(OutboxEntry)
        .from_select(["job_id", "push_attempts"], select(job.c.id, literal(0, Integer())))
        .cte("queued")
    )
    row = session.execute(select(placed).add_cte(queued)).first()
    if row is None:
        left = session.scalar(select(Product.stock).where(Product.id == data.product_id))
        if left is None:
            raise FieldError("product_id", "not_found", "no product with this id")
        raise Conflict(f"not enough stock: {left} left, {data.quantity} asked")
    cache.bump_after_commit(session, cache.CATALOG)  # the product's stock changed
    # Confirmation runs in the background: pushed once the order commits.
    session.info.setdefault(outbox.PENDING_KEY, []).append(job_id)
    return OrderOut(
        id=row.id,
        user_id=user.user_id,
        product_id=data.product_id,
        quantity=data.quantity,
        unit_price=row.unit_price,
        total=row.unit_price * data.quantity,
        status=PENDING,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        user_id=order.user_id,
        product_id=order.product_id,
        quantity=order.quantity,
        unit_price=order.unit_price,
        total=order.unit_price * order.quantity,
        status=order.status,  # the CHECK constraint holds it to OrderStatus
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


# -- reading ---------------------------------------------------------------------------------


def get_order(session: Session, user: Principal, order_id: uuid.UUID) -> OrderOut:
    return to_out(visible(session, Order, Order.user_id, user, order_id))


def list_orders(session: Session, user: Principal, query: PageQuery) -> OrderPage:
    """Newest first: a customer's own orders, or every order for staff."""
    scope = "*" if user.is_staff else str(user.user_id)
    query_id = fingerprint("orders", scope=scope, sort="newest")
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(query.limit + 1)
    if not user.is_staff:
        stmt = stmt.where(Order.user_id == user.user_id)
    if query.cursor:
        created, ident = newest_key(decode_cursor(query.cursor, query_id))
        stmt = stmt.where(tuple_(Order.created_at, Order.id) < tuple_(created, ident))
    rows = session.scalars(stmt).all()
    page, cursor = paginate(rows, query.limit, query_id, lambda o: (o.created_at, o.id))
    return OrderPage(items=[to_out(o) for o in page], next_cursor=cursor)


# -- status ----------------------------------------------------------------------------------


def cancel_order(session: Session, user: Principal, order_id: uuid.UUID) -> OrderOut:
    """Cancel a pending or confirmed order and put its quantity back in stock."""
    order = visible(session, Order, Order.user_id, user, order_id, for_update=True)
    transition(order, CANCELLED)
    session.execute(
        update(Product)
        .where(Product.id == order.product_id)
        .values(stock=Product.stock + order.quantity, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(order)
    cache.bump_after_commit(session, cache.CATALOG)
    return to_out(order)


def confirm_order(session: Session, order_id: uuid.UUID) -> Order:
    """pending → confirmed. Idempotent: an order already confirmed or shipped is returned
    unchanged. Raises NotFound, or Conflict for a cancelled order (a terminal answer for a
    task handler: retrying cannot help)."""
    return _advance(session, order_id, CONFIRMED, done={CONFIRMED, SHIPPED})


def ship_order(session: Session, order_id: uuid.UUID) -> Order:
    """confirmed → shipped. Idempotent like `confirm_order`; a pending order is a Conflict."""
    return _advance(session, order_id, SHIPPED, done={SHIPPED})


def _advance(session: Session, order_id: uuid.UUID, target: str, done: set[str]) -> Order:
    order = session.get(Order, order_id, with_for_update=True, populate_existing=True)
    if order is None:
        raise NotFound(f"no order {order_id}")
    if order.status not in done:
        transition(order, target)
        session.flush()
        session.refresh(order)
    return order
