"""Products: staff writes, public reads, exact money, bounded attributes, and bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from tests.catalog.conftest import counts, fields, problem, sql


def test_staff_create_read_update_delete(client: Client, staff: Any, make_product: Any) -> None:
    product = make_product(price="19.9", stock=3, color="red", sizes=["S", "M"])
    assert product["price"] == "19.90"  # always a string with two places
    assert product["attributes"] == {
        "category": "home",
        "description": "A warm lamp for reading",
        "color": "red",
        "sizes": ["S", "M"],
    }
    url = f"/products/{product['id']}"
    read = client.get(url)  # public: no credentials
    assert read.status_code == 200
    assert read.json == product

    patched = client.patch(url, json={"price": 25, "stock": 7}, headers=staff.headers)
    assert patched.status_code == 200
    assert (patched.json["price"], patched.json["stock"]) == ("25.00", 7)
    assert patched.json["name"] == product["name"]

    replaced = client.patch(
        url, json={"attributes": {"category": "office"}}, headers=staff.headers
    ).json
    assert replaced["attributes"] == {"category": "office", "description": ""}

    assert client.delete(url, headers=staff.headers).status_code == 204
    problem(client.get(url), 404)
    problem(client.delete(url, headers=staff.headers), 404)


def test_price_accepts_number_and_string_exactly(client: Client, make_product: Any) -> None:
    assert make_product(price=0.1)["price"] == "0.10"
    assert make_product(price="1234567.89")["price"] == "1234567.89"
    assert make_product(price=9999999999.99)["price"] == "9999999999.99"
    stored = sql("SELECT price::text FROM products ORDER BY price")
    assert [r[0] for r in stored] == ["0.10", "1234567.89", "9999999999.99"]


def test_customers_cannot_write_and_anonymous_is_401(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product()
    url = f"/products/{product['id']}"
    body = {"name": "x", "price": "1", "attributes": {"category": "home"}}
    before = counts()
    problem(client.post("/products/", json=body, headers=customer.headers), 403)
    problem(client.patch(url, json={"stock": 0}, headers=customer.headers), 403)
    problem(client.delete(url, headers=customer.headers), 403)
    problem(client.post("/products/", json=body), 401)
    assert counts() == before
    assert client.get(url).json["stock"] == product["stock"]


def test_product_with_orders_cannot_be_deleted(
    client: Client, staff: Any, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=5)
    order = {"product_id": product["id"], "quantity": 1}
    assert client.post("/orders/", json=order, headers=customer.headers).status_code == 201
    body = problem(client.delete(f"/products/{product['id']}", headers=staff.headers), 409)
    assert "orders" in body["detail"]


def _attrs(**extra: Any) -> dict[str, Any]:
    return {"category": "home", **extra}


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


BAD_PRODUCTS = [
    pytest.param({"price": "-0.01"}, "body.price", id="negative price"),
    pytest.param({"price": "10000000000"}, "body.price", id="huge price"),
    pytest.param({"price": 1e308}, "body.price", id="float overflow price"),
    pytest.param({"price": "1.999"}, "body.price", id="three decimals"),
    pytest.param({"price": "NaN"}, "body.price", id="NaN string"),
    pytest.param({"price": "Infinity"}, "body.price", id="Infinity string"),
    pytest.param({"price": "-Infinity"}, "body.price", id="-Infinity string"),
    pytest.param({"price": True}, "body.price", id="boolean price"),
    pytest.param({"stock": -1}, "body.stock", id="negative stock"),
    pytest.param({"stock": 10**12}, "body.stock", id="huge stock"),
    pytest.param({"stock": 1.5}, "body.stock", id="fractional stock"),
    pytest.param({"name": ""}, "body.name", id="empty name"),
    pytest.param({"name": "n" * 201}, "body.name", id="long name"),
    pytest.param({"sku": "x"}, "body.sku", id="unknown field"),
    pytest.param({"attributes": {}}, "body.attributes.category", id="no category"),
    pytest.param(
        {"attributes": {"category": "Home Stuff"}}, "body.attributes.category", id="bad category"
    ),
    pytest.param(
        {"attributes": _attrs(description="d" * 2001)},
        "body.attributes.description",
        id="long description",
    ),
    pytest.param({"attributes": _attrs(deep=_nested(4))}, "body.attributes", id="too deep"),
    pytest.param({"attributes": _attrs(deep=_nested(200))}, "body.attributes", id="very deep"),
    pytest.param(
        {"attributes": _attrs(**{f"k{n}": n for n in range(21)})},
        "body.attributes",
        id="too many keys",
    ),
    pytest.param({"attributes": _attrs(blob="x" * 501)}, "body.attributes", id="long value"),
    pytest.param(
        {"attributes": _attrs(**{f"k{n}": ["y" * 400] * 3 for n in range(10)})},
        "body.attributes",
        id="huge attributes",
    ),
    pytest.param({"attributes": _attrs(**{"bad key!": 1})}, "body.attributes", id="bad key"),
    pytest.param(
        {"attributes": _attrs(**{"color\n": "red"})}, "body.attributes", id="key with newline"
    ),
    pytest.param({"attributes": "home"}, "body.attributes", id="attributes not an object"),
]


@pytest.mark.parametrize(("change", "field"), BAD_PRODUCTS)
def test_bad_product_is_422_and_writes_nothing(
    client: Client, staff: Any, change: dict[str, Any], field: str
) -> None:
    body = {"name": "Lamp", "price": "10.00", "stock": 1, "attributes": _attrs(), **change}
    before = counts()
    response = client.post("/products/", json=body, headers=staff.headers)
    assert field in fields(problem(response, 422))
    assert counts() == before


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "a", "price": "1", "attributes": {"category": "x", "w": 1e400}}',
        '{"name": "a", "price": "1", "attributes": {"category": "x", "w": [-1e999]}}',
    ],
)
def test_attribute_numbers_beyond_float_are_422_not_500(
    client: Client, staff: Any, raw: str
) -> None:
    before = counts()
    response = client.post(
        "/products/", data=raw, content_type="application/json", headers=staff.headers
    )
    assert "body.attributes" in fields(problem(response, 422))
    assert counts() == before


@pytest.mark.parametrize("raw", ['{"name": "n", "price": NaN}', '{"name": "n", "price": Infinity}'])
def test_nan_and_infinity_literals_are_400(client: Client, staff: Any, raw: str) -> None:
    before = counts()
    response = client.post(
        "/products/", data=raw, content_type="application/json", headers=staff.headers
    )
    problem(response, 400)
    assert counts() == before


def test_bad_patch_writes_nothing(client: Client, staff: Any, make_product: Any) -> None:
    product = make_product()
    url = f"/products/{product['id']}"
    for body, field in (
        ({"price": None}, "body.price"),
        ({"name": None}, "body.name"),
        ({"stock": -5}, "body.stock"),
        ({"attributes": {"description": "no category"}}, "body.attributes.category"),
        ({"id": str(uuid.uuid4())}, "body.id"),
    ):
        assert field in fields(problem(client.patch(url, json=body, headers=staff.headers), 422))
    assert client.get(url).json == product
    problem(
        client.patch(f"/products/{uuid.uuid4()}", json={"stock": 1}, headers=staff.headers), 404
    )
    assert fields(problem(client.get("/products/123"), 422)) == {"path.product_id"}


def test_openapi_documents_price_as_string(client: Client) -> None:
    document = client.get("/openapi.json").json
    schema = document["components"]["schemas"]["ProductOut"]["properties"]["price"]
    assert schema["type"] == "string"
    search = document["paths"]["/products/"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "category", "min_price", "sort"}


def test_pathologically_deep_json_is_a_4xx(client: Client, staff: Any) -> None:
    depth = 100_000
    raw = (
        '{"name": "x", "price": "1", "attributes": {"category": "home", "d": '
        + "[" * depth
        + "]" * depth
        + "}}"
    )
    before = counts()
    response = client.post(
        "/products/", data=raw, content_type="application/json", headers=staff.headers
    )
    problem(response, 400)
    assert counts() == before
