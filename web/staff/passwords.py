"""Staff passwords: Argon2id hashes (argon2-cffi's defaults, RFC 9106 low-memory profile).

Pure functions; callers run them off the event loop (`asyncio.to_thread`), since
one hash or check costs tens of milliseconds by design.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256

_hasher = PasswordHasher()
# Checked against when the username is unknown, so that a wrong username takes as
# long as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash("not a real password: timing equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a None hash is checked against a dummy (always False)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str, username: str) -> str | None:
    """Why `password` is not acceptable for `username`, or None when it is."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Use at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"Use at most {MAX_PASSWORD_CHARS} characters."
    if password.strip().lower() == username.strip().lower():
        return "The password must not be the username."
    if len(set(password)) < 4:
        return "Use a less repetitive password."
    return None


_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


def username_problem(username: str) -> str | None:
    """Why `username` (already lower-cased) is not acceptable, or None."""
    if not 3 <= len(username) <= 64:
        return "A username has 3 to 64 characters."
    if not set(username) <= _USERNAME_CHARS:
        return "Use only letters, digits, dots, dashes and underscores in a username."
    return None
