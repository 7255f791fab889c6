"""Password hashing (argon2id, ``argon2.PasswordHasher`` with its defaults; a hash made
with older parameters is replaced at the next successful sign-in)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from backend.settings import Settings

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# Verified against when the user does not exist, so both paths cost one argon2 hash.
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, str | None]:
    """``(matches, new_hash)``; ``new_hash`` is set when the hash used outdated argon2
    parameters and should be stored instead (only on a match)."""
    try:
        _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if _hasher.check_needs_rehash(password_hash):
        return True, _hasher.hash(password)
    return True, None


def unknown_user_key(typed: str, settings: Settings) -> str:
    """Stand-in for a sign-in name that is no account: ``?`` and a digest keyed with the
    secret key, so the typed text cannot be recovered from logs or the database."""
    key = settings.secret_key.get_secret_value().encode() or b"icu-monitor"
    return "?" + hmac.new(key, typed.encode(), hashlib.sha256).hexdigest()[:16]
