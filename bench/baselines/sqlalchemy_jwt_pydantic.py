"""Floor 2: the SQLAlchemy+JWT baseline plus pydantic-settings and a pydantic answer.

The same work as `sqlalchemy_jwt.py` (PyJWT HS256, one row through a SQLAlchemy 2 session over
pg8000), with its settings read by pydantic-settings at import and the row answered through a
pydantic model: the least a database unit built on the mandated libraries does, run with
Python's defaults. No runtime of ours, no metrics, no Redis.
"""

from __future__ import annotations

import uuid

import jwt
from flask import Request
from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_settings import BaseSettings
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Settings(BaseSettings):
    secret_key: SecretStr
    database_url: str


SETTINGS = Settings()  # both come from the environment
ENGINE = create_engine(
    make_url(SETTINGS.database_url).set(drivername="postgresql+pg8000"),
    pool_size=2,
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


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str


def sqlalchemy_jwt_pydantic(request: Request) -> tuple[str, int, dict[str, str]]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return '{"detail": "no token"}', 401, {"Content-Type": "application/json"}
    try:
        claims = jwt.decode(
            token,
            SETTINGS.secret_key.get_secret_value(),
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
        body = UserOut.model_validate(user).model_dump_json()
    return body, 200, {"Content-Type": "application/json"}
