"""Tests of wicket.tlsconfig: real TLS handshakes on loopback with certificates from our CAs."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import stat
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from wicket.errors import AccessDenied, BadParameter, LocalProtocolError
from wicket.identity import DatabaseRoute, HostRole, Identity, IdentityKind
from wicket.pki.authority import (
    CAKind,
    CertificateAuthority,
    CertificatePurpose,
    verify_certificate,
)
from wicket.pki.keys import generate_private_key, private_key_pem
from wicket.pki.pem import certificate_pem
from wicket.tlsconfig import _secret_path, client_context, peer_certificate, server_context

TIMEOUT = 5.0
CLUSTER = "example"


@dataclass(frozen=True)
class Credentials:
    """A certificate chain and its key, as PEM."""

    chain: bytes
    key: bytes
    cert: x509.Certificate


@dataclass
class Cluster:
    """The CAs of one cluster and helpers to issue certificates from them."""

    name: str
    user_ca: CertificateAuthority
    host_ca: CertificateAuthority

    @classmethod
    def create(cls, name: str) -> Cluster:
        return cls(
            name,
            CertificateAuthority.create(CAKind.USER, name),
            CertificateAuthority.create(CAKind.HOST, name),
        )

    def user(
        self, name: str = "alice", *, ttl: timedelta = timedelta(hours=12), **kw: object
    ) -> Credentials:
        key = generate_private_key()
        identity = Identity(
            cluster=self.name,
            kind=IdentityKind.USER,
            name=name,
            roles=("access",),
            route=DatabaseRoute("my-docdb", "mongodb", "u", "test"),
        )
        cert = self.user_ca.issue(key.public_key(), identity, ttl=ttl, **kw)  # type: ignore[arg-type]
        return Credentials(certificate_pem(cert), private_key_pem(key), cert)

    def proxy(self) -> Credentials:
        key = generate_private_key()
        identity = Identity(
            cluster=self.name,
            kind=IdentityKind.HOST,
            name="proxy",
            host_id="proxy-1",
            host_role=HostRole.PROXY,
        )
        cert = self.host_ca.issue(
            key.public_key(),
            identity,
            ttl=timedelta(days=365),
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
            server=True,
        )
        # Leaf followed by its CA, as a server sends it.
        chain = certificate_pem(cert) + self.host_ca.cert_pem()
        return Credentials(chain, private_key_pem(key), cert)


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster.create(CLUSTER)


@pytest.fixture(scope="module")
def proxy(cluster: Cluster) -> Credentials:
    return cluster.proxy()


@dataclass
class Outcome:
    """What each side of one handshake saw."""

    server_error: BaseException | None = None
    client_error: BaseException | None = None
    server_peer: x509.Certificate | None = None
    client_peer: x509.Certificate | None = None
    server_alpn: str | None = None
    client_alpn: str | None = None
    version: str | None = None
    cipher: str | None = None
    compression: str | None = None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str | None = "localhost"
) -> Outcome:
    """One TLS connection over loopback with plain sockets and a server thread."""
    outcome = Outcome()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            connection, _ = listener.accept()
            connection.settimeout(TIMEOUT)
            with server.wrap_socket(connection, server_side=True) as tls:
                outcome.server_peer = peer_certificate(tls)
                outcome.server_alpn = tls.selected_alpn_protocol()
                tls.sendall(b"ok")
                tls.recv(16)  # wait for the client's goodbye
        except (OSError, ssl.SSLError) as exc:
            outcome.server_error = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with client.wrap_socket(raw, server_hostname=server_hostname) as tls:
            outcome.client_peer = peer_certificate(tls)
            outcome.client_alpn = tls.selected_alpn_protocol()
            outcome.version = tls.version()
            cipher = tls.cipher()
            outcome.cipher = cipher[0] if cipher else None
            outcome.compression = tls.compression()
            # Under TLS 1.3 a refused client certificate shows up on the first read.
            if tls.recv(2) != b"ok":
                raise ConnectionError("server closed without answering")
            tls.sendall(b"bye")
    except (OSError, ssl.SSLError) as exc:
        outcome.client_error = exc
    finally:
        thread.join(TIMEOUT * 2)
        listener.close()
    assert not thread.is_alive()
    return outcome


def test_mutual_tls_and_identity_on_both_sides(cluster: Cluster, proxy: Credentials) -> None:
    alice = cluster.user()
    server = server_context(
        proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()], require_client_cert=True
    )
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=alice.chain, key_pem=alice.key
    )
    outcome = handshake(server, client)
    assert outcome.ok, outcome
    assert outcome.server_peer == alice.cert
    assert outcome.client_peer == proxy.cert
    assert outcome.compression is None
    assert outcome.version in {"TLSv1.2", "TLSv1.3"}
    assert outcome.server_peer is not None and outcome.client_peer is not None
    user = verify_certificate(
        outcome.server_peer, cluster.user_ca.certificate, cluster=CLUSTER, kinds={IdentityKind.USER}
    )
    assert user.name == "alice" and user.route is not None and user.route.service == "my-docdb"
    host = verify_certificate(
        outcome.client_peer,
        cluster.host_ca.certificate,
        cluster=CLUSTER,
        kinds={IdentityKind.HOST},
        purpose=CertificatePurpose.SERVER,
    )
    assert host.host_role is HostRole.PROXY


def test_tls12_uses_forward_secret_aead(cluster: Cluster, proxy: Credentials) -> None:
    server = server_context(proxy.chain, proxy.key)
    client = client_context(ca_pems=[cluster.host_ca.cert_pem()])
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = handshake(server, client)
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.2"
    assert outcome.cipher is not None and outcome.cipher.startswith("ECDHE-")
    assert "GCM" in outcome.cipher or "CHACHA20" in outcome.cipher


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_client_below_tls12_refused(cluster: Cluster, proxy: Credentials) -> None:
    server = server_context(proxy.chain, proxy.key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=cluster.host_ca.cert_pem().decode())
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    client.set_ciphers("ALL:@SECLEVEL=0")
    outcome = handshake(server, client)
    assert outcome.server_error is not None and outcome.client_error is not None


def test_required_client_certificate_missing(cluster: Cluster, proxy: Credentials) -> None:
    server = server_context(
        proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()], require_client_cert=True
    )
    client = client_context(ca_pems=[cluster.host_ca.cert_pem()])
    outcome = handshake(server, client)
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert outcome.client_error is not None


def test_optional_client_certificate(cluster: Cluster, proxy: Credentials) -> None:
    server = server_context(proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()])
    without = handshake(server, client_context(ca_pems=[cluster.host_ca.cert_pem()]))
    assert without.ok, without
    assert without.server_peer is None
    alice = cluster.user()
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=alice.chain, key_pem=alice.key
    )
    with_cert = handshake(server, client)
    assert with_cert.ok and with_cert.server_peer == alice.cert


def test_user_certificate_refused_where_host_required(cluster: Cluster, proxy: Credentials) -> None:
    """The proxy's one port trusts both CAs; the tunnel route then demands a host identity."""
    server = server_context(
        proxy.chain,
        proxy.key,
        client_cas=[cluster.user_ca.cert_pem(), cluster.host_ca.cert_pem()],
        require_client_cert=True,
        alpn=["wicket-tunnel"],
    )
    alice = cluster.user()
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()],
        cert_chain_pem=alice.chain,
        key_pem=alice.key,
        alpn=["wicket-tunnel"],
    )
    outcome = handshake(server, client)
    assert outcome.ok and outcome.server_alpn == "wicket-tunnel"
    assert outcome.server_peer is not None
    with pytest.raises(AccessDenied, match="a user certificate cannot be used here"):
        verify_certificate(
            outcome.server_peer,
            [cluster.user_ca.certificate, cluster.host_ca.certificate],
            cluster=CLUSTER,
            kinds={IdentityKind.HOST},
        )


def test_expired_user_certificate_refused(cluster: Cluster, proxy: Credentials) -> None:
    issued_at = datetime.now(UTC) - timedelta(hours=2)
    stale = cluster.user(ttl=timedelta(hours=1), clock=lambda: issued_at)
    server = server_context(
        proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()], require_client_cert=True
    )
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=stale.chain, key_pem=stale.key
    )
    outcome = handshake(server, client)
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError)
    assert "expired" in str(outcome.server_error)
    # With CERT_OPTIONAL-style application checks, our own verifier says the same.
    with pytest.raises(AccessDenied, match="certificate expired at"):
        verify_certificate(
            stale.cert, cluster.user_ca.certificate, cluster=CLUSTER, kinds={IdentityKind.USER}
        )


def test_certificate_from_another_cluster_refused(cluster: Cluster, proxy: Credentials) -> None:
    other = Cluster.create("other")
    mallory = other.user("mallory")
    server = server_context(
        proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()], require_client_cert=True
    )
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=mallory.chain, key_pem=mallory.key
    )
    outcome = handshake(server, client)
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError)
    with pytest.raises(AccessDenied, match="certificate is for cluster 'other', not 'example'"):
        verify_certificate(
            mallory.cert, cluster.user_ca.certificate, cluster=CLUSTER, kinds={IdentityKind.USER}
        )


def test_server_from_another_cluster_refused_by_client(
    cluster: Cluster, proxy: Credentials
) -> None:
    other = Cluster.create("example")  # same name, different CA
    client = client_context(ca_pems=[other.host_ca.cert_pem()])
    outcome = handshake(server_context(proxy.chain, proxy.key), client)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "selected"),
    [
        (["wicket-mongodb", "wicket-tunnel", "http/1.1"], ["wicket-mongodb"], "wicket-mongodb"),
        (["wicket-mongodb", "http/1.1"], ["h2", "http/1.1"], "http/1.1"),
        (["wicket-mongodb"], [], None),
    ],
)
def test_alpn_negotiated(
    cluster: Cluster,
    proxy: Credentials,
    server_alpn: list[str],
    client_alpn: list[str],
    selected: str | None,
) -> None:
    server = server_context(proxy.chain, proxy.key, alpn=server_alpn)
    client = client_context(ca_pems=[cluster.host_ca.cert_pem()], alpn=client_alpn)
    outcome = handshake(server, client)
    assert outcome.ok, outcome
    assert outcome.server_alpn == selected
    assert outcome.client_alpn == selected


def test_hostname_checked_unless_disabled(cluster: Cluster, proxy: Credentials) -> None:
    server = server_context(proxy.chain, proxy.key)
    strict = client_context(ca_pems=[cluster.host_ca.cert_pem()])
    wrong_name = handshake(server, strict, server_hostname="proxy.elsewhere.example")
    assert isinstance(wrong_name.client_error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(wrong_name.client_error)
    by_address = handshake(server, strict, server_hostname="127.0.0.1")
    assert by_address.ok, by_address
    relaxed = client_context(ca_pems=[cluster.host_ca.cert_pem()], check_hostname=False)
    assert handshake(server, relaxed, server_hostname="proxy.elsewhere.example").ok


def test_rsa_client_key(cluster: Cluster, proxy: Credentials) -> None:
    from cryptography.hazmat.primitives import serialization

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    identity = Identity(cluster=CLUSTER, kind=IdentityKind.USER, name="rsa-user")
    cert = cluster.user_ca.issue(key.public_key(), identity, ttl=timedelta(hours=1))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server = server_context(
        proxy.chain, proxy.key, client_cas=[cluster.user_ca.cert_pem()], require_client_cert=True
    )
    client = client_context(
        ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=certificate_pem(cert), key_pem=key_pem
    )
    outcome = handshake(server, client)
    assert outcome.ok and outcome.server_peer == cert


async def test_asyncio_streams_see_the_peer_identity(cluster: Cluster, proxy: Credentials) -> None:
    alice = cluster.user()
    server_ctx = server_context(
        proxy.chain,
        proxy.key,
        client_cas=[cluster.user_ca.cert_pem()],
        require_client_cert=True,
        alpn=["wicket-mongodb"],
    )
    seen: list[Identity] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = peer_certificate(ssl_object)
        assert peer is not None
        seen.append(
            verify_certificate(
                peer, cluster.user_ca.certificate, cluster=CLUSTER, kinds={IdentityKind.USER}
            )
        )
        writer.write(ssl_object.selected_alpn_protocol().encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client_ctx = client_context(
            ca_pems=[cluster.host_ca.cert_pem()],
            cert_chain_pem=alice.chain,
            key_pem=alice.key,
            alpn=["wicket-mongodb"],
        )
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), TIMEOUT
        )
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    assert answer == b"wicket-mongodb"
    assert [identity.name for identity in seen] == ["alice"]


def test_bad_inputs(cluster: Cluster, proxy: Credentials) -> None:
    other_key = private_key_pem(generate_private_key())
    with pytest.raises(BadParameter, match="do they match"):
        server_context(proxy.chain, other_key)
    with pytest.raises(BadParameter, match="needs the CAs"):
        server_context(proxy.chain, proxy.key, require_client_cert=True)
    with pytest.raises(BadParameter, match="not PEM"):
        server_context(b"junk", proxy.key)
    with pytest.raises(BadParameter, match="client CA"):
        server_context(
            proxy.chain,
            proxy.key,
            client_cas=[b"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"],
        )
    with pytest.raises(BadParameter, match="both the chain and the key"):
        client_context(ca_pems=[cluster.host_ca.cert_pem()], cert_chain_pem=proxy.chain)
    with pytest.raises(BadParameter, match="ALPN"):
        client_context(ca_pems=[cluster.host_ca.cert_pem()], alpn=[""])
    with pytest.raises(BadParameter, match="ALPN"):
        server_context(proxy.chain, proxy.key, alpn="http/1.1")


def test_peer_certificate_before_handshake(cluster: Cluster) -> None:
    context = client_context(ca_pems=[cluster.host_ca.cert_pem()])
    ssl_object = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(LocalProtocolError):
        peer_certificate(ssl_object)


@pytest.mark.parametrize("in_memory", [True, False])
def test_key_handover_file_is_private_and_short_lived(
    in_memory: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of handing the key to OpenSSL: never on disk, or 0600 and removed after."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    secret = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"
    with _secret_path(secret, in_memory=in_memory) as path:
        assert Path(path).read_bytes() == secret
        assert Path(path).read_bytes() == secret  # OpenSSL may open it more than once
        if not in_memory:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(tmp_path.iterdir()) == []
    assert not Path(path).exists()
