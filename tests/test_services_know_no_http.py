"""Services hold the domain logic and know nothing of HTTP: they name a field and what is wrong
with it, and the runtime says where in the request it was, which status answers it and under
which path. This reads every service module's syntax tree for the HTTP that crept in before:
request locations (`"loc": ["body", ...]`, `"query.cursor"`), status codes passed as
`status=201`, and URL paths such as `"/orders/"`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted((ROOT / "shared" / "imangor" / "services").rglob("*.py"))
REQUEST_PARTS = ("path", "query", "headers", "body")
URL_PATH = re.compile(r"^/[A-Za-z]")  # "/orders/", f"/files/{id}"; not "uploads/…" or "/"


def http_in(source: str) -> list[str]:
    """What in this code knows HTTP, one line per finding."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text == "loc":
                found.append(f"line {line}: a 422 entry's 'loc'")
            elif text.startswith(tuple(f"{part}." for part in REQUEST_PARTS)):
                found.append(f"line {line}: a located field {text!r}")
            elif URL_PATH.match(text):
                found.append(f"line {line}: a URL path {text!r}")
        elif isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in REQUEST_PARTS:
                found.append(f"line {line}: a request location [{first.value!r}, …]")
        elif (
            isinstance(node, ast.keyword)
            and node.arg in ("status", "status_code", "code")
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, int)
        ):
            found.append(f"line {line}: a status code {node.arg}={node.value.value}")
    return found


def test_services_know_no_http() -> None:
    found = [f"{p.name} {finding}" for p in SERVICES for finding in http_in(p.read_text())]
    assert SERVICES and found == []


@pytest.mark.parametrize(
    ("mutant", "finding"),
    [
        ('raise ValidationFailed([{"loc": ["x"]}])', "'loc'"),
        ('where = ["body", "scopes"]', "request location ['body'"),
        ('where = ("headers", "Idempotency-Key")', "request location ['headers'"),
        ('field = "query.cursor"', "located field 'query.cursor'"),
        ("run_once(session, status=201)", "status=201"),
        ('PLACE = ("POST", "/orders/")', "URL path '/orders/'"),
        ('location = f"/orders/{order_id}"', "URL path '/orders/'"),
    ],
)
def test_the_check_catches_each_kind_of_http(mutant: str, finding: str) -> None:
    """The mutations: each shape of HTTP that services used to carry is found."""
    found = http_in(mutant)
    assert len(found) == 1 and finding in found[0], found


def test_the_check_leaves_domain_code_alone() -> None:
    domain = (
        'raise FieldError("scopes", "scope_unknown", "unknown scope")\n'
        'object_name = f"uploads/{owner}/{file_id}"\n'
        "order.status = PENDING\n"
        "if len(presented) > 200: pass\n"
    )
    assert http_in(domain) == []
