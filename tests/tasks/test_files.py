"""Uploads through signed URLs against gcp-storage-emulator with the real client."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.test import Client

from imangor.db import session_scope
from imangor.models import StoredFile
from tests.conftest import wait_for

CONTENT = b"hello, imangor\n" * 100


@pytest.fixture(autouse=True)
def _storage(storage_emulator: str) -> None:
    """Every test here talks to the storage emulator."""


def start(
    client: Client,
    account: Any,
    size: int = len(CONTENT),
    content_type: str = "text/plain",
    filename: str = "hello.txt",
) -> Any:
    return client.post(
        "/files/",
        headers=account.headers,
        json={"filename": filename, "content_type": content_type, "size": size},
    )


def put(ticket: dict[str, Any], data: bytes) -> Any:
    return requests.put(ticket["upload_url"], data=data, headers=ticket["headers"], timeout=10)


def file_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(StoredFile)) or 0


def test_signed_upload_url_is_bound_to_type_size_and_expiry(
    client: Client, make_account: Any
) -> None:
    ticket = start(client, make_account())
    assert ticket.status_code == 201
    body = ticket.json
    query = parse_qs(urlparse(body["upload_url"]).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["600"]
    signed = query["X-Goog-SignedHeaders"][0].split(";")
    assert {"content-type", "x-goog-content-length-range", "host"} <= set(signed)
    expires = datetime.fromisoformat(body["expires_at"])
    assert 500 < (expires - datetime.now(UTC)).total_seconds() <= 600
    assert body["headers"]["x-goog-content-length-range"] == f"{len(CONTENT)},{len(CONTENT)}"


def test_upload_complete_process_download_delete(
    client: Client, make_account: Any, dispatcher: Any
) -> None:
    me = make_account()
    ticket = start(client, me).json
    assert put(ticket, CONTENT).ok
    completed = client.post(f"/files/{ticket['id']}/complete", headers=me.headers)
    assert completed.status_code == 202
    job_id = completed.json["job_id"]
    wait_for(
        lambda: client.get(f"/jobs/{job_id}", headers=me.headers).json["status"] == "succeeded"
    )
    read = client.get(f"/files/{ticket['id']}", headers=me.headers).json
    assert read["status"] == "ready"
    assert read["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert requests.get(read["download_url"], timeout=10).content == CONTENT
    assert client.delete(f"/files/{ticket['id']}", headers=me.headers).status_code == 204
    assert client.get(f"/files/{ticket['id']}", headers=me.headers).status_code == 404


def test_a_deleted_files_upload_url_leaves_nothing_behind(
    client: Client, make_account: Any
) -> None:
    """A signed URL cannot be revoked: an object PUT through it after the delete is removed
    by the cleanup job once the URL has expired, not left in the bucket with no row."""
    from datetime import timedelta

    from imangor import storage
    from imangor.services.files import remove_abandoned_uploads

    me = make_account()
    ticket = start(client, me).json
    file_url = f"/files/{ticket['id']}"
    assert client.delete(file_url, headers=me.headers).status_code == 204
    assert client.get(file_url, headers=me.headers).status_code == 404
    assert client.delete(file_url, headers=me.headers).status_code == 404
    assert client.post(f"{file_url}/complete", headers=me.headers).status_code == 404
    assert put(ticket, CONTENT).ok  # the URL is still valid: the object is back
    object_name = f"uploads/{me.id}/{ticket['id']}"
    assert storage.bucket().get_blob(object_name) is not None

    def swept(at: datetime) -> bool:
        with session_scope() as session:
            remove_abandoned_uploads(session, at)
        with session_scope() as session:
            return session.get(StoredFile, uuid.UUID(ticket["id"])) is None

    assert not swept(datetime.now(UTC))  # the URL has not expired: a PUT may still come
    assert swept(datetime.now(UTC) + timedelta(hours=2))
    assert storage.bucket().get_blob(object_name) is None


def test_no_cloud_storage_credentials_is_a_503_that_writes_nothing(
    client: Client, make_account: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A deployment without credentials for Cloud Storage (no emulator, no key, no metadata
    server) answers 503 with Retry-After and a problem document, never a 500, and keeps no
    half-made file."""
    from imangor import storage

    me = make_account()
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud default credentials
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # and no metadata server to ask
    storage.reset_client()
    try:
        before = file_count()
        answer = start(client, me)
        assert answer.status_code == 503, answer.json
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert int(answer.headers["Retry-After"]) > 0
        assert "credentials" in answer.json["detail"]
        assert file_count() == before
    finally:
        monkeypatch.undo()
        storage.reset_client()


def test_complete_before_upload_is_409(client: Client, make_account: Any) -> None:
    me = make_account()
    ticket = start(client, me).json
    response = client.post(f"/files/{ticket['id']}/complete", headers=me.headers)
    assert response.status_code == 409
    assert "nothing was uploaded" in response.json["detail"]


def test_an_object_bigger_than_declared_is_rejected_and_deleted(
    client: Client, make_account: Any
) -> None:
    from imangor import storage

    me = make_account()
    ticket = start(client, me, size=10).json
    # Storage refuses a body outside the signed length range, as Cloud Storage does ...
    refused = put(ticket, CONTENT)
    assert refused.status_code == 400
    assert "<Code>EntityTooLarge</Code>" in refused.text
    early = client.post(f"/files/{ticket['id']}/complete", headers=me.headers)
    assert early.status_code == 409
    assert "nothing was uploaded" in early.json["detail"]
    # ... so only a writer with access to the bucket itself can leave a bigger object: the
    # complete step still measures what is stored, never trusting the declared size.
    with session_scope() as session:
        row = session.get(StoredFile, uuid.UUID(ticket["id"]))
        assert row is not None
        object_name = row.object_name
    storage.bucket().blob(object_name).upload_from_string(CONTENT, content_type="text/plain")
    response = client.post(f"/files/{ticket['id']}/complete", headers=me.headers)
    assert response.status_code == 409
    assert storage.bucket().get_blob(object_name) is None
    assert client.get(f"/files/{ticket['id']}", headers=me.headers).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "x.exe", "content_type": "application/x-msdownload", "size": 10},
        {"filename": "x.txt", "content_type": "text/plain", "size": 10**12},
        {"filename": "../../etc/passwd", "content_type": "text/plain", "size": 10},
        {"filename": "x.txt", "content_type": "text/plain", "size": -1},
        {"filename": "x.txt", "content_type": "text/plain", "size": 10, "public": True},
    ],
)
def test_bad_upload_requests_are_422_and_write_nothing(
    client: Client, make_account: Any, body: dict[str, Any]
) -> None:
    response = client.post("/files/", json=body, headers=make_account().headers)
    assert response.status_code == 422
    assert file_count() == 0


def test_another_users_file_is_404(client: Client, make_account: Any) -> None:
    owner, other = make_account(), make_account()
    ticket = start(client, owner).json
    for call in (client.get, client.delete):
        assert call(f"/files/{ticket['id']}", headers=other.headers).status_code == 404
    assert client.post(f"/files/{ticket['id']}/complete", headers=other.headers).status_code == 404


def test_daily_report_lands_in_storage(live_server: str, signer: Any) -> None:
    from imangor import storage

    token = signer.sign(live_server, "scheduler@local.test")
    response = requests.post(
        f"{live_server}/cron/daily-report",
        timeout=10,
        headers={
            "Authorization": f"Bearer {token}",
            "X-CloudScheduler-ScheduleTime": "2026-11-28T01:30:00Z",
        },
    )
    assert response.status_code == 200
    blob = storage.bucket().get_blob("reports/daily/2026-11-27.csv")
    assert blob is not None
    assert blob.download_as_text().splitlines()[0] == "date,category,orders,units,revenue"


def test_files_are_listed_newest_first_to_their_owner_only(
    client: Client, make_account: Any
) -> None:
    owner = make_account()
    made = [start(client, owner, filename=f"f{i}.txt").json["id"] for i in range(3)]
    assert client.delete(f"/files/{made[1]}", headers=owner.headers).status_code == 204
    first = client.get("/files/", query_string={"limit": 1}, headers=owner.headers).json
    rest = client.get(
        "/files/", query_string={"cursor": first["next_cursor"]}, headers=owner.headers
    ).json
    listed = [f["id"] for f in first["items"] + rest["items"]]
    assert listed == [made[2], made[0]]  # newest first, the deleted one left out
    assert {f["status"] for f in first["items"] + rest["items"]} == {"pending"}
    assert client.get("/files/", headers=make_account("staff").headers).json["items"] == []
