"""Google-signed ID tokens: user sign-in (POST /auth/google) and the OIDC tokens that Cloud
Tasks and Cloud Scheduler attach. Certificates are fetched over HTTPS and cached."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from imangor.errors import NotAuthenticated

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_TTL_SECONDS = 3600
_lock = threading.Lock()
_certs: dict[str, tuple[float, dict[str, str]]] = {}


def _fetch_certs(url: str) -> dict[str, str]:
    """kid → PEM certificate, cached for an hour (Google rotates keys over days)."""
    cached = _certs.get(url)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    with _lock:
        cached = _certs.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        certs = _download(url)
        if not isinstance(certs, dict):
            raise ValueError("certificate document is not an object")
        _certs[url] = (time.monotonic() + CERTS_TTL_SECONDS, certs)
        return certs


def _download(url: str) -> Any:
    import json

    if url.startswith("file://"):  # local and test only (settings refuse it in production)
        from pathlib import Path

        return json.loads(Path(url.removeprefix("file://")).read_text())
    import requests

    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


def verify_id_token(token: str, audiences: Sequence[str], certs_url: str) -> dict[str, Any]:
    """The verified claims of a Google-signed JWT for one of `audiences`, else 401."""
    if not audiences:
        raise NotAuthenticated("Google sign-in is not configured")
    from google.auth import exceptions, jwt

    try:
        certs = _fetch_certs(certs_url)
    except Exception as exc:
        raise NotAuthenticated("Google's signing keys are unreachable; try again") from exc
    try:
        claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs=certs, audience=list(audiences), clock_skew_in_seconds=10
        )
    except (exceptions.GoogleAuthError, ValueError) as exc:
        raise NotAuthenticated(f"the Google token is invalid: {exc}") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise NotAuthenticated("the token was not issued by Google")
    return claims
