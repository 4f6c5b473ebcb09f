"""The process-wide Redis client, created on first use (redis-py costs ≈0.4 s to import)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from imangor.config import get_settings

if TYPE_CHECKING:
    from redis import Redis

_lock = threading.Lock()
_client: Redis | None = None


def get_redis() -> Redis:
    """A shared client with short timeouts, so a Redis outage degrades instead of hanging."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                from redis import Redis

                settings = get_settings()
                if not settings.redis_url:
                    raise RuntimeError("no Redis configured: set REDIS_URL")
                timeout = settings.redis_timeout
                _client = Redis.from_url(
                    settings.redis_url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    health_check_interval=30,
                    max_connections=32,
                )
    return _client


def reset_redis() -> None:
    global _client
    with _lock:
        if _client is not None:
            _client.close()
        _client = None
