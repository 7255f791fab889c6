"""``icu mail catcher`` as a real process and a real SMTP client: a restarted catcher
numbers on from the mail it kept (it never overwrites earlier mail), and two catchers
writing to one directory never take the same file."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from backend.settings import Settings
from harness.mailbox import free_port
from harness.waiting import wait_until
from ops.mail_catcher import SaveHandler, highest_number
from tests.integration.test_alert_manager_process import spawn, stop

pytestmark = pytest.mark.integration


def send(port: int, subject: str) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "icu@localhost", "nurses@localhost", subject
    m.set_content("body")
    deadline = time.monotonic() + 30
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                smtp.send_message(m)
            return
        except OSError:  # not listening yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def subjects(directory: Path) -> list[tuple[str, str]]:
    from email import message_from_bytes, policy

    return [(p.name, message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"])
            for p in sorted(directory.glob("*.eml"))]


def test_a_restarted_catcher_keeps_earlier_mail(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    directory = tmp_path / "mail"
    for run in range(2):
        port = free_port()
        catcher = spawn(["mail", "catcher", "--port", str(port), "--dir", str(directory)],
                        settings, tmp_path / f"catcher-{run}.log")
        try:
            send(port, f"[HIGH] SpO2 86 % below 90 % - ICU-A bed {run + 1}")
            send(port, f"second of run {run}")
            wait_until(lambda n=2 * (run + 1): len(subjects(directory)) == n, timeout=20,
                       what="mail kept")
        finally:
            stop(catcher)
    assert subjects(directory) == [
        ("000001.eml", "[HIGH] SpO2 86 % below 90 % - ICU-A bed 1"),
        ("000002.eml", "second of run 0"),
        ("000003.eml", "[HIGH] SpO2 86 % below 90 % - ICU-A bed 2"),
        ("000004.eml", "second of run 1"),
    ]


def test_two_handlers_on_one_directory_never_share_a_file(tmp_path: Path) -> None:
    a, b = SaveHandler(tmp_path), SaveHandler(tmp_path)
    claimed = [h._claim() for h in (a, b, a, b, b)]
    assert len({p.name for p in claimed}) == 5
    assert highest_number(tmp_path) == 5
    (tmp_path / "notes.eml").write_text("not numbered")  # other files do not count
    assert SaveHandler(tmp_path).count == 5
