"""Tests of wicket.pki.keys: key types, PEM forms and private files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from wicket.errors import BadParameter
from wicket.pki.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    write_private_file,
)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so only the code's own modes keep files private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def spki_pem(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_generated_key_is_p256_and_round_trips() -> None:
    key = generate_private_key()
    assert isinstance(key.curve, ec.SECP256R1)
    loaded = load_private_key(private_key_pem(key))
    assert loaded.private_numbers() == key.private_numbers()
    assert private_key_pem(key).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_public_key_pem_round_trip() -> None:
    key = generate_private_key()
    assert public_key_pem(key) == public_key_pem(key.public_key())
    loaded = load_public_key(public_key_pem(key))
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert loaded.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    "make",
    [
        ed25519.Ed25519PrivateKey.generate,
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
)
def test_other_accepted_public_keys(make: Any) -> None:
    key = make()
    assert public_key_pem(load_public_key(spki_pem(key))) == spki_pem(key)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA 1024"),  # noqa: S505
        (lambda: ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
        (lambda: dsa.generate_private_key(key_size=2048), "DSAPublicKey"),
    ],
)
def test_weak_or_unsupported_public_keys_refused(make: Any, message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        load_public_key(spki_pem(make()))


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n", b"x" * 20000]
)
def test_garbage_public_key(data: bytes) -> None:
    with pytest.raises(BadParameter):
        load_public_key(data)


def test_private_key_of_other_type_refused() -> None:
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(BadParameter, match="P-256"):
        load_private_key(other)
    with pytest.raises(BadParameter, match="cannot read"):
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    encrypted = generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(BadParameter):
        load_private_key(encrypted)


def test_private_file_is_0600_and_parents_0700(tmp_path: Path, open_umask: None) -> None:
    target = tmp_path / "home" / ".wsh" / "keys" / "alice.key"
    write_private_file(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    for directory in (target.parent, target.parent.parent, target.parent.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in target.parent.iterdir()) == ["alice.key"]  # no temp left


def test_existing_directory_mode_untouched(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)  # noqa: S103 (a shared parent is left as it is)
    write_private_file(tmp_path / "k", b"x")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_private_file_replaces_a_world_readable_file(tmp_path: Path, open_umask: None) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_private_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_private_file_is_private_from_the_instant_it_exists(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observe every file the writer creates right at creation, before any byte is written."""
    seen: list[tuple[str, int]] = []
    real_open = os.open

    def watching_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        descriptor = real_open(path, flags, mode, **kwargs)
        if flags & os.O_CREAT:
            seen.append((os.fspath(path), stat.S_IMODE(os.fstat(descriptor).st_mode)))
        return descriptor

    monkeypatch.setattr(os, "open", watching_open)
    write_private_file(tmp_path / "key.pem", b"secret")
    assert seen, "the writer must create its file with os.open"
    assert all(mode == 0o600 for _, mode in seen), seen


def test_private_file_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    (target / "child").write_bytes(b"")
    with pytest.raises(OSError):
        write_private_file(target, b"secret")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir-in-the-way"]
