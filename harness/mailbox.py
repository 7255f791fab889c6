"""A real SMTP server in the test process (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.rcpts: list[list[str]] = []
        self._lock = threading.Lock()
        self._controller = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd handler
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"

    def start(self) -> Mailbox:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def snapshot(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)

    def keys(self) -> list[str]:
        return [m["X-ICU-Message-Key"] for m in self.snapshot()]

    def levels(self) -> list[str]:
        """The keys without their recipient digest: ``<alert>:L<level>`` (each recipient
        gets a message of their own)."""
        return [k.rsplit(":", 1)[0] for k in self.keys()]
