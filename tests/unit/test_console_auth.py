"""The console's sign-in rules: hashing, password policy, lockout, CSRF and origin checks."""

from __future__ import annotations

from argon2 import PasswordHasher

from console import auth


def test_a_password_verifies_only_against_its_own_hash():
    stored = auth.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert auth.verify_password(stored, "correct horse battery") == (True, None)
    assert auth.verify_password(stored, "correct horse batterY") == (False, None)
    assert auth.verify_password(None, "anything at all") == (False, None)  # unknown user: refused, same work
    assert auth.verify_password("not a hash", "anything at all") == (False, None)


def test_a_hash_with_weaker_parameters_is_replaced_on_sign_in():
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse battery")
    ok, rehash = auth.verify_password(weak, "correct horse battery")
    assert ok and rehash is not None and rehash != weak
    assert auth.verify_password(rehash, "correct horse battery") == (True, None)


def test_password_policy_names_the_problem():
    assert "12 characters" in auth.password_problem("ann", "short")
    assert "user name" in auth.password_problem("officer7", "my-officer7-pass")
    assert "different characters" in auth.password_problem("ann", "aaaabbbbaaaabbbb")
    assert auth.password_problem("ann", "tram-lantern-42-quiet") is None


def test_failed_sign_ins_lock_a_name_for_a_while_then_it_may_try_again():
    now = [1000.0]
    throttle = auth.SigninThrottle(limit=3, lockout_s=60, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("Ann")
    assert throttle.locked("ann") == 0  # two failures: still allowed
    throttle.failed("ann")
    assert throttle.locked("ANN") == 60 and throttle.locked("bob") == 0  # per name, case-insensitive
    now[0] += 59
    assert throttle.locked("ann") == 1
    now[0] += 2
    assert throttle.locked("ann") == 0
    throttle.failed("ann")  # counting starts again after a lockout ran out
    assert throttle.locked("ann") == 0
    throttle.succeeded("ann")
    throttle.failed("ann"), throttle.failed("ann")
    assert throttle.locked("ann") == 0  # a success forgot the earlier failure


def test_csrf_and_origin_checks():
    assert auth.csrf_ok("abc", "abc") and not auth.csrf_ok("abc", "abd") and not auth.csrf_ok("abc", None)
    assert not auth.csrf_ok("abc", "")
    assert auth.same_origin(None, "console.city:8091")  # not a browser's cross-site request
    assert auth.same_origin("http://console.city:8091", "console.city:8091")
    assert not auth.same_origin("https://evil.example", "console.city:8091")
    assert not auth.same_origin("null", "console.city:8091")
    assert len({auth.new_token() for _ in range(100)}) == 100
