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


def test_docs_read_like_a_guide_in_the_order_a_newcomer_walks(client: Client) -> None:
    """The served document says how to sign in, page, read errors and limits, with the
    settings' numbers; its tags start with auth and end with the internal targets."""
    from imangor.config import Settings

    document = client.get("/openapi.json").json
    guide = document["info"]["description"]
    for needed in (
        "POST /auth/token",
        "Authorization: Bearer",
        "X-API-Key",
        "customer",
        "next_cursor",
        "application/problem+json",
        "request_id",
        "RateLimit-Remaining",
        "Retry-After",
        "Idempotency-Key",
    ):
        assert needed in guide, needed
    assert (
        f"at least\n   {Settings.model_fields['password_min_length'].default} characters" in guide
    )
    tags = [tag["name"] for tag in document["tags"]]
    assert tags[0] == "auth" and tags[-2:] == ["tasks", "cron"]
    assert {op["tags"][0] for path in document["paths"].values() for op in path.values()} <= set(
        tags
    )
    assert all(tag.get("description") for tag in document["tags"])


def test_each_own_rate_limit_is_a_setting_documented_on_its_operation(client: Client) -> None:
    from imangor.config import Settings
    from imangor.registry import DEFAULT_LIMIT, REGISTRY, RateLimit, load_all_units

    load_all_units()
    document = client.get("/openapi.json").json
    own = [e for e in REGISTRY.endpoints if e.rate_limit not in ("off", DEFAULT_LIMIT)]
    assert {e.path for e in own} >= {"/auth/register", "/auth/reset-password", "/orders/"}
    for endpoint in REGISTRY.endpoints:
        assert not isinstance(endpoint.rate_limit, RateLimit), endpoint.path  # a setting
    for endpoint in own:
        setting = str(endpoint.rate_limit)
        assert setting in Settings.model_fields
        rule = RateLimit.parse(Settings.model_fields[setting].default)
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert f"{rule.limit} requests per {rule.window} s" in operation["description"]
        assert f"`{setting.upper()}`" in operation["description"]


def test_new_passwords_are_documented_with_the_minimum_length(client: Client) -> None:
    from imangor.config import Settings

    minimum = Settings.model_fields["password_min_length"].default
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert schemas["RegisterIn"]["properties"]["password"]["minLength"] == minimum
    assert schemas["ResetIn"]["properties"]["new_password"]["minLength"] == minimum
    assert schemas["PasswordChangeIn"]["properties"]["new_password"]["minLength"] == minimum
    assert schemas["TokenIn"]["properties"]["password"]["minLength"] == 1  # signing in: any


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


def test_every_integer_parameter_documents_a_range_a_plain_integer_can_spell() -> None:
    """Query and header integers are parsed only when written as at most 18 digits
    (schemas.common.plain_integer): a documented range wider than that lets a schema-valid
    value (schemathesis sent 36893488147419103231 as a retry count) be refused with a 422."""
    from infra.generate import derived_files

    document = json.loads(next(iter(derived_files().values())))
    unbounded = [
        f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter.get("schema", {}).get("type") == "integer"
        and not -(10**18) < parameter["schema"].get("maximum", 10**18) < 10**18
    ]
    assert not unbounded
