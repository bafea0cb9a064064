"""JSON lines parsed by orjson where it gives exactly what the standard library gives, for speed.

orjson parses a line several times faster than `json`, but it differs on numbers: an integer
past 64 bits is parsed as a float, NaN and Infinity are refused, and it cannot
keep numbers as text the way uft's data reader does. So orjson is used only for a line with no number in it
(text, true/false, null, lists and objects of them: nearly every training row), and anything orjson refuses
(a lone surrogate, nesting past 1,024 levels) goes to the caller's standard-library function, whose result or
error stands. Without orjson installed everything takes the standard path.

Whether a value holds a number is read off the parsed value, by exact built-in types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a core dependency
    orjson = None  # type: ignore[assignment]

_LEAVES = frozenset({str, bool, type(None)})


#: Deeper than this goes the standard way, whose RecursionError (past about 1,000 levels) stands where
#: orjson would parse up to 1,024.
_MAX_DEPTH = 64


def _plain(value: Any, depth: int = 0) -> bool:
    """True when `value` holds no number: only text, true/false and null, in lists and objects (with exact
    built-in types, as parsed JSON has) at most `_MAX_DEPTH` deep. Leaves are tested inline, so a two-level
    chat row costs few calls."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return kind in _LEAVES
    if depth >= _MAX_DEPTH:
        return False
    for item in items:  # noqa: SIM110 - a loop: all() over a generator costs more per row
        if type(item) not in _LEAVES and not _plain(item, depth + 1):
            return False
    return True


def make_loads(standard: Callable[[str], Any]) -> Callable[[str], Any]:
    """A parser with `standard`'s results and errors that asks orjson first when the text holds no number."""
    if orjson is None:
        return standard
    fast, refused = orjson.loads, orjson.JSONDecodeError

    def loads(text: str) -> Any:
        try:
            value = fast(text)
        except refused:
            return standard(text)
        return value if _plain(value) else standard(text)
    return loads

