"""Request inputs: the path, query, headers and body an endpoint declares, read from the
request and validated against its pydantic models.

Every problem found in any input is raised at once (one 422 listing them all), each placed
where the request carried it (`loc`: path, query, headers or body, then the field). A field
a service names in its own error is placed the same way, by `locate`.
"""

from __future__ import annotations

import json
import typing
from typing import Any
from urllib.parse import parse_qsl

from flask import Request
from pydantic import BaseModel, ValidationError

from imangor import errors
from imangor.config import get_settings
from imangor.registry import FORM, Endpoint
from imangor.runtime.bodies import INCOMPLETE
from imangor.runtime.idempotency import IdempotencyHeaders


def read_inputs(
    endpoint: Endpoint, request: Request, path_args: dict[str, Any]
) -> tuple[dict[str, BaseModel], str | None]:
    """The endpoint's validated inputs by source, and the Idempotency-Key sent to an
    idempotent endpoint (None if none was). Raises ValidationFailed with every problem."""
    inputs: dict[str, BaseModel] = {}
    key: str | None = None
    problems: list[errors.FieldProblem] = []
    declared = list(endpoint.inputs.items())
    if endpoint.idempotent:
        declared.append(("headers", IdempotencyHeaders))
    for source, model in declared:
        raw = _read_input(source, model, endpoint, request, path_args)
        if (where := _nul_at(raw)) is not None:
            nul = errors.FieldProblem(
                tuple(where), "nul_character", "NUL characters are not accepted", source
            )
            problems.append(nul)
            continue
        try:
            valid = model.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_validation_errors(exc, source))
            continue
        if isinstance(valid, IdempotencyHeaders):
            key = valid.idempotency_key
        else:
            inputs[source] = valid
    if problems:
        raise errors.ValidationFailed(problems)
    return inputs, key


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
            [
                errors.FieldProblem((k,), "repeated", "give this parameter once", "query")
                for k in repeated
            ]
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
    if request.environ.get(INCOMPLETE):
        raise errors.IncompleteBody()
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _validation_errors(exc: ValidationError, source: str) -> list[errors.FieldProblem]:
    """pydantic's errors as field problems of the input they came from."""
    return [
        errors.FieldProblem(tuple(err["loc"]), err["type"], err["msg"], source)
        for err in exc.errors(include_url=False, include_input=False)
    ]


def locate(
    exc: errors.ValidationFailed, inputs: dict[str, type[BaseModel]]
) -> errors.ValidationFailed:
    """`exc` with each field a service named placed in the request: the input whose model
    declares the field (by name or alias; the registry keeps names unique across inputs),
    spelled as pydantic spells it there. A field no input declares stays where it is."""
    located = [_locate(problem, inputs) for problem in exc.problems]
    if located == exc.problems:
        return exc
    moved = errors.ValidationFailed(located, detail=exc.detail)
    moved.headers = exc.headers
    return moved


def _locate(
    problem: errors.FieldProblem, inputs: dict[str, type[BaseModel]]
) -> errors.FieldProblem:
    if problem.source is not None or not problem.field:
        return problem
    top, *rest = problem.field
    for source, model in inputs.items():
        for name, info in model.model_fields.items():
            spelled = info.alias or name
            if top in (name, spelled):
                return errors.FieldProblem((spelled, *rest), problem.kind, problem.message, source)
    return problem
