"""Password hashing: Argon2id with parameters from settings; bcrypt accepted and upgraded.

Argon2id needs its memory cost (19 MiB by default) per hash in flight, so hashes run behind
a per-instance semaphore: a login storm queues instead of pushing the instance out of memory.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING

from imangor.config import get_settings
from imangor.errors import ServiceUnavailable

if TYPE_CHECKING:
    from pwdlib import PasswordHash

HASH_WAIT_SECONDS = 10.0


@cache
def _hasher() -> PasswordHash:
    # Imported on first use: units that never hash a password never pay for argon2/bcrypt.
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher
    from pwdlib.hashers.bcrypt import BcryptHasher

    settings = get_settings()
    argon2 = Argon2Hasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    return PasswordHash((argon2, BcryptHasher()))


@cache
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(get_settings().max_concurrent_hashes)


@cache
def _dummy_hash() -> str:
    """A real hash to verify against when the account does not exist (same cost, no oracle)."""
    return _hasher().hash("no-such-account-placeholder")


class _Slot:
    def __enter__(self) -> None:
        if not _slots().acquire(timeout=HASH_WAIT_SECONDS):
            raise ServiceUnavailable(
                "too many sign-ins at once; retry shortly", headers={"Retry-After": "2"}
            )

    def __exit__(self, *_: object) -> None:
        _slots().release()


def hash_password(password: str) -> str:
    with _Slot():
        return _hasher().hash(password)


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Whether it matches, and a new hash when the stored one is bcrypt or outdated Argon2.
    With no stored hash (unknown account, Google-only account) it spends the same time on a
    dummy hash and answers no."""
    dummy = _dummy_hash()  # computed once, outside the slot
    with _Slot():
        if hashed is None:
            _hasher().verify(password, dummy)
            return False, None
        return _hasher().verify_and_update(password, hashed)
