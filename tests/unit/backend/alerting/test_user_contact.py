"""Users' e-mail address and wards, and who is e-mailed about an alert (pure logic)."""

from __future__ import annotations

import pytest

from backend.alerting.recipients import UserDirectory, select_recipients
from backend.auth_policy import Role
from backend.users import (
    User,
    UserError,
    contact_detail,
    demo_email,
    normalize_email,
    parse_wards,
    unknown_wards_note,
)


# --- addresses ------------------------------------------------------------------------------
@pytest.mark.parametrize(("typed", "stored"), [
    ("ann.lee@hospital.org", "ann.lee@hospital.org"),
    ("  Ann.Lee@Hospital.ORG ", "Ann.Lee@hospital.org"),  # domain lower-cased, local kept
    ("n+alerts@icu.st-mary.nhs.uk", "n+alerts@icu.st-mary.nhs.uk"),
])
def test_good_public_addresses_are_normalised(typed: str, stored: str) -> None:
    assert normalize_email(typed) == stored


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_blank_means_no_address(blank: str | None) -> None:
    assert normalize_email(blank) is None


@pytest.mark.parametrize(("typed", "reason"), [
    ("ann.lee", "must have an @-sign"),
    ("ann@", "something after the @-sign"),
    ("@hospital.org", "something before the @-sign"),
    ("ann@@hospital.org", "invalid characters"),
    ("ann lee@hospital.org", "invalid characters before the @-sign: SPACE"),
    ("ann@hospital", "should have a period"),
    ("Ann <ann@hospital.org>", "display name"),
    ("ann@hospital..org", "period"),
])
def test_bad_addresses_are_refused_with_the_reason(typed: str, reason: str) -> None:
    with pytest.raises(UserError) as e:
        normalize_email(typed)
    assert str(e.value).startswith("E-mail: ")
    assert reason in str(e.value)


def test_special_use_domains_need_to_be_configured_as_local() -> None:
    with pytest.raises(UserError, match="should have a period"):
        normalize_email("demo-nurse@localhost")
    with pytest.raises(UserError, match="special-use"):
        normalize_email("ann@ward.hospital.local")
    assert normalize_email("demo-nurse@localhost", ["localhost"]) == "demo-nurse@localhost"
    # a configured domain covers its subdomains; case of the domain does not matter
    assert normalize_email("Ann@Ward.Hospital.LOCAL", ["hospital.local"]) == \
        "Ann@ward.hospital.local"
    # another special-use domain stays refused
    with pytest.raises(UserError, match="special-use"):
        normalize_email("ann@ward.test", ["localhost"])


def test_local_domain_addresses_still_have_their_syntax_checked() -> None:
    for bad in ("a b@localhost", "@localhost", "a@@localhost", "a@-x.localhost",
                "a@x_y.localhost"):
        with pytest.raises(UserError, match=r"^E-mail: "):
            normalize_email(bad, ["localhost"])


def test_demo_addresses_are_valid_at_localhost() -> None:
    assert normalize_email(demo_email("demo-nurse"), ["localhost"]) == "demo-nurse@localhost"


# --- wards ------------------------------------------------------------------------------------
def test_wards_from_a_comma_separated_string_or_a_list() -> None:
    assert parse_wards(" ICU-A, ICU-B ,, ") == {"ICU-A", "ICU-B"}
    assert parse_wards(["ICU-A", "ICU-B,Cardiac ICU"]) == {"ICU-A", "ICU-B", "Cardiac ICU"}
    assert parse_wards(None) == frozenset() and parse_wards("") == frozenset()


@pytest.mark.parametrize("bad", ["-ICU", "ICU<A>", "x" * 33, "ICU;A"])
def test_bad_ward_names_are_refused_and_named(bad: str) -> None:
    with pytest.raises(UserError) as e:
        parse_wards(f"ICU-A, {bad}")
    assert repr(bad) in str(e.value) and "ICU-A'" not in str(e.value)


def test_too_many_wards_are_refused() -> None:
    with pytest.raises(UserError, match="at most 64"):
        parse_wards([f"W{i}" for i in range(65)])


def test_wards_the_census_does_not_know_are_named() -> None:
    assert unknown_wards_note({"ICU-A", "icu-b"}, ["ICU-A", "ICU-B"]) == ""
    note = unknown_wards_note({"ICU-A", "ICU-AA", "ICU-Z"}, ["ICU-A", "ICU-B"])
    assert note.startswith("Not a ward of the census (yet): ICU-AA, ICU-Z - check")


def test_contact_detail_for_the_audit_log() -> None:
    assert contact_detail("a@h.org", {"ICU-B", "ICU-A"}) == "email=a@h.org wards=ICU-A,ICU-B"
    assert contact_detail(None, ()) == "email=(none) wards=(all)"


# --- recipients -------------------------------------------------------------------------------
def user(name: str, role: Role, email: str | None, wards: tuple[str, ...] = (),
         disabled: bool = False, demo: bool = False) -> User:
    return User(name, name, role, disabled, demo, None, None, email=email,
                wards=frozenset(wards))


def test_no_wards_covers_every_ward_and_names_match_ignoring_case() -> None:
    assert user("a", Role.NURSE, None).covers("ICU-A")
    assert user("a", Role.NURSE, None, ("icu-a",)).covers("ICU-A")
    assert not user("a", Role.NURSE, None, ("ICU-A",)).covers("ICU-B")
    assert not user("a", Role.NURSE, None, ("ICU-A",)).covers(None)


STAFF = [
    user("n.ward", Role.NURSE, "n.ward@h.org", ("ICU-A",)),
    user("n.all", Role.NURSE, "n.all@h.org"),  # no wards: every ward
    user("n.other", Role.NURSE, "n.other@h.org", ("ICU-B",)),
    user("n.off", Role.NURSE, "n.off@h.org", ("ICU-A",), disabled=True),
    user("n.noaddr", Role.NURSE, None, ("ICU-A",)),
    user("n.demo", Role.NURSE, "n.demo@h.org", demo=True),
    user("c.ward", Role.CHARGE_NURSE, "c.ward@h.org", ("ICU-A", "ICU-B")),
    user("p.list", Role.PHYSICIAN, "ICU-Physicians@h.org", ("ICU-A",)),
]


def test_users_of_the_role_covering_the_ward_plus_the_list() -> None:
    got = select_recipients(STAFF, "nurse", "ICU-A", ["nurses@h.org"], demo_mode=False)
    assert got == ["n.all@h.org", "n.ward@h.org", "nurses@h.org"]


def test_other_wards_disabled_and_other_roles_get_nothing() -> None:
    got = select_recipients(STAFF, "nurse", "ICU-B", ["nurses@h.org"], demo_mode=False)
    assert got == ["n.all@h.org", "n.other@h.org", "nurses@h.org"]
    got = select_recipients(STAFF, "charge_nurse", "ICU-C", ["charge@h.org"], demo_mode=False)
    assert got == ["charge@h.org"]  # nobody covers ICU-C: the list is the fallback


def test_demo_accounts_only_in_demo_mode() -> None:
    got = select_recipients(STAFF, "nurse", "ICU-A", [], demo_mode=True)
    assert got == ["n.all@h.org", "n.demo@h.org", "n.ward@h.org"]


def test_addresses_are_deduplicated_ignoring_case() -> None:
    got = select_recipients(STAFF, "physician", "ICU-A",
                            ["icu-physicians@h.org", " ICU-PHYSICIANS@H.ORG"], demo_mode=False)
    assert got == ["ICU-Physicians@h.org"]


def test_no_users_and_no_list_is_nobody() -> None:
    assert select_recipients([], "nurse", "ICU-A", [], demo_mode=False) == []


# --- the cached user lookup -------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_directory_reads_the_users_once_per_interval() -> None:
    table = [user("n.a", Role.NURSE, "a@h.org")]
    clock = FakeClock()
    reads: list[int] = []

    def load() -> list[User]:
        reads.append(1)
        return list(table)

    d = UserDirectory(load, 30, clock)
    for _ in range(50):  # an alert storm: one read
        assert d.recipients("nurse", "ICU-A", [], demo_mode=False) == ["a@h.org"]
    assert d.loads == len(reads) == 1
    table[0] = user("n.a", Role.NURSE, "a@h.org", disabled=True)  # an admin disables n.a
    clock.t += 29.9
    assert d.recipients("nurse", "ICU-A", [], demo_mode=False) == ["a@h.org"]  # cached
    clock.t += 0.1
    assert d.recipients("nurse", "ICU-A", [], demo_mode=False) == []  # within 30 s
    assert d.loads == 2
    d.invalidate()
    d.users()
    assert d.loads == 3


def test_directory_keeps_the_last_list_when_a_read_fails_and_raises_without_one() -> None:
    clock = FakeClock()
    fail = [True]

    def load() -> list[User]:
        if fail[0]:
            raise ConnectionError("cassandra down")
        return [user("n.a", Role.NURSE, "a@h.org")]

    d = UserDirectory(load, 30, clock)
    with pytest.raises(ConnectionError):
        d.users()  # nothing to fall back on: the caller retries
    fail[0] = False
    assert len(d.users()) == 1
    fail[0] = True
    clock.t += 60
    assert [u.username for u in d.users()] == ["n.a"]  # stale, but mail still goes out
    fail[0] = False
    assert d.users() and d.loads == 2
