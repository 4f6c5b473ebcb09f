"""Cloud Storage, locally: gcp-storage-emulator on loopback plus a locally generated
service-account key, so the real google-cloud-storage client signs real V4 URLs.
(The emulator does not check signatures or expiry; tests check the URLs' fields instead.)"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
                "token_uri": "https://oauth2.googleapis.com/token",  # nosec B105
            }
        )
    )
    path.chmod(0o600)
    return path


class LocalStorage:
    """Start the emulator (in memory, or keeping objects under `data_dir`) and point the
    app's settings at it through the environment; `stop()` restores nothing but the server."""

    def __init__(self, data_dir: Path | None, bucket: str) -> None:
        self.data_dir = data_dir
        self.bucket = bucket
        self._server: Any = None

    def start(self) -> dict[str, str]:
        from gcp_storage_emulator.server import create_server

        port = _free_port()
        self._server = create_server(
            "127.0.0.1",
            port,
            in_memory=self.data_dir is None,
            default_bucket=self.bucket,
            data_dir=str(self.data_dir.resolve()) if self.data_dir else None,
        )
        self._server.start()
        keys = self.data_dir or Path(tempfile.mkdtemp(prefix="imangor-storage-")) / "objects"
        env = {
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
            "STORAGE_BUCKET": self.bucket,
            "STORAGE_PROJECT": "imangor-local",
            "STORAGE_SIGNING_KEY_FILE": str(signing_key_file(keys.parent / "signer")),
        }
        os.environ.update(env)
        return env

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> dict[str, str]:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
