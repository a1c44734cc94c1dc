"""One way for both CLIs (`sgmodels`, `sgeval`) to show expected failures: a one-line message and exit status 1.

Bad input (ValueError, and whatever else a command names) prints its own message; a failed write prints as
`sgmodels.fileio.WriteError` reads (`could not write PATH (No space left on device); what was kept`), any other
OSError as `PATH: reason`. Never a traceback. sgeval reaches this module through its sgmodels adapter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from sgmodels.fileio import os_error_message

__all__ = ["cli_errors"]


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
