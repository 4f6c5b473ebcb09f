"""Items: owner-scoped CRUD, staff see all, keyset pages, and bad input that writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from tests.catalog.conftest import counts, fields, problem


def test_crud_roundtrip(client: Client, customer: Any) -> None:
    created = client.post(
        "/items/",
        json={"title": "  Shopping list ", "description": "milk"},
        headers=customer.headers,
    )
    assert created.status_code == 201
    item = created.json
    assert item["title"] == "Shopping list"
    assert item["owner_id"] == str(customer.id)
    assert created.headers["Location"] == f"/items/{item['id']}"
    assert item["created_at"].endswith(("Z", "+00:00"))

    read = client.get(f"/items/{item['id']}", headers=customer.headers)
    assert read.json == item

    patched = client.patch(
        f"/items/{item['id']}", json={"description": None}, headers=customer.headers
    )
    assert patched.status_code == 200
    assert patched.json["description"] is None
    assert patched.json["title"] == "Shopping list"

    assert client.delete(f"/items/{item['id']}", headers=customer.headers).status_code == 204
    problem(client.get(f"/items/{item['id']}", headers=customer.headers), 404)


def test_another_users_item_is_404_and_staff_see_all(
    client: Client, make_account: Any, staff: Any
) -> None:
    alice, bob = make_account(), make_account()
    item = client.post("/items/", json={"title": "mine"}, headers=alice.headers).json
    url = f"/items/{item['id']}"
    problem(client.get(url, headers=bob.headers), 404)
    problem(client.patch(url, json={"title": "stolen"}, headers=bob.headers), 404)
    problem(client.delete(url, headers=bob.headers), 404)
    assert client.get("/items/", headers=bob.headers).json["items"] == []
    assert client.get(url, headers=staff.headers).json["title"] == "mine"
    assert [i["id"] for i in client.get("/items/", headers=staff.headers).json["items"]] == [
        item["id"]
    ]
    assert client.get(url, headers=alice.headers).json["title"] == "mine"


def test_anonymous_is_401(client: Client) -> None:
    problem(client.get("/items/"), 401)
    problem(client.post("/items/", json={"title": "x"}), 401)


def test_pages_walk_every_item_once_newest_first(client: Client, customer: Any) -> None:
    ids = [
        client.post("/items/", json={"title": f"item {n}"}, headers=customer.headers).json["id"]
        for n in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        url = "/items/?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=customer.headers).json
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_cursor_of_another_user_or_forged_is_422(client: Client, make_account: Any) -> None:
    alice, bob = make_account(), make_account()
    for n in range(3):
        client.post("/items/", json={"title": f"a{n}"}, headers=alice.headers)
    cursor = client.get("/items/?limit=1", headers=alice.headers).json["next_cursor"]
    assert cursor
    body = problem(client.get(f"/items/?cursor={cursor}", headers=bob.headers), 422)
    assert fields(body) == {"query.cursor"}
    forged = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    assert fields(problem(client.get(f"/items/?cursor={forged}", headers=alice.headers), 422)) == {
        "query.cursor"
    }
    problem(client.get("/items/?cursor=not-a-cursor!", headers=alice.headers), 422)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "x", "colour": "red"}, "body.colour"),
        ({"title": ""}, "body.title"),
        ({"title": "   "}, "body.title"),
        ({"title": "x" * 201}, "body.title"),
        ({"title": "x", "description": "d" * 10_001}, "body.description"),
        ({"description": "no title"}, "body.title"),
        ({"title": 5}, "body.title"),
    ],
)
def test_bad_item_input_is_422_and_writes_nothing(
    client: Client, customer: Any, body: dict[str, Any], field: str
) -> None:
    before = counts()
    assert field in fields(
        problem(client.post("/items/", json=body, headers=customer.headers), 422)
    )
    assert counts() == before


def test_bad_patch_and_ids(client: Client, customer: Any) -> None:
    item = client.post("/items/", json={"title": "keep"}, headers=customer.headers).json
    url = f"/items/{item['id']}"
    assert fields(
        problem(client.patch(url, json={"title": None}, headers=customer.headers), 422)
    ) == {"body.title"}
    problem(client.patch(url, json={"owner_id": str(uuid.uuid4())}, headers=customer.headers), 422)
    assert fields(problem(client.get("/items/not-a-uuid", headers=customer.headers), 422)) == {
        "path.item_id"
    }
    problem(client.get(f"/items/{uuid.uuid4()}", headers=customer.headers), 404)
    for bad in ("0", "101", "x"):
        problem(client.get(f"/items/?limit={bad}", headers=customer.headers), 422)
    problem(client.get("/items/?sort=title", headers=customer.headers), 422)
    assert client.get(url, headers=customer.headers).json["title"] == "keep"
