"""SQLAlchemy models, one module per table.

Each model module is imported on first use, so a unit loads only the tables it touches
(importing all thirteen costs ≈30 ms of cold start). `all_metadata()` imports every one, for
Alembic, the test suite and anything else that needs the complete `Base.metadata`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData

from imangor.models.base import Base

if TYPE_CHECKING:  # what the names below are, for type checkers and readers
    from imangor.models.api_key import ApiKey as ApiKey
    from imangor.models.cron_run import CronRun as CronRun
    from imangor.models.file import FILE_STATUSES as FILE_STATUSES
    from imangor.models.file import StoredFile as StoredFile
    from imangor.models.idempotency import IdempotencyKey as IdempotencyKey
    from imangor.models.item import Item as Item
    from imangor.models.job import JOB_STATUSES as JOB_STATUSES
    from imangor.models.job import Job as Job
    from imangor.models.order import ORDER_STATUSES as ORDER_STATUSES
    from imangor.models.order import Order as Order
    from imangor.models.outbox import OutboxEntry as OutboxEntry
    from imangor.models.password_reset import PasswordResetToken as PasswordResetToken
    from imangor.models.product import Product as Product
    from imangor.models.refresh_token import RefreshToken as RefreshToken
    from imangor.models.sent_email import SentEmail as SentEmail
    from imangor.models.user import ROLES as ROLES
    from imangor.models.user import User as User

_MODULE_OF = {
    "FILE_STATUSES": "file",
    "StoredFile": "file",
    "IdempotencyKey": "idempotency",
    "ApiKey": "api_key",
    "PasswordResetToken": "password_reset",
    "RefreshToken": "refresh_token",
    "SentEmail": "sent_email",
    "Item": "item",
    "ORDER_STATUSES": "order",
    "Order": "order",
    "Product": "product",
    "JOB_STATUSES": "job",
    "CronRun": "cron_run",
    "Job": "job",
    "OutboxEntry": "outbox",
    "ROLES": "user",
    "User": "user",
}
__all__ = ["Base", "all_metadata", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def all_metadata() -> MetaData:
    """`Base.metadata` with every table registered."""
    for module in sorted(set(_MODULE_OF.values())):
        importlib.import_module(f"{__name__}.{module}")
    return Base.metadata
