"""The OpenAPI 3.1 document, derived from the registry (never written by hand)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from imangor.registry import DEFAULT_LIMIT, JSON, Endpoint, RateLimit, Registry
from imangor.runtime.idempotency import IdempotencyHeaders
from imangor.schemas.common import Problem

REF = "#/components/schemas/{model}"
PARAM_LOCATION = {"path": "path", "query": "query", "headers": "header"}
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "oauth2": {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}},
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "googleOidc": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "Google-signed OIDC ID token",
    },
}
ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated but not allowed",
    404: "Not found",
    413: "Body too large",
    415: "Unsupported media type",
    409: "Conflicts with the current state",
    422: "Validation failed",
    429: "Rate limited",
    500: "Unexpected error",
    503: "A dependency is unavailable; retry later",
}
RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


# The order a newcomer walks the API in: sign in first, the internal targets last.
TAG_ORDER = (
    "auth", "users", "products", "items", "orders", "files", "jobs", "health", "docs",
    "tasks", "cron",
)  # fmt: skip


def guide() -> str:
    """The document's description: how to sign in, page, read errors and limits, with the
    numbers the settings' defaults give."""
    from imangor.config import Settings

    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    default_limit = RateLimit.parse(defaults["rate_limit_default"])
    return f"""\
Users, items, a product catalog with full-text search, orders, file uploads and background
jobs. Every path is the same locally (`make dev`) and in production. JSON in and out; times
are RFC 3339 UTC; ids are UUIDs.

## Sign in
1. `POST /auth/register` with `{{"email", "password", "full_name"}}` (a password of at least
   {defaults["password_min_length"]} characters, not the e-mail address).
2. `POST /auth/token` with the OAuth2 password form (`username`, `password`) or the same as
   JSON: `{{"access_token", "refresh_token", "token_type": "bearer", "expires_in"}}`.
3. Send `Authorization: Bearer <access_token>` on every call. It lives
   {defaults["access_token_minutes"]} minutes; `POST /auth/refresh` trades the refresh token
   for a new pair, `POST /auth/logout` ends the session.

In Swagger UI, **Authorize** does steps 2 and 3 for you. For scripts, create an API key
(`POST /api-keys/`; its secret is shown once) and send `X-API-Key: <key>`: a key holds only
the scopes it was given (`items:read`, `orders:write`, …), never more than its owner's
role, and can never change credentials or roles.

Roles: **customer** (the default: your own items, orders, files and jobs), **staff** (the
catalog and every order), **admin** (everything, users too). Each operation says the role it
needs (`x-required-role`).

## Lists
List operations take `limit` (1–100, default 20) and an opaque `cursor`, and answer
`{{"items": [...], "next_cursor": ...}}`: pass `next_cursor` back as `cursor` until it is
`null`.

## What the schemas cannot say
Each request schema says what the server enforces; these rules it cannot state, and a request
breaking one is refused with 422 naming the field:
- no string anywhere may contain a NUL character (U+0000);
- a `cursor` must be a `next_cursor` this API issued for the same query;
- a search `q` needs a word that is not a stop word; `sort=relevance` needs `q`;
  `max_price` may not be below `min_price`;
- a password being set may not be the account's e-mail address;
- an order's `product_id` must name a product, a reset `token` one still unused.
Limits that are settings (`UPLOAD_CONTENT_TYPES`, `UPLOAD_MAX_BYTES`, `PASSWORD_MIN_LENGTH`)
appear in the schemas with their defaults. A `PATCH` field that is given may be null only
where its schema says so; leave a field out to keep its value.

## Errors
Every error is an RFC 9457 problem document (`application/problem+json`) with `type`,
`title`, `status`, `detail`, `instance` and a `request_id` (quote it when you report a
problem); a 422 adds `errors`, one entry per field with its `loc`, `field`, `message` and
`type`. A 503 means a dependency is briefly unavailable: retry after `Retry-After` seconds.

## Rate limits
Each operation is limited per caller (the user or API key, else the client IP): by default
{default_limit.limit} requests per {default_limit.window} s (`RATE_LIMIT_DEFAULT`); operations
with their own limit say so. Answers carry `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset`; a 429 carries `Retry-After` (seconds). Every attempt counts, refused ones
too.

## Retries
`POST /orders/` takes an `Idempotency-Key` header: a retry with the same key and body gets
the first answer (`Idempotent-Replayed: true`) instead of a second order.
"""


def _tags(registry: Registry, unit_docs: dict[str, str]) -> list[dict[str, str]]:
    units = registry.units()
    ordered = [u for u in TAG_ORDER if u in units] + sorted(set(units) - set(TAG_ORDER))
    tags = []
    for unit in ordered:
        doc = (unit_docs.get(unit) or "").split("\n\n")[0].strip()
        tag = {"name": unit}
        if doc:
            tag["description"] = " ".join(doc.removeprefix(f"{unit} unit: ").split())
        tags.append(tag)
    return tags


def build_openapi(
    registry: Registry, *, title: str, version: str, unit_docs: dict[str, str] | None = None
) -> dict[str, Any]:
    """The document; `unit_docs` (each unit module's docstring) describe the tags."""
    endpoints = list(registry.endpoints)
    models: set[tuple[type[BaseModel], JsonSchemaMode]] = {(Problem, "serialization")}
    for e in endpoints:
        models.update((m, "validation") for _, m in _inputs(e))
        if e.response is not None:
            models.add((e.response, "serialization"))
    ordered = sorted(models, key=lambda m: (m[0].__module__, m[0].__qualname__, m[1]))
    keys, top = models_json_schema(ordered, ref_template=REF)
    schemas = dict(top.get("$defs", {}))

    paths: dict[str, dict[str, Any]] = {}
    for e in sorted(endpoints, key=lambda e: (e.path, e.method)):
        operation = _operation(e, keys, schemas, registry)
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": guide()},
        "tags": _tags(registry, unit_docs or {}),
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(
    e: Endpoint, keys: dict[Any, Any], schemas: dict[str, Any], registry: Registry
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.name,
        "summary": e.summary,
        "tags": [e.unit],
    }
    description = "\n\n".join(filter(None, [e.description, _limit_note(e)]))
    if description:
        op["description"] = description
    params = []
    for source, model in _inputs(e):
        location = PARAM_LOCATION.get(source)
        if location is None:
            continue
        schema = _resolve(keys[(model, "validation")], schemas)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": name,
                "in": location,
                "required": location == "path" or name in required,
                "schema": _not_null({k: v for k, v in prop.items() if k != "description"}),
            }
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if params:
        op["parameters"] = params
    if "body" in e.inputs:
        ref = keys[(e.inputs["body"], "validation")]
        op["requestBody"] = {
            "required": True,
            "content": {media: {"schema": ref} for media in e.media_types},
        }
    op["responses"] = _responses(e, keys, registry)
    if e.raw:  # an answer the endpoint builds itself: its media types, no schema
        del op["responses"]["204"]
        content: dict[str, Any] = {media: {"schema": {}} for media in e.produces}
        op["responses"] = {"200": {"description": "OK", "content": content}, **op["responses"]}
    if e.cache_control and e.method == "GET":
        _document_revalidation(op["responses"], e.cache_control)
    if e.access == "service":
        op["security"] = [{"googleOidc": []}]
    elif e.access != "public":
        op["security"] = [{"bearerAuth": []}, {"oauth2": []}, {"apiKey": []}]
        op["x-required-role"] = "customer" if e.access == "user" else e.access
    return op


def _document_revalidation(responses: dict[str, Any], cache_control: str) -> None:
    """A cacheable GET's 200 carries an ETag; sending it back as If-None-Match gets a 304
    without a body (and without a Content-Type)."""
    headers = {
        "ETag": {"description": "validator of this representation", "schema": {"type": "string"}},
        "Cache-Control": {"description": cache_control, "schema": {"type": "string"}},
    }
    responses["200"]["headers"] = headers
    responses["304"] = {
        "description": "Not modified: If-None-Match matches the current ETag (no body)",
        "headers": headers,
    }


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A path, query or header parameter is a string or absent, never null: an optional
    one's `None` means it was left out."""
    options = schema.get("anyOf")
    if options is None:
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and (k, v) != ("default", None)}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def _limit_note(e: Endpoint) -> str | None:
    """What limits this operation, when it is not the default every operation has."""
    from imangor.config import Settings

    if e.rate_limit in ("off", DEFAULT_LIMIT):
        return None
    if isinstance(e.rate_limit, RateLimit):
        rule, named = e.rate_limit, ""
    else:
        rule = RateLimit.parse(Settings.model_fields[e.rate_limit].default)
        named = f" (`{e.rate_limit.upper()}`)"
    caller = "client IP" if e.access == "public" else "caller"
    return f"Rate limit: {rule.limit} requests per {rule.window} s per {caller}{named}."


def _inputs(e: Endpoint) -> list[tuple[str, type[BaseModel]]]:
    """The endpoint's own inputs, and the header the runtime reads for it (idempotency)."""
    inputs = list(e.inputs.items())
    if e.idempotent:
        inputs.append(("headers", IdempotencyHeaders))
    return inputs


def _responses(e: Endpoint, keys: dict[Any, Any], registry: Registry) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if e.response is not None:
        responses[str(e.status)] = {
            "description": "OK" if e.status < 300 else "Done",
            "content": {JSON: {"schema": keys[(e.response, "serialization")]}},
        }
    else:
        responses["204" if e.status == 200 else str(e.status)] = {"description": "No content"}
    codes = {500, *e.errors}
    if e.inputs:
        codes.add(422)
    if "body" in e.inputs:
        codes.update({400, 413, 415})
    if "path" in e.inputs:
        codes.add(404)
    if e.access != "public":
        codes.update({401, 403})
    if e.rate_limit != "off":
        codes.add(429)
    if uses_dependencies(e, registry):
        codes.add(503)
    problem = {"application/problem+json": {"schema": keys[(Problem, "serialization")]}}
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_TEXT[code], "content": problem}
        if code in (429, 503):
            responses[str(code)]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def uses_dependencies(e: Endpoint, registry: Registry) -> bool:
    """Whether an operation can meet a database or Redis outage, answered 503 (`Retry-After`):
    every endpoint of a unit that needs either, except a public one without a rate limit,
    which reaches neither unless it says so itself (`errors=(503,)`, as GET /ready does)."""
    deploy = registry.deploys.get(e.unit)
    needs = set(deploy.needs) if deploy is not None else set()
    if not needs & {"database", "redis"}:
        return False
    return not (e.access == "public" and e.rate_limit == "off")


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return dict(schemas[ref.rsplit("/", 1)[-1]])
    return schema
