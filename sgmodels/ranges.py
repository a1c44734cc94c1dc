"""Parse integer lists such as ``"0-15,42"`` (seeds, style layers, class indices) for the command line.

`parse_ranges` keeps the ranges as they are written (`IntRanges`, a lazy sequence), so `--seeds 0-100000000000` costs
nothing until it is iterated and can be refused by its count or its largest value; `parse_range` expands a list.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Sequence
from typing import overload

_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")

__all__ = ["IntRanges", "parse_range", "parse_ranges"]


class IntRanges(Sequence[int]):
    """The integers of inclusive ranges, in the order given, never expanded: length, indexing and iteration are
    computed from the ranges (duplicates kept)."""

    def __init__(self, parts: Sequence[range]) -> None:
        self.parts = tuple(parts)
        # cumulative counts, without len(): it overflows beyond sys.maxsize
        self._ends = list(itertools.accumulate(part.stop - part.start for part in self.parts))

    @property
    def size(self) -> int:
        """How many integers (a Python int: no `len()` overflow for absurd ranges)."""
        return self._ends[-1] if self._ends else 0

    @property
    def maximum(self) -> int | None:
        """The largest integer, or None when empty."""
        return max((part.stop - 1 for part in self.parts if part.stop > part.start), default=None)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self.parts)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        position = index + self.size if index < 0 else index
        if not 0 <= position < self.size:
            raise IndexError(f"index {index} out of range for {self.size} values")
        part = bisect.bisect_right(self._ends, position)
        return self.parts[part][position - (self._ends[part - 1] if part else 0)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IntRanges):
            return self.parts == other.parts
        return isinstance(other, Sequence) and len(other) == self.size and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking equality with lists: not hashable

    def __repr__(self) -> str:
        text = ",".join(f"{p.start}-{p.stop - 1}" if p.stop - p.start > 1 else str(p.start) for p in self.parts)
        return f"IntRanges({text!r})"


def parse_ranges(text: str) -> IntRanges:
    """The comma-separated non-negative integers and inclusive ranges of `text`, in the order given, unexpanded.

    ``"0-3,10,12-13"`` -> 0, 1, 2, 3, 10, 12, 13. Duplicates are kept (the user asked for them); a range whose end is
    below its start, a negative number or anything else than digits, ``-`` and ``,`` is a ValueError.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string such as '0-15,42', got {type(text).__name__}")
    parts: list[range] = []
    for item in text.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"cannot parse {item.strip()!r} in {text!r}: use integers and ranges like '0-15,42'")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        if end < start:
            raise ValueError(f"range {item.strip()!r} in {text!r} ends before it starts")
        parts.append(range(start, end + 1))
    return IntRanges(parts)


def parse_range(text: str) -> list[int]:
    """`parse_ranges(text)` expanded into a list: ``"0-3,10,12-13"`` -> ``[0, 1, 2, 3, 10, 12, 13]``."""
    return list(parse_ranges(text))
