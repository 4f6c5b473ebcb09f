"""Files: issue signed upload URLs, check what was uploaded, record checksums, clean up."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from imangor import storage
from imangor.auth.principal import Principal
from imangor.config import get_settings
from imangor.errors import Conflict, FieldError, NotFound
from imangor.models import StoredFile
from imangor.schemas.common import PageQuery
from imangor.schemas.files import FileIn, FileOut, FilePage
from imangor.services.pagination import newest_first

ABANDONED_AFTER = timedelta(days=1)
# A PUT that started before its URL expired may still be writing: deleted files are swept
# this long after their upload URL's expiry.
UPLOAD_GRACE = timedelta(hours=1)


def start_upload(
    session: Session, owner: uuid.UUID, data: FileIn
) -> tuple[StoredFile, str, datetime]:
    """A pending file row and a signed PUT URL bound to its content type and size."""
    settings = get_settings()
    if data.content_type not in settings.upload_content_types:
        allowed = f"allowed types: {settings.upload_content_types}"
        raise FieldError("content_type", "content_type_not_allowed", allowed, detail=allowed)
    if data.size > settings.upload_max_bytes:
        limit = f"the limit is {settings.upload_max_bytes} bytes"
        raise FieldError("size", "too_large", limit, detail=limit)
    file_id = uuid.uuid4()
    row = StoredFile(
        id=file_id,
        owner_id=owner,
        filename=data.filename,
        content_type=data.content_type,
        size=data.size,
        object_name=f"uploads/{owner}/{file_id}",
    )
    session.add(row)
    session.flush()
    minutes = settings.upload_url_minutes
    url = storage.signed_url(
        row.object_name, "PUT", minutes, content_type=row.content_type, size=row.size
    )
    return row, url, datetime.now(UTC) + timedelta(minutes=minutes)


def get_owned(
    session: Session, owner: uuid.UUID, file_id: uuid.UUID, *, lock: bool = False
) -> StoredFile:
    """The caller's file; another user's file is 'not found', like a missing one."""
    row = session.get(StoredFile, file_id, with_for_update=lock)
    if row is None or row.owner_id != owner or row.status == "deleted":
        raise NotFound("no such file")
    return row


def complete_upload(session: Session, owner: uuid.UUID, file_id: uuid.UUID) -> StoredFile:
    """Check the object really exists with the declared size and type, then mark it
    uploaded (the caller enqueues process_upload). Calling it again is harmless."""
    row = get_owned(session, owner, file_id, lock=True)
    if row.status in ("uploaded", "ready"):
        return row
    if row.status == "rejected":
        raise Conflict("this upload was rejected; start a new one")
    blob = storage.bucket().get_blob(row.object_name)
    if blob is None:
        raise Conflict("nothing was uploaded yet: PUT the file to upload_url first")
    if blob.size != row.size or (blob.content_type or "") != row.content_type:
        blob.delete()
        row.status = "rejected"
        session.commit()  # the rejection stands even though this request answers an error
        raise Conflict(
            f"the object ({blob.size} bytes, {blob.content_type}) is not what was declared "
            f"({row.size} bytes, {row.content_type}); it was deleted"
        )
    row.status, row.uploaded_at = "uploaded", datetime.now(UTC)
    return row


def list_files(session: Session, user: Principal, query: PageQuery) -> FilePage:
    """The caller's files, newest first; deleted ones are left out (their rows only wait for
    their upload URL to expire). Files are private: staff see only their own here too."""
    page, cursor = newest_first(
        session,
        StoredFile,
        StoredFile.owner_id,
        user,
        query,
        staff_see_all=False,
        where=(StoredFile.status != "deleted",),
    )
    return FilePage(items=[FileOut.model_validate(f) for f in page], next_cursor=cursor)


def process_upload(session: Session, file_id: uuid.UUID) -> dict[str, Any]:
    """Background: stream the object to compute its SHA-256; the file becomes ready."""
    row = session.get(StoredFile, file_id, with_for_update=True)
    if row is None or row.status == "deleted":
        return {"status": "gone"}
    if row.status == "ready":
        return {"status": "ready", "sha256": row.sha256}
    blob = storage.bucket().get_blob(row.object_name)
    if blob is None:
        raise RuntimeError(f"object {row.object_name} is missing")
    digest = hashlib.sha256()
    with blob.open("rb", chunk_size=1024 * 1024) as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    row.sha256, row.crc32c, row.status = digest.hexdigest(), blob.crc32c, "ready"
    return {"status": "ready", "sha256": row.sha256, "size": blob.size}


def download_url(
    session: Session, owner: uuid.UUID, file_id: uuid.UUID
) -> tuple[StoredFile, str, datetime]:
    row = get_owned(session, owner, file_id)
    if row.status != "ready" and row.status != "uploaded":
        raise Conflict(f"the file is {row.status}, not downloadable yet")
    minutes = get_settings().download_url_minutes
    url = storage.signed_url(row.object_name, "GET", minutes)
    return row, url, datetime.now(UTC) + timedelta(minutes=minutes)


def delete_file(session: Session, owner: uuid.UUID, file_id: uuid.UUID) -> None:
    """The object goes now; the row stays, as `deleted`, until the cleanup job has removed
    whatever the still-valid upload URL may put there later (see StoredFile)."""
    row = get_owned(session, owner, file_id, lock=True)
    _delete_object(row.object_name)
    row.status = "deleted"


def _delete_object(object_name: str) -> None:
    from google.api_core.exceptions import NotFound as ObjectMissing

    with contextlib.suppress(ObjectMissing):  # never uploaded, or already gone
        storage.bucket().blob(object_name).delete()


def remove_abandoned_uploads(session: Session, now: datetime) -> int:
    """Pending or rejected uploads older than a day, and deleted files whose upload URL has
    expired (with a grace for a PUT still writing): their object (if any) and row go."""
    url_life = timedelta(minutes=get_settings().upload_url_minutes)
    rows = session.scalars(
        select(StoredFile)
        .where(
            or_(
                and_(
                    StoredFile.status.in_(("pending", "rejected")),
                    StoredFile.created_at < now - ABANDONED_AFTER,
                ),
                and_(
                    StoredFile.status == "deleted",
                    StoredFile.created_at < now - url_life - UPLOAD_GRACE,
                ),
            )
        )
        .limit(1000)
    ).all()
    for row in rows:
        _delete_object(row.object_name)
        session.delete(row)
    return len(rows)
