"""A unit: one deployable function whose endpoints are small decorated functions.

`Unit.entry_point()` is the functions-framework target. For each request it walks one way:
match the route → authenticate → rate limit → read and validate input (`runtime.inputs`) →
call the endpoint (once per Idempotency-Key where declared, `runtime.idempotency`) →
serialise → commit; any error on the way becomes an RFC 9457 problem document and rolls back
(`runtime.responses`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from functools import cached_property, partial
from typing import Any, TypeVar

from flask import Request, Response, current_app, has_app_context, has_request_context
from flask import request as current_request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, Rule

from imangor import errors, metrics
from imangor.config import ConfigurationError, Settings, get_settings
from imangor.observability import (
    configure_logging,
    parse_trace,
    request_id_var,
    trace_var,
)
from imangor.registry import (
    DEFAULT_LIMIT,
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
from imangor.runtime.bodies import REFUSED, BodyGuard
from imangor.runtime.context import Context
from imangor.runtime.idempotency import answer_once
from imangor.runtime.inputs import locate, read_inputs
from imangor.runtime.outages import unavailable_dependency
from imangor.runtime.responses import (
    finish_headers,
    is_preflight,
    preflight_response,
    problem_response,
    serialise,
)

log = logging.getLogger("imangor.request")
F = TypeVar("F", bound=Callable[..., Any])
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
        configure_logging(
            settings.log_level, settings.gcp_project, text=settings.log_format == "text"
        )
        try:  # a clear start-up error, not a failing request
            settings.check_needs(deploy.needs, serving=startup.SERVING)
        except ConfigurationError as exc:
            if not startup.SERVING:
                raise
            raise SystemExit(f"{name} unit: {exc}") from None  # one line, no traceback

    # -- declaring endpoints -------------------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        access: Access = "user",
        status: int = 200,
        media_types: tuple[str, ...] = (JSON,),
        rate_limit: Limit = DEFAULT_LIMIT,
        cache_control: str | None = None,
        errors: tuple[int, ...] = (),
        key_scope: str | None = None,
        raw: bool = False,
        idempotent: bool = False,
        produces: tuple[str, ...] = (),
        preload: tuple[str, str] | None = None,
    ) -> Callable[[F], F]:
        if isinstance(rate_limit, str) and rate_limit not in ("off", *Settings.model_fields):
            raise TypeError(f"{method} {path}: rate_limit {rate_limit!r} is not a setting")

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
                    idempotent=idempotent,
                    produces=produces,
                    preload=preload,
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
        _guard_bodies(self.name, self.endpoint_for)
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

    def endpoint_for(self, method: str, path: str) -> Endpoint | None:
        """The endpoint that serves `method path` here, if any."""
        try:
            endpoint, _ = self._routes.bind("localhost").match(path, method=method)
        except HTTPException:
            return None
        return endpoint if isinstance(endpoint, Endpoint) else None

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
            finish_headers(request, response, ctx)
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
        endpoint: Endpoint | None = None
        try:
            try:
                if (declared := request.environ.get(REFUSED)) is not None:
                    limit = get_settings().max_body_bytes
                    raise errors.PayloadTooLarge(
                        f"the body is limited to {limit} bytes; this one declares {declared}"
                    )
                if is_preflight(request):
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
            if isinstance(exc, errors.ValidationFailed) and endpoint is not None:
                exc = locate(exc, endpoint.inputs)
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
        ctx.read_only = endpoint.method in ("GET", "HEAD")
        if endpoint.access != "public":
            from imangor.auth import authenticate

            ctx.principal = authenticate(dict(request.headers), endpoint, lambda: ctx.db, path_args)
        if endpoint.rate_limit != "off":
            from imangor.ratelimit import enforce

            ctx.response_headers.update(enforce(endpoint, ctx.principal, ctx.client_ip))
        inputs, key = read_inputs(endpoint, request, path_args)
        if key is not None:
            run = partial(self._run, endpoint, inputs, request, ctx)
            return answer_once(endpoint, key, inputs, ctx, run)
        return self._run(endpoint, inputs, request, ctx)

    def _run(
        self, endpoint: Endpoint, inputs: dict[str, BaseModel], request: Request, ctx: Context
    ) -> Response:
        """Call the endpoint with its validated inputs and serialise what it returns."""
        kwargs: dict[str, Any] = {"ctx": ctx, **inputs} if endpoint.wants_ctx else dict(inputs)
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
        return serialise(result, endpoint, request)

    def _preflight(self, request: Request) -> Response:
        adapter = self._routes.bind("localhost")
        methods = list(adapter.allowed_methods(request.path))
        if not methods:
            raise errors.NotFound(f"no endpoint at {request.path}")
        return preflight_response(request, methods)

    def _unexpected(self, exc: Exception, request_id: str, path: str, route: str) -> Response:
        if _is_integrity_error(exc):
            metrics.count_error("IntegrityError", route)
            conflict = errors.Conflict("the change conflicts with existing data")
            return problem_response(conflict, request_id, instance=path)
        dependency = unavailable_dependency(exc)
        if dependency is not None:
            # An outage, not a bug: one line (no traceback), and a 503 the client may retry
            # (whatever the request did was rolled back).
            log.warning(
                "%s unavailable serving %s: %s: %s", dependency, path, type(exc).__name__, exc
            )
            metrics.count_error("DependencyUnavailable", route)
            down = errors.ServiceUnavailable(f"{dependency} is unavailable; retry shortly")
            return problem_response(down, request_id, instance=path)
        log.exception("unhandled error serving %s", path)
        metrics.count_error(type(exc).__name__, route)
        return problem_response(errors.InternalError(), request_id, instance=path)


def _answer_framework_paths(name: str, handle: Callable[[Request], Response]) -> None:
    """functions-framework routes /robots.txt and /favicon.ico to a view of its own that
    answers an HTML 404, so those requests never reach the unit. Send that 404 to the unit,
    which answers as for any unknown path (a problem document with a request id, logged and
    counted).

    Only public APIs: functions-framework's `create_app` executes the unit's module inside
    the application context of the app it builds (named after the target), so there
    `flask.current_app` is that app and `register_error_handler` is Flask's own set-up call.
    Imported any other way (tests, the generators, another app's request) there is no such
    context, or it is another app's, or a request is being served: nothing to do."""
    if not has_app_context() or has_request_context() or current_app.name != name:
        return
    current_app.register_error_handler(404, lambda _exc: handle(current_request))


def _guard_bodies(name: str, endpoint_for: Callable[[str, str], Endpoint | None]) -> None:
    """Put `BodyGuard` in front of the app functions-framework builds for this unit (see
    `runtime.bodies`), through Flask's documented middleware hook, `app.wsgi_app`. As for
    `_answer_framework_paths`: only inside that app's context while the module loads."""
    if not has_app_context() or has_request_context() or current_app.name != name:
        return
    current_app.wsgi_app = BodyGuard(current_app.wsgi_app, endpoint_for)  # type: ignore[method-assign]


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
