"""Read-through cache for public reads, in Redis, invalidated by a versioned namespace.

Every key of a namespace embeds its current version number (`cache:catalog:<version>:...`).
A write that changes any answer of the namespace bumps the version *after its transaction
commits*, so later reads miss and refill from the database, while a reader that raced the
write can only have filled a key of the old version, which nobody reads again and which
expires by TTL. Keys are digests of the normalised query, never of `str(args)`.

Redis is an optimisation here, not a dependency: when it is down or unset, reads go to the
database and nothing errors. A write still commits when its bump cannot reach Redis, and
then the bump must land later, or the entries of the old version would be served for up to
CACHE_TTL_SECONDS once Redis answers again. The bound:

**A cached answer outlives the committed write that changed it by at most
STALE_BOUND_SECONDS (3 s) after Redis answers again** (while it does not, reads go to the
database and nothing stale is served). A missed bump is retried two ways at once:
- by the writing instance, every RETRY_INTERVAL (0.25 s), in a background thread, until it
  lands: stale reads stop ≈0.25 s after Redis is back, while that instance lives and has CPU
  (Cloud Run may throttle an instance between requests);
- durably, as a `bump_cache` task written through the outbox before the request answers
  (`on_failure`, from `imangor.tasks.bumps`), which Cloud Tasks retries on the `cache` queue
  with backoff of at most 2 s: stale reads stop within ≈2 s of Redis being back even when
  the instance is gone.
Both give up once CACHE_TTL_SECONDS have passed since the commit: by then every entry filled
before the write has expired. A second bump (both routes landing) only costs a few misses.

What this costs: nothing on a cache hit (one script: the version, then the entry) and nothing
on a write whose bump lands; a missed bump costs one job and outbox row, and one task.
Readers cannot check freshness themselves without a database read per hit, which is what
the cache saves, and a shorter TTL would cost misses all the time to bound a rare fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from imangor.config import get_settings

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

CATALOG = "catalog"  # products by id and product searches: product writes and orders bump it
_PENDING = "imangor.cache.bump"  # session.info key: namespaces to bump after commit
_FAILURE = "imangor.cache.on_failure"  # session.info key: the durable route for a missed bump

STALE_BOUND_SECONDS = 3.0  # see the module's docstring; the `cache` queue's backoff fits in it
RETRY_INTERVAL = 0.25  # the writing instance's own retries of a missed bump
# Records a missed bump durably: (namespaces, commit time). Called once the write's session
# has given its connection back, before the request answers.
OnFailure = Callable[[list[str], datetime], None]


def _client() -> Redis | None:
    try:
        from imangor.redis_client import get_redis

        return get_redis()
    except RuntimeError:  # no REDIS_URL: run uncached
        return None


def _version_key(namespace: str) -> str:
    return f"cache:{namespace}:version"


def version(namespace: str) -> int | None:
    """The namespace's current version, or None when Redis cannot be reached."""
    from redis.exceptions import RedisError

    client = _client()
    if client is None:
        return None
    key = _version_key(namespace)
    try:
        current: Any = client.get(key)
        if current is None:
            # A fresh (or evicted) version starts at the clock, never back at an old number
            # whose keys might still be alive.
            client.set(key, time.time_ns() // 1000, nx=True)
            current = client.get(key)
        return int(current) if current is not None else None
    except (RedisError, ValueError) as exc:
        log.warning("cache unavailable, reading from the database: %s", exc)
        return None


def make_key(namespace: str, version: int, kind: str, params: Mapping[str, Any]) -> str:
    """`cache:<ns>:<version>:<kind>:<digest of the canonical JSON of params>`."""
    return f"cache:{namespace}:{version}{_entry_suffix(kind, params)}"


def _entry_suffix(kind: str, params: Mapping[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return f":{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


# A hit in one round trip: the version, then the entry of that version (a missing version
# starts at the clock, as in `version`). The entry's key is built in the script, so it is not
# declared in KEYS: fine on Memorystore's standalone Redis, not on a Redis Cluster.
_READ_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
  v = redis.call('GET', KEYS[1])
end
return {v, redis.call('GET', ARGV[2] .. v .. ARGV[3])}
"""
_read_script: Any = None  # redis-py's Script: EVALSHA, reloading the script after a flush


def _read_entry(client: Redis, namespace: str, suffix: str) -> tuple[int, bytes | None]:
    global _read_script
    if _read_script is None:
        _read_script = client.register_script(_READ_SCRIPT)
    started = str(time.time_ns() // 1000)
    current, raw = _read_script(
        keys=[_version_key(namespace)], args=[started, f"cache:{namespace}:", suffix], client=client
    )
    return int(current), raw


def read_through(
    namespace: str,
    kind: str,
    params: Mapping[str, Any],
    model: type[M],
    load: Callable[[], M],
) -> M:
    """The cached answer for (kind, params), else `load()`'s, stored for CACHE_TTL_SECONDS
    (a version bump makes it unreachable sooner)."""
    from redis.exceptions import RedisError

    client = _client()
    if client is None:
        return load()
    suffix = _entry_suffix(kind, params)
    try:
        current, raw = _read_entry(client, namespace, suffix)
    except (RedisError, ValueError) as exc:
        log.warning("cache unavailable, reading from the database: %s", exc)
        return load()
    key = f"cache:{namespace}:{current}{suffix}"
    if raw is not None:
        try:
            return model.model_validate_json(raw)
        except ValidationError:  # written by an older release: refill
            log.info("discarding an unreadable cache entry %s", key)
    value = load()
    try:
        client.set(key, value.model_dump_json(), ex=get_settings().cache_ttl_seconds)
    except RedisError as exc:
        log.warning("cache write failed: %s", exc)
    return value


def bump(namespace: str, client: Redis | None = None) -> bool:
    """Make every cached answer of the namespace unreachable; whether it landed (no Redis
    configured counts as landed: nothing is cached)."""
    from redis.exceptions import RedisError

    client = client or _client()
    if client is None:
        return True
    try:
        _incr(client, namespace)
    except RedisError as exc:
        log.warning("cache version bump failed for %s: %s", namespace, exc)
        return False
    return True


def _incr(client: Redis, namespace: str) -> None:
    key = _version_key(namespace)
    if client.incr(key) == 1:  # the key had vanished: restart from the clock instead
        client.set(key, time.time_ns() // 1000)


def bump_after_commit(
    session: Session, namespace: str, on_failure: OnFailure | None = None
) -> None:
    """Bump `namespace` once the session's transaction commits; a rollback bumps nothing.
    A bump that cannot reach Redis is retried in the background and, with `on_failure`,
    recorded durably too (see the module's docstring for the bound)."""
    _listen()
    session.info.setdefault(_PENDING, set()).add(namespace)
    if on_failure is not None:
        session.info[_FAILURE] = on_failure


_listening = False
_listen_lock = threading.Lock()


def _listen() -> None:
    """Listen to every session's commit and rollback, once per process (a listener per
    session instance cost each write ~0.1 ms of event set-up)."""
    global _listening
    if _listening:
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    with _listen_lock:
        if not _listening:
            event.listen(Session, "after_commit", _bump_pending)
            event.listen(Session, "after_rollback", _forget_pending)
            _listening = True


def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _bump_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    on_failure: OnFailure | None = session.info.pop(_FAILURE, None)
    if not pending:
        return
    committed_at = datetime.now(UTC)
    client = _client()
    failed = [ns for ns in sorted(pending) if not bump(ns, client)]
    if not failed or client is None:
        return
    _retry_in_background(client, failed)
    if on_failure is not None:
        from imangor.db import after_close

        # Recording needs a connection of its own: wait until this session's is back.
        after_close(session, lambda: _record(on_failure, failed, committed_at))


def _record(on_failure: OnFailure, namespaces: list[str], committed_at: datetime) -> None:
    try:
        on_failure(namespaces, committed_at)
    except Exception:  # the write is committed; the background retries remain
        log.exception("could not record the missed cache bump of %s", ", ".join(namespaces))


# -- the writing instance's own retries --------------------------------------------------------

_retry_lock = threading.Lock()
_retry_pending: dict[str, tuple[Redis, float]] = {}  # namespace -> (client, give-up time)
_retry_thread: threading.Thread | None = None


def _retry_in_background(client: Redis, namespaces: list[str]) -> None:
    """Retry these bumps every RETRY_INTERVAL until they land or CACHE_TTL_SECONDS pass."""
    global _retry_thread
    give_up = time.monotonic() + get_settings().cache_ttl_seconds
    with _retry_lock:
        for namespace in namespaces:
            _retry_pending[namespace] = (client, give_up)
        if _retry_thread is None:
            _retry_thread = threading.Thread(
                target=_retry_loop, name="imangor-cache-bump", daemon=True
            )
            _retry_thread.start()


def _retry_loop() -> None:
    global _retry_thread
    while True:
        time.sleep(RETRY_INTERVAL)
        with _retry_lock:
            if not _retry_pending:
                _retry_thread = None
                return
            due = list(_retry_pending.items())
        for namespace, (client, give_up) in due:
            landed = _retry_once(client, namespace)
            expired = not landed and time.monotonic() > give_up
            if landed or expired:
                with _retry_lock:
                    if _retry_pending.get(namespace, (None, 0.0))[1] == give_up:
                        del _retry_pending[namespace]
                log.info(
                    "cache version bump of %s %s",
                    namespace,
                    "landed on retry" if landed else "given up: its old entries have expired",
                )


def _retry_once(client: Redis, namespace: str) -> bool:
    from redis.exceptions import RedisError

    try:
        _incr(client, namespace)
    except RedisError:
        return False  # still unreachable: the first failure was logged
    return True


def pending_bumps() -> set[str]:
    """Namespaces whose bump this process is still retrying."""
    with _retry_lock:
        return set(_retry_pending)


def forget_pending_bumps() -> None:
    """Stop retrying (tests that swap the Redis server under the process)."""
    with _retry_lock:
        _retry_pending.clear()
