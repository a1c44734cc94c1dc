"""Parse integer lists such as ``"0-15,42"`` (seeds, style layers, class indices) for the command line."""

from __future__ import annotations

import re

_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_range(text: str) -> list[int]:
    """Expand a comma-separated list of non-negative integers and inclusive ranges, in the order given.

    ``"0-3,10,12-13"`` -> ``[0, 1, 2, 3, 10, 12, 13]``. Duplicates are kept (the user asked for them); a range whose
    end is below its start, a negative number or anything else than digits, ``-`` and ``,`` is a ValueError.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string such as '0-15,42', got {type(text).__name__}")
    values: list[int] = []
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"cannot parse {item.strip()!r} in {text!r}: use integers and ranges like '0-15,42'")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise ValueError(f"range {item.strip()!r} in {text!r} ends before it starts")
        values.extend(range(start, end + 1))
    return values
