"""infra/local/storage.py: the local bucket refuses signed requests the way Cloud Storage does.

URLs come from imangor.storage (the real google-cloud-storage client, signing with the local
key) and go over real HTTP to the emulator; the errors are Cloud Storage's XML API errors.
"""

from __future__ import annotations

import html
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from imangor import storage

CONTENT = b"hello, imangor\n" * 10
SIZE = len(CONTENT)


@pytest.fixture(autouse=True)
def _storage(storage_emulator: str) -> None:
    """Every test here talks to the storage emulator."""


@pytest.fixture
def name() -> str:
    return f"checks/{uuid.uuid4()}.txt"


def upload_url(name: str, content_type: str = "text/plain", size: int = SIZE) -> str:
    return storage.signed_url(name, "PUT", 10, content_type=content_type, size=size)


def put(url: str, data: bytes = CONTENT, **headers: str) -> requests.Response:
    """PUT with the headers the upload URL was signed with (some changed: Content_Type=...)."""
    sent = {"Content-Type": "text/plain", "x-goog-content-length-range": f"{SIZE},{SIZE}"}
    sent |= {key.replace("_", "-"): value for key, value in headers.items()}
    return requests.put(url, data=data, headers=sent, timeout=10)


def with_param(url: str, param: str, value: str) -> str:
    return re.sub(rf"([?&]{param}=)[^&]*", rf"\g<1>{value}", url)


def error(response: requests.Response) -> dict[str, Any]:
    """The status and the <Error> document's fields, as Cloud Storage's XML API sends them."""
    assert response.headers["Content-Type"].startswith("application/xml")
    prolog, document = "<?xml version='1.0' encoding='UTF-8'?>", response.text
    assert document.startswith(f"{prolog}<Error>") and document.endswith("</Error>"), document
    fields = re.findall(
        r"<(\w+)>([^<]*)</\1>", document.removeprefix(f"{prolog}<Error>").removesuffix("</Error>")
    )
    return {"status": response.status_code} | {tag: html.unescape(text) for tag, text in fields}


def stored(name: str) -> bytes | None:
    blob = storage.bucket().get_blob(name)
    return None if blob is None else blob.download_as_bytes()


def test_a_correctly_signed_upload_is_stored(name: str) -> None:
    response = put(upload_url(name))
    assert response.status_code == 200, response.text
    assert stored(name) == CONTENT
    assert storage.bucket().get_blob(name).content_type == "text/plain"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: with_param(url, "X-Goog-Signature", "deadbeef"),
        lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),  # one hex digit off
        lambda url: with_param(url, "X-Goog-Expires", "6000"),  # the query is signed
        lambda url: url.replace("/checks/", "/elsewhere/"),  # so is the object's path
    ],
    ids=["deadbeef", "one-digit", "longer-expiry", "other-object"],
)
def test_a_tampered_upload_url_is_403(name: str, tamper: Any) -> None:
    response = put(tamper(upload_url(name)))
    assert error(response)["status"] == 403
    assert error(response)["Code"] == "SignatureDoesNotMatch"
    assert "GOOG4-RSA-SHA256" in error(response)["StringToSign"]
    assert stored(name) is None
    assert stored(name.replace("checks/", "elsewhere/")) is None


def test_a_wrong_content_type_is_403(name: str) -> None:
    response = put(upload_url(name), Content_Type="application/pdf")
    assert error(response)["Code"] == "SignatureDoesNotMatch"
    assert "content-type:application/pdf" in error(response)["CanonicalRequest"]
    assert stored(name) is None


@pytest.mark.parametrize("header", ["Content-Type", "x-goog-content-length-range"])
def test_a_missing_signed_header_is_403(name: str, header: str) -> None:
    url = upload_url(name)
    sent = {"Content-Type": "text/plain", "x-goog-content-length-range": f"{SIZE},{SIZE}"}
    del sent[header]
    response = requests.put(url, data=CONTENT, headers=sent, timeout=10)
    assert error(response)["status"] == 403
    assert error(response)["Code"] == "SignatureDoesNotMatch"
    assert f"missing from the request: {header.lower()}" in error(response)["Details"]
    assert stored(name) is None


@pytest.mark.parametrize(
    ("body", "code", "details"),
    [
        (CONTENT + b"!", "EntityTooLarge", "Content-length exceeds upper bound on range"),
        (CONTENT[:-1], "EntityTooSmall", "Content-length is smaller than lower bound on range"),
    ],
    ids=["one-byte-more", "one-byte-less"],
)
def test_a_body_outside_the_signed_length_range_is_400(
    name: str, body: bytes, code: str, details: str
) -> None:
    response = put(upload_url(name), data=body)
    assert error(response)["status"] == 400
    assert error(response)["Code"] == code
    assert error(response)["Details"] == details
    assert stored(name) is None


def test_an_expired_url_is_400(name: str) -> None:
    """Signed for three seconds by the real client (imangor.storage signs in minutes): it
    works, then, once X-Goog-Date + X-Goog-Expires has passed, it is refused."""
    from google.oauth2 import service_account

    storage.bucket().blob(name).upload_from_string(CONTENT, content_type="text/plain")
    load = service_account.Credentials.from_service_account_file
    credentials = load(os.environ["STORAGE_SIGNING_KEY_FILE"])
    url = (
        storage.bucket()
        .blob(name)
        .generate_signed_url(
            version="v4", expiration=timedelta(seconds=3), method="GET", credentials=credentials
        )
    )
    assert requests.get(url, timeout=10).content == CONTENT
    signed_at = re.search(r"X-Goog-Date=(\w+)", url)
    assert signed_at is not None
    signed = datetime.strptime(signed_at[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expiry = signed + timedelta(seconds=3)
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 1.1)
    response = requests.get(url, timeout=10)
    assert error(response)["status"] == 400
    assert error(response)["Code"] == "ExpiredToken"


def test_a_signed_download_works_and_a_tampered_one_is_403(name: str) -> None:
    storage.bucket().blob(name).upload_from_string(CONTENT, content_type="text/plain")
    url = storage.signed_url(name, "GET", 10)
    assert requests.get(url, timeout=10).content == CONTENT
    response = requests.get(with_param(url, "X-Goog-Signature", "deadbeef"), timeout=10)
    assert error(response)["status"] == 403
    assert error(response)["Code"] == "SignatureDoesNotMatch"
    # An upload URL is no download URL: the method is part of what was signed.
    assert error(requests.get(upload_url(name), timeout=10))["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    ("param", "value"),
    [("X-Goog-Expires", "0"), ("X-Goog-Date", "yesterday"), ("X-Goog-Credential", None)],
)
def test_a_malformed_signed_url_is_400(name: str, param: str, value: str | None) -> None:
    url = upload_url(name)
    url = re.sub(rf"&{param}=[^&]*", "", url) if value is None else with_param(url, param, value)
    response = put(url)
    assert error(response)["status"] == 400
    assert error(response)["Code"] == "MalformedSecurityHeader"
    assert error(response)["ParameterName"] == param


def test_unsigned_requests_reach_the_emulator_unchanged(name: str) -> None:
    """The client library's own API calls (anonymous locally) carry no signature."""
    blob = storage.bucket().blob(name)
    blob.upload_from_string(CONTENT, content_type="text/plain")
    assert stored(name) == CONTENT
    blob.delete()
    assert stored(name) is None
