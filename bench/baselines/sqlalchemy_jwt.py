"""Baseline 2: a bare function doing what a database unit's request does at minimum.

It verifies an HS256 access token with PyJWT and reads the caller's row through a SQLAlchemy 2
ORM session over pg8000. The engine is created at import, as a hand-written function would;
the first connection is opened by the first request. Its pool holds POOL_SIZE connections
(default 2, with 2 more in overflow); bench/reads.py gives it as many as the server's threads.
"""

from __future__ import annotations

import json
import os
import uuid

import jwt
from flask import Request
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SECRET_KEY = os.environ["SECRET_KEY"]
ENGINE = create_engine(
    make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql+pg8000"),
    pool_size=int(os.environ.get("POOL_SIZE", "2")),
    max_overflow=2,
    pool_pre_ping=True,
)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str]
    is_active: Mapped[bool]


def sqlalchemy_jwt(request: Request) -> tuple[str, int, dict[str, str]]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return '{"detail": "no token"}', 401, {"Content-Type": "application/json"}
    try:
        claims = jwt.decode(
            token,
            SECRET_KEY,
            algorithms=["HS256"],
            audience="imangor-api",
            issuer="imangor",
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.InvalidTokenError:
        return '{"detail": "bad token"}', 401, {"Content-Type": "application/json"}
    with Session(ENGINE) as session:
        user = session.get(User, uuid.UUID(claims["sub"]))
        if user is None or not user.is_active:
            return '{"detail": "no user"}', 401, {"Content-Type": "application/json"}
        body = json.dumps({"id": str(user.id), "email": user.email})
    return body, 200, {"Content-Type": "application/json"}
