"""Background work on Cloud Tasks: queues, the outbox, handlers and scheduled jobs."""

from imangor.tasks.outbox import enqueue
from imangor.tasks.registry import TaskPayload, scheduled, task

__all__ = ["TaskPayload", "enqueue", "scheduled", "task"]
