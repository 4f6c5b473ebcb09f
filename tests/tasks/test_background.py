"""The outbox, retries, dedup and dead-lettering, end to end over real HTTP through the local
dispatcher (our stand-in for Cloud Tasks), plus the request the relay builds for Cloud Tasks."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from werkzeug.test import Client

from imangor import metrics
from imangor.db import session_scope
from imangor.models import Job, OutboxEntry, SentEmail
from imangor.registry import REGISTRY as DECLARED
from imangor.registry import Queue
from imangor.schemas.tasks import SendEmail
from imangor.tasks import enqueue, task
from imangor.tasks.declare import TaskPayload
from infra.local.tasks import LocalBackend, LocalTask
from tests.conftest import LIVE_URL, TASKS_ACCOUNT, wait_for


class Flaky(TaskPayload, task="flaky", queue="high-priority"):
    fail_times: int
    key: str


ATTEMPTS: dict[str, int] = {}
RUNNING = threading.Lock()


@task
def flaky(payload: Flaky) -> dict[str, Any]:
    """Raises on its first `fail_times` runs, then succeeds."""
    with RUNNING:
        ATTEMPTS[payload.key] = ATTEMPTS.get(payload.key, 0) + 1
        count = ATTEMPTS[payload.key]
    if count <= payload.fail_times:
        raise RuntimeError(f"boom {count}")
    return {"runs": count}


class BrokenSql(TaskPayload, task="broken_sql", queue="high-priority"):
    key: str


@task
def broken_sql(payload: BrokenSql, session: Session) -> dict[str, Any]:
    """Fails inside the database, which aborts the transaction (as a statement timeout does)."""
    session.execute(text("SELECT 1 / 0"))
    return {}


# Declared for these tests only: out of the registry between them, so the inventory generated
# in the same worker (tests/test_openapi.py) lists only what the code declares.
TEST_TASKS = {name: DECLARED.tasks.pop(name) for name in ("flaky", "broken_sql")}
TEST_HANDLERS = {name: DECLARED.handlers.pop(name) for name in TEST_TASKS}


@pytest.fixture(autouse=True)
def test_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TEST_TASKS:
        monkeypatch.setitem(DECLARED.tasks, name, TEST_TASKS[name])
        monkeypatch.setitem(DECLARED.handlers, name, TEST_HANDLERS[name])


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The high-priority queue with tiny backoffs, so retries happen within the test."""
    from infra.local import tasks as local_tasks

    fast = Queue("high-priority", 3, 0.05, 0.2, 2, 200.0, 10)
    monkeypatch.setitem(DECLARED.queues, "high-priority", fast)  # the runner's last attempt
    queues = {**local_tasks.inventory_queues(), "high-priority": fast}  # the dispatcher's
    monkeypatch.setattr(local_tasks, "inventory_queues", lambda inventory=None: queues)


def job(job_id: uuid.UUID) -> Job:
    with session_scope() as session:
        found = session.get(Job, job_id)
        assert found is not None
        session.expunge(found)
        return found


def enqueue_committed(payload: TaskPayload) -> uuid.UUID:
    with session_scope() as session:
        return enqueue(session, payload).id


def test_every_payload_has_a_handler(app: Any) -> None:
    assert set(DECLARED.tasks) <= set(DECLARED.handlers)


def test_a_task_runs_after_commit(dispatcher: Any) -> None:
    job_id = enqueue_committed(SendEmail(to="a@example.com", subject="hi", body="hello"))
    wait_for(lambda: job(job_id).status == "succeeded")

    def delivered() -> bool:
        # The dispatcher marks its task done once the handler has answered, a moment after
        # the handler recorded the job's success: wait for both.
        with session_scope() as session:
            local = session.scalars(select(LocalTask)).one()
            assert local.name == f"send_email-{job_id}"
            return local.status == "done"

    wait_for(delivered)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
        sent = session.scalars(select(SentEmail)).one()
        assert (sent.recipient, sent.subject) == ("a@example.com", "hi")


def test_a_rolled_back_transaction_enqueues_nothing() -> None:
    with pytest.raises(RuntimeError), session_scope() as session:  # noqa: PT012
        enqueue(session, SendEmail(to="a@example.com", subject="x", body="y"))
        raise RuntimeError("the business change failed")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(LocalTask)) == 0


def test_handler_failing_twice_is_retried_with_backoff_then_succeeds(dispatcher: Any) -> None:
    key = uuid.uuid4().hex
    job_id = enqueue_committed(Flaky(fail_times=2, key=key))
    wait_for(lambda: job(job_id).status == "succeeded")
    finished = job(job_id)
    assert finished.attempts == 3
    assert finished.result == {"runs": 3}
    assert ATTEMPTS[key] == 3


def test_exhausted_task_is_dead_with_its_error(dispatcher: Any) -> None:
    def dead_count() -> float:
        metrics.flush()
        return REGISTRY.get_sample_value("tasks_dead_total", {"task": "flaky"}) or 0.0

    before = dead_count()
    job_id = enqueue_committed(Flaky(fail_times=99, key=uuid.uuid4().hex))
    wait_for(lambda: job(job_id).status == "dead")
    dead = job(job_id)
    assert dead.attempts == 3
    assert dead.error is not None
    assert "boom 3" in dead.error
    assert dead_count() == before + 1
    with session_scope() as session:
        local = session.get(LocalTask, f"flaky-{job_id}")
        assert local is not None
        # The last attempt answers 2xx once the job is recorded dead, so Cloud Tasks stops.
        assert (local.status, local.dispatch_count) == ("done", 3)


def test_a_handler_failing_in_the_database_is_recorded_and_dies_at_the_last_attempt(
    dispatcher: Any,
) -> None:
    job_id = enqueue_committed(BrokenSql(key=uuid.uuid4().hex))
    wait_for(lambda: job(job_id).status == "dead")
    dead = job(job_id)
    assert dead.attempts == 3  # every attempt was recorded, not rolled back with the handler
    assert dead.error is not None
    assert "division by zero" in dead.error
    assert "SELECT" not in dead.error  # the SQL stays in the log; the owner reads the cause


def _deliver(
    signer: Any,
    name: str,
    job_id: uuid.UUID,
    payload: dict[str, Any],
    retry: int = 0,
    email: str = TASKS_ACCOUNT,
    audience: str = LIVE_URL,
) -> Any:
    token = signer.sign(audience, email)
    return requests.post(
        f"{LIVE_URL}/tasks/{name}",
        timeout=10,
        data=json.dumps({"job_id": str(job_id), "payload": payload}),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "X-CloudTasks-TaskRetryCount": str(retry),
        },
    )


def test_the_same_task_delivered_twice_at_once_runs_once(live_server: str, signer: Any) -> None:
    key = uuid.uuid4().hex
    job_id = enqueue_committed(Flaky(fail_times=0, key=key))
    payload = {"fail_times": 0, "key": key}
    results: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(_deliver(signer, "flaky", job_id, payload).status_code)
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]
    assert ATTEMPTS[key] == 1
    assert job(job_id).status == "succeeded"


def test_a_duplicate_of_a_finished_task_does_nothing(live_server: str, signer: Any) -> None:
    key = uuid.uuid4().hex
    job_id = enqueue_committed(Flaky(fail_times=0, key=key))
    for _ in range(3):
        assert _deliver(signer, "flaky", job_id, {"fail_times": 0, "key": key}).ok
    assert ATTEMPTS[key] == 1


@pytest.mark.parametrize("forgery", ["no_token", "other_audience", "other_account", "bad_sig"])
def test_tasks_refuse_anything_but_our_oidc_token(
    live_server: str, signer: Any, forgery: str, tmp_path: Any
) -> None:
    job_id = enqueue_committed(SendEmail(to="a@example.com", subject="x", body="y"))
    body = json.dumps(
        {"job_id": str(job_id), "payload": {"to": "a@example.com", "subject": "x", "body": "y"}}
    )
    headers = {
        "Content-Type": "application/json",
        "X-CloudTasks-TaskName": "forged",
        "X-CloudTasks-QueueName": "high-priority",
    }
    if forgery == "other_audience":
        headers["Authorization"] = f"Bearer {signer.sign('https://elsewhere', TASKS_ACCOUNT)}"
    elif forgery == "other_account":
        headers["Authorization"] = f"Bearer {signer.sign(LIVE_URL, 'intruder@evil.test')}"
    elif forgery == "bad_sig":
        from infra.local.tasks import LocalSigner

        impostor = LocalSigner(tmp_path)  # a different key claiming to be Google's
        headers["Authorization"] = f"Bearer {impostor.sign(LIVE_URL, TASKS_ACCOUNT)}"
    response = requests.post(f"{LIVE_URL}/tasks/send_email", data=body, headers=headers, timeout=10)
    assert response.status_code == (403 if forgery == "other_account" else 401)
    assert job(job_id).status == "queued"


def test_cloud_tasks_unreachable_at_enqueue_commits_and_the_sweep_delivers(
    monkeypatch: pytest.MonkeyPatch,
    dispatcher: Any,
    client: Client,
    make_account: Any,
    signer: Any,
) -> None:
    def unreachable(self: Any, session: Any, request: Any) -> None:
        raise ConnectionError("Cloud Tasks is unreachable")

    monkeypatch.setattr(LocalBackend, "push", unreachable)
    job_id = enqueue_committed(SendEmail(to="late@example.com", subject="s", body="b"))
    with session_scope() as session:
        entry = session.get(OutboxEntry, job_id)
        assert entry is not None
        assert entry.push_attempts == 1
        assert "unreachable" in (entry.last_error or "")
    monkeypatch.undo()  # Cloud Tasks is back; the every-minute sweep pushes what was left
    token = signer.sign(LIVE_URL, "scheduler@local.test")
    with session_scope() as session:  # make the entry old enough for the sweep
        session.execute(
            OutboxEntry.__table__.update().values(
                created_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1)
            )
        )
    swept = requests.post(
        f"{LIVE_URL}/cron/outbox-sweep", timeout=10, headers={"Authorization": f"Bearer {token}"}
    )
    assert swept.status_code == 200
    assert swept.json()["result"] == {"pushed": 1}
    wait_for(lambda: job(job_id).status == "succeeded")


def test_the_after_commit_push_skips_a_row_the_sweep_holds() -> None:
    """A sweep holding the row (pushing it) is not waited for: the request's push skips it
    and leaves it to the sweep, which deletes it once pushed."""
    from imangor.tasks.outbox import Enqueued, push_committed

    job_id = uuid.uuid4()
    payload = {"to": "h@example.com", "subject": "s", "body": "b"}
    with session_scope() as session:
        session.add(Job(id=job_id, kind="send_email", queue="high-priority", payload=payload))
        session.flush()
        session.add(OutboxEntry(job_id=job_id))
    with session_scope() as sweep:
        held = sweep.execute(
            select(OutboxEntry).where(OutboxEntry.job_id == job_id).with_for_update()
        ).scalar_one()
        assert held is not None
        assert push_committed([Enqueued(job_id, "send_email", "high-priority", payload)]) == 0
    with session_scope() as session:
        assert session.get(OutboxEntry, job_id) is not None  # still there for the sweep
        assert session.scalar(select(func.count()).select_from(LocalTask)) == 0


def test_a_failed_after_commit_push_undoes_its_part_and_is_recorded(
    monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    """The push's transaction rolls back as a whole when a push fails: the outbox row stays
    (with the failure recorded), and a backend that wrote before failing wrote nothing."""

    def half_then_fail(self: Any, session: Any, request: Any) -> None:
        session.execute(
            text(
                "INSERT INTO local_tasks (name, queue, url, body, headers) "
                "VALUES ('half', 'main', 'u', '', '{}')"
            )
        )
        raise ConnectionError("Cloud Tasks went away mid-push")

    monkeypatch.setattr(LocalBackend, "push", half_then_fail)
    job_id = enqueue_committed(SendEmail(to="f@example.com", subject="s", body="b"))
    with session_scope() as session:
        entry = session.get(OutboxEntry, job_id)
        assert entry is not None and entry.push_attempts == 1
        assert "went away" in (entry.last_error or "")
        assert session.scalar(select(func.count()).select_from(LocalTask)) == 0


def test_one_failed_push_does_not_hold_back_the_other_jobs_of_its_commit(
    monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    """Jobs committed together are pushed in one transaction; one that cannot be pushed is
    recorded and left to the sweep, and the others are pushed without it."""
    real_push = LocalBackend.push

    def refuse_one(self: Any, session: Any, request: Any) -> None:
        if "refused@" in request.body.decode():
            raise ConnectionError("Cloud Tasks refused this task")
        real_push(self, session, request)

    monkeypatch.setattr(LocalBackend, "push", refuse_one)
    with session_scope() as session:
        first = enqueue(session, SendEmail(to="ok1@example.com", subject="s", body="b")).id
        refused = enqueue(session, SendEmail(to="refused@example.com", subject="s", body="b")).id
        last = enqueue(session, SendEmail(to="ok2@example.com", subject="s", body="b")).id
    with session_scope() as session:
        left = session.scalars(select(OutboxEntry)).all()
        assert [(e.job_id, e.push_attempts) for e in left] == [(refused, 1)]
        names = set(session.scalars(select(LocalTask.name)))
        assert names == {f"send_email-{first}", f"send_email-{last}"}


def test_a_dispatcher_killed_mid_task_delivers_it_after_restart(
    live_server: str, signer: Any
) -> None:
    from infra.local.tasks import LocalDispatcher

    job_id = enqueue_committed(SendEmail(to="k@example.com", subject="s", body="b"))
    first = LocalDispatcher(signer, lease_seconds=0.5)
    # Lease the task as a delivery would, then "die" before delivering or recording it.
    from sqlalchemy import text

    from imangor.db import get_engine

    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE local_tasks SET leased_until = now() + interval "
                "'0.5 second', dispatch_count = 1"
            )
        )
    first.stop()
    assert job(job_id).status == "queued"
    restarted = LocalDispatcher(signer, poll_seconds=0.05).start()
    try:
        wait_for(lambda: job(job_id).status == "succeeded")
    finally:
        restarted.stop()


def test_relay_builds_the_cloud_tasks_request_field_by_field(app: Any) -> None:
    from google.cloud import tasks_v2

    from imangor.tasks.backends import build_request, cloud_task

    with session_scope() as session:
        made = enqueue(session, SendEmail(to="a@example.com", subject="s", body="b"))
        request = build_request(made)
        job_id = made.id
    parent = "projects/p/locations/europe-west1/queues/high-priority"
    built = cloud_task(request, parent)
    assert built.name == f"{parent}/tasks/send_email-{job_id}"
    http = built.http_request
    assert http.http_method == tasks_v2.HttpMethod.POST
    assert http.url == f"{LIVE_URL}/tasks/send_email"
    assert http.headers["Content-Type"] == "application/json"
    assert json.loads(http.body) == {
        "job_id": str(job_id),
        "payload": {"to": "a@example.com", "subject": "s", "body": "b"},
    }
    assert http.oidc_token.service_account_email == TASKS_ACCOUNT
    assert http.oidc_token.audience == LIVE_URL


def test_jobs_endpoint_shows_only_your_own(client: Client, make_account: Any) -> None:
    owner, other, staff = make_account(), make_account(), make_account("staff")
    with session_scope() as session:
        job_id = enqueue(
            session, SendEmail(to="a@example.com", subject="s", body="b"), user_id=owner.id
        ).id
    mine = client.get(f"/jobs/{job_id}", headers=owner.headers)
    assert mine.status_code == 200
    assert mine.json["status"] in ("queued", "running", "succeeded")
    assert client.get(f"/jobs/{job_id}", headers=other.headers).status_code == 404
    assert client.get(f"/jobs/{job_id}", headers=staff.headers).status_code == 200
    assert client.get(f"/jobs/{uuid.uuid4()}", headers=owner.headers).status_code == 404


def test_cron_runs_once_per_schedule_time(live_server: str, signer: Any) -> None:
    token = signer.sign(LIVE_URL, "scheduler@local.test")
    headers = {
        "Authorization": f"Bearer {token}",
        "X-CloudScheduler-ScheduleTime": "2026-11-28T10:17:00Z",
    }
    first = requests.post(f"{LIVE_URL}/cron/cleanup", headers=headers, timeout=10)
    second = requests.post(f"{LIVE_URL}/cron/cleanup", headers=headers, timeout=10)
    assert first.status_code == second.status_code == 200
    assert first.json()["ran"] is True
    assert second.json()["ran"] is False
    assert second.json()["result"] == first.json()["result"]
    unsigned = requests.post(f"{LIVE_URL}/cron/cleanup", timeout=10)
    assert unsigned.status_code == 401


def test_an_order_placed_through_the_api_is_confirmed_by_its_task(
    live_server: str,
    dispatcher: Any,
    make_account: Any,
) -> None:
    staff, buyer = make_account("staff"), make_account()
    product = requests.post(
        f"{live_server}/products/",
        headers=staff.headers,
        timeout=10,
        json={
            "name": "Oak lamp",
            "price": "19.99",
            "stock": 2,
            "attributes": {"category": "home", "description": "warm"},
        },
    ).json()
    placed = requests.post(
        f"{live_server}/orders/",
        headers=buyer.headers,
        timeout=10,
        json={"product_id": product["id"], "quantity": 1},
    )
    assert placed.status_code == 201
    order_id = placed.json()["id"]

    def status() -> str:
        return str(
            requests.get(
                f"{live_server}/orders/{order_id}", headers=buyer.headers, timeout=10
            ).json()["status"]
        )

    wait_for(lambda: status() == "confirmed")
