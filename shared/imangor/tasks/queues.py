"""The Cloud Tasks queues and their retry policy, declared once into the registry.

Terraform creates the queues from these numbers (through the generated inventory), the local
dispatcher reads the same inventory, and the task runner dead-letters at `max_attempts`.
"""

from __future__ import annotations

from imangor.registry import REGISTRY, Queue

REGISTRY.add_queue(Queue("main", 5, 1.0, 300.0, 5, 50.0, 20))
# Was Celery's high-priority route: short, user-facing work such as e-mails.
REGISTRY.add_queue(Queue("high-priority", 8, 0.5, 60.0, 4, 200.0, 50))
# A cache bump Redis missed (`imangor.cache`): retried every 2 s at most, so stale reads stop
# within STALE_BOUND_SECONDS of Redis answering again; 60 attempts outlast a two-minute outage,
# after which the handler finds the old entries expired (CACHE_TTL_SECONDS) and is done.
REGISTRY.add_queue(Queue("cache", 60, 0.5, 2.0, 2, 100.0, 10))
