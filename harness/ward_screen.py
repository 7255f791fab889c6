"""A ward screen as the browser drives it, over HTTP: sign in, load the ward page, then
POST the ward's update callback (``/_dash-update-component``) with the body the Dash
renderer sends, keeping what the answers tell it (the tiles shown, the ``ward-sent``
store), as the browser does. Used by the ward-screen benchmark and the fault campaign."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

TICK_OUTPUT_PREFIX = "..ward-grid.children..."


def walk(node: Any) -> Iterator[dict]:
    """Every dict under ``node`` (Dash components and their props), depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def classes(node: dict) -> str:
    props = node.get("props")
    return (props.get("className") or "") if isinstance(props, dict) else ""


def text_of(node: Any) -> str:
    """The text a component shows (its string children, joined)."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return " ".join(t for t in (text_of(c) for c in node) if t)
    if isinstance(node, dict):
        return text_of(node.get("props", {}).get("children"))
    return ""


@dataclass
class WardScreen:
    """One signed-in browser showing ``ward`` at ``base``."""

    base: str
    username: str
    password: str
    ward: str
    session: requests.Session = field(default_factory=requests.Session)
    tick_output: str = ""
    beds: list[str] = field(default_factory=list)  # the tiles it shows, in order
    sent: Any = None  # the ward-sent Store
    options: list = field(default_factory=list)  # the picker's options
    n: int = 0
    banner_class: str = ""
    banner_text: str = ""

    def login(self, timeout: float = 60) -> None:
        s = self.session
        r = s.get(self.base + "/login", timeout=timeout)
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        r = s.post(self.base + "/login", data={"csrf_token": token, "username": self.username,
                                               "password": self.password},
                   allow_redirects=False, timeout=timeout)
        if r.status_code != 302:
            raise RuntimeError(f"sign-in of {self.username} failed: {r.status_code}")
        # the page itself, then what the renderer fetches before its first callback
        page = s.get(self.base + f"/ward?ward={self.ward}&kiosk=1", timeout=timeout)
        if page.status_code != 200:
            raise RuntimeError(f"/ward answered {page.status_code}")
        s.get(self.base + "/_dash-layout", timeout=timeout).raise_for_status()
        deps = s.get(self.base + "/_dash-dependencies", timeout=timeout).json()
        self.tick_output = next(d["output"] for d in deps
                                if d["output"].startswith(TICK_OUTPUT_PREFIX))
        self.options = [{"label": self.ward, "value": self.ward}]

    def body(self) -> dict:
        from dash._utils import split_callback_id

        outputs: list = []
        for o in split_callback_id(self.tick_output):
            ident = o["id"]
            if isinstance(ident, str) and ident.startswith("{"):
                part = json.loads(ident)["type"]
                outputs.append([{"id": {"bed": b, "type": part, "ward": self.ward},
                                 "property": o["property"]} for b in self.beds])
            else:
                outputs.append(o)
        return {
            "output": self.tick_output,
            "outputs": outputs,
            "inputs": [{"id": "ward-interval", "property": "n_intervals", "value": self.n},
                       {"id": "ward-picker", "property": "value", "value": self.ward}],
            "state": [{"id": "ward-sent", "property": "data", "value": self.sent},
                      {"id": "ward-picker", "property": "options", "value": self.options}],
            "changedPropIds": ["ward-interval.n_intervals"],
        }

    def tick(self, timeout: float = 60) -> requests.Response:
        """One update: the callback's HTTP answer (its parsed ``response`` kept by
        ``apply``; a non-200 answer is returned for the caller to judge)."""
        self.n += 1
        token = self.session.cookies.get("_csrf_token")
        r = self.session.post(self.base + "/_dash-update-component",
                              data=json.dumps(self.body()),
                              headers={"Content-Type": "application/json",
                                       "X-CSRFToken": token or ""}, timeout=timeout)
        if r.status_code == 200:
            self.apply(r.json().get("response", {}))
        return r

    def apply(self, answer: dict) -> None:
        """Keep what the browser would keep."""
        if "ward-sent" in answer:
            self.sent = answer["ward-sent"]["data"]
        if "ward-picker" in answer and "options" in answer["ward-picker"]:
            self.options = answer["ward-picker"]["options"]
        banner = answer.get("ward-banner")
        if isinstance(banner, dict):
            self.banner_class = str(banner.get("className", self.banner_class))
            if "children" in banner:
                self.banner_text = text_of(banner["children"])
        grid = answer.get("ward-grid", {}).get("children")
        if isinstance(grid, list):
            self.beds = []
            for tile in grid:
                ident = (tile.get("props") or {}).get("id") if isinstance(tile, dict) else None
                if isinstance(ident, dict) and ident.get("type") == "ward-tile":
                    self.beds.append(ident["bed"])

    @property
    def delayed(self) -> bool:
        """The "DATA DELAYED" banner is shown."""
        return "is-shown" in self.banner_class
