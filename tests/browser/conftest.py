"""Browser-test fixtures: the real web app (``icu web run`` with waitress) on a fresh
Cassandra keyspace, one user per role, and headless Chromium driven by Selenium."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from backend.auth_policy import Role
from backend.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SE_CHROMEDRIVER", "/usr/bin/chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveWeb:
    base: str
    settings: Settings
    db: object
    users: dict[Role, tuple[str, str]] = field(default_factory=dict)  # role -> (name, pw)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def live_web(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWeb]:
    """One server per test module, on its own keyspace (dropped afterwards)."""
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from backend.users import create_user

    settings: Settings = services.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "cassandra": services.cassandra.model_copy(
            update={"keyspace": f"icu_t_browser_{uuid.uuid4().hex[:10]}"}),
        "web": services.web.model_copy(update={"host": "127.0.0.1", "port": _free_port()}),
    })
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    web = LiveWeb(f"http://127.0.0.1:{settings.web.port}", settings, db)
    for role in Role:
        name, pw = f"b-{role.value.replace('_', '-')}", secrets.token_urlsafe(16)
        create_user(db, name, pw, role, f"Browser {role.label}", actor="test", via="test",
                    wards=("ICU-A",) if role is Role.WARD_DISPLAY else None)
        web.users[role] = (name, pw)

    log_path = tmp_path_factory.mktemp("web") / "web.log"
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"web app exited {proc.returncode}:\n"
                                     + log_path.read_text(errors="replace")[-3000:])
            try:
                if requests.get(web.url("/login"), timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("web app did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.3)
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


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1440,1000", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
