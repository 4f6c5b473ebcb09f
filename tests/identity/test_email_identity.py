"""One e-mail identity (issue 13, item 6): sign-up, sign-in, recovery, a change, admin create
and update, Google sign-in and the first admin all spell an address the same way
(`normalise_email`), and an address becoming an account's is refused when it passes for
another (`lookalike_problem`: compatibility forms such as fullwidth letters, mixed scripts)."""

from __future__ import annotations

import importlib.util
import unicodedata
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text
from werkzeug.test import Client

from imangor.db import session_scope
from imangor.models import SentEmail, User
from imangor.schemas.users import lookalike_problem, normalise_email
from tests.conftest import ROOT, wait_for

PASSWORD = "a long enough passphrase"
CLIENT_ID = "imangor-web.apps.googleusercontent.com"


def nfd(address: str) -> str:
    return unicodedata.normalize("NFD", address)


JOSE = "josé@example.com"  # NFC: é is one code point
JOSE_NFD = nfd(JOSE)  # e + U+0301 COMBINING ACUTE ACCENT
FULLWIDTH = "ｆｚ-admin@example.com"  # U+FF46 U+FF5A
CYRILLIC = "fz-\u0430dmin@example.com"  # U+0430 CYRILLIC SMALL LETTER A


def stored_emails() -> list[str]:
    with session_scope() as session:
        return sorted(session.scalars(select(User.email)))


def user_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def register(client: Client, email: str) -> Any:
    return client.post("/auth/register", json={"email": email, "password": PASSWORD})


def sign_in(client: Client, email: str, password: str = PASSWORD) -> int:
    return int(
        client.post("/auth/token", data={"username": email, "password": password}).status_code
    )


def refused(response: Any, kind: str, field: str = "body.email") -> str:
    assert response.status_code == 422, response.json
    [error] = response.json["errors"]
    assert (error["field"], error["type"]) == (field, kind)
    assert response.json["detail"].startswith("this e-mail address is refused")
    message: str = error["message"]
    return message


# -- the normaliser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "spelled"),
    [
        ("  Ann@Example.COM ", "ann@example.com"),  # trimmed and lower-cased, as always
        (JOSE_NFD, JOSE),  # NFC
        (nfd("JOSÉ@EXAMPLE.COM"), JOSE),
        ("ann@ＥＸＡＭＰＬＥ.com", "ann@example.com"),  # the domain as IDNA maps it
        ("ann@example．com", "ann@example.com"),
        ("ann@xn--bcher-kva.de", "ann@bücher.de"),
        ("Ann@Bücher.DE", "ann@bücher.de"),
        (FULLWIDTH, FULLWIDTH),  # the local part is never folded: refused where it matters
        ("ß@example.com", "ß@example.com"),  # lower(), not casefold(): stored spellings hold
        ("' OR '1'='1", "' or '1'='1"),  # no address: still one spelling, matching nothing
        (nfd("Ünknown"), "ünknown"),
    ],
)
def test_one_spelling(given: str, spelled: str) -> None:
    assert normalise_email(given) == spelled
    assert normalise_email(spelled) == spelled  # idempotent: stored spellings are fixed points


@pytest.mark.parametrize(
    ("address", "kind", "names"),
    [
        (FULLWIDTH, "email_lookalike", "FULLWIDTH LATIN SMALL LETTER F"),
        ("ﬁnance@example.com", "email_lookalike", "LIGATURE FI"),
        ("\U0001d41a@example.com", "email_lookalike", "MATHEMATICAL BOLD SMALL A"),
        ("ⓐdmin@example.com", "email_lookalike", "CIRCLED LATIN SMALL LETTER A"),
        ("fz\u2010admin@example.com", "email_lookalike", "HYPHEN"),  # looks like "-"
        ("\U0001f600@example.com", "email_lookalike", "GRINNING FACE"),
        ("\u13aa\u13f4@example.com", "email_lookalike", "CHEROKEE"),  # not recommended
        (CYRILLIC, "email_mixed_script", "CYRILLIC SMALL LETTER A"),
        ("p\u0430yp\u0430l@example.com", "email_mixed_script", "Cyrillic among Latin"),
        ("admin@ex\u0430mple.com", "email_mixed_script", "CYRILLIC"),  # per domain label
        ("\u03b4\u043eg@example.com", "email_mixed_script", "Cyrillic among Greek"),
    ],
)
def test_look_alikes_are_named(address: str, kind: str, names: str) -> None:
    problem = lookalike_problem(normalise_email(address))
    assert problem is not None
    assert problem[0] == kind
    assert names in problem[1]


@pytest.mark.parametrize(
    "address",
    [
        "ann.o'neil+tag@example.com",
        JOSE,
        "müller@bücher.de",
        "ελληνικά@example.gr",
        "иван@почта.рф",
        "ivan@почта.рф",  # each part keeps to its script
        "用户@例子.广告",
        "tanaka太郎@example.jp",  # Latin with Han: UTS #39's highly restrictive level
        "やまだタロウ山田@example.jp",  # Han with both kana
        "kim김철수@example.kr",
        "δημήτρης@example.com",
        normalise_email("İ@example.com"),  # i + U+0307: a mark fits the script it follows
    ],
)
def test_real_addresses_pass(address: str) -> None:
    assert lookalike_problem(normalise_email(address)) is None


# -- every path, the same spelling ---------------------------------------------------------------


def test_sign_up_then_sign_in_with_any_spelling(client: Client) -> None:
    """The issue's case: an NFD spelling of a registered address got 401."""
    assert register(client, JOSE_NFD).json["email"] == JOSE
    assert stored_emails() == [JOSE]
    for spelling in (JOSE, JOSE_NFD, nfd(" JOSÉ@Example.COM "), "josé@ＥＸＡＭＰＬＥ.com"):
        assert sign_in(client, spelling) == 200, spelling
        answer = client.post("/auth/token", json={"email": spelling, "password": PASSWORD})
        assert answer.status_code == 200
    assert register(client, JOSE).status_code == 409  # one identity
    assert user_count() == 1


def test_an_idn_domain_is_one_account_in_either_form(client: Client) -> None:
    assert register(client, "ann@xn--bcher-kva.de").json["email"] == "ann@bücher.de"
    assert sign_in(client, "ann@bücher.de") == 200
    assert sign_in(client, "Ann@XN--BCHER-KVA.DE") == 200
    assert register(client, "ann@BÜCHER.de").status_code == 409


def test_a_look_alike_of_an_account_does_not_sign_in_to_it(client: Client) -> None:
    assert register(client, "fz-admin@example.com").status_code == 201
    for other in (FULLWIDTH, CYRILLIC):
        assert sign_in(client, other) == 401


def test_recovery_finds_the_account_by_any_spelling(
    client: Client, make_account: Any, dispatcher: Any
) -> None:
    account = make_account(email=JOSE)
    answer = client.post("/auth/password-recovery", json={"email": JOSE_NFD})
    assert answer.status_code == 202
    mails = wait_for(lambda: _mail_to(JOSE))
    assert "reset" in mails[0].body.lower()
    assert account.email == JOSE


def _mail_to(address: str) -> list[SentEmail]:
    with session_scope() as session:
        return list(session.scalars(select(SentEmail).where(SentEmail.recipient == address)))


def test_a_change_of_address_is_stored_normalised(client: Client, make_account: Any) -> None:
    me = make_account()
    moved = client.patch(
        "/users/me",
        json={"email": nfd("Zoë@Example.com"), "current_password": me.password},
        headers=me.headers,
    )
    assert moved.status_code == 200
    assert moved.json["email"] == "zoë@example.com"
    assert sign_in(client, nfd("ZOË@example.com"), me.password) == 200


def test_admin_create_update_and_search_normalise(client: Client, make_account: Any) -> None:
    admin = make_account("admin")
    created = client.post(
        "/users/", json={"email": JOSE_NFD, "password": PASSWORD}, headers=admin.headers
    )
    assert created.json["email"] == JOSE
    assert (
        client.post(
            "/users/", json={"email": JOSE, "password": PASSWORD}, headers=admin.headers
        ).status_code
        == 409
    )
    updated = client.patch(
        f"/users/{created.json['id']}",
        json={"email": nfd("Zoë@example.com")},
        headers=admin.headers,
    )
    assert updated.json["email"] == "zoë@example.com"
    found = client.get(
        "/users/", query_string={"email": nfd("ZOË@example.com")}, headers=admin.headers
    )
    assert [u["id"] for u in found.json["items"]] == [created.json["id"]]


def test_google_sign_in_links_any_spelling(client: Client, signer: Any, make_account: Any) -> None:
    existing = make_account(email=JOSE)
    token = signer.sign(CLIENT_ID, JOSE_NFD)
    answer = client.post("/auth/google", json={"id_token": token})
    assert answer.status_code == 200
    me = client.get("/users/me", headers={"Authorization": f"Bearer {answer.json['access_token']}"})
    assert me.json["id"] == str(existing.id)
    assert user_count() == 1


def test_the_first_admin_is_stored_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    from imangor.config import get_settings
    from imangor.services.bootstrap import ensure_first_admin

    monkeypatch.setenv("FIRST_ADMIN_EMAIL", nfd(" Root.José@Example.com"))
    monkeypatch.setenv("FIRST_ADMIN_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    try:
        assert ensure_first_admin() is True
        monkeypatch.setenv("FIRST_ADMIN_EMAIL", "root.josé@example.com")
        get_settings.cache_clear()
        assert ensure_first_admin() is False  # the same account, whatever the spelling
        monkeypatch.setenv("FIRST_ADMIN_EMAIL", "root.jos\u0435@example.com")  # Cyrillic е
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="FIRST_ADMIN_EMAIL is refused"):
            ensure_first_admin()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert stored_emails() == ["root.josé@example.com"]


# -- look-alikes refused wherever an address becomes an account's --------------------------------


@pytest.mark.parametrize(
    ("address", "kind"), [(FULLWIDTH, "email_lookalike"), (CYRILLIC, "email_mixed_script")]
)
def test_look_alikes_are_refused_on_every_path_that_sets_an_address(
    client: Client, make_account: Any, signer: Any, address: str, kind: str
) -> None:
    admin = make_account("admin")
    me = make_account()
    before = stored_emails()

    message = refused(register(client, address), kind)
    assert "U+" in message  # names the character
    refused(
        client.post(
            "/users/", json={"email": address, "password": PASSWORD}, headers=admin.headers
        ),
        kind,
    )
    refused(client.patch(f"/users/{me.id}", json={"email": address}, headers=admin.headers), kind)
    own = {"email": address, "current_password": admin.password}
    refused(client.patch(f"/users/{admin.id}", json=own, headers=admin.headers), kind)
    mine = {"email": address, "current_password": me.password}
    refused(client.patch("/users/me", json=mine, headers=me.headers), kind)
    google = client.post("/auth/google", json={"id_token": signer.sign(CLIENT_ID, address)})
    refused(google, kind, field="body.id_token")

    assert stored_emails() == before


def test_accounts_stored_before_keep_signing_in_and_recovering(
    client: Client, make_account: Any, dispatcher: Any
) -> None:
    """A look-alike address registered before they were refused is not locked out: sign-in
    and recovery normalise only. It cannot be given to another account, nor set again."""
    legacy = make_account(email=FULLWIDTH)
    assert sign_in(client, FULLWIDTH, legacy.password) == 200
    assert client.post("/auth/password-recovery", json={"email": FULLWIDTH}).status_code == 202
    assert wait_for(lambda: _mail_to(FULLWIDTH))
    renamed = client.patch("/users/me", json={"full_name": "Still me"}, headers=legacy.headers)
    assert renamed.status_code == 200
    same = {"email": FULLWIDTH, "full_name": "Same address"}  # unchanged: nothing to refuse
    assert client.patch("/users/me", json=same, headers=legacy.headers).status_code == 200


# -- the migration: addresses stored in another spelling -----------------------------------------


def _migration() -> Any:
    path = ROOT / "migrations" / "versions" / "20261204_0010_one_email_spelling.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_respells_what_the_first_admin_and_google_stored(configured: None) -> None:
    """Before this revision the first admin and Google sign-in stored addresses only trimmed
    and lower-cased: an NFD accent or an `xn--` domain. Those rows are respelled; one whose
    spelling another account holds is left alone (and reported)."""
    rows = {
        "nfd": nfd("root.josé@example.com"),
        "punycode": "g@xn--bcher-kva.de",
        "clash": JOSE_NFD,
        "taken": JOSE,
        "ascii": "plain@example.com",
        "fullwidth": FULLWIDTH,  # a look-alike stored before: normalised already, kept
    }
    ids = {name: uuid.uuid4() for name in rows}
    with session_scope() as session:
        for name, email in rows.items():
            session.execute(
                text("INSERT INTO users (id, email, hashed_password) VALUES (:id, :email, 'x')"),
                {"id": ids[name], "email": email},
            )
    with session_scope() as session:
        clashes = _migration().respell(session.connection())
    assert clashes == [str(ids["clash"])]
    with session_scope() as session:
        now = {name: session.get(User, ids[name]).email for name in rows}  # type: ignore[union-attr]
    assert now == {
        "nfd": "root.josé@example.com",
        "punycode": "g@bücher.de",
        "clash": JOSE_NFD,
        "taken": JOSE,
        "ascii": "plain@example.com",
        "fullwidth": FULLWIDTH,
    }
