"""JSON from outside, parsed strictly: one meaning or a clear refusal.

The standard library accepts things two parsers can read differently or that exhaust a
server: duplicate keys (the last one silently wins - and another component may take the
first), ``NaN``/``Infinity`` (not JSON), integers of thousands of digits (slow to
convert; Python refuses them with a ValueError of its own), nesting deep enough to hit
the recursion limit, and bytes that are not UTF-8. :func:`loads` refuses each with a
:class:`JsonError` (a ``ValueError``) that names the reason and, where the parser knows
it, the line and column.

Used wherever the app parses JSON it did not write: FHIR Bundles (``backend.fhir``), the
web app's request bodies (``webapp.security``), the county boundaries file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["JsonError", "load_file", "loads"]

MAX_INT_DIGITS = 30  # beyond any count or timestamp; int64 has 19 digits
DEFAULT_MAX_DEPTH = 64


class JsonError(ValueError):
    """Input that is not acceptable JSON; the message says why and where."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise JsonError(f"duplicate key {shown!r} in one object")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def _int(max_digits: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > max_digits:
            raise JsonError(f"integer of {digits} digits (at most {max_digits})")
        return int(text)

    return parse


def _float(as_decimal: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if len(text) > 100:
            raise JsonError(f"number of {len(text)} characters")
        if as_decimal:
            value = Decimal(text)
            if not value.is_finite() or abs(value.adjusted()) > 300:
                raise JsonError(f"number {text[:30]} is out of range")
            return value
        value = float(text)
        if not math.isfinite(value):
            raise JsonError(f"number {text[:30]} is out of range")
        return value

    return parse


def depth(value: Any) -> int:
    """Nesting depth of a parsed value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, d + 1)
        stack.extend((c, d + 1) for c in children)
    return deepest


def loads(data: str | bytes | bytearray, *, max_depth: int = DEFAULT_MAX_DEPTH,
          max_int_digits: int = MAX_INT_DIGITS, decimals: bool = False) -> Any:
    """Parse ``data`` strictly (see the module doc). ``decimals``: non-integer numbers
    as ``Decimal`` (exact, for clinical values) instead of ``float``."""
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}") from None
    elif isinstance(data, str):
        text = data
    else:
        raise JsonError(f"expected JSON text, got {type(data).__name__}")
    if text.startswith("\ufeff"):
        raise JsonError("starts with a byte-order mark")
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant,
                           parse_int=_int(max_int_digits), parse_float=_float(decimals))
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                        ) from None
    except RecursionError:
        raise JsonError(f"nested too deeply (at most {max_depth} levels)") from None
    except ValueError as exc:  # e.g. Python's own integer-size limit
        raise JsonError(f"not acceptable JSON: {exc}") from None
    if depth(value) > max_depth:
        raise JsonError(f"nested too deeply (at most {max_depth} levels)")
    return value


def load_file(path: str | os.PathLike[str], **options: Any) -> Any:
    """:func:`loads` of a file; a :class:`JsonError` names the file."""
    p = Path(path)
    try:
        return loads(p.read_bytes(), **options)
    except JsonError as exc:
        raise JsonError(f"{p.name}: {exc}") from None
