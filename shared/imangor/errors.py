"""Errors as types. Services raise these; the runtime turns each into an RFC 9457 problem.

A service never writes a status code: it says *what* went wrong (not found, conflict, ...) and
the class carries the HTTP status the runtime answers with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class AppError(Exception):
    """Base of every error that becomes a problem document instead of a 500."""

    status: int = 400
    title: str = "Bad Request"
    slug: str = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions


class BadRequest(AppError):
    """The request cannot be read at all (malformed JSON, undecodable body)."""


class IncompleteBody(BadRequest):
    """The client stopped sending before the end of the body it declared (an aborted upload):
    the answer likely reaches nobody, but the log gets one line, not a traceback."""

    slug = "incomplete-body"

    def __init__(self) -> None:
        super().__init__("the body ended before its declared Content-Length")


class HTTPStatusError(AppError):
    """A client error werkzeug raised inside an endpoint (send_from_directory's 404, a 416 for
    a range past the end of a file), answered with its own status and headers."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str]) -> None:
        super().__init__(detail, headers=headers)
        self.status, self.title, self.slug = status, title, title.lower().replace(" ", "-")


class NotAuthenticated(AppError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        # RFC 6750: a 401 for a bearer-protected resource names the scheme to use.
        super().__init__(
            detail, headers={"WWW-Authenticate": 'Bearer realm="imangor"'}, **extensions
        )


class PermissionDenied(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status, title, slug = 404, "Not Found", "not-found"


class MethodNotAllowed(AppError):
    status, title, slug = 405, "Method Not Allowed", "method-not-allowed"

    def __init__(self, allowed: list[str]) -> None:
        allow = ", ".join(sorted(allowed))
        super().__init__(f"allowed methods: {allow}", headers={"Allow": allow})


class Conflict(AppError):
    status, title, slug = 409, "Conflict", "conflict"


class PayloadTooLarge(AppError):
    status, title, slug = 413, "Content Too Large", "payload-too-large"


class UnsupportedMediaType(AppError):
    status, title, slug = 415, "Unsupported Media Type", "unsupported-media-type"


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: its path as the input's model names it, a machine-readable kind and
    a message. `source` is the part of the request it came from (path, query, headers, body):
    only the runtime knows that, so a service leaves it out and the runtime fills it in from
    the endpoint's declared inputs."""

    field: tuple[str | int, ...]
    kind: str
    message: str
    source: str | None = None


class ValidationFailed(AppError):
    """Input that parsed but broke a rule; `problems` lists each field and what is wrong."""

    status, title, slug = 422, "Unprocessable Content", "validation-failed"

    def __init__(self, problems: Sequence[FieldProblem], detail: str | None = None) -> None:
        super().__init__(detail or "the request has invalid fields")
        self.problems = list(problems)


class FieldError(ValidationFailed):
    """One invalid field, named as the input's model names it:
    `FieldError("scopes", "scope_unknown", "unknown scope 'x'")`."""

    def __init__(self, field: str, kind: str, message: str, detail: str | None = None) -> None:
        super().__init__([FieldProblem((field,), kind, message)], detail)


class RateLimited(AppError):
    status, title, slug = 429, "Too Many Requests", "rate-limited"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(
            detail or f"too many requests, retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(AppError):
    status, title, slug = 503, "Service Unavailable", "service-unavailable"


class InternalError(AppError):
    """Anything unexpected: the details go to the log, never to the client."""

    status, title, slug = 500, "Internal Server Error", "internal-error"

    def __init__(self) -> None:
        super().__init__("an unexpected error occurred; quote the request id when reporting it")
