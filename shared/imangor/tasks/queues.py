"""The Cloud Tasks queues and their retry policy, declared once.

The local dispatcher retries with exactly these numbers and Terraform creates the queues from
them (through the generated inventory), so local and cloud behave the same.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Queue:
    name: str
    max_attempts: int  # including the first try; then the job is recorded as dead
    min_backoff_seconds: float
    max_backoff_seconds: float
    max_doublings: int
    max_dispatches_per_second: float
    max_concurrent_dispatches: int

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (1-based), as Cloud Tasks computes it:
        doubling `max_doublings` times from the minimum, then growing linearly, capped."""
        doublings = min(retry - 1, self.max_doublings)
        delay = self.min_backoff_seconds * 2**doublings
        linear_steps = max(0, retry - 1 - self.max_doublings)
        delay += linear_steps * self.min_backoff_seconds * 2**self.max_doublings
        return float(min(delay, self.max_backoff_seconds))


QUEUES: dict[str, Queue] = {
    q.name: q
    for q in (
        Queue("main", 5, 1.0, 300.0, 5, 50.0, 20),
        # Was Celery's high-priority route: short, user-facing work such as e-mails.
        Queue("high-priority", 8, 0.5, 60.0, 4, 200.0, 50),
    )
}
