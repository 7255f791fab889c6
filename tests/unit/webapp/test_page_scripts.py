"""Inline scripts of the server-rendered pages are exactly what the CSP allows."""

from __future__ import annotations

import base64
import hashlib
import re

from webapp import documents


def _inline_scripts(html: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", html, flags=re.S)


def test_every_inline_script_of_the_login_page_has_its_hash_in_the_policy() -> None:
    for page in (documents.login_page(csrf_token="t"),
                 documents.login_page(csrf_token="t", error="Wrong password", username="a'b")):
        scripts = _inline_scripts(page)
        assert scripts, "the theme script is inline"
        for script in scripts:
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in documents.inline_script_hashes(), script
