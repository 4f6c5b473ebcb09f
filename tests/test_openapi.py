"""The OpenAPI document is valid 3.1, derived from the registry, and served as committed."""

from __future__ import annotations

import json

from openapi_spec_validator import validate
from werkzeug.test import Client


def test_served_document_is_valid_openapi_31(client: Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Imangor API"
    assert "/health" in document["paths"]


def test_committed_derived_files_match_the_code() -> None:
    from infra.generate import derived_files

    for path, text in derived_files().items():
        assert path.read_text() == text, f"{path} is stale: run `make inventory`"


def test_every_registered_endpoint_is_documented_with_problem_responses() -> None:
    from imangor.registry import REGISTRY
    from infra.generate import derived_files

    document = json.loads(next(iter(derived_files().values())))
    for endpoint in REGISTRY.endpoints:
        if endpoint.raw:
            continue
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert "500" in operation["responses"]
        problem = operation["responses"]["500"]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"].endswith("/Problem")


def test_docs_pages_load_no_cdn(client: Client) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert "Imangor API" in html
        assert "cdn" not in html.lower() and "https://" not in html
        for src in (
            "/docs/static/swagger-ui/swagger-ui-bundle.js",
            "/docs/static/redoc/redoc.standalone.js",
        ):
            if src.split("/")[3] in html:
                asset = client.get(src)
                assert asset.status_code == 200
                assert "immutable" in asset.headers["Cache-Control"]


def test_static_assets_cannot_escape_their_folder(client: Client) -> None:
    assert client.get("/docs/static/redoc/..%2F..%2Fconfig.py").status_code in (404, 422)
    assert client.get("/docs/static/nope/x.js").status_code == 422


def test_an_idempotent_endpoint_documents_its_header() -> None:
    from infra.generate import derived_files

    document = json.loads(next(iter(derived_files().values())))
    place = document["paths"]["/orders/"]["post"]
    header = [p for p in place["parameters"] if p["in"] == "header"]
    assert [(p["name"], p["required"]) for p in header] == [("Idempotency-Key", False)]
    assert "24 hours" in header[0]["description"]
    listing = document["paths"]["/orders/"]["get"]
    assert all(p["in"] != "header" for p in listing.get("parameters", []))


def test_every_operation_that_reaches_the_database_or_redis_documents_503() -> None:
    from imangor.registry import REGISTRY
    from infra.generate import derived_files

    document = json.loads(next(iter(derived_files().values())))
    responses = {
        f"{method.upper()} {path}": operation["responses"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    for endpoint in REGISTRY.endpoints:
        if endpoint.raw:
            continue
        needs = REGISTRY.deploys[endpoint.unit].needs
        answers = responses[f"{endpoint.method} {endpoint.path}"]
        reaches = bool({"database", "redis"} & set(needs)) and not (
            endpoint.access == "public" and endpoint.rate_limit == "off"
        )
        if reaches:
            assert "503" in answers, endpoint.path
    assert "503" in responses["POST /orders/"]
    assert "503" in responses["POST /auth/token"]
    assert "503" in responses["GET /ready"]
    assert "503" not in responses["GET /health"]  # touches nothing
    for code in ("429", "503"):
        header = responses["POST /orders/"][code]["headers"]["Retry-After"]
        assert header["schema"] == {"type": "integer", "minimum": 1}
