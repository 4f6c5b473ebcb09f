"""GET /reports/products: order counts per product of a category (staff only)."""

from __future__ import annotations

from typing import Any

from werkzeug.test import Client

from tests.catalog.conftest import fields, problem


def test_order_counts_per_product(
    client: Client, staff: Any, make_account: Any, make_product: Any
) -> None:
    popular = make_product("Popular lamp", stock=50)
    quiet = make_product("Quiet lamp", stock=50)
    never = make_product("Never lamp", stock=50)
    elsewhere = make_product("Desk", stock=50, category="office")
    buyers = [make_account() for _ in range(2)]
    for buyer in buyers:
        for product, quantity in ((popular, 2), (popular, 1), (quiet, 4), (elsewhere, 1)):
            body = {"product_id": product["id"], "quantity": quantity}
            assert client.post("/orders/", json=body, headers=buyer.headers).status_code == 201
    cancelled = client.post(
        "/orders/", json={"product_id": quiet["id"], "quantity": 1}, headers=buyers[0].headers
    ).json
    client.post(f"/orders/{cancelled['id']}/cancel", headers=buyers[0].headers)

    report = client.get("/reports/products?category=home", headers=staff.headers).json
    rows = [(r["name"], r["order_count"], r["units_ordered"]) for r in report["items"]]
    assert rows == [("Popular lamp", 4, 6), ("Quiet lamp", 2, 8), ("Never lamp", 0, 0)]
    assert report["items"][0]["price"] == "19.99"

    at_least_one = client.get("/reports/products?category=home&min_orders=1", headers=staff.headers)
    assert [r["name"] for r in at_least_one.json["items"]] == ["Popular lamp", "Quiet lamp"]
    assert (
        client.get("/reports/products?category=home&min_orders=5", headers=staff.headers).json[
            "items"
        ]
        == []
    )

    first = client.get("/reports/products?category=home&limit=2", headers=staff.headers).json
    assert [r["name"] for r in first["items"]] == ["Popular lamp", "Quiet lamp"]
    rest = client.get(
        f"/reports/products?category=home&limit=2&cursor={first['next_cursor']}",
        headers=staff.headers,
    ).json
    assert [r["name"] for r in rest["items"]] == ["Never lamp"]
    assert rest["next_cursor"] is None
    assert never["id"] == rest["items"][0]["id"]
    other = client.get(
        f"/reports/products?category=office&cursor={first['next_cursor']}", headers=staff.headers
    )
    assert fields(problem(other, 422)) == {"query.cursor"}


def test_report_is_for_staff_with_a_category(client: Client, customer: Any, staff: Any) -> None:
    problem(client.get("/reports/products?category=home", headers=customer.headers), 403)
    problem(client.get("/reports/products?category=home"), 401)
    assert fields(problem(client.get("/reports/products", headers=staff.headers), 422)) == {
        "query.category"
    }
    response = client.get("/reports/products?category=home&min_orders=-1", headers=staff.headers)
    assert fields(problem(response, 422)) == {"query.min_orders"}
