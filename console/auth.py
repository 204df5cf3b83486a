"""Sign-in rules of the console, without I/O: password hashing (argon2id), password policy,
lockout after failed sign-ins, session and CSRF tokens, the same-origin check.

Sessions live in the alert store (``AlertStore.open_session``); the browser holds only an opaque
token in an HttpOnly, SameSite=Strict cookie. Every request that changes something also carries the
session's CSRF token in ``X-CSRF-Token`` (a synchronizer token: another site can neither read nor
send it) and, when the browser sends one, an ``Origin`` of this console."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 12
_hasher = PasswordHasher()  # argon2id, the library's current recommended parameters
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))  # verified for unknown users: the same time either way


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, a new hash when the stored one uses weaker parameters than today's)."""
    try:
        _hasher.verify(stored or _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


def password_problem(name: str, password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if name and name.lower() in password.lower():
        return "a password may not contain the user name"
    if len(set(password)) < 5:
        return "a password needs more different characters"
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """A request's ``Origin`` names this console (absent: not a browser's cross-site request)."""
    if origin is None:
        return True
    if origin == "null" or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


@dataclass
class SigninThrottle:
    """After ``limit`` failed sign-ins for a name, that name is locked for ``lockout_s`` (a guessing
    attack slows to a few tries a minute; a user who mistypes is not locked out for long)."""

    limit: int
    lockout_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def locked(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        count, until = self._failures.get(name.lower(), (0, 0.0))
        return max(0.0, until - self.clock()) if count >= self.limit else 0.0

    def failed(self, name: str) -> None:
        key = name.lower()
        count, _ = self._failures.get(key, (0, 0.0))
        if count >= self.limit:  # a lockout that has run out: start counting again
            count = 0
        self._failures[key] = (count + 1, self.clock() + self.lockout_s)
        if len(self._failures) > 10_000:  # a flood of made-up names: forget the oldest
            for old in sorted(self._failures, key=lambda k: self._failures[k][1])[:5_000]:
                del self._failures[old]

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.lower(), None)
