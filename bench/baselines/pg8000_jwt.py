"""Baseline: a bare function verifying a JWT and reading the caller's row with pg8000 alone.

No ORM and no pool: each server thread opens one pg8000 connection on its first request and
keeps it, and runs one autocommit SELECT per request (the least a Python function can do per
authenticated read). Same claims checked as sqlalchemy_jwt.py.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import jwt
import pg8000.native
from flask import Request
from sqlalchemy.engine import make_url

SECRET_KEY = os.environ["SECRET_KEY"]
URL = make_url(os.environ["DATABASE_URL"])
_local = threading.local()
JSON = {"Content-Type": "application/json"}


def _connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = pg8000.native.Connection(
            user=URL.username or "postgres",
            password=URL.password,
            host=URL.host or "127.0.0.1",
            port=URL.port or 5432,
            database=URL.database,
        )
    return conn


def pg8000_jwt(request: Request) -> tuple[str, int, dict[str, str]]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return '{"detail": "no token"}', 401, JSON
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
        return '{"detail": "bad token"}', 401, JSON
    rows = _connection().run(
        "SELECT id, email, is_active FROM users WHERE id = CAST(:id AS uuid)", id=claims["sub"]
    )
    if not rows or not rows[0][2]:
        return '{"detail": "no user"}', 401, JSON
    return json.dumps({"id": str(rows[0][0]), "email": rows[0][1]}), 200, JSON
