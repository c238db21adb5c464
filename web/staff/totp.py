"""Time-based one-time passwords (RFC 6238, HMAC-SHA1, 6 digits, 30 s), and their secrets.

A small pure implementation (RFC 4226 truncation + RFC 6238 time steps, checked
against the RFC's test vectors in tests/staff/test_auth_units.py) rather than a
dependency. Secrets are stored sealed with a key derived from the server
secret (`seal_secret`), like the relay handles.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

STEP_SECONDS = 30
DIGITS = 6
ISSUER = "Be-Safe"
# Codes one step either side are accepted (clock drift, typing time).
DRIFT_STEPS = 1


class TotpSecretError(Exception):
    """A stored TOTP secret cannot be opened with this server's secret."""


def new_secret() -> str:
    """A random 160-bit secret in base32 (what authenticator apps take), no padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret_b32: str) -> bytes:
    cleaned = secret_b32.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226: the code for `counter`."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def time_step(unix_time: float) -> int:
    return int(unix_time // STEP_SECONDS)


def code_at(secret_b32: str, unix_time: float) -> str:
    return hotp(_key(secret_b32), time_step(unix_time))


def verify_code(
    secret_b32: str, code: str, unix_time: float, *, last_step: int | None = None
) -> int | None:
    """The time step `code` belongs to, or None when it is wrong, stale or already used.

    A step at or before `last_step` (the last one accepted) is refused, so a code
    seen over someone's shoulder cannot be used again.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = _key(secret_b32)
    now = time_step(unix_time)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret_b32: str, username: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads (as text or a QR code)."""
    label = quote(f"{issuer}:{username}", safe="")
    query = urlencode(
        {
            "secret": secret_b32,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"


def qr_data_uri(text: str) -> str:
    """`text` as a QR code: an SVG `data:` URI for an <img> (allowed by the staff CSP)."""
    import segno  # only the enrolment page needs it

    return str(segno.make(text, error="m").svg_data_uri(scale=5, border=4))


def grouped(secret_b32: str) -> str:
    """The secret in groups of four, easier to type."""
    return " ".join(secret_b32[i : i + 4] for i in range(0, len(secret_b32), 4))


def _fernet(server_secret: bytes) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"besafe staff totp v1"
    ).derive(server_secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal_secret(server_secret: bytes, secret_b32: str) -> str:
    return _fernet(server_secret).encrypt(secret_b32.encode("ascii")).decode("ascii")


def open_secret(server_secret: bytes, sealed: str) -> str:
    try:
        return _fernet(server_secret).decrypt(sealed.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, ValueError) as error:
        raise TotpSecretError("the stored TOTP secret cannot be opened") from error
