"""Uploads through signed URLs: the API never carries the bytes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator

from imangor.config import Settings
from imangor.schemas.common import Input, Output, Page
from imangor.schemas.scalars import json_integer

Filename = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[^/\\\x00-\x1f]+$",
        description="a plain file name, no path",
    ),
]


# The document states the settings' defaults; the service enforces the values in force.
_DEFAULTS = Settings.model_fields
_TYPES: list[str] = _DEFAULTS["upload_content_types"].get_default(call_default_factory=True)
_MAX_BYTES: int = _DEFAULTS["upload_max_bytes"].default


class FileIn(Input):
    filename: Filename
    content_type: Annotated[
        str,
        Field(
            max_length=100,
            description="one of UPLOAD_CONTENT_TYPES (by default these)",
            json_schema_extra={"enum": _TYPES},
        ),
    ]
    size: int = Field(
        gt=0,
        description="exact size in bytes, at most UPLOAD_MAX_BYTES (by default this)",
        json_schema_extra={"maximum": _MAX_BYTES},
    )

    _json = field_validator("size", mode="before")(json_integer)


class FilePath(Input):
    file_id: uuid.UUID


class FileOut(Output):
    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    status: str
    sha256: str | None
    created_at: datetime
    updated_at: datetime


class FilePage(Page[FileOut]):
    """One page of your files, newest first (deleted ones left out)."""


class UploadTicket(Output):
    id: uuid.UUID
    upload_url: str
    expires_at: datetime
    method: str = "PUT"
    headers: dict[str, str] = Field(description="send exactly these headers with the PUT")


class Completed(FileOut):
    job_id: uuid.UUID


class DownloadLink(FileOut):
    download_url: str
    expires_at: datetime
