"""The daily report: orders per category for one day, as CSV in Cloud Storage."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imangor import storage
from imangor.models import Order, Product


def daily_rows(session: Session, day: date) -> list[tuple[Any, ...]]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    revenue = func.sum(Order.quantity * Order.unit_price)
    query = (
        select(
            func.coalesce(Product.category, "(none)"),
            func.count(Order.id),
            func.sum(Order.quantity),
            revenue,
        )
        .join(Product, Product.id == Order.product_id)
        .where(
            Order.created_at >= start,
            Order.created_at < start + timedelta(days=1),
            Order.status != "cancelled",
        )
        .group_by(Product.category)
        .order_by(Product.category)
    )
    return [tuple(row) for row in session.execute(query)]


def write_daily_report(session: Session, run_day: date) -> dict[str, Any]:
    """Report the day before `run_day`; the object name is fixed per day, so a second run
    for the same schedule time rewrites the same file (idempotent)."""
    day = run_day - timedelta(days=1)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "category", "orders", "units", "revenue"])
    rows = daily_rows(session, day)
    for category, orders, units, revenue in rows:
        writer.writerow([day.isoformat(), category, orders, units, revenue])
    name = f"reports/daily/{day.isoformat()}.csv"
    storage.bucket().blob(name).upload_from_string(out.getvalue(), content_type="text/csv")
    return {"object": name, "categories": len(rows)}
