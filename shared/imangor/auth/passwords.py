"""Password hashing: Argon2id with parameters from settings; bcrypt accepted and upgraded."""

from __future__ import annotations

from functools import cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from imangor.config import get_settings


@cache
def _hasher() -> PasswordHash:
    settings = get_settings()
    argon2 = Argon2Hasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    return PasswordHash((argon2, BcryptHasher()))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """Whether it matches, and a new hash when the stored one uses outdated parameters."""
    return _hasher().verify_and_update(password, hashed)
