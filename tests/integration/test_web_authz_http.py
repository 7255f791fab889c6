"""Server-side authorisation over real HTTP: ``icu web run`` (waitress) against a real
Cassandra keyspace, driven with ``requests``.

Pages, routes and callbacks are enumerated from the app itself (its Flask URL map and
Dash callback map), so a page or callback added later is covered without touching this
file: every one must refuse an anonymous session (redirect / 401) and a role the policy
does not grant (403), and answer a role it grants.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from backend import audit
from backend.auth_policy import POLICY, Role, allowed, navigation, page_for_path, pages
from backend.settings import Settings
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.users import create_user
from harness import audit_trail

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAX_FAILED = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Web:
    base: str
    settings: Settings
    db: object
    passwords: dict[str, str] = field(default_factory=dict)  # username -> password
    users: dict[Role, str] = field(default_factory=dict)  # role -> username
    app: object = None
    log: Path | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def login(self, username: str, password: str | None = None) -> requests.Session:
        s = requests.Session()
        r = s.get(self.url("/login"), timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        r = s.post(self.url("/login"), data={
            "csrf_token": token, "username": username,
            "password": self.passwords[username] if password is None else password,
        }, allow_redirects=False, timeout=30)
        s.last_login = r  # type: ignore[attr-defined]
        return s

    def add_user(self, name: str, role: Role, wards: tuple[str, ...] | None = None) -> str:
        password = secrets.token_urlsafe(16)
        if wards is None and role is Role.WARD_DISPLAY:
            wards = ("ICU-A",)  # a ward display is signed in for one ward
        create_user(self.db, name, password, role, f"Test {role.label}", actor="test",
                    via="test", wards=wards)
        self.users.setdefault(role, name)
        self.passwords[name] = password
        return name

    def as_role(self, role: Role) -> requests.Session:
        s = self.login(self.users[role])
        assert s.last_login.status_code == 302, s.last_login.text[:500]  # type: ignore
        return s


@pytest.fixture(scope="module")
def web(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """One server for the module, on its own keyspace (dropped afterwards). Tests that
    change a user (lockout, disabling, idle) use users of their own."""
    settings: Settings = services.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "cassandra": services.cassandra.model_copy(
            update={"keyspace": f"icu_t_web_{uuid.uuid4().hex[:10]}"}),
        "web": services.web.model_copy(update={
            "host": "127.0.0.1", "port": _free_port(), "max_failed_logins": MAX_FAILED,
            "lockout_minutes": 15, "idle_timeout_minutes": 15}),
    })
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    web = Web(f"http://127.0.0.1:{settings.web.port}", settings, db)
    for role in Role:
        web.add_user(f"t-{role.value.replace('_', '-')}", role)

    web.log = tmp_path_factory.mktemp("web") / "web.log"
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with open(web.log, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"web app exited {proc.returncode}:\n"
                                     + web.log.read_text(errors="replace")[-3000:])
            try:
                if requests.get(web.url("/login"), timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("web app did not start:\n" + web.log.read_text()[-3000:])
            time.sleep(0.3)
        # The same code, built in-process, tells us every route and callback to probe.
        from webapp.app import create_app

        web.app = create_app(settings, db=db)
        yield web
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        if os.environ.get("ICU_KEEP_TEST_DATA", "") not in ("1", "true", "yes"):
            db.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}", timeout=60)
        db.cluster.shutdown()


# --- enumeration ---------------------------------------------------------------------------
def page_paths() -> dict[str, str]:
    """path -> page permission: every page of the policy (templates filled in)."""
    out = {}
    for p in pages():
        out[p.page.path] = p.key
        if p.page.path_template:
            out[re.sub(r"<[^>]+>", "P-0001", p.page.path_template)] = p.key
    return out


def callbacks(web: Web) -> dict[str, str]:
    from webapp.security import server_callbacks

    cbs = server_callbacks(web.app)
    assert all(cbs.values()), f"untagged callbacks: {cbs}"
    return cbs  # type: ignore[return-value]


def dependencies(web: Web, s: requests.Session) -> dict[str, dict]:
    r = s.get(web.url("/_dash-dependencies"), timeout=10)
    assert r.status_code == 200
    return {d["output"]: d for d in r.json()}


def callback_body(dep: dict, pathname: str | None = None) -> dict:
    from dash._utils import split_callback_id

    def wildcard(ident: object) -> bool:
        """A pattern-matching id (``{"type": ..., "bed": ["ALL"]}``): the browser sends
        the list of the matching components; here none match."""
        return isinstance(ident, str) and ident.startswith("{")

    def vals(items: list[dict]) -> list:
        out: list = []
        for i in items:
            if wildcard(i["id"]):
                out.append([])
                continue
            value = None
            if i["id"] == "_pages_location":
                value = pathname if i["property"] == "pathname" else ""
            out.append({"id": i["id"], "property": i["property"], "value": value})
        return out

    outputs = split_callback_id(dep["output"])
    if isinstance(outputs, list):
        outputs = [[] if wildcard(o["id"]) else o for o in outputs]
    return {"output": dep["output"], "outputs": outputs,
            "inputs": vals(dep["inputs"]), "state": vals(dep.get("state", [])),
            "changedPropIds": []}


def post_callback(web: Web, s: requests.Session, body: dict, csrf: bool = True):
    headers = {"Content-Type": "application/json"}
    token = s.cookies.get("_csrf_token")
    if csrf and token:
        headers["X-CSRFToken"] = token
    return s.post(web.url("/_dash-update-component"), data=json.dumps(body), headers=headers,
                  allow_redirects=False, timeout=30)


# --- tests ---------------------------------------------------------------------------------
def test_anonymous_is_refused_everywhere_but_public_resources(web: Web) -> None:
    anon = requests.Session()
    # every page: redirect to the sign-in page, remembering where to go back to
    for path in [*page_paths(), "/", "/no-such-page"]:
        r = anon.get(web.url(path), allow_redirects=False, timeout=10)
        assert r.status_code == 302, path
        assert r.headers["Location"].startswith("/login"), path
    # Dash's API and every other non-public route: 401
    for path in ["/_dash-layout", "/_dash-dependencies", "/_reload-hash"]:
        assert anon.get(web.url(path), timeout=10).status_code == 401, path
    assert anon.post(web.url("/logout"), timeout=10).status_code == 401
    # every callback, with and without a CSRF token
    admin = web.as_role(Role.ADMIN)
    deps = dependencies(web, admin)
    anon.get(web.url("/login"), timeout=10)  # gets a CSRF cookie
    for output in callbacks(web):
        for csrf in (True, False):
            r = post_callback(web, anon, callback_body(deps[output], "/ward"), csrf=csrf)
            assert r.status_code == 401, (output, r.status_code)
    # public: sign-in page, assets, JS bundles, favicon
    assert anon.get(web.url("/login"), timeout=10).status_code == 200
    assert anon.get(web.url("/assets/base.css"), timeout=10).status_code == 200
    assert anon.get(web.url("/_favicon.ico"), timeout=10).status_code == 200
    index = admin.get(web.url("/models"), timeout=10).text
    bundle = re.search(r'src="(/_dash-component-suites/[^"]+)"', index).group(1)
    assert anon.get(web.url(bundle), timeout=10).status_code == 200


def test_every_route_is_known_to_the_enforcement(web: Web) -> None:
    """A Flask route nobody classified is denied even to a signed-in admin."""
    from webapp.security import PERMISSION_ATTR, _dash_infrastructure

    rules = _dash_infrastructure(web.app)
    server = web.app.server
    for rule in server.url_map.iter_rules():
        view = server.view_functions[rule.endpoint]
        assert (rule.endpoint in rules or hasattr(view, PERMISSION_ATTR)
                or rule.endpoint in {"/", "/<path:path>", "/_dash-update-component"}), rule


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_its_pages_and_callbacks(web: Web, role: Role) -> None:
    s = web.as_role(role)
    # pages: a full page load
    for path, key in page_paths().items():
        r = s.get(web.url(path), allow_redirects=False, timeout=10)
        expected = 200 if allowed(role, key) else 403
        assert r.status_code == expected, (role, path, r.status_code)
        if expected == 403:
            assert 'id="forbidden"' in r.text
    r = s.get(web.url("/"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == navigation(role)[0].page.path
    # the shell only offers what the policy grants
    layout = s.get(web.url("/_dash-layout"), timeout=10)
    assert layout.status_code == 200
    offered = set(re.findall(r'"id": ?"nav-([a-z.]+)"', layout.text))
    assert offered == {p.key for p in navigation(role)}

    deps = dependencies(web, s)
    cbs = callbacks(web)
    assert set(cbs) <= set(deps), "the running server and the in-process app differ"
    router = next(k for k in cbs if "_pages_content" in k)
    for output, needed in cbs.items():
        if output == router:
            continue
        r = post_callback(web, s, callback_body(deps[output]))
        if allowed(role, needed):
            assert r.status_code in (200, 204), (role, output, r.status_code, r.text[:300])
        else:
            assert r.status_code == 403, (role, output, r.status_code)
    # the Pages router serves a page's layout only to the roles of that page
    for path, key in page_paths().items():
        r = post_callback(web, s, callback_body(deps[router], path))
        expected = 200 if allowed(role, key) else 403
        assert r.status_code == expected, (role, "router", path, r.status_code)
    # unknown callbacks are denied by default
    r = post_callback(web, s, {"output": "no-such.children", "outputs": {
        "id": "no-such", "property": "children"}, "inputs": [], "changedPropIds": []})
    assert r.status_code == 403


def test_callbacks_need_the_csrf_token_dash_sends(web: Web) -> None:
    s = web.as_role(Role.NURSE)
    deps = dependencies(web, s)
    output = next(k for k, v in callbacks(web).items() if v == "ward")
    body = callback_body(deps[output])
    assert post_callback(web, s, body, csrf=False).status_code == 400
    r = post_callback(web, s, body, csrf=True)
    assert r.status_code == 200 and "ward-summary" in r.text


def test_denials_and_sign_ins_are_audited(web: Web) -> None:
    nurse = web.users[Role.NURSE]
    s = web.as_role(Role.NURSE)
    assert s.get(web.url("/admin"), timeout=10).status_code == 403
    web.login(nurse, "wrong password!!")
    s.post(web.url("/logout"), data={"csrf_token": s.cookies.get("_csrf_token")}, timeout=10)
    actions = [e.action for e in audit_trail.recent(web.db, actor=nurse)]
    for action in (audit.LOGIN_SUCCESS, audit.ACCESS_DENIED, audit.LOGIN_FAILURE, audit.LOGOUT):
        assert action in actions, (action, actions)
    denied = audit_trail.recent(web.db, actor=nurse, action=audit.ACCESS_DENIED)
    assert denied[0].target_id == "admin" and "/admin" in denied[0].detail


def test_bad_password_and_lockout(web: Web) -> None:
    name = web.add_user("t-lock", Role.PHYSICIAN)
    for _ in range(MAX_FAILED - 1):
        r = web.login(name, "not the password").last_login
        assert r.status_code == 401
        assert "username or password is incorrect" in r.text
    # an unknown user gets exactly the same answer
    r = web.login("nobody-here", "not the password").last_login
    assert r.status_code == 401 and "username or password is incorrect" in r.text
    r = web.login(name, "not the password").last_login  # the limit: locked
    assert r.status_code == 429 and "locked" in r.text
    r = web.login(name).last_login  # the right password does not help while locked
    assert r.status_code == 429 and "locked" in r.text
    from backend.users import unlock_user

    assert unlock_user(web.db, name, web.settings, actor="test", via="test")
    assert web.login(name).last_login.status_code == 302


def test_session_cookie_flags_and_fixation(web: Web) -> None:
    s = requests.Session()
    r = s.get(web.url("/login"), timeout=10)
    before = s.cookies.get("icu_session")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    name = web.users[Role.NURSE]
    r = s.post(web.url("/login"), data={"csrf_token": token, "username": name,
                                        "password": web.passwords[name]},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302
    cookie = next(c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("icu_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    after = s.cookies.get("icu_session")
    assert after != before
    # the pre-login cookie does not carry the sign-in
    stale = requests.Session()
    stale.cookies.set("icu_session", before)
    assert stale.get(web.url("/_dash-layout"), timeout=10).status_code == 401
    # a copied post-login cookie stops working once the user signs out (server-side)
    copy = requests.Session()
    copy.cookies.set("icu_session", after)
    assert copy.get(web.url("/_dash-layout"), timeout=10).status_code == 200
    r = s.post(web.url("/logout"), data={"csrf_token": s.cookies.get("_csrf_token")},
               allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "logged_out" in r.headers["Location"]
    assert copy.get(web.url("/_dash-layout"), timeout=10).status_code == 401


def test_idle_timeout_and_disabling_end_open_sessions(web: Web) -> None:
    idle = web.add_user("t-idle", Role.CHARGE_NURSE)
    s = web.login(idle)
    assert s.get(web.url("/ward"), allow_redirects=False, timeout=10).status_code == 200
    # age the server-side session past the idle timeout
    old = datetime.now(UTC) - timedelta(minutes=web.settings.web.idle_timeout_minutes + 1)
    rows = web.db.execute("SELECT session_id, username FROM web_sessions")
    for row in rows:
        if row["username"] == idle:
            web.db.execute("UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                           (old, row["session_id"]))
    r = s.get(web.url("/ward"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    r = s.get(web.url(r.headers["Location"]), timeout=10)
    assert "Your session has ended" in r.text

    # disabling a user ends their open session at the next request
    from backend.users import disable_user

    gone = web.add_user("t-gone", Role.PHYSICIAN)
    s = web.login(gone)
    assert s.get(web.url("/_dash-layout"), timeout=10).status_code == 200
    disable_user(web.db, gone, actor="test", via="test")
    assert s.get(web.url("/_dash-layout"), timeout=10).status_code == 401
    r = web.login(gone).last_login
    assert r.status_code == 401  # a disabled account cannot sign in


def test_policy_covers_every_page_the_app_serves(web: Web) -> None:
    import dash

    for page in dash.page_registry.values():
        assert page.get("permission") in POLICY, page["module"]
        if POLICY[page["permission"]].page:
            assert page_for_path(page["path"]).key == page["permission"]


def test_timer_refreshes_do_not_keep_a_session_alive(web: Web) -> None:
    """Only user actions count as activity: a screen refreshing itself on a dcc.Interval
    must not hold an unattended session open past the idle timeout."""
    name = web.add_user("t-timer", Role.NURSE)
    s = web.login(name)
    sid = next(r["session_id"] for r in web.db.execute(
        "SELECT session_id, username FROM web_sessions") if r["username"] == name)

    def age(minutes: float) -> datetime:
        ts = datetime.now(UTC) - timedelta(minutes=minutes)
        web.db.execute("UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                       (ts, sid))
        return ts

    def last_seen() -> datetime:
        row = web.db.execute("SELECT last_seen_ts FROM web_sessions WHERE session_id = %s",
                             (sid,)).one()
        return row["last_seen_ts"].replace(tzinfo=UTC)

    deps = dependencies(web, s)
    output = next(k for k, v in callbacks(web).items() if v == "ward")
    body = callback_body(deps[output])
    aged = age(5)
    r = post_callback(web, s, {**body, "changedPropIds": ["ward-interval.n_intervals"]})
    assert r.status_code == 200
    assert abs((last_seen() - aged).total_seconds()) < 1  # not extended
    assert "icu_idle_expires" not in r.headers.get("Set-Cookie", "")
    r = post_callback(web, s, {**body, "changedPropIds": ["ward-picker.value"]})
    assert r.status_code == 200
    assert datetime.now(UTC) - last_seen() < timedelta(seconds=30)  # a user action
    assert "icu_idle_expires" in r.headers.get("Set-Cookie", "")


def test_a_session_ending_during_a_callback_is_explained_on_the_next_page(web: Web) -> None:
    """A screen's 1 s update is often the first request after the idle timeout: it is
    refused (401) and the page reload that follows still says the session ended."""
    name = web.add_user("t-ended", Role.NURSE)
    s = web.login(name)
    deps = dependencies(web, s)
    output = next(k for k, v in callbacks(web).items() if v == "ward")
    old = datetime.now(UTC) - timedelta(minutes=web.settings.web.idle_timeout_minutes + 1)
    for row in web.db.execute("SELECT session_id, username FROM web_sessions"):
        if row["username"] == name:
            web.db.execute("UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                           (old, row["session_id"]))
    r = post_callback(web, s, {**callback_body(deps[output]),
                               "changedPropIds": ["ward-interval.n_intervals"]})
    assert r.status_code == 401 and "session expired" in r.text
    r = s.get(web.url("/ward"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    r = s.get(web.url("/ward"), allow_redirects=False, timeout=10)  # said once
    assert r.status_code == 302 and "expired=1" not in r.headers["Location"]
    assert len(audit_trail.recent(web.db, actor=name,
                            action=audit.SESSION_EXPIRED)) == 1


def test_callback_requests_must_match_the_callback(web: Web) -> None:
    """Dash passes inputs by position: a request whose inputs are reordered or renamed
    (e.g. to show the router one path and the check another) is refused."""
    s = web.as_role(Role.NURSE)
    deps = dependencies(web, s)
    router = next(k for k in callbacks(web) if "_pages_content" in k)
    body = callback_body(deps[router], "/ward")
    assert post_callback(web, s, body).status_code == 200
    smuggled = {**body, "inputs": [{"id": "decoy", "property": "pathname", "value": "/admin"},
                                   *body["inputs"]]}
    assert post_callback(web, s, smuggled).status_code == 400
    swapped = {**body, "inputs": list(reversed(body["inputs"]))}
    assert post_callback(web, s, swapped).status_code == 400
    for path in ("/admin/", "//admin", "/admin//"):  # the router's own path matching
        r = post_callback(web, s, callback_body(deps[router], path))
        assert r.status_code == 403, path
    r = s.get(web.url("//admin"), allow_redirects=False, timeout=10)
    assert r.status_code in (301, 302, 308, 403) and "Administration" not in r.text
