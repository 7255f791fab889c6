import pytest
from pydantic import SecretStr

from backend.auth_policy import (
    CLINICAL,
    ONE_WARD,
    POLICY,
    Role,
    allowed,
    home_path,
    matrix,
    navigation,
    page_for_path,
    pages,
    roles_for,
    validate,
    ward_scope,
)
from backend.settings import Settings

N, C, P, A = Role.NURSE, Role.CHARGE_NURSE, Role.PHYSICIAN, Role.ADMIN
D = Role.WARD_DISPLAY

# The decisions, written out once more by hand: a change to the policy must change this.
EXPECTED: dict[str, set[Role]] = {
    "shell": {N, C, P, A, D},
    "ward": {N, C, P, D},
    "ward.acknowledge": {N, C, P, D},
    "patient": {N, C, P},
    "patient.write": {P},
    "alerts": {N, C, P},
    "alerts.acknowledge": {N, C, P},
    "alerts.assign": {C},
    "population": {A},
    "models": {P, A},
    "admin": {A},
    "admin.users": {A},
    "admin.audit": {A},
}

NAV = {
    N: ["ward", "patient", "alerts"],
    C: ["ward", "patient", "alerts"],
    P: ["ward", "patient", "alerts", "models"],
    A: ["population", "models", "admin"],
    D: ["ward"],
}


def test_table_is_consistent() -> None:
    assert validate() == []


def test_every_permission_is_granted_exactly_as_decided() -> None:
    assert set(POLICY) == set(EXPECTED)
    for key, roles in EXPECTED.items():
        assert roles_for(key) == roles, key


def test_matrix_matches_allowed() -> None:
    m = matrix()
    for key in POLICY:
        for role in Role:
            assert m[key][role.value] is allowed(role, key)


@pytest.mark.parametrize("role", list(Role))
def test_navigation_per_role(role: Role) -> None:
    assert [p.key for p in navigation(role)] == NAV[role]
    assert [p.key for p in navigation(role.value)] == NAV[role]  # plain strings work too


def test_home_is_the_first_navigation_entry() -> None:
    assert home_path(N) == "/ward"
    assert home_path(A) == "/population"
    assert home_path(None) is None


def test_admin_gets_no_patient_data() -> None:
    for p in POLICY.values():
        if p.phi:
            assert not allowed(A, p.key), p.key
            assert p.roles <= CLINICAL | ONE_WARD


def test_ward_display_sees_one_ward_and_nothing_else() -> None:
    """The wall screen: its ward's monitor and acknowledging there; no drill-down, no
    notes, no export (the patient page's callbacks), no inbox."""
    assert {k for k in POLICY if allowed(D, k)} == {"shell", "ward", "ward.acknowledge"}
    assert home_path(D) == "/ward"
    assert ward_scope(D, {"ICU-A"}) == "ICU-A"
    assert ward_scope(D, {"ICU-A", "ICU-B"}) == ""  # misconfigured: sees nothing
    assert ward_scope(D, set()) == ""
    assert ward_scope(N, {"ICU-A"}) is None  # clinicians are not bound to a ward


def test_unknown_roles_and_permissions_are_denied() -> None:
    assert not allowed(None, "ward")
    assert not allowed("superuser", "ward")
    assert not allowed(A, "no-such-permission")
    assert navigation(None) == []


def test_action_needs_its_page_as_well() -> None:
    table = dict(POLICY)
    from dataclasses import replace

    table["patient.write"] = replace(POLICY["patient.write"], roles=frozenset({P, A}))
    assert any("cannot open patient" in p for p in validate(table))


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/ward", "ward"),
        ("/ward/", "ward"),
        ("/patient", "patient"),
        ("/patient/P-123", "patient"),
        ("/patient/P-123/", "patient"),
        ("/alerts", "alerts"),
        ("/population", "population"),
        ("/models", "models"),
        ("/admin", "admin"),
        ("/admin/", "admin"),
    ],
)
def test_paths_map_to_pages(path: str, key: str) -> None:
    page = page_for_path(path)
    assert page is not None and page.key == key


@pytest.mark.parametrize("path", ["/", "", "/wardx", "/patient/a/b", "/administrator", "/404"])
def test_other_paths_belong_to_no_page(path: str) -> None:
    assert page_for_path(path) is None


def test_pages_are_ordered_and_unique() -> None:
    orders = [p.page.order for p in pages()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


# --- the same table drives the running app ------------------------------------------------
@pytest.fixture(scope="module")
def app():
    from webapp.app import create_app

    # No Cassandra needed to build the app; requests are not served here.
    return create_app(Settings(secret_key=SecretStr("k" * 40), allow_insecure_services=True,
                               web={"allow_insecure_http": True}), db=object())


def test_every_server_callback_carries_a_known_permission(app) -> None:
    from webapp.security import server_callbacks

    callbacks = server_callbacks(app)
    assert callbacks, "the app registered no callbacks"
    assert all(v in POLICY for v in callbacks.values()), callbacks


def test_dash_pages_use_the_policy_paths(app) -> None:
    import dash

    assert all(p.get("permission") in POLICY for p in dash.page_registry.values())
    registered = {p["permission"]: p for p in dash.page_registry.values()
                  if POLICY[p["permission"]].page}
    assert set(registered) == {p.key for p in pages()}
    for p in pages():
        assert registered[p.key]["path"] == p.page.path
        assert registered[p.key].get("path_template") == p.page.path_template


def test_every_flask_route_is_classified(app) -> None:
    from webapp.security import PERMISSION_ATTR, _dash_infrastructure

    rules = _dash_infrastructure(app)
    for rule in app.server.url_map.iter_rules():
        view = app.server.view_functions[rule.endpoint]
        classified = (rule.endpoint in rules or hasattr(view, PERMISSION_ATTR)
                      or rule.endpoint in {"/", "/<path:path>", "/_dash-update-component"})
        assert classified, rule.endpoint


def test_the_app_refuses_to_start_without_a_secret_key_unless_demo() -> None:
    from webapp.app import ConfigurationError, secret_key

    with pytest.raises(ConfigurationError, match="ICU_SECRET_KEY"):
        secret_key(Settings(secret_key=SecretStr("")))
    with pytest.raises(ConfigurationError, match="at least 32"):
        secret_key(Settings(secret_key=SecretStr("short")))
    demo = Settings(secret_key=SecretStr(""), demo_mode=True)
    assert len(secret_key(demo)) >= 32 and secret_key(demo) != secret_key(demo)
    assert secret_key(Settings(secret_key=SecretStr("e" * 40))) == "e" * 40


@pytest.mark.parametrize(
    ("path", "key"),
    [("/admin", "admin"), ("//admin", "admin"), ("/admin/", "admin"), ("/admin//", "admin"),
     ("/patient/P1", "patient"), ("/patient//P1", "patient"), ("/404", "shell"),
     ("/ADMIN", None), ("/nothing", None), ("admin", "deny")],
)
def test_pages_are_resolved_as_the_dash_router_resolves_them(app, path, key) -> None:
    from webapp.security import page_permission

    assert page_permission(app, path) == key
