"""Cloud Storage: the bucket client and V4 signed URLs.

The client is created on first use (google.cloud.storage costs ≈0.6 s to import). Locally
and in tests STORAGE_EMULATOR_HOST points it at gcp-storage-emulator with anonymous
credentials. URLs are signed with a service-account key file when one is configured (local),
else through IAM signBlob as the function's own account (Cloud Run has no key file).
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

from imangor.config import get_settings

_lock = threading.Lock()
_client: Any = None


def bucket() -> Any:
    global _client
    with _lock:
        if _client is None:
            from google.cloud import storage  # type: ignore[attr-defined]

            settings = get_settings()
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
                _client = storage.Client(project=settings.storage_project, credentials=anonymous)
            else:
                _client = storage.Client(project=settings.storage_project)
    return _client.bucket(get_settings().storage_bucket)


def reset_client() -> None:
    global _client
    with _lock:
        _client = None


def signed_url(
    object_name: str,
    method: str,
    minutes: int,
    *,
    content_type: str | None = None,
    size: int | None = None,
) -> str:
    """A V4 signed URL. For uploads the content type and exact size are signed headers, so
    the object stored is the one declared (`x-goog-content-length-range: size,size`)."""
    blob = bucket().blob(object_name)
    headers = {"x-goog-content-length-range": f"{size},{size}"} if size is not None else None
    url: str = blob.generate_signed_url(
        version="v4",
        expiration=timedelta(minutes=minutes),
        method=method,
        content_type=content_type,
        headers=headers,
        **_signing(),
    )
    return url


def _signing() -> dict[str, Any]:
    settings = get_settings()
    if settings.storage_signing_key_file:
        from google.oauth2 import service_account

        load = service_account.Credentials.from_service_account_file
        credentials = load(settings.storage_signing_key_file)  # type: ignore[no-untyped-call]
        return {"credentials": credentials}
    import google.auth
    from google.auth.transport.requests import Request

    credentials, _ = google.auth.default()
    credentials.refresh(Request())  # type: ignore[no-untyped-call]
    return {
        "service_account_email": settings.storage_signing_account,
        "access_token": credentials.token,
    }
