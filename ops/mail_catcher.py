"""``icu mail catcher``: a development SMTP server (aiosmtpd) that keeps every message it
receives as a ``.eml`` file and logs its subject, for the demo. Never for production."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from pathlib import Path

log = logging.getLogger(__name__)


class SaveHandler:
    """aiosmtpd handler: one file per message in ``directory``, numbered on from the
    highest number already there (a restarted catcher never overwrites earlier mail)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = highest_number(directory)

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        path = self._claim()
        path.write_bytes(envelope.content)
        log.info("mail %s for %s: %s", path.name, ", ".join(envelope.rcpt_tos), msg["Subject"])
        return "250 Message accepted for delivery"

    def _claim(self) -> Path:
        """The next free file name, created exclusively: another catcher writing to the
        same directory cannot take it too."""
        while True:
            self.count += 1
            path = self.directory / f"{self.count:06d}.eml"
            try:
                with path.open("xb"):
                    return path
            except FileExistsError:
                self.count = max(self.count, highest_number(self.directory))


def highest_number(directory: Path) -> int:
    """The highest ``NNNNNN.eml`` number in ``directory`` (0 when there is none)."""
    numbers = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
    return max(numbers, default=0)
