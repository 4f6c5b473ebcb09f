"""The contract, fuzzed: schemathesis drives every documented operation of the live API (the
committed OpenAPI document, served by make dev's server on real PostgreSQL and Redis) as an
admin, a customer and anonymously, then walks linked operations statefully (links inferred
from the schemas), with every check on: it fails on any 5xx, any answer that breaks the
document (status, media type, body, headers), any schema-valid request the server refuses
(`positive_data_acceptance`) and any schema-invalid one it takes (`negative_data_rejection`).

What a schema cannot promise, the test supplies, in positive cases only:
- values only the server issues: a list `cursor` (left out), a password-reset `token` and an
  order's `product_id` (real ones), a new `Idempotency-Key` for each new request;
- the search rules the document's guide states in words (`q` with a real word, `q` for
  `sort=relevance`, `min_price` not above `max_price`);
- the caller's own password where an operation asks for it (`current_password`);
- a fresh account for each operation that changes or deletes the caller's own account, so one
  case cannot sign the rest out.
Task and cron handlers are called with OIDC tokens from the session's local signer, as Cloud
Tasks and Cloud Scheduler would call them.

Size: `EXAMPLES` cases per operation per phase (examples, coverage, fuzzing) and role, and
`STATEFUL_RUNS` sequences of up to `STATEFUL_STEPS` calls per signed-in role: about 4,800
requests, 1.5 minutes on two idle cores (`-n 2 --dist loadgroup`: one test per operation and
role, so they spread).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition

from tests.conftest import LIVE_URL, ROOT, SCHEDULER_ACCOUNT, TASKS_ACCOUNT

pytestmark = pytest.mark.slow

EXAMPLES = 8
STATEFUL_RUNS = 15
STATEFUL_STEPS = 8
DOCUMENT = json.loads((ROOT / "functions" / "docs" / "openapi.json").read_text())
CONFIG = schemathesis.Config.from_dict(
    {
        "base-url": LIVE_URL,
        "cache": {"enabled": False},  # the same cases every run, nothing written to the tree
        # Credentials are the role's own, never generated ones (a random X-API-Key beside a
        # valid token is a 401 that would hide the operation).
        "generation": {
            "max-examples": EXAMPLES,
            "allow-x00": False,
            "with-security-parameters": False,
        },
        "checks": {
            "enabled": True,
            # schemathesis's list, and 413: a body over MAX_BODY_BYTES is refused unread.
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422"),
                    *("428", "429", "5xx"),
                ]
            },
        },
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
    }
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run: a failure reproduces
    suppress_health_check=list(HealthCheck),
)
# Operations that change or delete the caller's own account: a fresh account per case.
OWN_ACCOUNT = {("DELETE", "/users/me"), ("PATCH", "/users/me"), ("POST", "/users/me/password")}
RANK = {"customer": 0, "staff": 1, "admin": 2}
LIMITS = ("RATE_LIMIT_DEFAULT", "SIGNUP_LIMIT", "PASSWORD_RESET_LIMIT", "GOOGLE_SIGNIN_LIMIT")


@dataclass
class World:
    """Who calls, and the server-issued values positive cases need."""

    role: str
    make_account: Callable[..., Any]
    signer: Any
    product_id: str
    account: Any = None
    seen: dict[str, int] = field(default_factory=dict)

    def headers_for(self, case: schemathesis.Case) -> dict[str, str]:
        operation = case.operation
        if operation.path.startswith(("/tasks/", "/cron/")):
            who = TASKS_ACCOUNT if operation.path.startswith("/tasks/") else SCHEDULER_ACCOUNT
            return {"Authorization": f"Bearer {self.signer.sign(LIVE_URL, who)}"}
        if self.role == "anonymous":
            return {}
        if (operation.method.upper(), operation.path) in OWN_ACCOUNT or self.account is None:
            self.account = self.make_account(self.role)
        return {"Authorization": f"Bearer {self.account.token}"}

    def prepare(self, case: schemathesis.Case) -> None:
        """Server-issued values in a positive case (see the module's docstring)."""
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive:
            return
        if case.headers is not None and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = uuid.uuid4().hex  # a client's new request
        query = case.query
        if isinstance(query, dict):
            query.pop("cursor", None)
            # The search rules the document states in words (see its guide).
            if isinstance(query.get("q"), str):
                query["q"] = f"{query['q'][:190]} lamp"
            elif query.get("sort") == "relevance":
                query["q"] = "lamp"
            low, high = query.get("min_price"), query.get("max_price")
            if low is not None and high is not None and float(low) > float(high):
                query["min_price"], query["max_price"] = high, low
        body = case.body
        if not isinstance(body, dict):
            return
        label = (case.operation.method.upper(), case.operation.path)
        if "current_password" in body and self.account is not None:
            body["current_password"] = self.account.password
        if label == ("POST", "/orders/") and "product_id" in body:
            body["product_id"] = self.product_id
        if label == ("POST", "/auth/reset-password") and "token" in body:
            body["token"] = reset_token(self.make_account("customer").email)

    def may_call(self, case: schemathesis.Case) -> bool:
        """Whether this role's calls reach the operation's input validation. A caller the
        operation refuses up front (401, 403) gets the fuzzing phase's cases only: the
        coverage phase's edge inputs would all be refused before anyone reads them. Task
        and cron handlers take the same OIDC token whoever runs them: covered once."""
        operation = DOCUMENT["paths"][case.operation.path][case.operation.method.lower()]
        needed = operation.get("x-required-role")
        if "googleOidc" in json.dumps(operation.get("security", [])):
            return self.role == "admin"
        if needed is None:  # public
            return True
        return self.role != "anonymous" and RANK[self.role] >= RANK[needed]

    def call(self, case: schemathesis.Case) -> None:
        meta = case.meta
        if meta is not None and meta.phase.name == "coverage" and not self.may_call(case):
            return
        headers = self.headers_for(case)
        self.prepare(case)
        response = case.call_and_validate(headers=headers)
        self.count(case, response.status_code)

    def count(self, case: schemathesis.Case, status: int) -> None:
        phase = case.meta.phase.name if case.meta is not None else "stateful"
        key = f"{self.role} {phase} {case.operation.method.upper()} {case.operation.path} {status}"
        self.seen[key] = self.seen.get(key, 0) + 1


def reset_token(email: str) -> str:
    from imangor.db import session_scope
    from imangor.services.sessions import create_reset_token

    with session_scope() as session:
        created = create_reset_token(session, email)
        assert created is not None
        return created[1]


def a_product() -> str:
    from imangor.db import session_scope
    from imangor.models import Product

    with session_scope() as session:
        product = Product(
            name="Fuzzed lamp",
            price=10,
            stock=1_000_000,
            attributes={"category": "home", "description": ""},
        )
        session.add(product)
        session.flush()
        return str(product.id)


def empty_tables() -> None:
    """What the suite's clean_state does after each test, between two stateful sequences."""
    from sqlalchemy import text

    from imangor.db import get_engine
    from imangor.models import all_metadata
    from imangor.redis_client import get_redis
    from infra.local.tasks import LocalBase

    every = [*all_metadata().sorted_tables, *LocalBase.metadata.sorted_tables]
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(t.name for t in every)} CASCADE"))
    get_redis().flushdb()


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    live_server: str,
    storage_emulator: str,
    make_account: Callable[..., Any],
    signer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    """Rate limits out of the way (a 429 proves nothing here), a product to order."""
    from imangor.config import get_settings

    for name in (*LIMITS, "ORDER_LIMIT"):
        monkeypatch.setenv(name, "1000000/60")
    get_settings.cache_clear()
    world = World(request.param, make_account, signer, a_product())
    yield world
    monkeypatch.undo()
    get_settings.cache_clear()
    if stats := os.environ.get("CONTRACT_STATS"):  # where to append what was called
        with open(stats, "a") as out:
            out.writelines(f"{key} {n}\n" for key, n in world.seen.items())


ROLES = pytest.mark.parametrize("world", ["admin", "customer", "anonymous"], indirect=True)


@ROLES
@SCHEMA.parametrize()
@HYPOTHESIS
def test_every_operation(case: schemathesis.Case, world: World) -> None:
    world.call(case)


def _stateful_machine(world: World, failures: list[Exception]) -> Any:
    base = SCHEMA.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            # Each sequence starts from the same state (empty tables, one product, a fresh
            # account): which links can be followed then depends on the sequence alone, as
            # Hypothesis assumes, and no sequence inherits another's lock-out.
            super().setup()
            empty_tables()
            world.product_id = a_product()
            world.account = None

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            kwargs: dict[str, Any] = super().get_call_kwargs(case)
            kwargs["headers"] = {**kwargs.get("headers", {}), **world.headers_for(case)}
            world.prepare(case)
            return kwargs

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            world.count(case, response.status_code)

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            # Collected, not raised: Hypothesis would replay the failing sequence against a
            # server whose state has moved on, and report that replay's flakiness instead.
            try:
                super().validate_response(response, case, *args, **kwargs)
            except Exception as exc:  # FailureGroup: every failed check of this call
                failures.append(exc)

    return Machine


@pytest.mark.parametrize("world", ["admin", "customer"], indirect=True)
def test_linked_operations_statefully(world: World) -> None:
    failures: list[Exception] = []
    machine = _stateful_machine(world, failures)
    try:
        machine.run(
            settings=settings(
                max_examples=STATEFUL_RUNS,
                stateful_step_count=STATEFUL_STEPS,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # nothing to shrink: see above
            )
        )
    except FlakyStrategyDefinition:
        # Hypothesis noticed that a replayed prefix could follow other links than the first
        # time (the server's answers carry fresh ids and times): a limit of replaying a
        # live server, not a failed check. Every sequence that ran was checked below.
        assert world.seen, "no sequence ran"
    assert not failures, "\n\n".join(str(f) for f in failures[:5])


def test_every_operation_is_fuzzed() -> None:
    """Nothing in the document escapes the run (an unparsable operation would be skipped)."""
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    fuzzed = {
        (result.ok().method.upper(), result.ok().path) for result in SCHEMA.get_all_operations()
    }
    assert fuzzed == documented
