"""Identifiers and names people read: refuse what can hide or disguise text.

An identifier (a patient id, a device id, a FHIR id, a username) or a short label shown
to people (a display name) must not contain characters that are invisible or reorder
what is shown:

- control characters (Unicode category Cc: NUL, ESC, newlines - log and terminal
  injection),
- format characters (Cf): the bidirectional overrides and isolates (U+202A-U+202E,
  U+2066-U+2069: "Trojan Source", a name that displays differently from what it is), the
  zero-width space, joiners and the BOM (two ids that look the same but are not),
- line and paragraph separators (Zl, Zp), surrogates (Cs), private-use (Co) and
  unassigned code points (Cn),
- spaces other than the plain space (U+00A0, U+2003...), and leading or trailing space,
- text that is not in Unicode normal form NFC (the same name typed two ways).

``identifier_problem`` returns the reason (for a form message or an HTTP 400/4xx
answer), ``None`` when the text is acceptable.

Identifiers in device messages (``patient_id``, ``device_id``, ``ward``, ``bed``,
``source``) are checked with ``device_identifier_problem``, which also refuses the
characters that structure JSON (quotes, backslash, comma, braces and brackets). Real
device, bed and record numbers never contain them, and without them the stream job can
bound a message's structure from its raw bytes before parsing it (``backend.validation``).
"""

from __future__ import annotations

import unicodedata

__all__ = ["IdentifierError", "check_identifier", "device_identifier_problem",
           "identifier_problem"]

_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidirectional or zero-width)",
    "Cs": "a surrogate code point",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


class IdentifierError(ValueError):
    """An identifier that is refused; the message says which and why."""


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def identifier_problem(text: object, what: str = "identifier", *, max_length: int = 64,
                       allow_space: bool = False) -> str | None:
    """Why ``text`` is not an acceptable ``what`` (``None``: it is).

    ``allow_space``: plain spaces inside (display names, ward names), never at either end.
    """
    if not isinstance(text, str):
        return f"{what}: must be text, got {type(text).__name__}"
    if not text:
        return f"{what}: must not be empty"
    if len(text) > max_length:
        return f"{what}: at most {max_length} characters (got {len(text)})"
    if _plain_ascii(text, allow_space):
        return None
    return _character_problem(text, what, allow_space)


def _plain_ascii(text: str, allow_space: bool) -> bool:
    """Printable ASCII with no space at either end (and none at all unless allowed).

    Every device message carries four identifiers, and the character-by-character check
    below took ~8 us of the ~60 us of Python a reading costs the stream job (py-spy, in a
    drain; 1.4 us with this test first: docs/benchmarks.md). Text that passes
    this test has nothing that check refuses (printable ASCII is letters, digits,
    punctuation, symbols and the plain space; ASCII is always NFC), so the check is skipped;
    ``tests/unit/backend/test_identifiers.py`` holds the two to the same verdicts."""
    return (text.isascii() and text.isprintable() and text[0] != " " and text[-1] != " "
            and (allow_space or " " not in text))


def _character_problem(text: str, what: str, allow_space: bool) -> str | None:
    """``identifier_problem``'s checks of the characters and the normal form."""
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        reason = _REFUSED_CATEGORIES.get(category)
        if reason is not None:
            return f"{what}: contains {reason} ({_describe(ch)}) at position {i + 1}"
        if category == "Zs" and (ch != " " or not allow_space):
            kind = "a space" if ch == " " else f"a special space ({_describe(ch)})"
            return f"{what}: contains {kind} at position {i + 1}"
    if text != text.strip():
        return f"{what}: must not start or end with a space"
    if unicodedata.normalize("NFC", text) != text:
        return f"{what}: not in Unicode normal form NFC (retype it)"
    return None


def check_identifier(text: object, what: str = "identifier", *, max_length: int = 64,
                     allow_space: bool = False) -> str:
    """``text`` if acceptable, else :class:`IdentifierError` with the reason."""
    problem = identifier_problem(text, what, max_length=max_length, allow_space=allow_space)
    if problem is not None:
        raise IdentifierError(problem)
    return text  # type: ignore[return-value]


# Characters that structure a JSON document; never part of a device message's identifier.
STRUCTURAL = frozenset('"\\,{}[]')


def device_identifier_problem(text: object, what: str) -> str | None:
    """``identifier_problem`` for an identifier in a device message: plain spaces allowed
    inside (bed and ward names), JSON's structural characters refused."""
    problem = identifier_problem(text, what, allow_space=True)
    if problem is not None or STRUCTURAL.isdisjoint(text):  # type: ignore[arg-type]
        return problem
    for i, ch in enumerate(text):  # type: ignore[arg-type]  # a str: checked above
        if ch in STRUCTURAL:
            return f"{what}: contains {_describe(ch)}, not allowed in a device identifier " \
                   f"(position {i + 1})"
    return None
