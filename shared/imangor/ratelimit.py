"""Rate limits: an atomic sliding-window log per caller and endpoint, kept in Redis.

The caller is the signed-in user (or API key), else the client IP. What happens while Redis is
unreachable is a setting, never an accident: each limit names the boolean setting that
decides (`RateLimit.fail_closed`: RATE_LIMIT_FAIL_CLOSED unless it names another, such as
ORDER_LIMIT_FAIL_CLOSED), and sign-in and recovery have LOGIN_FAIL_CLOSED and
RECOVERY_FAIL_CLOSED. Closed, the request is refused with a 503 (with Retry-After); open, it
is served uncounted and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from imangor.errors import RateLimited, ServiceUnavailable

if TYPE_CHECKING:
    from redis import Redis

    from imangor.auth.principal import Principal
    from imangor.registry import Endpoint

log = logging.getLogger(__name__)

# KEYS[1]: window key. ARGV: limit, window (ms), now (ms), unique member.
# Returns {allowed (0/1), remaining, ms until a slot frees}.
SLIDING_WINDOW = """
local key, limit, window, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return {1, limit - count - 1, window}
end
local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
return {0, 0, oldest + window - now}
"""


_script_of: Any = None  # the Script for the current client (tests replace the client)


def _script(client: Redis) -> Any:
    """SLIDING_WINDOW as a redis-py Script: EVALSHA sends the script's 40-byte digest instead
    of its text, and Script loads the text again when Redis answers NOSCRIPT (after a
    restart, a failover or SCRIPT FLUSH)."""
    global _script_of
    script = _script_of
    if script is None or script.registered_client is not client:
        script = _script_of = client.register_script(SLIDING_WINDOW)
    return script


def hit(key: str, limit: int, window_seconds: int, *, fail_closed: bool = False) -> tuple[int, int]:
    """Count one request against `key`; (remaining, seconds to reset), or raise RateLimited."""
    from redis.exceptions import RedisError

    from imangor.redis_client import get_redis

    now_ms = int(time.time() * 1000)
    try:
        arguments = [str(limit), str(window_seconds * 1000), str(now_ms), uuid.uuid4().hex]
        reply: Any = _script(get_redis())(keys=[f"rl:{key}"], args=arguments)
        allowed, remaining, reset_ms = reply
    except RedisError as exc:
        if fail_closed:
            raise ServiceUnavailable("rate limiting is unavailable; try again shortly") from exc
        log.warning("rate limiter unavailable, allowing %s: %s", key, exc)
        return limit, window_seconds
    reset = max(1, -(-int(reset_ms) // 1000))
    if not allowed:
        raise RateLimited(reset)
    return int(remaining), reset


def enforce(endpoint: Endpoint, principal: Principal | None, client_ip: str) -> dict[str, str]:
    """Apply the endpoint's limit (the setting it names, RATE_LIMIT_DEFAULT unless its own)
    to this caller; the RateLimit-* headers that report it (none for an unlimited endpoint).
    Every attempt counts, a refused one (4xx) too: the limit also caps how fast a caller
    can probe (e.g. which addresses sign-up says are taken)."""
    from imangor.config import get_settings
    from imangor.registry import RateLimit

    rule = endpoint.rate_limit
    if rule == "off":
        return {}
    if isinstance(rule, str):
        parsed = RateLimit.parse(getattr(get_settings(), rule))
        rule = RateLimit(parsed.limit, parsed.window, fail_closed=fail_closed_setting(rule))
    key = f"{endpoint.method}:{endpoint.path}:{_caller(principal, client_ip)}"
    headers = {"RateLimit-Limit": str(rule.limit)}
    fail_closed = bool(getattr(get_settings(), rule.fail_closed))
    try:
        remaining, reset = hit(key, rule.limit, rule.window, fail_closed=fail_closed)
    except RateLimited as exc:
        exc.headers.update(
            headers, **{"RateLimit-Remaining": "0", "RateLimit-Reset": exc.headers["Retry-After"]}
        )
        raise
    headers.update({"RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)})
    return headers


def fail_closed_setting(limit_setting: str) -> str:
    """The boolean setting that decides what the limit held in setting X does while Redis
    is down: X_FAIL_CLOSED when there is one (ORDER_LIMIT_FAIL_CLOSED), else
    RATE_LIMIT_FAIL_CLOSED."""
    from imangor.config import Settings

    own = f"{limit_setting}_fail_closed"
    return own if own in Settings.model_fields else "rate_limit_fail_closed"


def _caller(principal: Principal | None, client_ip: str) -> str:
    if principal is None:
        return f"ip:{client_ip}"
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"user:{principal.user_id}"


def limit_attempts(action: str, account: str, client_ip: str) -> None:
    """Brute-force guard for sign-in and recovery: per account and per client IP.

    Login fails closed when Redis is down (LOGIN_FAIL_CLOSED, default on): a limiter outage
    must not turn into unlimited password guessing. Recovery fails open by default
    (RECOVERY_FAIL_CLOSED off): it only sends mail to the account's owner.
    """
    from imangor.config import get_settings
    from imangor.registry import RateLimit

    settings = get_settings()
    if action == "login":
        per_account, per_ip = settings.login_limit_per_account, settings.login_limit_per_ip
        fail_closed = settings.login_fail_closed
    else:
        per_account, per_ip = settings.recovery_limit_per_account, settings.recovery_limit_per_ip
        fail_closed = settings.recovery_fail_closed
    account_key = hashlib.sha256(account.encode()).hexdigest()[:32]  # no e-mails in Redis
    for key, rule in (
        (f"{action}:acct:{account_key}", per_account),
        (f"{action}:ip:{client_ip}", per_ip),
    ):
        limit = RateLimit.parse(rule)
        hit(key, limit.limit, limit.window, fail_closed=fail_closed)
