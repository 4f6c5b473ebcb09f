"""What an endpoint may ask of the request it serves, created per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imangor.errors import NotAuthenticated

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from imangor.auth.principal import Principal


@dataclass
class Context:
    """Per-request state: ids, the caller, a lazily opened database session, reply headers."""

    request_id: str
    client_ip: str
    principal: Principal | None = None
    read_only: bool = False  # a GET: its session reads in autocommit and refuses writes
    response_headers: dict[str, str] = field(default_factory=dict)
    _session: Session | None = None

    @property
    def db(self) -> Session:
        """The request's session; the runtime commits it on success and rolls back on error."""
        if self._session is None:
            from imangor.db import new_session

            self._session = new_session(read_only=self.read_only)
        return self._session

    @property
    def user(self) -> Principal:
        """The authenticated caller (endpoints that are not public always have one)."""
        if self.principal is None:
            raise NotAuthenticated("authentication required")
        return self.principal

    def finish(self, *, commit: bool) -> None:
        """Commit or roll back and release the connection; a no-op if no session was opened."""
        session, self._session = self._session, None
        if session is None:
            return
        from imangor.db import close_session

        try:
            if self.read_only:
                pass  # autocommit: nothing to commit or roll back; closing releases it
            elif commit:
                session.commit()
            else:
                session.rollback()
        finally:
            close_session(session)
