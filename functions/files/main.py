"""files unit: uploads and downloads through signed Cloud Storage URLs (owner only)."""

from imangor.runtime import Context, Deploy, Unit
from imangor.schemas.common import PageQuery
from imangor.schemas.files import (
    Completed,
    DownloadLink,
    FileIn,
    FileOut,
    FilePage,
    FilePath,
    UploadTicket,
)

unit = Unit("files", Deploy(needs=("database", "redis", "storage", "tasks")))


@unit.post("/files/", status=201)
def start_upload(body: FileIn, ctx: Context) -> UploadTicket:
    """Reserve a file and get a signed PUT URL bound to its content type and size."""
    from imangor.services.files import start_upload as start

    row, url, expires = start(ctx.db, ctx.user.user_id, body)
    return UploadTicket(
        id=row.id,
        upload_url=url,
        expires_at=expires,
        headers={
            "Content-Type": row.content_type,
            "x-goog-content-length-range": f"{row.size},{row.size}",
        },
    )


@unit.post("/files/{file_id}/complete", status=202, errors=(409,))
def complete_upload(path: FilePath, ctx: Context) -> Completed:
    """Check the uploaded object, then process it in the background (see job_id)."""
    from imangor.schemas.tasks import ProcessUpload
    from imangor.services.files import complete_upload as complete
    from imangor.tasks import enqueue

    row = complete(ctx.db, ctx.user.user_id, path.file_id)
    job = enqueue(ctx.db, ProcessUpload(file_id=row.id), user_id=ctx.user.user_id)
    return Completed.model_validate({**FileOut.model_validate(row).model_dump(), "job_id": job.id})


@unit.get("/files/")
def list_files(query: PageQuery, ctx: Context) -> FilePage:
    """Your files, newest first, with their state (deleted ones left out)."""
    from imangor.services.files import list_files as listed

    return listed(ctx.db, ctx.user, query)


@unit.get("/files/{file_id}", errors=(409,))
def read_file(path: FilePath, ctx: Context) -> DownloadLink:
    """The file's state and a short-lived signed download URL."""
    from imangor.services.files import download_url

    row, url, expires = download_url(ctx.db, ctx.user.user_id, path.file_id)
    return DownloadLink.model_validate(
        {**FileOut.model_validate(row).model_dump(), "download_url": url, "expires_at": expires}
    )


@unit.delete("/files/{file_id}")
def delete_file(path: FilePath, ctx: Context) -> None:
    """Delete the object and its record."""
    from imangor.services.files import delete_file as remove

    remove(ctx.db, ctx.user.user_id, path.file_id)


files = unit.entry_point()
