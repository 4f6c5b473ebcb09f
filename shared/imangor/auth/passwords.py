"""Password hashing: Argon2id with parameters from settings; bcrypt accepted and upgraded.

Argon2id needs its memory cost (19 MiB by default) per hash, and glibc keeps that buffer in
the arena of every thread that ever hashed. So hashes run on a small pool of their own
(MAX_CONCURRENT_HASHES threads), never on the request threads: a login storm queues instead
of growing the instance by 19 MiB per request thread (measured: +136 MiB peak with a
semaphore on 8 request threads).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from functools import cache
from typing import TYPE_CHECKING, TypeVar

from imangor.config import get_settings
from imangor.errors import ServiceUnavailable

if TYPE_CHECKING:
    from pwdlib import PasswordHash

HASH_WAIT_SECONDS = 10.0
T = TypeVar("T")


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
def _pool() -> ThreadPoolExecutor:
    workers = get_settings().max_concurrent_hashes
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")


def _on_pool(work: Callable[[], T]) -> T:
    future: Future[T] = _pool().submit(work)
    try:
        return future.result(timeout=HASH_WAIT_SECONDS)
    except WaitedTooLong:
        future.cancel()  # still queued: drop it; already running: let it finish unseen
        raise ServiceUnavailable(
            "too many sign-ins at once; retry shortly", headers={"Retry-After": "2"}
        ) from None


@cache
def _dummy_hash() -> str:
    """A real hash to verify against when the account does not exist (same cost, no oracle)."""
    return hash_password("no-such-account-placeholder")


def hash_password(password: str) -> str:
    return _on_pool(lambda: _hasher().hash(password))


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Whether it matches, and a new hash when the stored one is bcrypt or outdated Argon2.
    With no stored hash (unknown account, Google-only account) it spends the same time on a
    dummy hash and answers no."""
    if hashed is None:
        dummy = _dummy_hash()
        _on_pool(lambda: _hasher().verify(password, dummy))
        return False, None
    return _on_pool(lambda: _hasher().verify_and_update(password, hashed))
