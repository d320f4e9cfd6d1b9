"""`core.tls_cert`/`core.tls_key`: the core over TLS, with a self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import Core, Project


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_the_core_serves_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    project = Project(tmp_path / "proj")
    project.write_config(f"core: {{tls_cert: {cert}, tls_key: {key}}}\n")
    project.add_users()
    core = Core(project, scheme_ok="https", verify=str(cert))
    try:
        assert core.url.startswith("https://127.0.0.1:")
        r = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "tls"})
        assert r.status_code == 201, r.text
        with pytest.raises(requests.exceptions.SSLError):  # not trusted without the cert
            core.call("GET", "/healthz", user=None, verify=True)
        with pytest.raises(requests.ConnectionError):  # no plain HTTP on the TLS port
            requests.get(core.url.replace("https://", "http://") + "/healthz", timeout=5)
    finally:
        core.stop()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path)
    project = Project(tmp_path / "proj")
    project.write_config(f"core: {{tls_cert: {cert}}}\n")
    code, _ = project.cli("core", "serve")
    assert code == 2


def test_unusable_tls_files_and_a_busy_port_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(tmp_path / "proj")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    project.write_config(f"core: {{tls_cert: {tmp_path}/bad.pem, tls_key: {tmp_path}/bad.pem}}\n")
    capsys.readouterr()
    code, _ = project.cli("core", "serve", "--port", "0")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "core.tls_cert" in err[-1] and "bad.pem" in err[-1], err

    project.write_config()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _ = project.cli("core", "serve", "--port", str(port))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "core.port" in err[-1] and str(port) in err[-1], err
