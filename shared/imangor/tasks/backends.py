"""Where a job goes once committed: Cloud Tasks, or the queue the local stack installs.

Both receive the same `TaskRequest`, built in one place, so what runs locally is what Cloud
Tasks would deliver: URL, body, headers, OIDC identity and a deterministic task name.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from imangor.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class TaskRequest:
    name: str  # unique per job: a second push of the same job is dropped as a duplicate
    queue: str
    url: str
    body: bytes
    headers: dict[str, str]
    oidc_service_account: str
    oidc_audience: str


class JobLike(Protocol):
    """What a request is built from: a `Job` row, or the outbox's record of one it enqueued."""

    @property
    def id(self) -> Any: ...
    @property
    def kind(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def payload(self) -> Any: ...


def build_request(job: JobLike) -> TaskRequest:
    settings = get_settings()
    body = json.dumps({"job_id": str(job.id), "payload": job.payload}).encode()
    return TaskRequest(
        name=f"{job.kind}-{job.id}",
        queue=job.queue,
        url=f"{settings.tasks_target_url.rstrip('/')}/tasks/{job.kind}",
        body=body,
        headers={"Content-Type": "application/json"},
        oidc_service_account=settings.tasks_service_account,
        oidc_audience=settings.oidc_audience or settings.tasks_target_url,
    )


class Backend(Protocol):
    def push(self, session: Session, request: TaskRequest) -> None: ...


class CloudTasksBackend:
    """Create an HTTP task with an OIDC token; the client is created on first use (and aimed
    at gcloud-tasks-emulator over plain gRPC when TASKS_EMULATOR_HOST is set)."""

    _lock = threading.Lock()
    _clients: dict[str | None, Any] = {}

    def client(self) -> Any:
        host = get_settings().tasks_emulator_host
        with self._lock:
            if host not in self._clients:
                from google.cloud import tasks_v2

                if host:
                    import grpc  # type: ignore[import-untyped]
                    from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                        CloudTasksGrpcTransport,
                    )

                    channel = grpc.insecure_channel(host)
                    transport = CloudTasksGrpcTransport(channel=channel)
                    self._clients[host] = tasks_v2.CloudTasksClient(transport=transport)
                else:
                    self._clients[host] = tasks_v2.CloudTasksClient()
            return self._clients[host]

    def push(self, session: Session, request: TaskRequest) -> None:
        from google.api_core.exceptions import AlreadyExists

        settings = get_settings()
        client = self.client()
        parent = client.queue_path(settings.tasks_project, settings.tasks_location, request.queue)
        # AlreadyExists: pushed before (a sweep after a lost answer), Cloud Tasks deduplicated.
        with contextlib.suppress(AlreadyExists):
            client.create_task(parent=parent, task=cloud_task(request, parent), timeout=10)


def cloud_task(request: TaskRequest, queue_path: str) -> Any:
    """The google.cloud.tasks_v2.Task for a request (built apart so tests check each field)."""
    from google.cloud import tasks_v2

    return tasks_v2.Task(
        name=f"{queue_path}/tasks/{request.name}",
        http_request=tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=request.url,
            headers=request.headers,
            body=request.body,
            oidc_token=tasks_v2.OidcToken(
                service_account_email=request.oidc_service_account,
                audience=request.oidc_audience,
            ),
        ),
    )


_local_backend: Backend | None = None


def install_local_backend(backend: Backend) -> None:
    """Where jobs go when TASKS_BACKEND=local: the local stack (`infra/local`, which
    imitates Cloud Tasks on a laptop) installs its queue here. Production code ships none."""
    global _local_backend
    _local_backend = backend


def get_backend() -> Backend:
    if get_settings().tasks_backend == "cloud":
        return CloudTasksBackend()
    if _local_backend is None:
        # The push fails, the job stays in the outbox (nothing is lost) and the log says why.
        raise RuntimeError(
            "TASKS_BACKEND=local, but no local task dispatcher runs in this process: "
            "serve the API with `make dev`, or set TASKS_BACKEND=cloud"
        )
    return _local_backend
