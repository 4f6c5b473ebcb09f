"""SQLAlchemy models: one module per table, re-exported here so `Base.metadata` is complete."""

from imangor.models.base import Base
from imangor.models.identity import ApiKey, PasswordResetToken, RefreshToken, SentEmail
from imangor.models.item import Item
from imangor.models.order import ORDER_STATUSES, Order
from imangor.models.product import Product
from imangor.models.user import ROLES, User

__all__ = [
    "ORDER_STATUSES",
    "ROLES",
    "ApiKey",
    "Base",
    "Item",
    "Order",
    "PasswordResetToken",
    "Product",
    "RefreshToken",
    "SentEmail",
    "User",
]
