from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY

from backend.settings import Settings
from backend.users import (
    MIN_PASSWORD_LENGTH,
    User,
    ensure_demo_users,
    hash_password,
    lockout_until,
    normalize_username,
    parse_role,
    password_problems,
    unknown_user_key,
    username_problems,
    verify_password,
)

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
LOCK = timedelta(minutes=15)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- hashing ----------------------------------------------------------------------------
def test_hash_is_argon2id_with_library_defaults_and_salted() -> None:
    h1, h2 = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert h1.startswith("$argon2id$")
    assert f"m={RFC_9106_LOW_MEMORY.memory_cost}" in h1
    assert h1 != h2  # random salt


def test_verify_accepts_right_and_rejects_wrong_password() -> None:
    h = hash_password("correct horse battery")
    assert verify_password(h, "correct horse battery") == (True, None)
    assert verify_password(h, "correct horse batterY") == (False, None)
    assert verify_password(h, "") == (False, None)


def test_verify_rejects_garbage_hash_instead_of_raising() -> None:
    assert verify_password("not-a-hash", "whatever") == (False, None)
    assert verify_password("", "whatever") == (False, None)


def test_outdated_parameters_are_rehashed_on_successful_verify_only() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("s3cret-password!")
    ok, new = verify_password(old, "s3cret-password!")
    assert ok and new is not None and new != old
    assert f"m={RFC_9106_LOW_MEMORY.memory_cost}" in new
    assert verify_password(new, "s3cret-password!") == (True, None)
    assert verify_password(old, "wrong-password!!") == (False, None)


def test_user_repr_never_shows_the_hash() -> None:
    u = User("ann", "Ann", parse_role("nurse"), False, False, None, None,
             password_hash="$argon2id$secret")
    assert "argon2" not in repr(u)


# --- password and username policy -------------------------------------------------------
@pytest.mark.parametrize("password", ["", "short", "x" * (MIN_PASSWORD_LENGTH - 1)])
def test_passwords_shorter_than_12_are_refused(password: str) -> None:
    assert any("at least 12" in p for p in password_problems(password))


def test_acceptable_password_and_other_refusals() -> None:
    assert password_problems("a long enough pass") == []
    assert password_problems("x" * 12) == ["Password: too repetitive."]
    assert password_problems("nurse.nightly", "Nurse.Nightly") == [
        "Password: must not be the username."]
    assert password_problems("p" * 2000 + "abcd")


@pytest.mark.parametrize("name", ["ann", "a.smith", "dr_who-2", "n1"])
def test_valid_usernames(name: str) -> None:
    assert username_problems(name) == []


@pytest.mark.parametrize("name", ["", "a", "Ann", "-ann", "ann smith", "ann@x", "é", "a" * 65])
def test_invalid_usernames(name: str) -> None:
    assert username_problems(name)


def test_usernames_are_normalised_to_lower_case() -> None:
    assert normalize_username("  Ann.Smith ") == "ann.smith"


def test_unknown_role_is_a_user_error() -> None:
    with pytest.raises(ValueError, match="Role: one of nurse, charge_nurse, physician, admin"):
        parse_role("superuser")


def test_names_that_are_no_account_are_never_kept_in_clear() -> None:
    a = Settings(secret_key="a" * 40)
    key = unknown_user_key("hunter2-typed-as-name", a)
    assert key.startswith("?") and "hunter2" not in key
    assert key == unknown_user_key("hunter2-typed-as-name", a)  # throttling needs this
    assert key != unknown_user_key("hunter2-typed-as-name", Settings(secret_key="b" * 40))
    assert key != unknown_user_key("other", a)


# --- lockout ------------------------------------------------------------------------------
def test_no_lock_below_the_limit() -> None:
    assert lockout_until([at(0), at(1), at(2), at(3)], 5, LOCK) is None


def test_fifth_failure_in_the_window_locks_for_the_lockout_period() -> None:
    failures = [at(0), at(1), at(2), at(3), at(4)]
    assert lockout_until(failures, 5, LOCK) == at(4) + LOCK


def test_failures_spread_wider_than_the_window_do_not_lock() -> None:
    failures = [at(0), at(5), at(10), at(15), at(20), at(25)]
    assert lockout_until(failures, 5, LOCK) is None


def test_window_slides() -> None:
    # the first failure drops out of the window before the fifth arrives ...
    assert lockout_until([at(0), at(10), at(11), at(12), at(15.5)], 5, LOCK) is None
    # ... but a sixth inside the window of the last five locks
    assert lockout_until([at(0), at(10), at(11), at(12), at(15.5), at(16)], 5, LOCK) == (
        at(16) + LOCK)


def test_counting_restarts_after_a_lock() -> None:
    first = [at(0), at(1), at(2), at(3), at(4)]  # locked until 19
    after = [at(20), at(21)]
    assert lockout_until(first + after, 5, LOCK) == at(19)  # lock over, 2 new failures
    more = [at(22), at(23), at(24)]
    assert lockout_until(first + after + more, 5, LOCK) == at(24) + LOCK


def test_order_of_failures_does_not_matter_and_zero_limit_disables() -> None:
    failures = [at(4), at(0), at(2), at(1), at(3)]
    assert lockout_until(failures, 5, LOCK) == at(4) + LOCK
    assert lockout_until(failures, 0, LOCK) is None


def test_limit_of_one_locks_at_the_first_failure() -> None:
    assert lockout_until([at(7)], 1, LOCK) == at(7) + LOCK


# --- demo users -------------------------------------------------------------------------
def test_demo_users_are_refused_outside_demo_mode() -> None:
    with pytest.raises(RuntimeError, match="demo mode"):
        ensure_demo_users(None, Settings(demo_mode=False))  # type: ignore[arg-type]
