"""Task payloads, task handlers and scheduled jobs, each declared once.

A payload class names its task and queue; the enqueuer builds one, the handler receives it,
so the two can never disagree. `@task` and `@scheduled` register handlers served by the tasks
and cron units; the Terraform inventory lists the schedules from here.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from imangor.tasks.queues import QUEUES

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
        if queue not in QUEUES:
            raise ValueError(f"{cls.__name__}: unknown queue {queue!r}")
        if task in PAYLOADS:
            raise ValueError(f"task {task!r} is declared twice")
        cls.task_name, cls.queue = task, queue
        PAYLOADS[task] = cls


PAYLOADS: dict[str, type[TaskPayload]] = {}


@dataclass(frozen=True)
class TaskHandler:
    name: str
    payload: type[TaskPayload]
    func: Callable[..., dict[str, Any] | None]
    wants_session: bool


HANDLERS: dict[str, TaskHandler] = {}


def task(func: F) -> F:
    """Register `func(payload: SomePayload[, session])` as the handler of SomePayload's task.
    It must be idempotent: Cloud Tasks delivers at least once. `session` is the delivery's
    transaction, committed together with the job's success."""
    hints = typing.get_type_hints(func)
    payload = hints.get("payload")
    if not (isinstance(payload, type) and issubclass(payload, TaskPayload)):
        raise TypeError(f"{func.__qualname__}: annotate `payload` with a TaskPayload subclass")
    wants_session = "session" in inspect.signature(func).parameters
    HANDLERS[payload.task_name] = TaskHandler(payload.task_name, payload, func, wants_session)
    return func


@dataclass(frozen=True)
class Schedule:
    name: str
    schedule: str  # cron syntax, as Cloud Scheduler takes it
    time_zone: str
    func: Callable[..., dict[str, Any] | None]
    description: str

    @property
    def path(self) -> str:
        return f"/cron/{self.name}"


SCHEDULES: dict[str, Schedule] = {}


def scheduled(name: str, schedule: str, time_zone: str = "Etc/UTC") -> Callable[[F], F]:
    """Register `func(scheduled_for: datetime, session)` to run on `schedule`; it must be
    idempotent for a given schedule time (the cron unit records each run)."""

    def register(func: F) -> F:
        doc = (inspect.getdoc(func) or name).split("\n")[0]
        SCHEDULES[name] = Schedule(name, schedule, time_zone, func, doc)
        return func

    return register
