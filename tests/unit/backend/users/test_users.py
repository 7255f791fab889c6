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
    normalize_username,
    parse_role,
    password_problems,
    unknown_user_key,
    username_problems,
    verify_password,
)
from backend.users.throttle import Counter, Plan, plan

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


# --- throttling: the decision of backend.users.throttle (pure) ---------------------------------
def test_first_attempt_creates_the_counter() -> None:
    assert plan(None, 5, LOCK, at(0)) == Plan("create", 1)


def test_attempts_take_the_next_slot_until_the_limit() -> None:
    for used in range(1, 5):
        assert plan(Counter(used, at(0)), 5, LOCK, at(1)) == Plan("increment", used + 1)
    # all five slots used and no lock written (its writer died): the window's end
    assert plan(Counter(5, at(0)), 5, LOCK, at(1)) == Plan("refuse", locked_until=at(15))


def test_a_lock_holds_until_its_end_even_after_the_window() -> None:
    locked = Counter(5, at(0), locked_until=at(4) + LOCK)
    assert plan(locked, 5, LOCK, at(18)) == Plan("refuse", locked_until=at(19))
    assert plan(locked, 5, LOCK, at(19)) == Plan("restart", 1)


def test_a_new_window_starts_counting_afresh() -> None:
    assert plan(Counter(4, at(0)), 5, LOCK, at(15)) == Plan("restart", 1)
    assert plan(Counter(4, at(0)), 5, LOCK, at(14.9)) == Plan("increment", 5)


# --- demo users -------------------------------------------------------------------------
def test_demo_users_are_refused_outside_demo_mode() -> None:
    with pytest.raises(RuntimeError, match="demo mode"):
        ensure_demo_users(None, Settings(demo_mode=False))  # type: ignore[arg-type]
