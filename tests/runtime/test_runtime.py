"""The runtime maps every kind of bad request to its status and an RFC 9457 document."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

SAMPLE = Path(__file__).parent / "sample" / "main.py"
THING = "/things/3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.fixture(scope="module")
def sample() -> Client:
    import functions_framework

    return Client(functions_framework.create_app(target="sample", source=str(SAMPLE)))


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body  # type: ignore[no-any-return]


def test_valid_request_returns_typed_json(sample: Client) -> None:
    response = sample.get(f"{THING}?limit=5&tag=x&tag=y")
    assert response.status_code == 200
    assert response.json == {
        "id": THING.rsplit("/", 1)[1],
        "name": "x",
        "size": 5,
        "kind": "a",
        "tags": ["x", "y"],
        "key": None,
    }
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_body_headers_status_and_extra_headers(sample: Client) -> None:
    response = sample.post(
        "/things/", json={"name": "n", "size": 3}, headers={"Idempotency-Key": "k-1"}
    )
    assert response.status_code == 201
    assert response.json["key"] == "k-1"
    assert response.headers["Location"] == "/things/1"
    assert response.headers["Cache-Control"] == "no-store"  # the default for API answers


def test_form_body_is_accepted_where_declared(sample: Client) -> None:
    response = sample.post("/things/", data={"name": "n", "size": "3"})
    assert response.status_code == 201
    assert response.json["size"] == 3


def test_none_return_is_204(sample: Client) -> None:
    assert sample.delete(THING).status_code == 204


def test_malformed_json_is_400(sample: Client) -> None:
    body = problem(sample.post("/things/", data="{nope", content_type="application/json"), 400)
    assert "malformed JSON" in body["detail"]


@pytest.mark.parametrize("raw", ['{"name": "n", "size": NaN}', '{"name": "n", "size": Infinity}'])
def test_nan_and_infinity_are_400(sample: Client, raw: str) -> None:
    problem(sample.post("/things/", data=raw, content_type="application/json"), 400)


def test_pathologically_nested_json_is_400(sample: Client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    body = problem(sample.post("/things/", data=deep, content_type="application/json"), 400)
    assert "nested too deeply" in body["detail"]


def test_non_utf8_body_is_400(sample: Client) -> None:
    response = sample.post(
        "/things/", data=b'{"name": "\xff\xfe"}', content_type="application/json"
    )
    assert "UTF-8" in problem(response, 400)["detail"]


def test_empty_body_is_400(sample: Client) -> None:
    problem(sample.post("/things/", data="", content_type="application/json"), 400)


def test_validation_is_422_with_field_paths(sample: Client) -> None:
    response = sample.post("/things/", json={"name": "", "size": -1, "kind": "z", "extra": 1})
    body = problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.name", "body.size", "body.kind", "body.extra"}
    assert all(e["loc"][0] == "body" and e["message"] for e in body["errors"])


def test_path_and_query_validation_is_422(sample: Client) -> None:
    body = problem(sample.get("/things/not-a-uuid?limit=1000"), 422)
    assert {e["field"] for e in body["errors"]} == {"path.thing_id", "query.limit"}


def test_unknown_query_parameter_is_422(sample: Client) -> None:
    body = problem(sample.get(f"{THING}?limitt=5"), 422)
    assert body["errors"][0]["field"] == "query.limitt"


def test_header_validation_is_422(sample: Client) -> None:
    response = sample.post(
        "/things/", json={"name": "n", "size": 1}, headers={"Idempotency-Key": "k" * 65}
    )
    assert problem(response, 422)["errors"][0]["field"] == "headers.Idempotency-Key"


def test_unknown_path_is_404(sample: Client) -> None:
    problem(sample.get("/nothing/here"), 404)


def test_wrong_method_is_405_with_allow(sample: Client) -> None:
    response = sample.put(THING, json={})
    problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "DELETE"}


def test_body_over_limit_is_413(sample: Client) -> None:
    big = json.dumps({"name": "n", "size": 1, "pad": "x" * 2_000_000})
    problem(sample.post("/things/", data=big, content_type="application/json"), 413)


def test_chunked_body_over_limit_is_413(sample: Client) -> None:
    import io

    stream = io.BytesIO(b"x" * 2_000_000)
    response = sample.post(
        "/things/",
        input_stream=stream,
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked
    )
    problem(response, 413)


def test_unsupported_media_type_is_415(sample: Client) -> None:
    problem(sample.post("/things/", data="name=n", content_type="text/plain"), 415)


def test_unexpected_error_is_500_without_details(
    sample: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = sample.post("/boom")
    body = problem(response, 500)
    text = response.get_data(as_text=True)
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    logged = [r for r in caplog.records if r.exc_info]
    assert logged
    assert "secret internal detail" in str(logged[0].exc_info[1])
    assert body["request_id"]


def test_domain_error_maps_to_its_status(sample: Client) -> None:
    assert problem(sample.post("/conflict"), 409)["detail"] == "already there"


def test_request_id_is_echoed_when_well_formed(sample: Client) -> None:
    given = "client-req-12345678"
    assert sample.get(THING, headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
    forged = sample.get(THING, headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]
    assert forged != "<script>"
    assert len(forged) == 32


def test_missing_token_is_401_with_www_authenticate(sample: Client) -> None:
    response = sample.get("/private")
    problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_cors_preflight_and_simple_requests(
    sample: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imangor.config import get_settings

    monkeypatch.setenv("CORS_ORIGINS", '["https://app.example"]')
    get_settings.cache_clear()
    try:
        preflight = sample.options(
            THING,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) >= {"DELETE"}
        assert preflight.headers["Access-Control-Allow-Headers"] == "authorization"
        simple = sample.get(THING, headers={"Origin": "https://app.example"})
        assert simple.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Origin" in simple.headers["Vary"]
        stranger = sample.get(THING, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in stranger.headers
        # Cacheable answers differ by Origin: a shared cache must key on it, always.
        assert "Origin" in stranger.headers["Vary"]
        assert "Origin" in sample.get(THING).headers["Vary"]
    finally:
        monkeypatch.delenv("CORS_ORIGINS")
        get_settings.cache_clear()
    assert "Vary" not in sample.get(THING).headers  # no CORS configured: nothing varies


def test_every_log_line_is_cloud_logging_json_with_request_and_trace(
    sample: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    import imangor.observability as obs

    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(obs.CloudLoggingFormatter("proj-1"))
    root.addHandler(handler)
    try:
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        sample.get(
            THING,
            headers={"X-Cloud-Trace-Context": f"{trace}/1;o=1", "X-Request-ID": "req-abcdefgh"},
        )
    finally:
        root.removeHandler(handler)
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [e for e in lines if "httpRequest" in e]
    assert access, lines
    entry = access[-1]
    assert entry["severity"] == "INFO"
    assert entry["request_id"] == "req-abcdefgh"
    assert entry["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{trace}"
    assert entry["logging.googleapis.com/spanId"] == "0000000000000001"
    assert entry["httpRequest"]["status"] == 200
    assert entry["httpRequest"]["requestMethod"] == "GET"


def test_traceparent_is_understood() -> None:
    from imangor.observability import parse_trace

    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_trace(None, header) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert parse_trace(None, "garbage") is None


def test_metrics_count_requests_and_errors(sample: Client, client: Client) -> None:
    sample.post("/boom")
    sample.get(THING)
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'http_request_duration_seconds_count{endpoint="/things/{thing_id}",method="GET",status="200"}'
        in text
    )
    assert 'app_errors_total{endpoint="/boom",error_type="RuntimeError"}' in text
    assert "app_memory_usage_bytes" in text
    assert "app_cpu_usage_percent" in text


def test_uuid_helper_roundtrip() -> None:
    assert uuid.UUID(THING.rsplit("/", 1)[1])


def test_etag_and_304(sample: Client) -> None:
    first = sample.get(THING)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=30"
    again = sample.get(THING, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert sample.get(THING, headers={"If-None-Match": '"other"'}).status_code == 200


def test_rate_limit_headers_then_429_with_retry_after(sample: Client) -> None:
    headers = {"X-Forwarded-For": "203.0.113.9"}
    for remaining in (2, 1, 0):
        response = sample.get("/limited", headers=headers)
        assert response.status_code == 204
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    blocked = sample.get("/limited", headers=headers)
    problem(blocked, 429)
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    assert blocked.headers["RateLimit-Remaining"] == "0"


def test_default_rate_limit_applies_to_every_endpoint(sample: Client) -> None:
    response = sample.get(THING)
    assert response.headers["RateLimit-Limit"] == "120"


def test_rate_limiter_down_fails_open(sample: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from imangor.config import get_settings
    from imangor.redis_client import reset_redis

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # a real, closed port
    get_settings.cache_clear()
    reset_redis()
    try:
        assert sample.get("/limited").status_code == 204
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reset_redis()


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/things/", {"name": "a\u0000b", "size": 1}),
        ("get", f"{THING}?tag=a%00b", None),
    ],
)
def test_nul_characters_are_422_not_500(sample: Client, method: str, url: str, body: Any) -> None:
    response = getattr(sample, method)(url, json=body) if body else sample.get(url)
    errors_ = problem(response, 422)["errors"]
    assert errors_[0]["type"] == "nul_character"
    assert errors_[0]["field"] in ("body.name", "query.tag.0", "query.tag")


def test_a_cloud_trace_span_too_long_is_dropped_not_a_crash(sample: Client) -> None:
    from imangor.observability import parse_trace

    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parse_trace(f"{trace}/{'9' * 5000}", None) == (trace, None)
    assert parse_trace(f"{trace}/{2**64}", None) == (trace, None)  # over a uint64
    assert parse_trace(f"{trace}/{2**64 - 1};o=1", None) == (trace, "ffffffffffffffff")
    response = sample.get(THING, headers={"X-Cloud-Trace-Context": f"{trace}/{'9' * 5000}"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/favicon.ico", "/robots.txt"])
def test_paths_functions_framework_keeps_are_problem_documents(sample: Client, path: str) -> None:
    assert problem(sample.get(path), 404)["instance"] == path


def test_a_unit_loaded_again_while_its_app_serves_leaves_that_app_alone(sample: Client) -> None:
    """The 404 hand-over is set up only while functions-framework builds the unit's app: a
    module executed again inside a request of that app (which Flask would refuse set-up on,
    having served) changes nothing, and the paths still answer as before."""
    import importlib.util

    app = sample.application
    sample.get(THING)  # it has served
    spec = importlib.util.spec_from_file_location("sample_again", SAMPLE)
    assert spec is not None and spec.loader is not None
    with app.test_request_context("/"):  # type: ignore[attr-defined]
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert problem(sample.get("/robots.txt"), 404)["instance"] == "/robots.txt"


def test_werkzeug_client_errors_inside_an_endpoint_keep_their_status(client: Client) -> None:
    missing = problem(client.get("/docs/static/redoc/missing.js"), 404)
    assert missing["title"] == "Not Found"
    past_the_end = client.get("/docs/static/redoc/LICENSE", headers={"Range": "bytes=999999-"})
    problem(past_the_end, 416)
    assert past_the_end.headers["Content-Range"].startswith("bytes */")


def test_invalid_utf8_in_a_form_body_or_query_is_400(sample: Client) -> None:
    form = sample.post(
        "/things/", data="name=%ff&size=1", content_type="application/x-www-form-urlencoded"
    )
    assert "UTF-8" in problem(form, 400)["detail"]
    assert "UTF-8" in problem(sample.get(f"{THING}?tag=%ff"), 400)["detail"]


def test_a_repeated_single_valued_query_parameter_is_422(sample: Client) -> None:
    body = problem(sample.get(f"{THING}?limit=1&limit=1000"), 422)
    assert [e["field"] for e in body["errors"]] == ["query.limit"]
    assert sample.get(f"{THING}?tag=a&tag=b").json["tags"] == ["a", "b"]  # a list stays one


def test_weak_etag_matches_and_head_is_cacheable_like_get(sample: Client) -> None:
    etag = sample.get(THING).headers["ETag"]
    assert sample.get(THING, headers={"If-None-Match": f"W/{etag}"}).status_code == 304
    head = sample.head(THING)
    assert head.status_code == 200
    assert head.headers["ETag"] == etag
    assert head.headers["Cache-Control"] == "public, max-age=30"
    assert head.get_data() == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (b"GET / / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_the_dev_servers_own_refusals_are_problem_documents(
    live_server: str, request_bytes: bytes, status: int
) -> None:
    """What the HTTP server refuses before any unit sees the request (request line or
    header too long, malformed request) is a problem document too, not an HTML page."""
    import json
    import socket

    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode()
    assert b"Content-Type: application/problem+json" in head
    document = json.loads(body)
    assert document["status"] == status and document["title"] and document["request_id"]
