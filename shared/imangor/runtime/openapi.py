"""The OpenAPI 3.1 document, derived from the registry (never written by hand)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from imangor.registry import JSON, Endpoint, Registry
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


def build_openapi(registry: Registry, *, title: str, version: str) -> dict[str, Any]:
    endpoints = [e for e in registry.endpoints if not e.raw]
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
        "info": {
            "title": title,
            "version": version,
            "description": "Errors are RFC 9457 problem documents (application/problem+json).",
        },
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
    if e.description:
        op["description"] = e.description
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
                "schema": {k: v for k, v in prop.items() if k != "description"},
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
    if e.access == "service":
        op["security"] = [{"googleOidc": []}]
    elif e.access != "public":
        op["security"] = [{"bearerAuth": []}, {"oauth2": []}, {"apiKey": []}]
        op["x-required-role"] = "customer" if e.access == "user" else e.access
    return op


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
