"""Request bodies: refused before they are read, read no further than the endpoint takes.

functions-framework reads the whole body of every request after its answer (an
`after_request` calling `request.get_data()`, so that a keep-alive connection is left clean),
whatever the endpoint took: a 400 MB upload to GET /health was buffered in memory before its
413, and a declared length with no body behind it was waited for forever. `BodyGuard` sits in
front of the unit's app (installed through Flask's `app.wsgi_app`, the documented place for
WSGI middleware) and decides, from the request line and headers alone, how much of the body
anything may read:

- a declared `Content-Length` over `MAX_BODY_BYTES`: nothing; the unit answers 413 at once
  (before authentication, routing or a `100 Continue` the development server would send);
- an endpoint that takes no body (or no endpoint at all): nothing;
- an endpoint that takes one: the declared length, or for a chunked body one byte past the
  limit, which tells the runtime it is too large (413) without reading on.

What is left unread stays on the socket: the server closes the connection after the answer
(gunicorn drains at most 64 KiB in 5 s first; the development server a little more), so it is
neither buffered nor kept. A client that disconnects mid-body never raises here: the runtime
sees the body incomplete and answers 400, one INFO line in the log instead of a traceback.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from imangor.config import get_settings

if TYPE_CHECKING:
    from imangor.registry import Endpoint

REFUSED = "imangor.body.refused"  # environ: the declared length the unit must refuse (413)
INCOMPLETE = "imangor.body.incomplete"  # environ: the client stopped before its declared end

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyGuard:
    """WSGI middleware: `wsgi.input` replaced by a stream that ends where the endpoint's
    body must end (see the module's docstring)."""

    def __init__(self, app: WSGIApp, endpoint_for: Callable[[str, str], Endpoint | None]):
        self.app = app
        self.endpoint_for = endpoint_for

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        limit = get_settings().max_body_bytes
        declared = _declared_length(environ)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        # Without a declared length or chunks there is no body to allow: no route lookup.
        endpoint = None
        if declared or chunked:
            endpoint = self.endpoint_for(environ.get("REQUEST_METHOD", "GET"), _path(environ))
        takes_body = endpoint is not None and "body" in endpoint.inputs
        if declared is not None and declared > limit:
            environ[REFUSED] = declared
            allowed, exact = 0, False
        elif not takes_body:
            allowed, exact = 0, False
        elif chunked:
            allowed, exact = limit + 1, False
        else:
            allowed, exact = declared or 0, True
        environ["wsgi.input"] = Body(environ["wsgi.input"], allowed, exact=exact, environ=environ)
        # The stream ends by itself: werkzeug reads it as it is (no second wrapper whose
        # "client disconnected" error would surface in functions-framework's after_request).
        environ["wsgi.input_terminated"] = True
        return self.app(environ, start_response)


class Body(io.RawIOBase):
    """At most `allowed` bytes of the raw input. With `exact`, fewer (the client closed the
    connection or the server's read failed) marks the request INCOMPLETE; nothing raises."""

    def __init__(
        self, raw: Any, allowed: int, *, exact: bool, environ: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self._raw = raw
        self._left = allowed
        self._exact = exact
        self._environ = environ if environ is not None else {}

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._left)
        if want <= 0:
            return 0
        try:
            data = self._raw.read(want)
        except (OSError, ValueError):  # a reset, a malformed chunk, a read timeout
            data = b""
        if not data:
            self._stop()
            return 0
        count = len(data)
        buffer[:count] = data
        self._left -= count
        return count

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is allowed for -1), as a file reads: short only at
        the end of what is allowed or of the body."""
        if size is None or size < 0:
            return self.readall()
        chunks, wanted = [], min(size, self._left)
        while wanted > 0:
            chunk = super().read(min(wanted, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def readall(self) -> bytes:
        return self.read(self._left) if self._left > 0 else b""

    def _stop(self) -> None:
        if self._exact and self._left > 0:
            self._environ[INCOMPLETE] = True
        self._left = 0


def _declared_length(environ: dict[str, Any]) -> int | None:
    value = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        return 0  # the server should have refused it; read nothing
    return int(value)


def _path(environ: dict[str, Any]) -> str:
    # PEP 3333: PATH_INFO holds the decoded path as latin-1 characters; werkzeug's own
    # request.path decodes it the same way.
    raw = str(environ.get("PATH_INFO", "/"))
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return raw
