"""Responses: an endpoint's return value as JSON (with an ETag and 304 where it is
cacheable), errors as RFC 9457 problem documents, CORS, and the headers every answer carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Request, Response
from pydantic import TypeAdapter

from imangor import errors
from imangor.config import get_settings
from imangor.registry import JSON, Endpoint
from imangor.runtime.context import Context

PROBLEM_JSON = "application/problem+json"
EXPOSED_HEADERS = (
    "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, ETag"
)


def serialise(result: Any, endpoint: Endpoint, request: Request) -> Response:
    """What a (non-raw) endpoint returned, as its answer: None is a 204 (or the declared
    status without a body), anything else JSON by alias."""
    status = endpoint.status
    if result is None:
        return Response(status=204 if status == 200 else status)
    body = _adapter(type(result)).dump_json(result, by_alias=True)
    if endpoint.cache_control and request.method in ("GET", "HEAD") and status == 200:
        return _cacheable(request, body, endpoint.cache_control)
    return Response(body, status=status, mimetype=JSON)


_adapters: dict[type, TypeAdapter[Any]] = {}


def _adapter(kind: type) -> TypeAdapter[Any]:
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = TypeAdapter(kind)
    return adapter


def _cacheable(request: Request, body: bytes, cache_control: str) -> Response:
    """A 200 with a strong ETag of its body, or a bodiless 304 when the client has it."""
    import hashlib

    etag = hashlib.blake2b(body, digest_size=16).hexdigest()
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache_control}
    # Weak comparison (RFC 9110 §13.1.2): a proxy that compresses the body marks the ETag
    # weak (W/"…"), and the client sending that back still has this representation.
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    return Response(body, status=200, mimetype=JSON, headers=headers)


# -- errors --------------------------------------------------------------------------------------


def problem_response(exc: errors.AppError, request_id: str, *, instance: str) -> Response:
    """An RFC 9457 problem document for an error."""
    status = exc.status
    document: dict[str, Any] = {
        "type": f"https://imangor.dev/problems/{exc.slug}",
        "title": exc.title,
        "status": status,
        "detail": exc.detail,
        "instance": instance,
        "request_id": request_id,
        **exc.extensions,
    }
    if isinstance(exc, errors.ValidationFailed):
        document["errors"] = [_error_entry(problem) for problem in exc.problems]
    response = Response(json.dumps(document, default=str), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(exc.headers)
    if status in (429, 503) and "Retry-After" not in response.headers:
        # RFC 9110 §10.2.3: when to come back. A 429 names its window; a 503 that does not
        # know better says RETRY_AFTER_SECONDS.
        response.headers["Retry-After"] = str(get_settings().retry_after_seconds)
    return response


def _error_entry(problem: errors.FieldProblem) -> dict[str, Any]:
    """One entry of a 422's `errors`: where the field is in the request (`loc`, and `field`
    dotted), pydantic's message and type."""
    loc = [problem.source, *problem.field] if problem.source else list(problem.field)
    return {
        "loc": loc,
        "field": ".".join(str(part) for part in loc),
        "message": problem.message,
        "type": problem.kind,
    }


# -- headers and CORS ----------------------------------------------------------------------------


def finish_headers(request: Request, response: Response, ctx: Context) -> None:
    """What every answer carries: the endpoint's and the rate limit's headers, the request
    id, safe defaults, and CORS for an allowed origin."""
    headers = response.headers
    headers.update(ctx.response_headers)
    if response.status_code in (204, 304):  # no body, so no media type (Flask adds one)
        headers.pop("Content-Type", None)
    headers["X-Request-ID"] = ctx.request_id
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Cache-Control", "no-store")
    if get_settings().cors_origins:
        # The answer depends on Origin (with or without Access-Control-Allow-Origin), so a
        # shared cache must not hand one origin's copy, or a copy without one, to another.
        headers.add("Vary", "Origin")
    origin = request.headers.get("Origin")
    if origin and _origin_allowed(origin):
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def preflight_response(request: Request, methods: Iterable[str]) -> Response:
    """A CORS preflight's 204: the path's methods, for an allowed origin only."""
    response = Response(status=204)
    origin = request.headers.get("Origin", "")
    if _origin_allowed(origin):
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            response.headers["Access-Control-Allow-Headers"] = asked
        response.headers["Access-Control-Max-Age"] = str(get_settings().cors_max_age)
    return response


def _origin_allowed(origin: str) -> bool:
    allowed = get_settings().cors_origins
    return bool(origin) and ("*" in allowed or origin in allowed)
