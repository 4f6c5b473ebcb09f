"""Endpoints declared `idempotent=True`: the first answer to an `Idempotency-Key` is replayed.

The runtime reads the header, then runs the endpoint through `imangor.services.idempotency`,
which claims the key with the answer in the request's own transaction, after the write and
before commit (see there for what that guarantees under failures and concurrent duplicates).
The answer kept is the response as sent: its status, the headers the endpoint set
(`Location`), and its body; a replay is marked `Idempotent-Replayed: true`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response
from pydantic import BaseModel, Field

from imangor import errors
from imangor.registry import JSON, Endpoint
from imangor.runtime.context import Context
from imangor.schemas.common import Input

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


class IdempotencyHeaders(Input):
    """The header every idempotent endpoint takes (validated and documented like its own)."""

    idempotency_key: str | None = Field(
        None,
        alias=HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "any unique string (a UUID is best): a retry with the same key and body gets the "
            "first answer; the same key with another body is a 422. Keys live 24 hours"
        ),
    )


def answer_once(
    endpoint: Endpoint,
    key: str,
    inputs: dict[str, BaseModel],
    ctx: Context,
    run: Callable[[], Response],
) -> Response:
    """`run()`'s response, or the one stored for an earlier request with this key.

    The key covers the method, the path (its template filled with the validated path
    parameters, so `/orders` and `/orders/` are one request) and the validated body."""
    from imangor.services import idempotency

    path = inputs.get("path")
    where = endpoint.path.format_map(path.model_dump(mode="json")) if path else endpoint.path
    body = inputs.get("body")
    headers_before = dict(ctx.response_headers)  # the rate limit's, not the endpoint's

    def run_and_keep() -> dict[str, Any]:
        response = run()
        added = {k: v for k, v in ctx.response_headers.items() if headers_before.get(k) != v}
        return {
            "status": response.status_code,
            "headers": added,
            "body": response.get_data(as_text=True),
        }

    try:
        answer, replayed = idempotency.run_once(
            ctx.db,
            owner=ctx.user.user_id,
            key=key,
            scope=f"{endpoint.method} {where}",
            request=body.model_dump(mode="json") if body is not None else {},
            run=run_and_keep,
        )
    except idempotency.KeyReused:
        reused = errors.FieldProblem(
            (HEADER,),
            "idempotency_key_reused",
            "this key was already used for a different request",
            source="headers",
        )
        detail = f"the {HEADER} was already used with another request body"
        raise errors.ValidationFailed([reused], detail=detail) from None
    ctx.response_headers.update(answer["headers"])
    if replayed:
        ctx.response_headers[REPLAYED] = "true"
    # The first answer is rebuilt from what was stored too: a replay is the same bytes.
    text = answer["body"]
    return Response(text, status=answer["status"], mimetype=JSON if text else None)
