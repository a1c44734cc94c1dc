"""Progress of long loops for both packages: a tqdm bar on a terminal, plain lines at intervals anywhere else.

tqdm redraws its bar with carriage returns; piped into a log (nohup, CI, `tee`) that is thousands of updates on one
line. `progress_bar` returns a tqdm only when the stream is a terminal; otherwise a `PlainProgress` that prints a
permanent, flushed line such as

    features: 1200/5000 img (24%), 85.3 img/s, elapsed 0:00:14, ETA 0:00:45

right after the first update, then at most every `PLAIN_INTERVAL_S` seconds, and once at the end. It supports the
part of tqdm's interface the callers use (iteration, `update`, `set_description`, `set_postfix`, `close`, `with`).
Standard library only (tqdm is imported when a terminal wants it); sgeval reaches it through its sgmodels adapter.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

__all__ = ["PLAIN_INTERVAL_S", "PlainProgress", "format_duration", "is_terminal", "progress_bar"]

PLAIN_INTERVAL_S = 60.0  # longest silence between plain lines of a long loop (a log shows it still runs)


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is an interactive terminal (live bars), not a pipe or a file."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def format_duration(seconds: float) -> str:
    """'5s', '3m 04s', '2h 03m 04s' or '1d 02h 03m': the official `total_time_str` style, which training logs,
    result records and progress lines of both packages share."""
    total = max(int(round(seconds)), 0)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class PlainProgress:
    """tqdm's counting interface, reported as permanent lines (see the module docstring)."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = "",
                 unit: str = "it", stream: TextIO | None = None, interval: float = PLAIN_INTERVAL_S,
                 enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.interval, self.enabled, self.clock = interval, enabled, clock
        self.n: float = 0
        self.postfix = ""
        self._start = clock()
        self._last_line: float | None = None  # clock of the last line; None before the first
        self._printed_n: float | None = None  # count shown by the last line
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("PlainProgress was given no iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count `n` more units; print a line when the first is due or `interval` seconds passed."""
        self.n += n
        now = self.clock()
        if self._last_line is None or now - self._last_line >= self.interval:
            self._print(now)

    def set_description(self, desc: str, refresh: bool = True) -> None:
        """Rename the loop (shown from the next line on)."""
        self.desc = desc

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Extra `key=value` fields shown at the end of the next line."""
        fields = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{key}={value}" for key, value in fields.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """A free-form text shown at the end of the next line."""
        self.postfix = text

    def close(self) -> None:
        """Print the final count (unless the last line already showed it)."""
        if self._closed:
            return
        self._closed = True
        if self.n and self.n != self._printed_n:
            self._print(self.clock())

    def line(self, now: float) -> str:
        """The progress line at clock time `now`: count, percentage, rate, elapsed and remaining time."""
        elapsed = max(now - self._start, 0.0)
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        parts = [f"{self.desc}: {count} {self.unit}" if self.desc else f"{count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        rate = self.n / elapsed if elapsed > 0 else None
        if rate:
            parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if rate and self.total and self.n < self.total:
            parts.append(f"ETA {format_duration((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _print(self, now: float) -> None:
        self._last_line, self._printed_n = now, self.n
        if self.enabled:
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", enabled: bool = True, stream: TextIO | None = None, leave: bool = True,
                 interval: float = PLAIN_INTERVAL_S) -> Any:
    """A tqdm bar on `stream` (default stderr) when it is a terminal, else a `PlainProgress`; silent when not
    `enabled`. Use it like tqdm: `for x in progress_bar(items, desc=...)` or `with progress_bar(total=n) as bar`."""
    stream = stream or sys.stderr
    if not is_terminal(stream):
        return PlainProgress(iterable, total=total, desc=desc, unit=unit, stream=stream, interval=interval,
                             enabled=enabled)
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, disable=not enabled, leave=leave,
                dynamic_ncols=True, mininterval=1.0)
