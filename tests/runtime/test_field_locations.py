"""Services name a field; the runtime says where in the request it was. Each case pins the
whole 422 a client gets for one field error a service raises (the entries were recorded
from the code before services stopped writing `loc` themselves), so the wire stays put."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client

from imangor.registry import REGISTRY

Call = Callable[[Client, Any], Any]
# PASSWORD_MIN_LENGTH is 10 unless set (the suite leaves it).


def _entry(loc: list[str], message: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "field": ".".join(loc), "message": message, "type": kind}


def _grantable() -> list[str]:
    return sorted(REGISTRY.grantable_scopes)


CASES: dict[str, tuple[Call, str, list[dict[str, Any]]]] = {
    "api key with an unknown scope": (
        lambda c, me: c.post(
            "/api-keys/", json={"name": "x", "scopes": ["everything"]}, headers=me.headers
        ),
        "unknown scopes: everything",
        [
            _entry(
                ["body", "scopes"],
                f"unknown scope 'everything'; grantable: {_grantable()}",
                "scope_unknown",
            )
        ],
    ),
    "password that breaks the policy twice": (
        lambda c, me: c.post("/auth/register", json={"email": "ab@ex.io", "password": "ab@ex.io"}),
        "the password must be at least 10 characters and must not be the e-mail address",
        [
            _entry(["body", "password"], "must be at least 10 characters", "password_policy"),
            _entry(["body", "password"], "must not be the e-mail address", "password_policy"),
        ],
    ),
    "new password that breaks the policy": (
        lambda c, me: c.post(
            "/users/me/password",
            json={
                "current_password": me.password,
                "new_password": "short",  # pragma: allowlist secret
            },
            headers=me.headers,
        ),
        "the password must be at least 10 characters",
        [_entry(["body", "new_password"], "must be at least 10 characters", "password_policy")],
    ),
    "e-mail change without the current password": (
        lambda c, me: c.patch(
            "/users/me", json={"email": f"{uuid.uuid4().hex}@example.com"}, headers=me.headers
        ),
        "changing the e-mail needs current_password",
        [_entry(["body", "current_password"], "required to change the e-mail", "missing")],
    ),
    "reset link that was never issued": (
        lambda c, me: c.post(
            "/auth/reset-password", json={"token": "made-up", "new_password": "x" * 20}
        ),
        "the reset link is invalid, used or expired",
        [_entry(["body", "token"], "the reset link is invalid, used or expired", "token_invalid")],
    ),
    "search with no searchable words": (
        lambda c, me: c.get("/products/?q=the", headers=me.headers),
        "the request has invalid fields",
        [
            _entry(
                ["query", "q"],
                "q has no searchable words (only operators or stop words)",
                "query_empty",
            )
        ],
    ),
    "cursor this API never issued": (
        lambda c, me: c.get("/orders/?cursor=garbage", headers=me.headers),
        "the cursor is not one this API issued",
        [_entry(["query", "cursor"], "the cursor is not one this API issued", "cursor_invalid")],
    ),
    "upload of a type not allowed": (
        lambda c, me: c.post(
            "/files/",
            json={"filename": "x.exe", "content_type": "application/x-msdownload", "size": 10},
            headers=me.headers,
        ),
        None,  # the detail lists the configured types, as the message does
        [_entry(["body", "content_type"], "<allowed types>", "content_type_not_allowed")],
    ),
    "upload over the size limit": (
        lambda c, me: c.post(
            "/files/",
            json={"filename": "x.txt", "content_type": "text/plain", "size": 10**12},
            headers=me.headers,
        ),
        None,
        [_entry(["body", "size"], "<the limit>", "too_large")],
    ),
    "order of a product that does not exist": (
        lambda c, me: c.post(
            "/orders/", json={"product_id": str(uuid.uuid4()), "quantity": 1}, headers=me.headers
        ),
        "the request has invalid fields",
        [_entry(["body", "product_id"], "no product with this id", "not_found")],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_service_field_error_reaches_the_client_where_the_field_was(
    client: Client, make_account: Any, case: str
) -> None:
    call, detail, expected = CASES[case]
    response = call(client, make_account())
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json(force=True)
    if detail is None:  # messages that quote settings: compare their shape, and detail = message
        for entry in (*body["errors"], *expected):
            entry["message"] = "…"
        detail = body["detail"]
        assert detail.startswith(("allowed types: ", "the limit is "))
    assert body["detail"] == detail
    assert body["errors"] == expected
    assert body["title"] == "Unprocessable Content"
    assert body["type"] == "https://imangor.dev/problems/validation-failed"


@pytest.mark.parametrize("written", ["1.0", "1_0", "+5", " 5", "5 ", "0x5", "\uff15", "1e1"])
def test_integer_query_parameters_are_plain_integers(client: Any, written: str) -> None:
    from urllib.parse import quote

    response = client.get(f"/products/?limit={quote(written)}")
    assert response.status_code == 422, written
    (error,) = response.json["errors"]
    assert error["loc"] == ["query", "limit"]
    assert "plain integer" in error["message"]


def test_a_plain_integer_query_parameter_is_taken(client: Any) -> None:
    assert client.get("/products/?limit=5").status_code == 200
    assert client.get("/products/?limit=007").status_code == 200


def test_every_integer_query_path_or_header_field_is_a_plain_integer() -> None:
    """Query, path and header values arrive as text: each integer field among them takes
    only plain digits (PlainInt), so a new one cannot slip back to pydantic's lax parsing."""
    import typing

    from imangor.registry import REGISTRY, load_all_units
    from imangor.schemas.common import plain_integer

    load_all_units()
    loose = []
    for endpoint in REGISTRY.endpoints:
        for source, model in endpoint.inputs.items():
            if source == "body":
                continue
            for name, field in model.model_fields.items():
                kinds = {field.annotation, *typing.get_args(field.annotation)}
                plain = any(getattr(m, "func", None) is plain_integer for m in field.metadata)
                if int in kinds and not plain:
                    loose.append(f"{endpoint.method} {endpoint.path}: {source}.{name}")
    assert loose == []
