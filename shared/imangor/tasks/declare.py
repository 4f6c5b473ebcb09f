"""Declaring background work: task payloads, their handlers and scheduled jobs.

A payload class names its task and queue; the enqueuer builds one, the handler receives it,
so the two can never disagree. Each declaration goes into the one registry
(`imangor.registry.REGISTRY`), from which the tasks and cron units serve them and the
Terraform inventory lists the queues and schedules.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from imangor.registry import REGISTRY, Schedule, Task, TaskHandler
from imangor.tasks import queues as _queues  # noqa: F401  (the queues payloads name)

F = TypeVar("F", bound=Callable[..., Any])
MAX_PAYLOAD_BYTES = 100_000  # Cloud Tasks refuses bigger task bodies


class TaskPayload(BaseModel):
    """Base of every task's input: `class SendEmail(TaskPayload, task="send_email", queue=...)`."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use
    task_name: ClassVar[str]
    queue: ClassVar[str]

    def __init_subclass__(cls, *, task: str = "", queue: str = "main", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not task:
            return
        REGISTRY.add_task(Task(task, queue, cls))
        cls.task_name, cls.queue = task, queue


def task(func: F) -> F:
    """Register `func(payload: SomePayload[, session])` as the handler of SomePayload's task.
    It must be idempotent: Cloud Tasks delivers at least once. `session` is the delivery's
    transaction, committed together with the job's success."""
    hints = typing.get_type_hints(func)
    payload = hints.get("payload")
    if not (isinstance(payload, type) and issubclass(payload, TaskPayload)):
        raise TypeError(f"{func.__qualname__}: annotate `payload` with a TaskPayload subclass")
    wants_session = "session" in inspect.signature(func).parameters
    REGISTRY.add_handler(TaskHandler(payload.task_name, payload, func, wants_session))
    return func


def scheduled(name: str, schedule: str, time_zone: str = "Etc/UTC") -> Callable[[F], F]:
    """Register `func(scheduled_for: datetime, session)` to run on `schedule` (Cloud Scheduler
    POSTs /cron/<name>); it must be idempotent for a given schedule time (the cron unit
    records each run)."""

    def register(func: F) -> F:
        doc = (inspect.getdoc(func) or name).split("\n")[0]
        REGISTRY.add_schedule(Schedule(name, schedule, time_zone, func, doc))
        return func

    return register
