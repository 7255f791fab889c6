"""What an identifier (patient, ward, bed, device, source) may contain.

Identifiers are shown on ward screens, written into e-mails and audit entries, and used
as Cassandra keys. A character that renders as nothing (zero-width, a bidirectional
override such as U+202E, which reverses the text after it) or that is a control
character can make one id look like another on screen, or hide text in a log. So an
identifier is a run of letters, digits, spaces and the punctuation that real device,
bed and record numbers use (``- _ . : / # + ( ) @``); nothing else. Quotes, commas,
backslashes, braces and brackets are excluded as well: they never appear in real ids,
and without them the stream job can bound a message's structure from its raw bytes
before parsing it (``backend.validation``).
"""

from __future__ import annotations

import re
import unicodedata

# \\w is every Unicode letter and digit (str.isalnum) and "_"; it excludes the control,
# format (Cf: bidi marks, zero-width characters) and separator categories.
_ALLOWED = re.compile(r"[\w \-.:/#+()@]+")
PUNCTUATION = "- _ . : / # + ( ) @"


def identifier_problem(text: str) -> str | None:
    """Why ``text`` is not an acceptable identifier, or None. The reason names the first
    offending character by its code point (never echoes the text itself)."""
    if not text:
        return "is empty"
    if _ALLOWED.fullmatch(text):
        if text != text.strip():
            return "starts or ends with a space"
        return None
    for ch in text:
        if not _ALLOWED.fullmatch(ch):
            name = unicodedata.name(ch, "")
            label = f"U+{ord(ch):04X}" + (f" ({name})" if name else "")
            return f"contains {label}, not allowed in an identifier"
    return None  # pragma: no cover - fullmatch failed, so some character is not allowed
