"""Cloud Storage, locally: gcp-storage-emulator on loopback plus a locally generated
service-account key, so the real google-cloud-storage client signs real V4 URLs.

The emulator accepts any signed URL without looking at it, so a client mistake (wrong content
type, missing signed header, expired URL, body of another size) would only show up in
production. Here every request carrying a V4 signature is checked first, the way Cloud Storage
checks it, and refused with Cloud Storage's status and XML error; unsigned requests (the client
library's own API calls, anonymous locally) reach the emulator unchanged.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from functools import partial
from http.server import HTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ALGORITHM = "GOOG4-RSA-SHA256"
SIGNED_URL_PARAMS = (
    "X-Goog-Algorithm",
    "X-Goog-Credential",
    "X-Goog-Date",
    "X-Goog-Expires",
    "X-Goog-SignedHeaders",
    "X-Goog-Signature",
)
MAX_EXPIRES = 7 * 24 * 3600  # V4 signed URLs live at most seven days


# A public URL, no secret (bandit reads "token" in the name as a password).
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105  # nosec B105


def signing_key_file(directory: Path) -> Path:
    """A service-account JSON with a fresh RSA key (created once per directory)."""
    path = directory / "signing-account.json"
    if path.exists():
        return path
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "imangor-local",
                "private_key_id": "local",
                "private_key": pem,
                "client_email": "files@imangor-local.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": GOOGLE_TOKEN_URI,
            }
        )
    )
    path.chmod(0o600)
    return path


def public_key(key_file: Path) -> RSAPublicKey:
    """The public half of the signing key: what Cloud Storage knows of the service account."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(json.loads(key_file.read_text())["private_key"].encode(), None)
    assert isinstance(key, RSAPrivateKey)
    return key.public_key()


@dataclass(frozen=True)
class Refusal:
    """An error as Cloud Storage's XML API answers it: status, then an <Error> document."""

    status: int
    code: str
    message: str
    details: str
    extra: dict[str, str] = field(default_factory=dict)

    def xml(self) -> bytes:
        elements = {"Code": self.code, "Message": self.message, "Details": self.details}
        body = "".join(
            f"<{name}>{html.escape(text, quote=False)}</{name}>"
            for name, text in (elements | self.extra).items()
        )
        return f"<?xml version='1.0' encoding='UTF-8'?><Error>{body}</Error>".encode()


def _malformed(details: str, parameter: str) -> Refusal:
    return Refusal(
        400,
        "MalformedSecurityHeader",
        "Your request has a malformed header.",
        details,
        {"ParameterName": parameter},
    )


def check_signed_request(
    method: str,
    target: str,
    headers: Message,
    body_length: int | None,
    key: RSAPublicKey,
    now: datetime,
) -> Refusal | None:
    """Why Cloud Storage would refuse this request (None: it would not, or it is unsigned).

    `target` is the request line's path and query as sent; `body_length` is None when the
    request does not declare a Content-Length. Checks run in Cloud Storage's order: the URL's
    own parameters, expiry, the signature over the canonical request (which covers the method,
    path, query and every signed header's value), then the body's length.
    """
    path, _, raw_query = target.partition("?")
    params = parse_qsl(raw_query, keep_blank_values=True)
    if not any(name.lower() in ("x-goog-algorithm", "x-goog-signature") for name, _ in params):
        return None
    query = dict(params)
    for name in SIGNED_URL_PARAMS:  # matched as spelled: a lower-cased one counts as missing
        if name not in query:
            return _malformed(f"Missing required parameter {name}.", name)
    if query["X-Goog-Algorithm"] != ALGORITHM:
        return _malformed(f"Unsupported algorithm {query['X-Goog-Algorithm']}.", "X-Goog-Algorithm")
    try:
        signed_at = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return _malformed("Date not in valid ISO 8601 format.", "X-Goog-Date")
    expires = query["X-Goog-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_EXPIRES:
        return _malformed(f"Expires must be between 1 and {MAX_EXPIRES}.", "X-Goog-Expires")

    expiry = signed_at + timedelta(seconds=int(expires))
    if now > expiry:
        return Refusal(
            400,
            "ExpiredToken",
            "The provided token has expired.",
            f"Request signature expired at: {expiry.isoformat()}",
        )

    signed_names = query["X-Goog-SignedHeaders"].split(";")
    missing = [name for name in signed_names if headers.get(name) is None]
    # The body is part of the signature only when its hash is a signed header.
    payload = "UNSIGNED-PAYLOAD"
    if "x-goog-content-sha256" in signed_names:
        payload = headers.get("x-goog-content-sha256", "")
    # Rebuilt from what was received, line by line as the signer built it from what it meant
    # to send: any difference in method, path, query or a signed header breaks the signature.
    canonical_request = "\n".join(
        [
            method,
            quote(unquote(path), safe="/~"),
            "&".join(
                sorted(
                    f"{quote(name, safe='~')}={quote(value, safe='~')}"
                    for name, value in params
                    if name != "X-Goog-Signature"
                )
            ),
            "".join(f"{name}:{_header_value(headers, name)}\n" for name in signed_names),
            query["X-Goog-SignedHeaders"],
            payload,
        ]
    )
    scope = query["X-Goog-Credential"].partition("/")[2]
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    if missing or not _verifies(key, query["X-Goog-Signature"], string_to_sign):
        details = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your Google secret key and signing method."
        )
        if missing:  # Cloud Storage leaves this to the canonical request; locally, say it
            details += f" (Signed headers missing from the request: {', '.join(missing)}.)"
        return Refusal(
            403,
            "SignatureDoesNotMatch",
            "Access denied.",
            details,
            {"StringToSign": string_to_sign, "CanonicalRequest": canonical_request},
        )

    length_range = headers.get("x-goog-content-length-range")
    if length_range is not None:
        return _check_length(length_range, body_length)
    return None


def _header_value(headers: Message, name: str) -> str:
    """A header's canonical value: repeated headers joined by commas, whitespace folded."""
    return ",".join(" ".join(value.split()) for value in headers.get_all(name) or [])


def _verifies(key: RSAPublicKey, signature: str, string_to_sign: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256

    try:
        key.verify(bytes.fromhex(signature), string_to_sign.encode(), PKCS1v15(), SHA256())
    except (ValueError, InvalidSignature):
        return False
    return True


def _check_length(length_range: str, body_length: int | None) -> Refusal | None:
    """x-goog-content-length-range: MIN,MAX bounds the body Cloud Storage accepts."""
    low, _, high = length_range.partition(",")
    if not (low.strip().isdigit() and high.strip().isdigit()):
        return Refusal(
            400,
            "InvalidArgument",
            "Invalid argument.",
            f"x-goog-content-length-range must be MIN,MAX, not {length_range!r}.",
        )
    if body_length is None:
        # Cloud Storage takes chunked V4 uploads only with x-amz-decoded-content-length; no
        # client here sends those, so a signed upload must say how long it is.
        return Refusal(
            411, "MissingContentLength", "You must provide the Content-Length HTTP header.", ""
        )
    if body_length > int(high):
        return Refusal(
            400,
            "EntityTooLarge",
            "Your proposed upload is larger than the maximum object size specified in your "
            "Policy Document.",
            "Content-length exceeds upper bound on range",
        )
    if body_length < int(low):
        return Refusal(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum object size specified in your "
            "Policy Document.",
            "Content-length is smaller than lower bound on range",
        )
    return None


def _handler_class() -> Any:
    """The emulator's request handler, checking signed requests before it routes them."""
    from gcp_storage_emulator.server import RequestHandler

    class VerifyingHandler(RequestHandler):  # type: ignore[misc]
        def __init__(self, storage: Any, key: RSAPublicKey, *args: Any) -> None:
            self.signing_key = key  # set first: the base class handles the request in __init__
            super().__init__(storage, *args)

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            length = self.headers.get("Content-Length")
            body_length = int(length) if length and length.isdigit() else None
            if body_length is None and not self.headers.get("Transfer-Encoding"):
                body_length = 0  # no body at all (GET, DELETE)
            refusal = check_signed_request(
                self.command,
                self.path,
                self.headers,
                body_length,
                self.signing_key,
                datetime.now(UTC),
            )
            if refusal is None:
                return True  # on to the emulator's do_GET/do_PUT/...
            # Read what the client sends before answering: closing a socket with unread
            # data resets the connection, and the client would see that instead of the error.
            self.rfile.read(body_length or 0)
            body = refusal.xml()
            self.send_response(refusal.status)
            self.send_header("Content-Type", "application/xml; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return False

    return VerifyingHandler


class LocalStorage:
    """Start the emulator (in memory, or keeping objects under `data_dir`) behind the signed
    request checks and point the app's settings at it through the environment; `stop()`
    restores nothing but the server."""

    def __init__(self, data_dir: Path | None, bucket: str) -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> dict[str, str]:
        from gcp_storage_emulator.handlers.buckets import create_bucket
        from gcp_storage_emulator.storage import Storage

        keys = self.data_dir or Path(tempfile.mkdtemp(prefix="imangor-storage-")) / "objects"
        key_file = signing_key_file(keys.parent / "signer")
        # What gcp_storage_emulator.server.create_server builds, with our handler in front.
        storage = Storage(
            use_memory_fs=self.data_dir is None,
            data_dir=str(self.data_dir.resolve()) if self.data_dir else None,
        )
        create_bucket(self.bucket, storage)
        handler = partial(_handler_class(), storage, public_key(key_file))
        self._server = HTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-storage", daemon=True
        )
        self._thread.start()
        env = {
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self._server.server_address[1]}",
            "STORAGE_BUCKET": self.bucket,
            "STORAGE_PROJECT": "imangor-local",
            "STORAGE_SIGNING_KEY_FILE": str(key_file),
        }
        os.environ.update(env)
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> dict[str, str]:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
