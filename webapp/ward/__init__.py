"""The ward monitor screen: bed tiles (``tiles``) and the page with its callbacks
(``view``). Data comes from ``webapp.live``; nothing here queries a database."""

from webapp.ward.tiles import render_tile
from webapp.ward.view import (
    AckResult,
    CallbackSpec,
    ClientsideSpec,
    register_ward_callbacks,
    ward_callbacks,
    ward_layout,
)

__all__ = [
    "AckResult",
    "CallbackSpec",
    "ClientsideSpec",
    "register_ward_callbacks",
    "render_tile",
    "ward_callbacks",
    "ward_layout",
]
