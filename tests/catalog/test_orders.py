"""Orders: atomic stock, concurrent buyers over real HTTP, idempotent retries, the status path,
scoping, rate limits, and bad input that writes nothing."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
from werkzeug.test import Client

from tests.catalog.conftest import counts, fields, problem, sql


def order(
    client: Client, account: Any, product: dict[str, Any], quantity: int = 1, **headers: str
) -> Any:
    return client.post(
        "/orders/",
        json={"product_id": product["id"], "quantity": quantity},
        headers={**account.headers, **headers},
    )


def stock(product: dict[str, Any]) -> int:
    return int(sql("SELECT stock FROM products WHERE id = :id", id=product["id"])[0][0])


def test_order_takes_stock_and_records_the_price(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(price="2.50", stock=5)
    response = order(client, customer, product, quantity=3)
    assert response.status_code == 201, response.json
    placed = response.json
    assert placed["status"] == "pending"
    assert (placed["unit_price"], placed["total"], placed["quantity"]) == ("2.50", "7.50", 3)
    assert placed["user_id"] == str(customer.id)
    assert response.headers["Location"] == f"/orders/{placed['id']}"
    assert stock(product) == 2
    assert client.get(f"/orders/{placed['id']}", headers=customer.headers).json == placed


def test_out_of_stock_is_409_and_writes_nothing(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=2)
    before = counts()
    body = problem(order(client, customer, product, quantity=3), 409)
    assert "2 left" in body["detail"]
    assert counts() == before
    assert stock(product) == 2


def test_concurrent_buyers_of_the_last_unit(
    live_server: str, make_account: Any, make_product: Any
) -> None:
    """Eight buyers over real HTTP race for one unit: exactly one wins, stock ends at 0."""
    product = make_product(stock=1)
    statuses = _race(live_server, product, [make_account() for _ in range(8)], tries=1)
    assert Counter(statuses) == {201: 1, 409: 7}
    assert stock(product) == 0
    assert sql("SELECT count(*) FROM orders")[0][0] == 1


def test_concurrent_buyers_never_oversell(
    live_server: str, make_account: Any, make_product: Any
) -> None:
    product = make_product(stock=5)
    statuses = _race(live_server, product, [make_account() for _ in range(6)], tries=2)
    assert Counter(statuses) == {201: 5, 409: 7}
    assert stock(product) == 0
    assert sql("SELECT coalesce(sum(quantity), 0) FROM orders")[0][0] == 5


# -- idempotency -----------------------------------------------------------------------------


def test_same_key_and_body_replays_the_first_answer(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=5)
    first = order(client, customer, product, 2, **{"Idempotency-Key": "key-1"})
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = order(client, customer, product, 2, **{"Idempotency-Key": "key-1"})
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]  # the endpoint set it once
    assert again.get_data() == first.get_data()  # the answer as sent, byte for byte
    assert stock(product) == 3
    assert counts()["orders"] == 1
    # The same key from another user is another key.
    other = order(client, _other(client, customer), product, 2, **{"Idempotency-Key": "key-1"})
    assert other.status_code == 201
    assert other.json["id"] != first.json["id"]


def _other(client: Client, account: Any) -> Any:
    from imangor.auth.tokens import issue_access_token
    from imangor.db import session_scope
    from imangor.models import User
    from tests.conftest import Account

    with session_scope() as session:
        user = User(email=f"other-{uuid.uuid4().hex[:8]}@example.com", role="customer")
        session.add(user)
        session.flush()
        user_id = user.id
    return Account(user_id, "", "", "customer", issue_access_token(user_id, "customer")[0])


def test_same_key_with_another_body_is_422_and_writes_nothing(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=5)
    assert order(client, customer, product, 1, **{"Idempotency-Key": "key-2"}).status_code == 201
    before = counts()
    body = problem(order(client, customer, product, 2, **{"Idempotency-Key": "key-2"}), 422)
    assert body["detail"] == "the Idempotency-Key was already used with another request body"
    assert body["errors"] == [
        {
            "loc": ["headers", "Idempotency-Key"],
            "field": "headers.Idempotency-Key",
            "message": "this key was already used for a different request",
            "type": "idempotency_key_reused",
        }
    ]
    assert counts() == before
    assert stock(product) == 4


def test_a_request_that_failed_midway_leaves_nothing_and_its_retry_runs(
    client: Client, customer: Any, make_product: Any
) -> None:
    """A real failure after the key was claimed and the stock taken: a trigger makes the
    order insert fail, so the whole transaction, key included, rolls back."""
    product = make_product(stock=5)
    sql(
        "CREATE FUNCTION fail_orders() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$"
    )
    sql(
        "CREATE TRIGGER fail_orders BEFORE INSERT ON orders "
        "FOR EACH ROW EXECUTE FUNCTION fail_orders()"
    )
    try:
        before = counts()
        failed = order(client, customer, product, 2, **{"Idempotency-Key": "key-3"})
        assert failed.status_code == 500
        assert counts() == before
        assert stock(product) == 5
    finally:
        sql("DROP TRIGGER fail_orders ON orders")
        sql("DROP FUNCTION fail_orders()")
    retried = order(client, customer, product, 2, **{"Idempotency-Key": "key-3"})
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    replayed = order(client, customer, product, 2, **{"Idempotency-Key": "key-3"})
    assert replayed.json == retried.json
    assert stock(product) == 3


def test_a_refused_request_is_not_remembered(
    client: Client, customer: Any, make_product: Any, staff: Any
) -> None:
    product = make_product(stock=1)
    problem(order(client, customer, product, 2, **{"Idempotency-Key": "key-4"}), 409)
    client.patch(f"/products/{product['id']}", json={"stock": 2}, headers=staff.headers)
    assert order(client, customer, product, 2, **{"Idempotency-Key": "key-4"}).status_code == 201


def test_concurrent_duplicates_create_one_order(
    live_server: str, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=10)
    barrier = threading.Barrier(5)
    answers: list[tuple[int, str, str | None]] = []

    def send() -> None:
        barrier.wait(timeout=10)
        response = requests.post(
            f"{live_server}/orders/",
            json={"product_id": product["id"], "quantity": 1},
            headers={**customer.headers, "Idempotency-Key": "same-key"},
            timeout=30,
        )
        answers.append(
            (
                response.status_code,
                response.json()["id"],
                response.headers.get("Idempotent-Replayed"),
            )
        )

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert {status for status, _, _ in answers} == {201}
    assert len({ident for _, ident, _ in answers}) == 1
    assert sorted(replayed or "" for _, _, replayed in answers) == [
        "",
        "true",
        "true",
        "true",
        "true",
    ]
    assert stock(product) == 9


def test_concurrent_duplicates_for_the_last_unit_all_get_the_first_answer(
    live_server: str, customer: Any, make_product: Any
) -> None:
    """The key is claimed after the write: a duplicate that finds the stock already taken by
    the first (still uncommitted) must wait for the first's key and replay its 201, not
    answer its own 409."""
    product = make_product(stock=1)
    answers = _duplicates(live_server, customer, product, "last-unit", 5)
    assert [status for status, _, _ in answers] == [201] * 5
    assert len({ident for _, ident, _ in answers}) == 1
    assert sorted(replayed or "" for _, _, replayed in answers) == ["", *["true"] * 4]
    assert stock(product) == 0
    assert sql("SELECT count(*) FROM orders")[0][0] == 1


def _duplicates(
    live_server: str, account: Any, product: dict[str, Any], key: str, count: int
) -> list[tuple[int, str, str | None]]:
    barrier = threading.Barrier(count)
    answers: list[tuple[int, str, str | None]] = []

    def send() -> None:
        barrier.wait(timeout=10)
        response = requests.post(
            f"{live_server}/orders/",
            json={"product_id": product["id"], "quantity": 1},
            headers={**account.headers, "Idempotency-Key": key},
            timeout=30,
        )
        replayed = response.headers.get("Idempotent-Replayed")
        answers.append((response.status_code, response.json().get("id", ""), replayed))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_a_retry_after_the_first_committed_undoes_its_own_write(
    client: Client, customer: Any, make_product: Any
) -> None:
    """A retry runs the write before it finds the key: everything it did is rolled back (the
    stock, the order, its job and outbox row) and the first answer replayed."""
    product = make_product(stock=1)
    first = order(client, customer, product, 1, **{"Idempotency-Key": "retry"})
    assert first.status_code == 201
    tables = ("orders", "jobs", "task_outbox", "local_tasks", "idempotency_keys")
    before = {t: sql(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    sql("UPDATE products SET stock = 5 WHERE id = :id", id=product["id"])
    again = order(client, customer, product, 1, **{"Idempotency-Key": "retry"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert stock(product) == 5
    assert {t: sql(f"SELECT count(*) FROM {t}")[0][0] for t in tables} == before


def test_an_order_is_pushed_after_commit_with_no_row_left_in_the_outbox(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=3)
    placed = order(client, customer, product).json
    assert sql("SELECT count(*) FROM task_outbox")[0][0] == 0
    assert [r[0] for r in sql("SELECT name FROM local_tasks")] == [
        f"process_order-{placed['job_id']}"
    ]


def test_the_order_statement_is_compiled_once(
    client: Client, customer: Any, make_product: Any
) -> None:
    """The order's statement (stock, order, job, outbox row) is built once with bind
    parameters: SQLAlchemy's compiled cache serves every order after the first."""
    from sqlalchemy import event

    from imangor.db import get_engine

    product = make_product(stock=5)
    seen: list[str] = []

    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if "INSERT INTO orders" in statement:
            seen.append(context.cache_hit.name)

    event.listen(get_engine(), "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert order(client, customer, product).status_code == 201
    finally:
        event.remove(get_engine(), "before_cursor_execute", record)
    assert seen[1:] == ["CACHE_HIT", "CACHE_HIT"]


def test_expired_key_is_a_new_request(client: Client, customer: Any, make_product: Any) -> None:
    product = make_product(stock=5)
    first = order(client, customer, product, 1, **{"Idempotency-Key": "key-5"}).json
    sql("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    second = order(client, customer, product, 1, **{"Idempotency-Key": "key-5"})
    assert second.status_code == 201
    assert second.json["id"] != first["id"]
    assert stock(product) == 3
    expires = sql("SELECT expires_at - created_at FROM idempotency_keys")[0][0]
    assert expires.total_seconds() == 24 * 3600


def test_purge_expired_keys(client: Client, customer: Any, make_product: Any) -> None:
    from imangor.db import session_scope
    from imangor.services.idempotency import purge_expired

    product = make_product(stock=5)
    for key in ("a", "b"):
        order(client, customer, product, 1, **{"Idempotency-Key": key})
    sql("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'a'")
    with session_scope() as session:
        assert purge_expired(session) == 1
    assert [r[0] for r in sql("SELECT key FROM idempotency_keys")] == ["b"]


# -- reading and scoping ---------------------------------------------------------------------


def test_customers_see_their_own_orders_staff_all(
    client: Client, make_account: Any, staff: Any, make_product: Any
) -> None:
    product = make_product(stock=20)
    alice, bob = make_account(), make_account()
    mine = [order(client, alice, product).json["id"] for _ in range(3)]
    theirs = order(client, bob, product).json["id"]
    listed = client.get("/orders/", headers=alice.headers).json
    assert [o["id"] for o in listed["items"]] == list(reversed(mine))
    problem(client.get(f"/orders/{theirs}", headers=alice.headers), 404)
    problem(client.post(f"/orders/{theirs}/cancel", headers=alice.headers), 404)
    everything = client.get("/orders/?limit=2", headers=staff.headers).json
    assert len(everything["items"]) == 2
    rest = client.get(f"/orders/?limit=2&cursor={everything['next_cursor']}", headers=staff.headers)
    assert {o["id"] for o in everything["items"] + rest.json["items"]} == {*mine, theirs}
    assert client.get(f"/orders/{theirs}", headers=staff.headers).status_code == 200
    # A staff cursor is not a customer's.
    body = problem(
        client.get(f"/orders/?cursor={everything['next_cursor']}", headers=alice.headers), 422
    )
    assert fields(body) == {"query.cursor"}
    problem(client.get("/orders/"), 401)


# -- status ----------------------------------------------------------------------------------


def test_cancel_restores_stock_once(client: Client, customer: Any, make_product: Any) -> None:
    product = make_product(stock=5)
    placed = order(client, customer, product, 3).json
    cancelled = client.post(f"/orders/{placed['id']}/cancel", headers=customer.headers)
    assert cancelled.status_code == 200
    assert cancelled.json["status"] == "cancelled"
    assert stock(product) == 5
    problem(client.post(f"/orders/{placed['id']}/cancel", headers=customer.headers), 409)
    assert stock(product) == 5


def test_status_path_and_idempotent_confirm(
    client: Client, customer: Any, staff: Any, make_product: Any
) -> None:
    from imangor.db import session_scope
    from imangor.errors import Conflict, NotFound
    from imangor.services.orders import confirm_order, ship_order

    product = make_product(stock=5)
    placed = order(client, customer, product, 1).json
    order_id = uuid.UUID(placed["id"])
    with session_scope() as session, pytest.raises(Conflict):
        ship_order(session, order_id)  # pending cannot ship
    for _ in range(2):  # a task delivered twice
        with session_scope() as session:
            assert confirm_order(session, order_id).status == "confirmed"
    with session_scope() as session:
        assert ship_order(session, order_id).status == "shipped"
    with session_scope() as session:
        assert confirm_order(session, order_id).status == "shipped"  # already past: no change
    problem(client.post(f"/orders/{order_id}/cancel", headers=staff.headers), 409)
    assert stock(product) == 4

    other = uuid.UUID(order(client, customer, product, 1).json["id"])
    assert client.post(f"/orders/{other}/cancel", headers=staff.headers).status_code == 200
    with session_scope() as session, pytest.raises(Conflict):
        confirm_order(session, other)
    with session_scope() as session, pytest.raises(NotFound):
        confirm_order(session, uuid.uuid4())


def test_confirmed_orders_can_still_be_cancelled(
    client: Client, customer: Any, make_product: Any
) -> None:
    from imangor.db import session_scope
    from imangor.services.orders import confirm_order

    product = make_product(stock=5)
    placed = order(client, customer, product, 2).json
    with session_scope() as session:
        confirm_order(session, uuid.UUID(placed["id"]))
    response = client.post(f"/orders/{placed['id']}/cancel", headers=customer.headers)
    assert response.json["status"] == "cancelled"
    assert stock(product) == 5


# -- limits and bad input --------------------------------------------------------------------


@pytest.mark.parametrize(("orders_closed", "others_closed"), [("true", "false"), ("false", "true")])
def test_what_limits_do_while_redis_is_down_is_a_setting(
    client: Client,
    customer: Any,
    make_product: Any,
    monkeypatch: pytest.MonkeyPatch,
    orders_closed: str,
    others_closed: str,
) -> None:
    """ORDER_LIMIT_FAIL_CLOSED decides for placing orders, RATE_LIMIT_FAIL_CLOSED for every
    other limited endpoint; closed is a 503 with Retry-After, open serves uncounted."""
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    product = make_product(stock=100)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a real, closed port
    monkeypatch.setenv("ORDER_LIMIT_FAIL_CLOSED", orders_closed)
    monkeypatch.setenv("RATE_LIMIT_FAIL_CLOSED", others_closed)
    get_settings.cache_clear()
    reset_redis()
    try:
        placed = [order(client, customer, product) for _ in range(12)]  # over the 10/60 limit
        listed = client.get("/orders/", headers=customer.headers)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()
    refused, served = (placed[-1], listed) if orders_closed == "true" else (listed, placed[-1])
    assert refused.status_code == 503
    assert "rate limiting is unavailable" in refused.json["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert served.status_code in (200, 201)
    if orders_closed == "false":
        assert {r.status_code for r in placed} == {201}  # served uncounted, as chosen
        assert stock(product) == 88


def test_placing_orders_has_a_tighter_rate_limit(
    client: Client, customer: Any, make_product: Any
) -> None:
    product = make_product(stock=100)
    for remaining in range(9, -1, -1):
        response = order(client, customer, product)
        assert response.status_code == 201
        assert response.headers["RateLimit-Limit"] == "10"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
    before = counts()
    blocked = order(client, customer, product)
    problem(blocked, 429)
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    assert blocked.headers["RateLimit-Remaining"] == "0"
    assert blocked.headers["RateLimit-Limit"] == "10"
    assert counts() == before
    # Reading is limited separately, by the default rule.
    listed = client.get("/orders/", headers=customer.headers)
    assert listed.status_code == 200
    assert listed.headers["RateLimit-Limit"] == "120"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quantity": 0}, "body.quantity"),
        ({"quantity": -1}, "body.quantity"),
        ({"quantity": 1001}, "body.quantity"),
        ({"quantity": 10**30}, "body.quantity"),
        ({"quantity": 1.5}, "body.quantity"),
        ({"quantity": "NaN"}, "body.quantity"),
        ({"quantity": None}, "body.quantity"),
        ({"product_id": "not-a-uuid"}, "body.product_id"),
        ({"product_id": str(uuid.uuid4())}, "body.product_id"),
        ({"coupon": "FREE"}, "body.coupon"),
    ],
)
def test_bad_order_is_4xx_and_writes_nothing(
    client: Client, customer: Any, make_product: Any, body: dict[str, Any], field: str
) -> None:
    product = make_product(stock=5)
    before = counts()
    payload = {"product_id": product["id"], "quantity": 1, **body}
    response = client.post("/orders/", json=payload, headers=customer.headers)
    assert field in fields(problem(response, 422))
    assert counts() == before
    assert stock(product) == 5


def test_bad_idempotency_key_and_ids(client: Client, customer: Any, make_product: Any) -> None:
    product = make_product(stock=5)
    before = counts()
    for key in ("k" * 256, "has space", "ünïcode"):
        response = order(client, customer, product, 1, **{"Idempotency-Key": key})
        assert fields(problem(response, 422)) == {"headers.Idempotency-Key"}, key
    assert fields(problem(client.get("/orders/nope", headers=customer.headers), 422)) == {
        "path.order_id"
    }
    problem(client.post(f"/orders/{uuid.uuid4()}/cancel", headers=customer.headers), 404)
    problem(
        client.post(
            "/orders/", data="[1, 2]", content_type="application/json", headers=customer.headers
        ),
        422,
    )
    assert counts() == before


def _race(live_server: str, product: dict[str, Any], buyers: list[Any], tries: int) -> list[int]:
    """Every buyer, released at once, orders one unit `tries` times over real HTTP."""
    barrier = threading.Barrier(len(buyers))
    statuses: list[int] = []

    def buy(account: Any) -> None:
        barrier.wait(timeout=10)
        for _ in range(tries):
            response = requests.post(
                f"{live_server}/orders/",
                json={"product_id": product["id"], "quantity": 1},
                headers=account.headers,
                timeout=30,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=buy, args=(b,)) for b in buyers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return statuses


def test_an_order_names_the_job_that_confirms_it_and_jobs_are_listed(
    client: Client, customer: Any, make_account: Any, make_product: Any
) -> None:
    """The order carries its job's id; GET /jobs/ lists the caller's jobs newest first in
    keyset pages (another customer sees none of them; staff see every job)."""
    product = make_product(stock=10)
    placed = [order(client, customer, product).json for _ in range(3)]
    job_ids = [p["job_id"] for p in placed]
    assert all(job_ids) and len(set(job_ids)) == 3
    assert (
        client.get(f"/orders/{placed[0]['id']}", headers=customer.headers).json["job_id"]
        == (job_ids[0])
    )
    job = client.get(f"/jobs/{job_ids[0]}", headers=customer.headers).json
    assert (job["id"], job["kind"]) == (job_ids[0], "process_order")

    first = client.get("/jobs/", query_string={"limit": 2}, headers=customer.headers).json
    second = client.get(
        "/jobs/",
        query_string={"limit": 2, "cursor": first["next_cursor"]},
        headers=customer.headers,
    ).json
    assert [j["id"] for j in first["items"] + second["items"]] == job_ids[::-1]
    assert second["next_cursor"] is None
    other = make_account("customer")
    assert client.get("/jobs/", headers=other.headers).json["items"] == []
    assert client.get(f"/jobs/{job_ids[0]}", headers=other.headers).status_code == 404
    staff = make_account("staff")
    assert len(client.get("/jobs/", headers=staff.headers).json["items"]) == 3
    forged = client.get("/jobs/", query_string={"cursor": "abc"}, headers=customer.headers)
    assert forged.status_code == 422
