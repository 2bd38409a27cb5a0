"""Auth service domain layer: TOTP second factor (RFC 6238, 30 s steps, 6 digits).

Codes are checked one step either side (clock skew) and each step is accepted once
per user: the caller stores the returned counter and passes it back as `after`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import datetime

import pyotp
import segno

from wicket.auth.store import RandomBytes

OTP_ISSUER = "Wicket"
OTP_STEP_SECONDS = 30
OTP_DIGITS = 6
SECRET_BYTES = 20


def new_secret(random_bytes: RandomBytes = secrets.token_bytes) -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return base64.b32encode(random_bytes(SECRET_BYTES)).decode("ascii")


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://` URI an authenticator app enrolls from (issuer Wicket)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=OTP_ISSUER)


def qr_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code for the invite page."""
    return segno.make(uri, error="m").svg_inline(scale=4)


def verify_code(secret: str, code: str, at: datetime, *, after: int | None = None) -> int | None:
    """The TOTP counter `code` matches at `at` (+-1 step), or None; counters <= `after` refused."""
    code = code.strip().replace(" ", "")
    if len(code) != OTP_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret, digits=OTP_DIGITS, interval=OTP_STEP_SECONDS)
    current = int(at.timestamp()) // OTP_STEP_SECONDS
    for counter in (current - 1, current, current + 1):
        expected = totp.at(counter * OTP_STEP_SECONDS)
        if hmac.compare_digest(expected, code) and (after is None or counter > after):
            return counter
    return None
