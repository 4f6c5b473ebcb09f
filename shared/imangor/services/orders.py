"""Orders: placing one takes stock atomically; status moves along a fixed path.

    pending ──► confirmed ──► shipped
       └───────────┴──► cancelled        (only before shipping; cancelling restores stock)

`transition` holds the rule; `confirm_order` and `ship_order` are safe to call from a
background task delivered more than once (a repeat finds the order already there and does
nothing).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, cast

from sqlalchemy import (
    Integer,
    Select,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from imangor import cache
from imangor.auth.principal import Principal
from imangor.errors import Conflict, FieldError, NotFound
from imangor.models import Order, Product
from imangor.schemas.common import PageQuery
from imangor.schemas.orders import OrderIn, OrderOut, OrderPage
from imangor.schemas.tasks import ProcessOrder
from imangor.services.ownership import visible
from imangor.services.pagination import newest_first
from imangor.tasks import outbox
from imangor.tasks.bumps import bump_after_commit

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
    order_id, job_id = uuid.uuid4(), uuid.uuid4()
    confirm = ProcessOrder(order_id=order_id)
    params = outbox.enqueued(session, confirm, user_id=user.user_id, job_id=job_id)
    params.update(
        order_id=order_id,
        user_id=user.user_id,
        product_id=data.product_id,
        quantity=data.quantity,
    )
    row = session.execute(_place_statement(), params).first()
    if row is None:
        left = session.scalar(select(Product.stock).where(Product.id == data.product_id))
        if left is None:
            raise FieldError("product_id", "not_found", "no product with this id")
        raise Conflict(f"not enough stock: {left} left, {data.quantity} asked")
    bump_after_commit(session, cache.CATALOG)  # the product's stock changed
    return OrderOut(
        id=order_id,
        user_id=user.user_id,
        product_id=data.product_id,
        quantity=data.quantity,
        unit_price=row.unit_price,
        total=row.unit_price * data.quantity,
        status=PENDING,
        job_id=job_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@functools.cache
def _place_statement() -> Select[Any]:
    """The whole write as one statement (one round trip), built once: only bind parameters
    vary, so SQLAlchemy compiles it once per process and reuses the SQL.

    The UPDATE checks and takes the stock (concurrent buyers queue on the row lock and each
    re-checks `stock >= quantity` against the committed value, so stock never goes below
    zero); the order row is inserted from its RETURNING, and the confirmation job with its
    outbox row from the order's (`outbox.job_rows`). No stock taken, no order, no job."""
    products, orders = cast(Table, Product.__table__), cast(Table, Order.__table__)
    quantity = bindparam("quantity", type_=Integer())
    product_id = bindparam("product_id", type_=Uuid())
    taken = (
        update(products)
        .where(products.c.id == product_id, products.c.stock >= quantity)
        .values(stock=products.c.stock - quantity, updated_at=func.now())
        .returning(products.c.price)
        .cte("taken")
    )
    placed = (
        insert(orders)
        .from_select(
            ["id", "user_id", "product_id", "quantity", "unit_price", "status", "job_id"],
            select(
                bindparam("order_id", type_=Uuid()),
                bindparam("user_id", type_=Uuid()),
                product_id,
                quantity,
                taken.c.price,
                literal(PENDING),
                bindparam("job_id", type_=Uuid()),
            ),
        )
        .returning(orders.c.unit_price, orders.c.created_at, orders.c.updated_at)
        .cte("placed")
    )
    return select(placed).add_cte(outbox.job_rows(placed, ProcessOrder))


def to_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        user_id=order.user_id,
        product_id=order.product_id,
        quantity=order.quantity,
        unit_price=order.unit_price,
        total=order.unit_price * order.quantity,
        status=order.status,  # the CHECK constraint holds it to OrderStatus
        job_id=order.job_id,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


# -- reading ---------------------------------------------------------------------------------


def get_order(session: Session, user: Principal, order_id: uuid.UUID) -> OrderOut:
    return to_out(visible(session, Order, Order.user_id, user, order_id))


def list_orders(session: Session, user: Principal, query: PageQuery) -> OrderPage:
    """Newest first: a customer's own orders, or every order for staff."""
    page, cursor = newest_first(session, Order, Order.user_id, user, query)
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
    bump_after_commit(session, cache.CATALOG)
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
