"""gRPC over TLS and mutual TLS; start-up fails loudly on unusable TLS files or a taken port."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sentiric_tts.app import create_app
from sentiric_tts.doors.grpc.contract import pb
from sentiric_tts.doors.grpc.server import GrpcStartupError
from sentiric_tts.doors.grpc.tls import TlsConfigError
from tests.support.audio import parse_wav
from tests.support.grpc_client import grpc_service, run, stub
from tests.support.server import free_port, isolated_settings


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, item: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test CA", ca_key, None, ca=True)
    server_key, client_key = _key(), _key()
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    return Pki(
        ca=_write(folder / "ca.pem", ca),
        server_cert=_write(folder / "server.pem", _cert("tts server", server_key, (ca, ca_key), names=names)),
        server_key=_write(folder / "server.key", server_key),
        client_cert=_write(folder / "client.pem", _cert("tts gateway", client_key, (ca, ca_key))),
        client_key=_write(folder / "client.key", client_key),
    )


async def _speak(target: str, credentials: grpc.ChannelCredentials) -> bytes:
    async with grpc.aio.secure_channel(target, credentials) as channel:
        request = pb.CoquiSynthesizeRequest(text="Over a secure channel.")
        return bytes((await stub(channel).CoquiSynthesize(request, timeout=60)).audio_content)


def test_mutual_tls_serves_clients_with_a_certificate_and_refuses_others(tmp_path: Path, pki: Pki) -> None:
    with grpc_service(
        tmp_path, grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.server_key, grpc_tls_client_ca=pki.ca
    ) as service:
        ca = pki.ca.read_bytes()
        with_cert = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=pki.client_key.read_bytes(),
            certificate_chain=pki.client_cert.read_bytes(),
        )
        rate, _, samples = parse_wav(run(lambda: _speak(service.target, with_cert)))
        assert rate == 22050 and len(samples) > 0
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            run(lambda: _speak(service.target, grpc.ssl_channel_credentials(root_certificates=ca)))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError):  # nor in plaintext
            run(lambda: _speak_plain(service.target))


async def _speak_plain(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await stub(channel).CoquiSynthesize(pb.CoquiSynthesizeRequest(text="Plain."), timeout=10)


def test_server_only_tls(tmp_path: Path, pki: Pki) -> None:
    with grpc_service(tmp_path, grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.server_key) as service:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
        assert parse_wav(run(lambda: _speak(service.target, credentials)))[0] == 22050


def _start(tmp_path: Path, **overrides: object) -> None:
    """Run the app's start-up (and shutdown) as uvicorn would."""
    app = create_app(
        isolated_settings(tmp_path, **{"grpc_enabled": True, "grpc_port": free_port(), **overrides})
    )

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(lifespan())


def test_unusable_tls_files_stop_the_start_up(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TlsConfigError, match=re.escape(f"TTS_GRPC_TLS_CERT={missing}: cannot read")):
        _start(tmp_path, grpc_tls_cert=missing, grpc_tls_key=pki.server_key)
    with pytest.raises(TlsConfigError, match="is not the private key"):
        _start(tmp_path, grpc_tls_cert=pki.server_cert, grpc_tls_key=pki.client_key)
    with pytest.raises(TlsConfigError, match=r"TTS_GRPC_TLS_CLIENT_CA=.*not a PEM certificate"):
        _start(
            tmp_path,
            grpc_tls_cert=pki.server_cert,
            grpc_tls_key=pki.server_key,
            grpc_tls_client_ca=pki.client_key,
        )


def test_the_process_exits_when_grpc_cannot_start(tmp_path: Path, pki: Pki) -> None:
    env = {
        **os.environ,
        "TTS_DATA_DIR": str(tmp_path),
        "TTS_ENGINE": "piper",
        "TTS_PORT": str(free_port()),
        "TTS_GRPC_PORT": str(free_port()),
        "TTS_GRPC_TLS_CERT": str(tmp_path / "nowhere.pem"),
        "TTS_GRPC_TLS_KEY": str(pki.server_key),
    }
    finished = subprocess.run(
        [sys.executable, "-m", "sentiric_tts", "serve", "--host", "127.0.0.1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode != 0
    assert "nowhere.pem: cannot read the file" in finished.stdout + finished.stderr


def test_a_taken_grpc_port_stops_the_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GrpcStartupError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            _start(tmp_path, grpc_host="127.0.0.1", grpc_port=port)
