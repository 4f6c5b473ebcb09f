"""Accounts. Emails are stored lower-cased, so uniqueness is case-insensitive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from imangor.models.base import Base, Timestamps, UUIDPrimaryKey

ROLES = ("customer", "staff", "admin")


class User(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'staff', 'admin')", name="role"),)

    email: Mapped[str] = mapped_column(String(320), unique=True)
    hashed_password: Mapped[str | None] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    role: Mapped[str] = mapped_column(String(16), default="customer", server_default="customer")
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    email_verified: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Access tokens issued before this instant are refused (set by a password reset).
    tokens_valid_after: Mapped[datetime | None]
