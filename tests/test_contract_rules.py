"""What the document says is what the server does, rule by rule (issue 13 item 5): each test
pairs a statement of the OpenAPI document with the server's behaviour, so neither drifts
alone. tests/test_contract.py fuzzes the same contract; these pin the cases it found."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import ROOT

DOCUMENT = json.loads((ROOT / "functions" / "docs" / "openapi.json").read_text())
SCHEMAS = DOCUMENT["components"]["schemas"]


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = DOCUMENT["paths"][path][method.lower()]
    return op


@pytest.fixture
def staff(make_account: Any) -> Any:
    return make_account("staff")


def new_product(client: Client, staff: Any, price: Any = "10.00") -> Any:
    body = {"name": "Lamp", "price": price, "stock": 1, "attributes": {"category": "home"}}
    return client.post("/products/", json=body, headers=staff.headers)


@pytest.mark.parametrize("price", ["19.99", "0", "5", "0.5", 19.99, 5, 0.57, 100.0])
def test_prices_the_document_allows_are_accepted(client: Client, staff: Any, price: Any) -> None:
    answer = new_product(client, staff, price)
    assert answer.status_code == 201, answer.get_data(as_text=True)


@pytest.mark.parametrize(
    "price", ["1e2", "+5", "005", " 5", "5.", ".5", "19.990", "1_000", "١٢", "-0", "0.001", True]
)
def test_prices_the_document_refuses_are_refused(client: Client, staff: Any, price: Any) -> None:
    """Each of these was accepted before (pydantic reads "1e2" as 100 and "١٢" as 12) while
    the document said only "a string"."""
    pattern = SCHEMAS["ProductIn"]["properties"]["price"]["anyOf"][1]["pattern"]
    if isinstance(price, str):
        assert not re.search(pattern, price)
    answer = new_product(client, staff, price)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["loc"][:2] == ["body", "price"]


def test_patch_fields_are_nullable_only_where_null_is_taken(
    client: Client, staff: Any, make_account: Any
) -> None:
    """`null` in a PATCH body was refused while the document allowed it."""
    for name in ("ProductPatch", "UserUpdateMe", "AdminUserUpdate", "ItemPatch"):
        for field, schema in SCHEMAS[name]["properties"].items():
            nullable = {"type": "null"} in schema.get("anyOf", [])
            assert nullable == ((name, field) == ("ItemPatch", "description")), (name, field)
            assert "default" not in schema
    product = new_product(client, staff).json
    refused = client.patch(f"/products/{product['id']}", json={"name": None}, headers=staff.headers)
    assert refused.status_code == 422
    assert refused.json["errors"][0]["loc"] == ["body", "name"]
    owner = make_account("customer")
    item = client.post("/items/", json={"title": "t", "description": "d"}, headers=owner.headers)
    url = f"/items/{item.json['id']}"
    cleared = client.patch(url, json={"description": None}, headers=owner.headers)
    assert cleared.status_code == 200
    assert cleared.json["description"] is None
    assert client.patch(url, json={"title": None}, headers=owner.headers).status_code == 422


def test_no_parameter_is_documented_as_nullable() -> None:
    """A header documented as `string or null` drew `X-CloudScheduler-ScheduleTime: null`."""
    for path, methods in DOCUMENT["paths"].items():
        for method, op in methods.items():
            for parameter in op.get("parameters", []):
                text = json.dumps(parameter["schema"])
                assert '"null"' not in text, (method, path, parameter["name"])


def test_enums_and_limits_are_documented(client: Client, make_account: Any) -> None:
    from imangor.config import get_settings
    from imangor.registry import REGISTRY

    scopes = SCHEMAS["ApiKeyIn"]["properties"]["scopes"]["items"]["enum"]
    assert scopes == sorted(REGISTRY.grantable_scopes)
    upload = SCHEMAS["FileIn"]["properties"]
    assert upload["content_type"]["enum"] == get_settings().upload_content_types
    assert upload["size"]["maximum"] == get_settings().upload_max_bytes
    assert SCHEMAS["UserUpdateMe"]["dependentRequired"] == {"email": ["current_password"]}
    user = make_account("customer")
    answer = client.patch("/users/me", json={"email": "new@example.com"}, headers=user.headers)
    assert answer.status_code == 422
    assert answer.json["errors"][0]["loc"] == ["body", "current_password"]


def test_special_use_mail_domains_are_documented_as_refused(client: Client) -> None:
    """`format: email` let generators send `x@y.test`, which email-validator refuses."""
    email = SCHEMAS["RegisterIn"]["properties"]["email"]
    pattern = email["not"]["pattern"].removeprefix("(?i)")
    for address in ("ann@mail.test", "ann@LOCALHOST", "ann@x.onion"):
        assert re.search(pattern, address, re.IGNORECASE)
        body = {"email": address, "password": "a long enough password"}
        assert client.post("/auth/register", json=body).status_code == 422
    assert not re.search(pattern, "ann@example.com", re.IGNORECASE)


def test_bodiless_answers_carry_no_content_type(
    client: Client, staff: Any, make_account: Any
) -> None:
    """A 204 said `Content-Type: text/html` (Flask's default), and so did a 304."""
    owner = make_account("customer")
    item = client.post("/items/", json={"title": "t"}, headers=owner.headers).json
    deleted = client.delete(f"/items/{item['id']}", headers=owner.headers)
    assert deleted.status_code == 204
    assert "Content-Type" not in deleted.headers
    product = new_product(client, staff).json
    url = f"/products/{product['id']}"
    etag = client.get(url).headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert "Content-Type" not in again.headers


def test_revalidation_and_outages_are_documented() -> None:
    for path in ("/products/", "/products/{product_id}"):
        responses = operation("GET", path)["responses"]
        assert "304" in responses
        assert "content" not in responses["304"]
        assert "ETag" in responses["200"]["headers"]
    assert "304" not in operation("GET", "/orders/")["responses"]  # private: no-store
    assert "503" in operation("GET", "/ready")["responses"]
    assert "503" in operation("POST", "/tasks/{name}")["responses"]
    assert "204" in operation("DELETE", "/items/{item_id}")["responses"]
    assert "content" not in operation("DELETE", "/items/{item_id}")["responses"]["204"]


def test_raw_answers_are_documented_with_their_media_types(client: Client) -> None:
    """The document, the docs pages, their assets and /metrics were left out of it."""
    for path, media in (
        ("/openapi.json", "application/json"),
        ("/docs", "text/html"),
        ("/redoc", "text/html"),
        ("/metrics", "text/plain"),
        ("/docs/static/swagger-ui/swagger-ui.css", "text/css"),
    ):
        template = path if path in DOCUMENT["paths"] else "/docs/static/{package}/{asset}"
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.mimetype == media
        assert media in operation("GET", template)["responses"]["200"]["content"]


@pytest.mark.parametrize(("stock", "status"), [(3, 201), (3.0, 201), (False, 422), ("3", 422)])
def test_json_integers_are_what_the_schema_calls_integers(
    client: Client, staff: Any, stock: Any, status: int
) -> None:
    """`"stock": false` was stored as 0 and `"3"` as 3 while the document said integer."""
    body = {"name": "Lamp", "price": "1", "stock": stock, "attributes": {"category": "home"}}
    assert client.post("/products/", json=body, headers=staff.headers).status_code == status


@pytest.mark.parametrize(("active", "status"), [(False, 201), (0, 422), ("false", 422)])
def test_json_booleans_are_true_or_false(
    client: Client, make_account: Any, active: Any, status: int
) -> None:
    admin = make_account("admin")
    body = {"email": "new@example.com", "password": "a long enough password", "is_active": active}
    assert client.post("/users/", json=body, headers=admin.headers).status_code == status
