"""Account fields as typed by an administrator: what is acceptable, and the stored form
(pure: unit-tested without Cassandra)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from email_validator import EmailNotValidError, validate_email

from backend.auth_policy import ONE_WARD, Role

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MAX_DISPLAY_NAME = 100
# A ward name as admissions carry it (backend.admission.Admission.ward: 1-32 characters).
WARD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,31}$")
MAX_WARDS = 64
_HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Stand-in public domain under which the local part of an address at one of
# ``settings.smtp.local_domains`` is checked (the library refuses those domains).
_PUBLIC_STAND_IN = "example.org"


class UserError(ValueError):
    """A request about users that cannot be done; the message is safe to show."""


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def username_problems(username: str) -> list[str]:
    if not USERNAME_RE.match(username or ""):
        return ["Username: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."]
    return []


def password_problems(password: str, username: str | None = None) -> list[str]:
    """Why ``password`` is not acceptable for a new or changed password (empty: fine)."""
    problems = []
    if len(password or "") < MIN_PASSWORD_LENGTH:
        problems.append(f"Password: at least {MIN_PASSWORD_LENGTH} characters.")
    elif len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Password: at most {MAX_PASSWORD_LENGTH} characters.")
    elif username and password.strip().lower() == normalize_username(username):
        problems.append("Password: must not be the username.")
    elif len(set(password)) < 4:
        problems.append("Password: too repetitive.")
    return problems


def parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise UserError(f"Role: one of {names}.") from None


def normalize_email(address: str | None, local_domains: Collection[str] = ()) -> str | None:
    """The address as stored (normalised: domain in lower case), ``None`` when blank.

    Raises :class:`UserError` with the validator's reason when it is not an address.
    Public domains are checked by ``email_validator`` (syntax only, no DNS lookup); an
    address at one of ``local_domains`` (or a subdomain) has its local part checked by the
    library and its domain checked as a host name here.
    """
    text = (address or "").strip()
    if not text:
        return None
    local, at, domain = text.rpartition("@")
    host = domain.lower()
    locals_ = {d.strip().lower().strip(".") for d in local_domains if d.strip()}
    try:
        if at and local and any(host == d or host.endswith("." + d) for d in locals_):
            if not all(_HOST_LABEL_RE.match(label) for label in host.split(".")):
                raise UserError(f"E-mail: {host!r} is not a valid domain name.")
            checked = validate_email(f"{local}@{_PUBLIC_STAND_IN}", check_deliverability=False)
            return f"{checked.local_part}@{host}"
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise UserError(f"E-mail: {e}") from None


def parse_wards(value: Iterable[str] | str | None) -> frozenset[str]:
    """Ward names from a comma-separated string or a list of them (each entry may itself
    hold commas); blanks dropped. Empty result: the user covers every ward. Raises
    :class:`UserError` naming each bad entry."""
    items = [value] if isinstance(value, str) else list(value or ())
    wards = {w.strip() for item in items for w in str(item).split(",") if w.strip()}
    bad = sorted(w for w in wards if not WARD_RE.match(w))
    if bad:
        shown = ", ".join(repr(w) for w in bad[:5])
        raise UserError(f"Ward {shown}: 1-32 characters, letters, digits, spaces, '.', '_', "
                        "'/' or '-', starting with a letter or digit.")
    if len(wards) > MAX_WARDS:
        raise UserError(f"Wards: at most {MAX_WARDS}.")
    return frozenset(wards)


def unknown_wards_note(wards: Collection[str], known: Collection[str]) -> str:
    """A warning for the wards of ``wards`` that the census does not know (ignoring
    case), empty when all are known. Not an error (a ward may open later), but a typo
    would silently keep the user's alert e-mail away, so it is said out loud."""
    known_cf = {k.casefold() for k in known}
    unknown = sorted(w for w in wards if w.casefold() not in known_cf)
    if not unknown:
        return ""
    return (f"Not a ward of the census (yet): {', '.join(unknown)} - check the spelling, "
            "alerts carry the census's ward names.")


def ward_role_problems(role: Role, wards: Collection[str]) -> list[str]:
    """A ward display is signed in for exactly one ward (``auth_policy.ONE_WARD``)."""
    if role in ONE_WARD and len(wards) != 1:
        return [f"Wards: a {role.label.lower()} account shows exactly one ward "
                f"(got {len(wards) or 'none'})."]
    return []


def contact_detail(email: str | None, wards: Collection[str]) -> str:
    """How the audit log records a user's e-mail and wards."""
    return f"email={email or '(none)'} wards={','.join(sorted(wards)) or '(all)'}"
