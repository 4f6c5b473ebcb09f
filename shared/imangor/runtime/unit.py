"""A unit: one deployable function whose endpoints are small decorated functions.

`Unit.entry_point()` is the functions-framework target. For each request it walks one way:
match the route → authenticate → rate limit → read and validate input → call the endpoint →
serialise → commit; any error on the way becomes an RFC 9457 problem document and rolls back.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import typing
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from flask import Flask, Request, Response
from flask import request as current_request
from pydantic import BaseModel, TypeAdapter, ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule

from imangor import errors, metrics
from imangor.config import get_settings
from imangor.observability import (
    configure_logging,
    parse_trace,
    request_id_var,
    trace_var,
)
from imangor.registry import (
    FORM,
    JSON,
    REGISTRY,
    Access,
    Deploy,
    Endpoint,
    Limit,
    Registry,
    endpoint_from_function,
)
from imangor.runtime import probes, startup
from imangor.runtime.context import Context

log = logging.getLogger("imangor.request")
F = TypeVar("F", bound=Callable[..., Any])
PROBLEM_JSON = "application/problem+json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


class Unit:
    """A named group of endpoints served by one function entry point."""

    def __init__(
        self, name: str, deploy: Deploy | None = None, registry: Registry = REGISTRY
    ) -> None:
        self.name = name
        self.registry = registry
        registry.deploys[name] = deploy = deploy or Deploy()
        settings = get_settings()
        configure_logging(settings.log_level, settings.gcp_project)
        settings.check_needs(deploy.needs)  # a clear start-up error, not a failing request

    # -- declaring endpoints -------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        access: Access = "user",
        status: int = 200,
        media_types: tuple[str, ...] = (JSON,),
        rate_limit: Limit = "default",
        cache_control: str | None = None,
        errors: tuple[int, ...] = (),
        key_scope: str | None = None,
        raw: bool = False,
    ) -> Callable[[F], F]:
        def register(func: F) -> F:
            self.registry.add(
                endpoint_from_function(
                    func,
                    unit=self.name,
                    method=method,
                    path=path,
                    access=access,
                    status=status,
                    media_types=media_types,
                    rate_limit=rate_limit,
                    cache_control=cache_control,
                    errors=errors,
                    key_scope=key_scope,
                    raw=raw,
                )
            )
            return func

        return register

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        return self.route("DELETE", path, **options)

    def entry_point(self) -> Callable[[Request], Response]:
        """The plain function functions-framework calls (`--target <unit>`)."""

        def handle(request: Request) -> Response:
            return self.handle(request)

        handle.__name__ = handle.__qualname__ = self.name
        _answer_framework_paths(self.name, handle)
        startup.before_fork()  # the last line of a unit's module: gunicorn forks next
        return handle

    # -- serving ---------------------------------------------------------------------------------

    @cached_property
    def _routes(self) -> Map:
        endpoints = self.registry.for_unit(self.name)
        rules = [Rule(e.werkzeug_rule, methods=[e.method], endpoint=e) for e in endpoints]
        return Map(rules, strict_slashes=False, merge_slashes=False)

    @cached_property
    def _probe_needs(self) -> tuple[str, ...] | None:
        """The needs /ready checks if this unit answers Cloud Run's probes itself (it has no
        endpoint of its own at /health or /ready), else None."""
        own = {e.path for e in self.registry.for_unit(self.name)}
        if own & set(probes.PATHS):
            return None
        return tuple(self.registry.deploys[self.name].needs)

    def handle(self, request: Request) -> Response:
        if (
            self._probe_needs is not None
            and (probe := probes.answer(request, self._probe_needs)) is not None
        ):
            return probe
        started = time.perf_counter()
        request_id = _request_id(request)
        id_token = request_id_var.set(request_id)
        trace_token = trace_var.set(
            parse_trace(
                request.headers.get("X-Cloud-Trace-Context"), request.headers.get("traceparent")
            )
        )
        try:
            ctx = Context(request_id=request_id, client_ip=client_ip(request))
            response, route = self._respond(request, ctx)
            _finish_headers(request, response, ctx)
            elapsed = time.perf_counter() - started
            metrics.observe_request(request.method, route, response.status_code, elapsed)
            _access_log(request, response, elapsed)
            # A file answer (send_from_directory) would be handed to the server as is, and
            # its close callbacks never run: werkzeug iterates it instead (no sendfile).
            response.direct_passthrough = False
            response.call_on_close(_after_answer)
            return response
        finally:
            request_id_var.reset(id_token)
            trace_var.reset(trace_token)

    def _respond(self, request: Request, ctx: Context) -> tuple[Response, str]:
        """The response and the matched route template (for metrics labels)."""
        route = "unmatched"
        try:
            try:
                if _is_preflight(request):
                    return self._preflight(request), route
                endpoint, path_args = self._match(request)
                route = endpoint.path
                response = self._call(endpoint, path_args, request, ctx)
                ctx.finish(commit=True)
                return response, route
            except BaseException:
                ctx.finish(commit=False)
                raise
        except errors.AppError as exc:
            metrics.count_error(type(exc).__name__, route)
            return problem_response(exc, ctx.request_id, instance=request.path), route
        except Exception as exc:
            return self._unexpected(exc, ctx.request_id, request.path, route), route

    def _match(self, request: Request) -> tuple[Endpoint, dict[str, Any]]:
        adapter = self._routes.bind("localhost")
        try:
            endpoint, args = adapter.match(request.path, method=request.method)
            assert isinstance(endpoint, Endpoint)
        except RouteMethodNotAllowed as exc:
            raise errors.MethodNotAllowed(list(exc.valid_methods or [])) from None
        except RouteNotFound:
            raise errors.NotFound(f"no endpoint at {request.path}") from None
        return endpoint, dict(args)

    def _call(
        self, endpoint: Endpoint, path_args: dict[str, Any], request: Request, ctx: Context
    ) -> Response:
        if endpoint.access != "public":
            from imangor.auth import authenticate

            ctx.principal = authenticate(dict(request.headers), endpoint, ctx)
        if endpoint.rate_limit != "off":
            from imangor.ratelimit import enforce

            enforce(endpoint, ctx)
        kwargs: dict[str, Any] = {"ctx": ctx} if endpoint.wants_ctx else {}
        problems: list[dict[str, Any]] = []
        for source, model in endpoint.inputs.items():
            raw = _read_input(source, model, endpoint, request, path_args)
            if (where := _nul_at(raw)) is not None:
                problems.append(
                    _field_problem(
                        [source, *where], "NUL characters are not accepted", "nul_character"
                    )
                )
                continue
            try:
                kwargs[source] = model.model_validate(raw)
            except ValidationError as exc:
                problems.extend(validation_errors(exc, source))
        if problems:
            raise errors.ValidationFailed(problems)
        try:
            result = endpoint.func(**kwargs)
        except HTTPException as exc:
            if exc.code is None or exc.code >= 500:
                raise
            # werkzeug's own client errors (send_from_directory's 404, a 416 for a range past
            # a file's end) keep their status and headers, as a problem document.
            headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
            detail = exc.description or exc.name
            raise errors.HTTPStatusError(exc.code, exc.name, detail, headers) from None
        if endpoint.raw:
            return result  # type: ignore[no-any-return]
        status = ctx.status or endpoint.status
        if result is None:
            return Response(status=204 if status == 200 else status)
        body = _adapter(type(result)).dump_json(result, by_alias=True)
        if endpoint.cache_control and request.method in ("GET", "HEAD") and status == 200:
            return _cacheable(request, body, endpoint.cache_control)
        return Response(body, status=status, mimetype=JSON)

    def _preflight(self, request: Request) -> Response:
        adapter = self._routes.bind("localhost")
        methods = adapter.allowed_methods(request.path)
        if not methods:
            raise errors.NotFound(f"no endpoint at {request.path}")
        response = Response(status=204)
        origin = request.headers.get("Origin", "")
        if _origin_allowed(origin):
            response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
            asked = request.headers.get("Access-Control-Request-Headers")
            if asked:
                response.headers["Access-Control-Allow-Headers"] = asked
            response.headers["Access-Control-Max-Age"] = str(get_settings().cors_max_age)
        return response

    def _unexpected(self, exc: Exception, request_id: str, path: str, route: str) -> Response:
        if _is_integrity_error(exc):
            metrics.count_error("IntegrityError", route)
            conflict = errors.Conflict("the change conflicts with existing data")
            return problem_response(conflict, request_id, instance=path)
        log.exception("unhandled error serving %s", path)
        metrics.count_error(type(exc).__name__, route)
        return problem_response(errors.InternalError(), request_id, instance=path)


# -- input --------------------------------------------------------------------------------------


def _read_input(
    source: str,
    model: type[BaseModel],
    endpoint: Endpoint,
    request: Request,
    path_args: dict[str, Any],
) -> Any:
    if source == "path":
        return path_args
    if source == "query":
        return _query(request, model)
    if source == "headers":
        names = {
            (f.alias or name).lower(): f.alias or name for name, f in model.model_fields.items()
        }
        return {names[k.lower()]: v for k, v in request.headers.items() if k.lower() in names}
    return _read_body(endpoint, request)


def _query(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    """Query parameters, decoded strictly: invalid UTF-8 is a 400, not a replacement
    character or the escape kept as text. A repeated key becomes a list where the model
    expects one; anywhere else it is a 422 instead of one of its values picked silently."""
    try:
        text = request.query_string.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise errors.BadRequest("the query string is not valid UTF-8") from None
    lists = {n for n, f in model.model_fields.items() if _is_list(f.annotation)}
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    repeated = sorted(k for k, v in values.items() if len(v) > 1 and k not in lists)
    if repeated:
        raise errors.ValidationFailed(
            [_field_problem(["query", k], "give this parameter once", "repeated") for k in repeated]
        )
    return {k: v if k in lists else v[0] for k, v in values.items()}


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        return True
    return any(_is_list(a) for a in typing.get_args(annotation))


def _read_body(endpoint: Endpoint, request: Request) -> Any:
    limit = get_settings().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.PayloadTooLarge(f"the body is limited to {limit} bytes")
    media = (request.mimetype or "").lower()
    if media not in endpoint.media_types:
        raise errors.UnsupportedMediaType(f"send the body as {' or '.join(endpoint.media_types)}")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"the body is limited to {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.BadRequest("the body is not valid UTF-8") from None
    if media == FORM:
        try:
            return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            raise errors.BadRequest("the form body is not valid UTF-8") from None
    if not text.strip():
        raise errors.BadRequest("the body is empty; send a JSON object")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise errors.BadRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise errors.BadRequest("the JSON is nested too deeply") from None


def _nul_at(value: Any, path: tuple[str | int, ...] = ()) -> list[str | int] | None:
    """Where a NUL character hides in parsed input (PostgreSQL text cannot hold one), if
    anywhere: refused up front as a 422 instead of failing in the database as a 500."""
    if isinstance(value, str):
        return list(path) if "\x00" in value else None
    items = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else ())
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return [*path, key]
        if (found := _nul_at(item, (*path, key))) is not None:
            return found
    return None


def _field_problem(loc: list[str | int], message: str, kind: str) -> dict[str, Any]:
    """One entry of a 422's `errors`, shaped like pydantic's (see `validation_errors`)."""
    return {
        "loc": loc,
        "field": ".".join(str(part) for part in loc),
        "message": message,
        "type": kind,
    }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def validation_errors(exc: ValidationError, source: str) -> list[dict[str, Any]]:
    """pydantic's errors as `{loc, field, message, type}` with the input's source first."""
    return [
        _field_problem([source, *err["loc"]], err["msg"], err["type"])
        for err in exc.errors(include_url=False, include_input=False)
    ]


_adapters: dict[type, TypeAdapter[Any]] = {}


def _adapter(kind: type) -> TypeAdapter[Any]:
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = TypeAdapter(kind)
    return adapter


# -- output -------------------------------------------------------------------------------------


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
    response = Response(json.dumps(document, default=str), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(exc.headers)
    return response


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


def _finish_headers(request: Request, response: Response, ctx: Context) -> None:
    headers = response.headers
    headers.update(ctx.response_headers)
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
        headers["Access-Control-Expose-Headers"] = (
            "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, ETag"
        )


def _answer_framework_paths(name: str, handle: Callable[[Request], Response]) -> None:
    """functions-framework keeps /robots.txt and /favicon.ico for itself and answers them
    with an HTML 404 that never reaches the unit. Its app is being built (named after the
    target) while the unit's module loads: send that 404 to the unit, which answers as for
    any unknown path (a problem document with a request id, logged and counted)."""
    register = getattr(sys.modules.get("functions_framework"), "errorhandler", None)
    app = getattr(register, "__self__", None)
    # Only the app being built for this unit: an older one (tests, tools that import units)
    # may have served requests already, and Flask refuses set-up on those.
    if isinstance(app, Flask) and app.name == name and not app._got_first_request:
        app.register_error_handler(404, lambda _exc: handle(current_request))


def _origin_allowed(origin: str) -> bool:
    allowed = get_settings().cors_origins
    return bool(origin) and ("*" in allowed or origin in allowed)


def _is_preflight(request: Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def _request_id(request: Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def client_ip(request: Request) -> str:
    """The caller's address. Entries a client wrote into X-Forwarded-For are never trusted:
    only the `FORWARDED_HOPS`-th entry from the right, which our own proxies appended."""
    hops = get_settings().forwarded_hops
    if hops:
        entries = [e.strip() for e in request.headers.get("X-Forwarded-For", "").split(",")]
        if len(entries) >= hops and entries[-hops]:
            return entries[-hops]
    return request.remote_addr or "unknown"


def _is_integrity_error(exc: Exception) -> bool:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.IntegrityError)


def _after_answer() -> None:
    """Once the answer is sent: end the start-up (first answer only), feed Prometheus."""
    try:
        startup.finish()
    finally:
        metrics.flush()


def _access_log(request: Request, response: Response, elapsed: float) -> None:
    fields = {
        "httpRequest": {
            "requestMethod": request.method,
            "requestUrl": request.path,
            "status": response.status_code,
            "responseSize": str(response.calculate_content_length() or 0),
            "userAgent": request.user_agent.string,
            "remoteIp": client_ip(request),
            "latency": f"{elapsed:.6f}s",
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        },
    }
    level = logging.ERROR if response.status_code >= 500 else logging.INFO
    message = f"{request.method} {request.path} {response.status_code}"
    log.log(level, message, extra={"fields": fields})
