"""One session per request: committed on success, rolled back on any error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from imangor.db import session_scope
from imangor.models import User


def _count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def test_session_scope_commits_on_success() -> None:
    with session_scope() as session:
        session.add(User(email="a@example.com", full_name="A"))
    assert _count() == 1


def test_session_scope_rolls_back_on_error() -> None:
    def half_written() -> None:
        with session_scope() as session:
            session.add(User(email="b@example.com", full_name="B"))
            session.flush()  # the row reached the database...
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        half_written()
    assert _count() == 0  # ...and is gone


def test_pool_is_small_and_pings_idle_connections() -> None:
    from sqlalchemy import event

    from imangor import db
    from imangor.db import get_engine

    pool = get_engine().pool
    assert pool.size() == 4  # type: ignore[attr-defined]  # one connection per request thread
    assert pool._max_overflow == 0  # type: ignore[attr-defined]  # overflow = churn
    # Not on every checkout (a round trip per request): on those idle for over a second
    # (tests/test_reads.py drops idle connections and reads on).
    assert not get_engine().pool._pre_ping  # type: ignore[attr-defined]
    assert event.contains(get_engine(), "checkout", db._ping_if_idle)
    assert db.PING_IDLE_AFTER <= 1.0


def test_outbox_push_waits_until_the_request_connection_is_back() -> None:
    """With every pooled connection held by a request that enqueues, each push still runs:
    it takes a connection only after its own session has returned one (no pool deadlock)."""
    import threading

    from imangor.db import get_engine
    from imangor.models import Job, OutboxEntry
    from imangor.schemas.tasks import SendEmail
    from imangor.tasks import enqueue

    size = get_engine().pool.size()  # type: ignore[attr-defined]
    barrier = threading.Barrier(size)
    errors: list[BaseException] = []

    def request() -> None:
        try:
            with session_scope() as session:
                session.execute(select(1))  # hold a connection...
                enqueue(session, SendEmail(to="a@example.com", subject="s", body="b"))
                barrier.wait(timeout=10)  # ...while every other thread holds one too
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == size
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0  # all pushed


@pytest.mark.parametrize(
    ("url", "mode"),
    [
        ("postgresql://u@127.0.0.1:5432/db", "disable"),  # loopback: TLS protects nothing
        ("postgresql://u@localhost/db", "disable"),
        ("postgresql://u@db.internal:5432/db", "prefer"),  # libpq's and pg8000's default
        ("postgresql://u@127.0.0.1/db?sslmode=require", "require"),
        ("postgresql://u@db.internal/db?sslmode=verify%2Dfull", "verify-full"),  # %-encoded
        # The driver connects to ?host= when given: that host decides, not the authority's.
        ("postgresql://u@127.0.0.1/db?host=192.0.2.2&port=5432", "prefer"),
        ("postgresql://u@/db?host=/cloudsql/p:r:i", "disable"),  # a unix socket
    ],
)
def test_sslmode_is_read_as_libpq_reads_it(url: str, mode: str) -> None:
    from imangor.config import database_tls
    from imangor.db import sqlalchemy_url

    assert database_tls(url) == (mode, None)
    assert "sslmode" not in sqlalchemy_url(url).query  # pg8000 would refuse the keyword


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sslmode=sometimes", "sslmode must be one of"),
        ("sslmode=require&sslmode=disable", "more than once"),  # no silent downgrade
        ("sslmode=verify-full&sslmode=verify-full", "more than once"),
        ("sslmode=verify-ca", "needs sslrootcert"),  # public CAs would accept any site
        ("sslmode=require&sslcert=/client.pem", "sslcert is not supported"),
    ],
)
def test_a_bad_tls_setting_is_a_start_up_error(query: str, reason: str) -> None:
    from pydantic import ValidationError

    from imangor.config import Settings

    with pytest.raises(ValidationError, match=reason):
        Settings(database_url=f"postgresql://u@db.internal/db?{query}")


def test_sslmode_contexts(tmp_path: Path) -> None:
    import ssl

    from imangor.db import sqlalchemy_url, ssl_connect_args

    assert ssl_connect_args("postgresql://u@127.0.0.1/db") == {"ssl_context": False}
    assert ssl_connect_args("postgresql://u@db.internal/db") == {}  # pg8000's own prefer
    required = ssl_connect_args("postgresql://u@h/db?sslmode=require")["ssl_context"]
    assert required.verify_mode == ssl.CERT_NONE  # encrypted, not authenticated
    verified = ssl_connect_args("postgresql://u@h/db?sslmode=verify-full")["ssl_context"]
    assert (verified.verify_mode, verified.check_hostname) == (ssl.CERT_REQUIRED, True)
    (tmp_path / "ca.pem").write_bytes(_self_signed_ca("Imangor Test CA"))
    url = f"postgresql://u@h/db?sslmode=verify-ca&sslrootcert={tmp_path / 'ca.pem'}"
    by_ca = ssl_connect_args(url)["ssl_context"]
    assert (by_ca.verify_mode, by_ca.check_hostname) == (ssl.CERT_REQUIRED, False)
    trusted = [dict(part[0] for part in c["subject"]) for c in by_ca.get_ca_certs()]
    assert trusted == [{"commonName": "Imangor Test CA"}]  # that CA only, not the system's
    assert "sslrootcert" not in sqlalchemy_url(url).query


def _self_signed_ca(name: str) -> bytes:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_sslmode_require_refuses_a_server_without_tls(services: dict[str, str]) -> None:
    """The local server has ssl = off: `require` must fail rather than fall back to plain
    text, while the default (disable on loopback) connects."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import InterfaceError

    from imangor.db import sqlalchemy_url, ssl_connect_args

    url = services["DATABASE_URL"]
    with create_engine(sqlalchemy_url(url), connect_args=ssl_connect_args(url)).connect() as c:
        assert c.scalar(text("SELECT 1")) == 1
        if c.scalar(text("SHOW ssl")) == "on":
            pytest.skip("this PostgreSQL accepts TLS; the refusal cannot be shown here")
    required = f"{url}{'&' if '?' in url else '?'}sslmode=require"
    engine = create_engine(sqlalchemy_url(required), connect_args=ssl_connect_args(required))
    with pytest.raises(InterfaceError, match="refuses SSL"):
        engine.connect()


def test_the_statement_timeout_comes_with_the_connection() -> None:
    """Sent in the startup packet (no SET round trips), from DB_STATEMENT_TIMEOUT_MS."""
    from sqlalchemy import text

    from imangor.config import get_settings

    with session_scope() as session:
        shown = session.scalar(text("SHOW statement_timeout"))
    assert shown == f"{get_settings().db_statement_timeout_ms // 1000}s"
