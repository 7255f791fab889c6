"""Who may see what: the ONE authorisation table of the platform.

Navigation (which links a user is shown) and enforcement (which page routes and Dash
callbacks the server answers) both read :data:`POLICY`; nothing else decides access.

Each entry is a *permission*. A permission with a :class:`PageInfo` is a page; the other
permissions are actions inside a page (a Dash callback is tagged with exactly one
permission, see ``webapp.security.secure_callback``).

Decisions (documented in one place):

- **Clinicians see patients, administrators manage the system.** ``admin`` is an IT /
  system-administration role and gets *no* patient-identifiable data by default: no ward
  monitor, no patient page, no alert inbox. Admins see the population view (aggregated,
  no PHI), the model registry, and the Admin page (users, audit log). A person who is
  both a clinician and an administrator gets two accounts, so every PHI access in the
  audit log is made under a clinical identity. Break-glass access is not implemented.
- **Nurses and charge nurses see patients read-only**; only physicians may write on the
  patient page (``patient.write``: notes, orders, annotations when those exist).
- **The alert inbox is for the clinical roles.** Charge nurses additionally manage the
  ward-wide alert assignment (``alerts.assign``) once that exists.
- **Model registry**: physicians (clinical validation) and admins (deployment).
- **Ward display** (``ward_display``): an account for a wall screen, signed in for exactly
  one ward (its only ward, enforced when the account is created). It may watch that
  ward's monitor and acknowledge that ward's alarms (``ward.acknowledge``), nothing else:
  no patient page, no notes, no export, no inbox, no other ward. The one-ward scope is
  data-level and enforced by the ward page's callbacks (:func:`ward_scope`); the
  screen's own updates keep its session alive (``SCREEN_KEEPS_SESSION``), within its
  own idle and absolute session limits (``settings.web``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    NURSE = "nurse"
    CHARGE_NURSE = "charge_nurse"
    PHYSICIAN = "physician"
    ADMIN = "admin"
    WARD_DISPLAY = "ward_display"

    @property
    def label(self) -> str:
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.NURSE: "Nurse",
    Role.CHARGE_NURSE: "Charge nurse",
    Role.PHYSICIAN: "Physician",
    Role.ADMIN: "Administrator",
    Role.WARD_DISPLAY: "Ward display",
}

CLINICAL: frozenset[Role] = frozenset({Role.NURSE, Role.CHARGE_NURSE, Role.PHYSICIAN})
ALL_ROLES: frozenset[Role] = frozenset(Role)
# Roles bound to exactly one ward: they see and act on that ward only.
ONE_WARD: frozenset[Role] = frozenset({Role.WARD_DISPLAY})
# Roles whose screen's periodic updates count as activity (a wall screen nobody touches
# must not sign itself out while it shows the ward).
SCREEN_KEEPS_SESSION: frozenset[Role] = frozenset({Role.WARD_DISPLAY})


@dataclass(frozen=True, slots=True)
class PageInfo:
    """How a page permission appears in the navigation and in URLs."""

    path: str  # the page's URL, e.g. "/ward"
    title: str  # navigation label and window title
    order: int  # position in the navigation
    # Dash Pages path template for pages with variables, e.g. "/patient/<patient_id>"
    path_template: str | None = None
    nav: bool = True  # shown in the navigation bar


@dataclass(frozen=True, slots=True)
class Permission:
    key: str
    roles: frozenset[Role]
    description: str
    page: PageInfo | None = None
    # Actions belong to a page: a user must be able to open that page as well.
    parent: str | None = None
    phi: bool = field(default=False)  # exposes patient-identifiable data


def _table(*items: Permission) -> Mapping[str, Permission]:
    return MappingProxyType({p.key: p for p in items})


# ---------------------------------------------------------------------------------------
# THE policy table. Add a row here for a new page or action; nothing else.
# ---------------------------------------------------------------------------------------
POLICY: Mapping[str, Permission] = _table(
    # Any signed-in user: the app shell itself (navigation, session clock, theme).
    Permission("shell", ALL_ROLES, "the app shell"),
    Permission(
        "ward", CLINICAL | ONE_WARD, "live ward monitor: every bed of a ward", phi=True,
        page=PageInfo("/ward", "Ward monitor", 10),
    ),
    Permission(
        "ward.acknowledge", CLINICAL | ONE_WARD, "acknowledge an alarm on the ward monitor",
        parent="ward", phi=True,
    ),
    Permission(
        "patient", CLINICAL, "one patient's vitals, scores and alerts (read)", phi=True,
        page=PageInfo("/patient", "Patient", 20, path_template="/patient/<patient_id>"),
    ),
    Permission(
        "patient.write", frozenset({Role.PHYSICIAN}),
        "write on the patient page (notes, orders, annotations)", parent="patient", phi=True,
    ),
    Permission(
        "alerts", CLINICAL, "alert inbox", phi=True,
        page=PageInfo("/alerts", "Alerts", 30),
    ),
    Permission(
        "alerts.acknowledge", CLINICAL, "acknowledge / resolve an alert",
        parent="alerts", phi=True,
    ),
    Permission(
        "alerts.assign", frozenset({Role.CHARGE_NURSE}), "assign ward alerts to nurses",
        parent="alerts", phi=True,
    ),
    Permission(
        "population", frozenset({Role.ADMIN}), "aggregated population statistics (no PHI)",
        page=PageInfo("/population", "Population", 40),
    ),
    Permission(
        "models", frozenset({Role.PHYSICIAN, Role.ADMIN}), "risk-model registry and evaluation",
        page=PageInfo("/models", "Models", 50),
    ),
    Permission(
        "admin", frozenset({Role.ADMIN}), "administration",
        page=PageInfo("/admin", "Admin", 60),
    ),
    Permission(
        "admin.users", frozenset({Role.ADMIN}),
        "create, disable and enable users; their e-mail address and wards",
        parent="admin",
    ),
    Permission(
        "admin.audit", frozenset({Role.ADMIN}), "search the audit log", parent="admin",
    ),
)


class UnknownPermission(KeyError):
    pass


def permission(key: str) -> Permission:
    try:
        return POLICY[key]
    except KeyError:
        raise UnknownPermission(key) from None


def _as_role(role: Role | str | None) -> Role | None:
    if role is None:
        return None
    try:
        return Role(role)
    except ValueError:
        return None


def allowed(role: Role | str | None, key: str) -> bool:
    """May ``role`` use permission ``key``? Unknown roles and unknown keys: no."""
    r = _as_role(role)
    p = POLICY.get(key)
    if r is None or p is None:
        return False
    if r not in p.roles:
        return False
    return p.parent is None or allowed(r, p.parent)


def pages() -> list[Permission]:
    """Every page permission, in navigation order."""
    return sorted((p for p in POLICY.values() if p.page), key=lambda p: p.page.order)


def navigation(role: Role | str | None) -> list[Permission]:
    """The pages ``role`` is shown in the navigation, in order."""
    return [p for p in pages() if p.page.nav and allowed(role, p.key)]


def home_path(role: Role | str | None) -> str | None:
    """Where ``role`` lands after signing in: its first navigation entry."""
    nav = navigation(role)
    return nav[0].page.path if nav else None


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(<[A-Za-z_][A-Za-z0-9_]*>)", template)
    out = []
    for part in parts:
        if part.startswith("<") and part.endswith(">"):
            out.append(f"(?P<{part[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


def page_for_path(path: str) -> Permission | None:
    """The page serving URL path ``path`` (no query string), or ``None``.

    Matches the page's ``path`` exactly or its ``path_template``, with or without a
    trailing slash, as Dash Pages does.
    """
    if not path:
        return None
    norm = path if path == "/" else path.rstrip("/")
    for p in pages():
        if norm == p.page.path:
            return p
        if p.page.path_template and _template_regex(p.page.path_template).match(norm):
            return p
    return None


def ward_scope(role: Role | str | None, wards: Iterable[str]) -> str | None:
    """The one ward a ward-bound role may see (its only ward), ``None`` for roles that
    are not bound to a ward. A ward-bound account without exactly one ward may see
    nothing: ``""``."""
    r = _as_role(role)
    if r not in ONE_WARD:
        return None
    names = sorted(set(wards))
    return names[0] if len(names) == 1 else ""


def roles_for(key: str) -> frozenset[Role]:
    """Roles that hold ``key`` (including the parent's restriction)."""
    return frozenset(r for r in Role if allowed(r, key))


def validate(table: Mapping[str, Permission] = POLICY) -> list[str]:
    """Consistency problems of the table (empty when sound); checked by the unit tests."""
    problems: list[str] = []
    paths: set[str] = set()
    for key, p in table.items():
        if key != p.key:
            problems.append(f"{key}: key mismatch")
        if not p.roles:
            problems.append(f"{key}: no role holds it")
        if p.parent is not None:
            if p.parent not in table:
                problems.append(f"{key}: unknown parent {p.parent}")
            elif not p.roles <= table[p.parent].roles:
                problems.append(f"{key}: granted to roles that cannot open {p.parent}")
        if p.page:
            if p.parent is not None:
                problems.append(f"{key}: a page cannot have a parent")
            if not p.page.path.startswith("/") or p.page.path in paths:
                problems.append(f"{key}: bad or duplicate path {p.page.path}")
            paths.add(p.page.path)
        if p.phi and Role.ADMIN in p.roles:
            problems.append(f"{key}: PHI granted to admin")
    return problems


def matrix(roles: Iterable[Role] = Role) -> dict[str, dict[str, bool]]:
    """``{permission: {role: allowed}}``, for documentation and the admin page."""
    return {key: {r.value: allowed(r, key) for r in roles} for key in POLICY}
