"""A click group whose sub-commands are imported only when used, so `--help` stays fast and a broken
optional dependency of one command cannot break the others. Shared by the `sgmodels` and `sgeval` CLIs
(sgeval imports this module; sgmodels never imports sgeval)."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """click.Group mapping command names to "package.module:attribute" strings."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attr = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)
