"""Server credentials for gRPC: TLS, or mutual TLS with a client CA, checked before start.

grpc reports a bad certificate only as "Failed to bind to address", so the files are read and
checked here first: a missing, unreadable or mismatched file stops start-up with a message that
names the setting and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sentiric_tts.settings import Settings


class TlsConfigError(RuntimeError):
    """The gRPC TLS settings point at files that are missing or not usable."""


@dataclass(frozen=True)
class TlsFiles:
    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.mutual,
        )


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{setting}={path}: cannot read the file ({exc.strerror or exc}).") from exc


def _certificates(setting: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsConfigError(f"{setting}={path}: not a PEM certificate ({exc}).") from exc
    return certificates


def load_tls(settings: Settings) -> TlsFiles | None:
    """The TLS material the settings name, checked; None when gRPC runs without TLS."""
    if settings.grpc.tls_cert is None or settings.grpc.tls_key is None:
        return None
    cert_path, key_path = settings.grpc.tls_cert, settings.grpc.tls_key
    chain = _read("TTS_GRPC_TLS_CERT", cert_path)
    key_data = _read("TTS_GRPC_TLS_KEY", key_path)
    leaf = _certificates("TTS_GRPC_TLS_CERT", cert_path, chain)[0]
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsConfigError(
            f"TTS_GRPC_TLS_KEY={key_path}: not an unencrypted PEM private key ({exc})."
        ) from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise TlsConfigError(
            f"TTS_GRPC_TLS_KEY={key_path} is not the private key of the certificate in {cert_path}."
        )
    client_ca = None
    if settings.grpc.tls_client_ca is not None:
        ca_path = settings.grpc.tls_client_ca
        client_ca = _read("TTS_GRPC_TLS_CLIENT_CA", ca_path)
        _certificates("TTS_GRPC_TLS_CLIENT_CA", ca_path, client_ca)
    return TlsFiles(cert_chain=chain, private_key=key_data, client_ca=client_ca)
