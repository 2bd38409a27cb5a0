"""localdocdb's other faces: mongodb mode with X.509, the legacy-CN certificate, persistence."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from localdocdb.process import LocalDocDBProcess, localdocdb_executable
from tests.support.clients import StartDocDB


def issue_client_cert(tls_dir: Path, subject: str, out: Path) -> str:
    """Use the CLI as a user would; return the subject as MongoDB names the user."""
    subprocess.run(
        [
            *localdocdb_executable(),
            "cert",
            "client",
            "--tls-dir",
            str(tls_dir),
            "--subject",
            subject,
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert out.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    return cert.subject.rfc4514_string()


def x509_client(server: LocalDocDBProcess, cert_file: Path) -> MongoClient[dict[str, Any]]:
    return MongoClient(
        "localhost",
        server.port,
        tls=True,
        tlsCAFile=str(server.ca_file),
        tlsCertificateKeyFile=str(cert_file),
        authMechanism="MONGODB-X509",
        serverSelectionTimeoutMS=5000,
    )


def test_mongodb_mode_x509(start_localdocdb: StartDocDB, tmp_path: Path) -> None:
    server = start_localdocdb("--mode", "mongodb")
    subject = issue_client_cert(server.tls_dir, "CN=alice,OU=eng,O=Example", tmp_path / "alice.pem")
    stranger = issue_client_cert(server.tls_dir, "CN=mallory,O=Example", tmp_path / "mallory.pem")
    assert subject == "CN=alice,OU=eng,O=Example"
    with MongoClient(server.uri(), serverSelectionTimeoutMS=5000) as admin:
        assert (
            "MONGODB-X509"
            in admin.admin.command("getParameter", 1, authenticationMechanisms=1)[
                "authenticationMechanisms"
            ]
        )
        admin["$external"].command(
            "createUser", subject, roles=[{"role": "readWrite", "db": "app"}]
        )
    with x509_client(server, tmp_path / "alice.pem") as alice:
        status = alice.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": subject, "db": "$external"}]
        alice.app.items.insert_one({"ok": True})
        assert alice.app.items.count_documents({}) == 1
    with (
        x509_client(server, tmp_path / "mallory.pem") as mallory,
        pytest.raises(OperationFailure) as failure,
    ):
        mallory.admin.command("ping")
    assert failure.value.code == 18
    assert stranger != subject


def test_docdb_mode_refuses_x509_and_mongodb_mode_refuses_aws(start_localdocdb: StartDocDB) -> None:
    docdb = start_localdocdb("--mode", "docdb")
    with MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000) as client:
        mechanisms = client.admin.command("getParameter", 1, authenticationMechanisms=1)
        assert "MONGODB-AWS" in mechanisms["authenticationMechanisms"]
        assert "MONGODB-X509" not in mechanisms["authenticationMechanisms"]
        reply = client["$external"].command(
            "authenticate", 1, mechanism="MONGODB-X509", check=False
        )
        assert reply["ok"] == 0.0


def test_legacy_cn_certificate_has_no_subject_alt_name(start_localdocdb: StartDocDB) -> None:
    server = start_localdocdb("--legacy-cn-cert")
    cert = x509.load_pem_x509_certificate((server.tls_dir / "server-legacy-cn.pem").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    # A client that, like Go's crypto/tls, no longer falls back to the Common Name refuses it ...
    strict = ssl.create_default_context(cafile=str(server.ca_file))
    strict.hostname_checks_common_name = False
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError) as failure,
    ):
        strict.wrap_socket(raw, server_hostname="localhost")
    assert "hostname" in str(failure.value).lower()
    # ... while the same CA-signed certificate is otherwise valid (OpenSSL's CN fallback).
    with MongoClient(server.uri(), serverSelectionTimeoutMS=5000) as client:
        assert client.admin.command("ping")["ok"] == 1.0


def test_data_dir_survives_kill_9(start_localdocdb: StartDocDB, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tls_dir = tmp_path / "tls-persist"
    first = start_localdocdb("--data-dir", str(data_dir), tls_dir=tls_dir)
    with MongoClient(first.uri(), serverSelectionTimeoutMS=5000) as client:
        client.shop.orders.insert_many([{"n": i} for i in range(100)])
        client.shop.orders.create_index("n", unique=True)
        client.shop.command("createUser", "clerk", pwd="clerk-pw", roles=["read"])
        client.shop.orders.update_one({"n": 5}, {"$set": {"status": "paid"}})
        client.shop.orders.delete_one({"n": 7})
    first.kill()
    second = start_localdocdb("--data-dir", str(data_dir), tls_dir=tls_dir)
    uri = f"mongodb://clerk:clerk-pw@localhost:{second.port}/?tls=true&tlsCAFile={second.ca_file}&authSource=shop"
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as clerk:
        orders = clerk.shop.orders
        assert orders.count_documents({}) == 99
        assert orders.find_one({"n": 5})["status"] == "paid"
        assert orders.find_one({"n": 7}) is None
        names = {index["name"] for index in orders.list_indexes()}
        assert names == {"_id_", "n_1"}
    for path in data_dir.iterdir():
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
