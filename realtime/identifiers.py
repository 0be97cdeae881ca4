"""The one shape every id in a room name or token must have."""
from __future__ import annotations

import re

#: ASCII letters, digits, '_' and '-', 1 to 64 characters: no dots, slashes, spaces or look-alike unicode.
IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def is_identifier(value: object) -> bool:
    """Whether ``value`` is a string of the identifier shape."""
    return isinstance(value, str) and IDENTIFIER.fullmatch(value) is not None
