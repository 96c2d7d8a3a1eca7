"""Text that can be stored: the rule every string a client sends is checked against.

PostgreSQL refuses NUL (U+0000) in text, and a lone UTF-16 surrogate (U+D800..U+DFFF, which JSON's `\\ud800`
escapes can produce) cannot be encoded as UTF-8 at all; SQLite would keep the first and fail on the second.
Refusing both for every string input makes the two engines answer alike, with a refusal instead of a
driver error.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored (for the user), or None when it can."""
    if value.isascii() and "\x00" not in value:
        return None
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (U+0000)"
    return "must not contain unpaired surrogate code points (U+D800 to U+DFFF): send valid Unicode text"


def storable(value: str) -> bool:
    return unstorable(value) is None
