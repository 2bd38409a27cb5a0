"""Private and public keys (PKI layer): generation, PEM forms, and private files on disk.

Wicket's own keys are ECDSA P-256 (docs/architecture.md). Public keys sent to the
auth service for signing may also be Ed25519 or RSA of at least 2048 bits; nothing
weaker or more exotic is accepted. Key files are created 0600 (never readable by
anyone else, not even for an instant) and replaced atomically.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wicket.errors import BadParameter

MAX_KEY_PEM = 16 * 1024
MIN_RSA_BITS = 2048

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key, the kind every Wicket CA and client uses."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the file itself is what is protected: 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted P-256 private key from PEM; anything else is a BadParameter."""
    if len(pem) > MAX_KEY_PEM:
        raise BadParameter(f"private key PEM is {len(pem)} bytes, over {MAX_KEY_PEM}")
    try:
        key = serialization.load_pem_private_key(bytes(pem), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadParameter(f"cannot read the private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BadParameter(f"private key must be ECDSA P-256, not {_describe(key)}")
    return key


def public_key_pem(key: ec.EllipticCurvePrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of a key (given the private key, of its public half)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_public_key(key: object) -> PublicKey:
    """Accept only EC P-256, Ed25519 and RSA >= 2048 public keys."""
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise BadParameter(
        f"public key {_describe(key)} is not accepted "
        f"(use ECDSA P-256, Ed25519 or RSA of at least {MIN_RSA_BITS} bits)"
    )


def load_public_key(pem: bytes) -> PublicKey:
    """Load a SubjectPublicKeyInfo PEM, refusing weak or unsupported key types."""
    if len(pem) > MAX_KEY_PEM:
        raise BadParameter(f"public key PEM is {len(pem)} bytes, over {MAX_KEY_PEM}")
    try:
        key = serialization.load_pem_public_key(bytes(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadParameter(f"cannot read the public key: {exc}") from exc
    return check_public_key(key)


def _describe(key: object) -> str:
    """A short name for a key type, for error messages."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def _make_private_directory(directory: Path) -> None:
    """Create every missing level of `directory` with mode 0700 (existing ones untouched)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(level, 0o700)  # mkdir's mode is filtered by the umask; make it exact


def write_private_file(path: Path, data: bytes) -> None:
    """Write a secret: created 0600 (via os.open's mode, never wider), then renamed into place.

    Missing parent directories are created 0700. The file is written to a unique
    temporary name in the same directory, flushed to disk, and atomically renamed,
    so readers see either the old or the new content, never a partial key.
    """
    path = Path(path)
    _make_private_directory(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o600)
    try:
        try:
            os.fchmod(descriptor, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
