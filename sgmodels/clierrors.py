"""One way for both CLIs (`sgmodels`, `sgeval`) to show expected failures: a one-line message and exit status 1.

Bad input (ValueError, and whatever else a command names) prints its own message; a failed write prints as
`sgmodels.fileio.WriteError` reads (`could not write PATH (No space left on device); what was kept`), any other
OSError as `PATH: reason`. Never a traceback. sgeval reaches this module through its sgmodels adapter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from sgmodels.fileio import os_error_message

__all__ = ["cli_errors", "parse_label_names"]


@contextlib.contextmanager
def cli_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn ValueError, OSError and the exception types `also` raised inside into `click.ClickException`s.

    click's own exceptions pass unchanged (some error classes are both a ValueError and a ClickException).
    """
    messages: tuple[type[Exception], ...] = (ValueError, *also)
    try:
        yield
    except click.ClickException:
        raise
    except OSError as error:
        raise click.ClickException(os_error_message(error)) from error
    except messages as error:
        raise click.ClickException(str(error)) from error


def parse_label_names(text: str) -> list[str]:
    """Names from `--label-names`: "a,b,c", or "@FILE" with one name per line (blank lines ignored)."""
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise click.BadParameter(f"cannot read {path} ({error})", param_hint="--label-names") from None
        names = [line.strip() for line in lines if line.strip()]
    else:
        names = [name.strip() for name in text.split(",")]
    if not names or not all(names):
        raise click.BadParameter(f"{text!r} holds an empty name", param_hint="--label-names")
    return names
