"""Pure parts of staff login: TOTP (RFC 6238 vectors), sealed secrets, passwords, redirects."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from web.staff.auth import safe_next
from web.staff.passwords import (
    hash_password,
    password_problem,
    username_problem,
    verify_password,
)
from web.staff.totp import (
    TotpSecretError,
    code_at,
    hotp,
    new_secret,
    open_secret,
    provisioning_uri,
    qr_data_uri,
    seal_secret,
    time_step,
    verify_code,
)

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("unix_time", "code"),
    [  # RFC 6238 appendix B, SHA-1, last 6 of the 8 digits
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000, "353130"),
    ],
)
def test_rfc6238_test_vectors(unix_time: int, code: str) -> None:
    assert code_at(RFC_SECRET, unix_time) == code


def test_rfc4226_test_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676"]
    assert [hotp(b"12345678901234567890", i) for i in range(6)] == expected


def test_a_code_is_accepted_one_step_either_side_and_not_further() -> None:
    secret = new_secret()
    now = 1_700_000_015.0
    step = time_step(now)
    for offset in (-1, 0, 1):
        assert verify_code(secret, code_at(secret, now + 30 * offset), now) == step + offset
    for offset in (-3, -2, 2, 3):
        assert verify_code(secret, code_at(secret, now + 30 * offset), now) is None


def test_a_used_code_cannot_be_used_again() -> None:
    secret = new_secret()
    now = 1_700_000_015.0
    code = code_at(secret, now)
    step = verify_code(secret, code, now)
    assert step is not None
    assert verify_code(secret, code, now, last_step=step) is None
    # ...nor an older one
    assert verify_code(secret, code_at(secret, now - 30), now, last_step=step) is None
    assert verify_code(secret, code_at(secret, now + 30), now, last_step=step) == step + 1


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert verify_code(new_secret(), bad, 1_700_000_000.0) is None


def test_codes_with_spaces_are_accepted() -> None:
    secret = new_secret()
    code = code_at(secret, 1_700_000_000.0)
    assert verify_code(secret, f" {code[:3]} {code[3:]} ", 1_700_000_000.0) is not None


def test_secrets_are_random_base32_of_160_bits() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20


def test_sealed_secrets_open_only_with_the_same_server_secret() -> None:
    secret = new_secret()
    sealed = seal_secret(b"k" * 40, secret)
    assert secret not in sealed
    assert open_secret(b"k" * 40, sealed) == secret
    with pytest.raises(TotpSecretError):
        open_secret(b"j" * 40, sealed)


def test_provisioning_uri_names_issuer_account_and_secret() -> None:
    uri = provisioning_uri("ABCDEFGH", "lead.one")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert parts.path == "/Be-Safe%3Alead.one"
    query = parse_qs(parts.query)
    assert query["secret"] == ["ABCDEFGH"]
    assert query["issuer"] == ["Be-Safe"]
    assert query["digits"] == ["6"] and query["period"] == ["30"]


def test_argon2_hashes_verify_and_differ_per_call() -> None:
    first, second = hash_password("a long enough password"), hash_password("a long enough password")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert verify_password(first, "a long enough password")
    assert not verify_password(first, "a long enough passwore")
    assert not verify_password(None, "a long enough password")
    assert not verify_password("not a hash", "a long enough password")


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("short", False),
        ("lead.one", False),
        ("LEAD.ONE    ", False),
        ("aaaaaaaaaaaaaaa", False),
        ("correct horse battery staple", True),
        ("x" * 300, False),
    ],
)
def test_password_rules(password: str, ok: bool) -> None:
    assert (password_problem(password, "lead.one") is None) is ok


@pytest.mark.parametrize(
    ("username", "ok"),
    [("ab", False), ("lead.one", True), ("a-b_c.d9", True), ("has space", False), ("é" * 4, False)],
)
def test_username_rules(username: str, ok: bool) -> None:
    assert (username_problem(username) is None) is ok


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/staff/"),
        ("/staff/flags/3", "/staff/flags/3"),
        ("https://evil.example/staff", "/staff/"),
        ("//evil.example/staff", "/staff/"),
        ("/staff\\@evil", "/staff/"),
        ("/elsewhere", "/staff/"),
        ("/staff/login", "/staff/"),
        ("/staff/\r\nSet-Cookie: x=1", "/staff/"),
        ("/staff/caf\u00e9", "/staff/"),
        ("/staff/queue?severity=urgent", "/staff/queue?severity=urgent"),
    ],
)
def test_after_login_only_staff_paths_are_followed(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def test_the_qr_code_is_an_svg_data_uri_that_depends_on_the_text() -> None:
    first, second = qr_data_uri("otpauth://totp/a?secret=AAAA"), qr_data_uri("otpauth://x")
    assert first.startswith("data:image/svg+xml")
    assert first != second
