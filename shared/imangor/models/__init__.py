"""SQLAlchemy models: one module per table, re-exported here so `Base.metadata` is complete."""

from imangor.models.base import Base
from imangor.models.file import FILE_STATUSES, StoredFile
from imangor.models.idempotency import IdempotencyKey
from imangor.models.identity import ApiKey, PasswordResetToken, RefreshToken, SentEmail
from imangor.models.item import Item
from imangor.models.order import ORDER_STATUSES, Order
from imangor.models.product import Product
from imangor.models.tasks import JOB_STATUSES, CronRun, Job, LocalTask, OutboxEntry
from imangor.models.user import ROLES, User

__all__ = [
    "FILE_STATUSES",
    "JOB_STATUSES",
    "ORDER_STATUSES",
    "ROLES",
    "ApiKey",
    "Base",
    "CronRun",
    "IdempotencyKey",
    "Item",
    "Job",
    "LocalTask",
    "Order",
    "OutboxEntry",
    "PasswordResetToken",
    "Product",
    "RefreshToken",
    "SentEmail",
    "StoredFile",
    "User",
]
