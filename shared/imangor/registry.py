"""The one registry: everything the code declares, and from which the rest is derived.

Endpoints (with their unit's deploy settings), task queues, task payloads and handlers,
scheduled jobs and API-key scopes each register themselves in `REGISTRY`. Unit entry points,
the local server's routing, the OpenAPI document and the Terraform inventory (which the
local stack reads too) all come from it; nothing keeps a second list that could drift.

This module is the bottom layer: it imports nothing of imangor, so the runtime, the task
machinery and the services can all declare into it.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel

# Who may call an endpoint. "user" is any signed-in account; staff and admin are minimum roles
# (admin ⊃ staff ⊃ customer); "service" is a Google-signed OIDC token (Cloud Tasks/Scheduler).
Access = Literal["public", "user", "staff", "admin", "service"]
INPUTS = ("path", "query", "headers", "body")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class RateLimit:
    """`limit` requests per `window` seconds, per caller (user or API key, else client IP)."""

    limit: int
    window: int
    # While Redis (which counts) is unreachable, the boolean setting named here decides
    # whether requests are refused (503) or let through uncounted; RATE_LIMIT_FAIL_CLOSED
    # decides for a limit that names none.
    fail_closed: str = "rate_limit_fail_closed"

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """ "120/60" → 120 requests per 60 s (the format of RATE_LIMIT_DEFAULT)."""
        limit, _, window = text.partition("/")
        return cls(int(limit), int(window or 60))


# An endpoint's limit: the name of the setting that holds it ("requests/seconds", read at
# each request; RATE_LIMIT_DEFAULT unless the endpoint names its own), "off" (health checks,
# assets), or a fixed RateLimit (tests' sample units: the API's own are all settings).
Limit = RateLimit | str
DEFAULT_LIMIT = "rate_limit_default"


Need = Literal["database", "redis", "storage", "tasks", "mail"]


@dataclass(frozen=True)
class Deploy:
    """How a unit runs on Cloud Run; Terraform reads this through the generated inventory.

    `needs` drives least privilege: a unit gets the Cloud SQL, Redis, bucket, Cloud Tasks or
    SMTP roles and secrets only for what it lists.
    """

    needs: tuple[Need, ...] = ("database", "redis")
    memory: str = "512Mi"
    cpu: str = "1"
    min_instances: int = 0
    max_instances: int = 10
    # Requests per instance = gunicorn threads (THREADS); a database unit's pool (DB_POOL_SIZE,
    # 4 by default) keeps one connection per thread, so keep these equal.
    concurrency: int = 4
    timeout_seconds: int = 60
    internal: bool = False  # only reachable from inside Google (Cloud Tasks, Scheduler)


@dataclass(frozen=True, eq=False)  # identity: endpoints are keys of the route map
class Endpoint:
    unit: str
    method: str
    path: str  # OpenAPI template, e.g. /items/{item_id}
    func: Callable[..., Any]
    access: Access
    status: int
    inputs: dict[str, type[BaseModel]]  # which of path/query/headers/body, and their models
    wants_ctx: bool
    response: type[BaseModel] | None
    media_types: tuple[str, ...]
    rate_limit: Limit
    cache_control: str | None  # e.g. "public, max-age=30": GET answers then carry an ETag
    errors: tuple[int, ...]  # statuses beyond those the runtime itself gives (409, 503, ...)
    summary: str
    description: str
    raw: bool = False  # returns a flask/werkzeug Response itself (docs pages, metrics)
    produces: tuple[str, ...] = ()  # a raw endpoint's answer media types (for the document)
    key_scope: str | None = None  # overrides the derived API-key scope (see `scope`)
    # Takes an `Idempotency-Key` header: a retry with the same key and request gets the first
    # answer again (the runtime stores it in the request's transaction).
    idempotent: bool = False
    # (model name in imangor.models, path parameter): the row the endpoint reads, loaded by
    # the same statement that checks the caller's account (one round trip, not two).
    preload: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def scope(self) -> str:
        """The API-key scope this endpoint needs: `<first path segment>:read|write`, unless the
        endpoint names one (a scope no key can be granted keeps keys out entirely)."""
        if self.key_scope is not None:
            return self.key_scope
        resource = self.path.strip("/").split("/")[0]
        return f"{resource}:{'read' if self.method == 'GET' else 'write'}"

    @property
    def werkzeug_rule(self) -> str:
        return _PARAM.sub(r"<\1>", self.path)


@dataclass(frozen=True)
class Queue:
    """A Cloud Tasks queue: its retry policy and rate limits (Terraform creates it from the
    inventory; the task runner dead-letters a job at `max_attempts`)."""

    name: str
    max_attempts: int  # including the first try; then the job is recorded as dead
    min_backoff_seconds: float
    max_backoff_seconds: float
    max_doublings: int
    max_dispatches_per_second: float
    max_concurrent_dispatches: int


@dataclass(frozen=True)
class Task:
    """A background task: its name (the tasks unit's path /tasks/<name>), the queue it goes
    to and the pydantic model of its payload."""

    name: str
    queue: str
    payload: type[BaseModel]

    @property
    def path(self) -> str:
        return f"/tasks/{self.name}"


@dataclass(frozen=True)
class TaskHandler:
    """`func(payload[, session])` runs one delivery of task `name` (see `imangor.tasks`)."""

    name: str
    payload: type[BaseModel]
    func: Callable[..., dict[str, Any] | None]
    wants_session: bool


@dataclass(frozen=True)
class Schedule:
    """A Cloud Scheduler job: POST `path` (on the cron unit) on `schedule` in `time_zone`."""

    name: str
    schedule: str  # cron syntax, as Cloud Scheduler takes it
    time_zone: str
    func: Callable[..., dict[str, Any] | None]
    description: str

    @property
    def path(self) -> str:
        return f"/cron/{self.name}"


# API-key scopes are `<resource>:read|write` for these resources. An endpoint whose scope is
# anything else (`api-keys:*`, ACCOUNT_SCOPE) cannot be reached with a key at all.
KEY_RESOURCES = ("items", "products", "reports", "orders", "files", "jobs", "users")
# What could take an account away (its e-mail, password, role, the account itself) needs the
# person signed in: endpoints that do it ask for this scope, which no key can be granted.
ACCOUNT_SCOPE = "account:owner"


@dataclass
class Registry:
    endpoints: list[Endpoint] = field(default_factory=list)
    deploys: dict[str, Deploy] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    handlers: dict[str, TaskHandler] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    key_resources: tuple[str, ...] = KEY_RESOURCES

    @property
    def grantable_scopes(self) -> frozenset[str]:
        """Every scope an API key may be given."""
        return frozenset(f"{r}:{a}" for r in self.key_resources for a in ("read", "write"))

    def add_queue(self, queue: Queue) -> None:
        self.queues[queue.name] = queue

    def add_task(self, task: Task) -> None:
        if task.queue not in self.queues:
            raise ValueError(f"{task.payload.__name__}: unknown queue {task.queue!r}")
        if self.tasks.get(task.name, task) != task:
            raise ValueError(f"task {task.name!r} is declared twice")
        self.tasks[task.name] = task

    def add_handler(self, handler: TaskHandler) -> None:
        self.handlers[handler.name] = handler

    def add_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.name] = schedule

    def add(self, endpoint: Endpoint) -> None:
        """Register an endpoint; a unit module executed again (functions-framework and the
        docs generator each load units by path) replaces its own earlier declaration."""
        for index, other in enumerate(self.endpoints):
            if (other.method, other.path) == (endpoint.method, endpoint.path):
                if other.unit != endpoint.unit:
                    raise ValueError(
                        f"{endpoint.method} {endpoint.path} is declared by {other.unit} "
                        f"and {endpoint.unit}"
                    )
                self.endpoints[index] = endpoint
                return
        self.endpoints.append(endpoint)

    def for_unit(self, unit: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.unit == unit]

    def units(self) -> list[str]:
        return sorted({e.unit for e in self.endpoints})

    def path_prefixes(self) -> dict[str, str]:
        """First path segment → unit; the load balancer and the dev server route by this."""
        prefixes: dict[str, str] = {}
        for e in self.endpoints:
            prefix = "/" + e.path.strip("/").split("/")[0]
            owner = prefixes.setdefault(prefix, e.unit)
            if owner != e.unit:
                raise ValueError(f"{prefix} is claimed by both {owner} and {e.unit}")
        return prefixes


REGISTRY = Registry()


def endpoint_from_function(
    func: Callable[..., Any],
    *,
    unit: str,
    method: str,
    path: str,
    access: Access,
    status: int,
    media_types: tuple[str, ...],
    rate_limit: Limit,
    cache_control: str | None,
    errors: tuple[int, ...],
    raw: bool,
    key_scope: str | None = None,
    idempotent: bool = False,
    produces: tuple[str, ...] = (),
    preload: tuple[str, str] | None = None,
) -> Endpoint:
    """Read an endpoint's inputs and output from its signature: the declaration is the code."""
    hints = typing.get_type_hints(func)
    inputs: dict[str, type[BaseModel]] = {}
    wants_ctx = False
    for name in inspect.signature(func).parameters:
        if name == "ctx":
            wants_ctx = True
        elif (
            name in INPUTS
            and isinstance(hints.get(name), type)
            and issubclass(hints[name], BaseModel)
        ):
            inputs[name] = hints[name]
        else:
            raise TypeError(
                f"{func.__qualname__}: parameter {name!r} must be one of {INPUTS} annotated "
                "with a pydantic model, or ctx"
            )
    declared = set(_PARAM.findall(path))
    path_fields = set(inputs["path"].model_fields) if "path" in inputs else set()
    if declared != path_fields:
        raise TypeError(f"{func.__qualname__}: path {path} needs a path model with {declared}")
    _check_field_names_are_unique(func, inputs)
    if idempotent and (access in ("public", "service") or method == "GET" or raw):
        raise TypeError(
            f"{func.__qualname__}: idempotent needs a signed-in caller (keys are theirs), "
            "a method that writes and a typed answer (raw responses cannot be stored)"
        )
    if raw != bool(produces):
        raise TypeError(f"{func.__qualname__}: a raw endpoint (only) declares what it produces")
    if preload is not None and (preload[1] not in declared or method != "GET"):
        raise TypeError(f"{func.__qualname__}: preload names a path parameter of a GET")
    if idempotent and "query" in inputs:
        raise TypeError(f"{func.__qualname__}: an Idempotency-Key covers path and body, not query")
    returned = hints.get("return")
    response = returned if isinstance(returned, type) and issubclass(returned, BaseModel) else None
    doc = inspect.getdoc(func) or func.__name__.replace("_", " ").capitalize()
    summary, _, description = doc.partition("\n")
    return Endpoint(
        unit=unit,
        method=method,
        path=path,
        func=func,
        access=access,
        status=status,
        inputs=inputs,
        wants_ctx=wants_ctx,
        response=response,
        media_types=media_types,
        rate_limit=rate_limit,
        cache_control=cache_control,
        errors=errors,
        key_scope=key_scope,
        summary=summary.strip(),
        description=description.strip(),
        raw=raw,
        idempotent=idempotent,
        produces=produces,
        preload=preload,
    )


def _check_field_names_are_unique(
    func: Callable[..., Any], inputs: dict[str, type[BaseModel]]
) -> None:
    """A field name (or alias) belongs to one input only, so a service that names a field
    says unambiguously where in the request it came from (the runtime looks it up)."""
    owner: dict[str, str] = {}
    for source, model in inputs.items():
        for name, info in model.model_fields.items():
            for spelling in {name, info.alias or name}:
                if owner.setdefault(spelling, source) != source:
                    raise TypeError(
                        f"{func.__qualname__}: field {spelling!r} is in both "
                        f"{owner[spelling]} and {source}"
                    )


FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def load_unit_module(unit: str, functions_dir: Path = FUNCTIONS_DIR) -> ModuleType:
    """Import functions/<unit>/main.py the way functions-framework does (by file path)."""
    name = f"imangor_unit_{unit}"
    if name in sys.modules:
        return sys.modules[name]
    source = functions_dir / unit / "main.py"
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"no unit at {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def unit_names(functions_dir: Path = FUNCTIONS_DIR) -> list[str]:
    return sorted(p.parent.name for p in functions_dir.glob("*/main.py"))


def load_all_units(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, ModuleType]:
    """Every unit module, so REGISTRY holds every endpoint (for docs and the inventory)."""
    return {unit: load_unit_module(unit, functions_dir) for unit in unit_names(functions_dir)}
