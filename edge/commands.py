"""What every package's `mpox` commands share: one-line errors, the kiosk's config as a
command reads it, and the registry through which a package adds commands to `mpox` without
`mpox --help` importing them (edge/cli.py holds the group itself)."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import click


class UserError(click.ClickException):
    """Printed as one line, exit status 1, no traceback."""


def user_errors(*also: type[BaseException], prefix: str = ""):
    """A KioskError (and the `also` exceptions) raised by the command becomes a UserError:
    one line a technician can act on, exit status 1."""
    from edge.errors import KioskError

    caught = (KioskError, *also)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except caught as e:
                raise UserError(f"{prefix}{e}") from None

        return wrapper

    return decorate


@dataclass(frozen=True)
class Registered:
    """A command another package adds to `mpox`, known by name and help line until it runs."""

    path: str  # its words after `mpox`: "train", or "models bundle" inside the `models` group
    target: str  # "module:attribute" of the click command
    help: str  # the line `mpox --help` shows
    extra: str = ""  # the pip extra it needs, named when its import fails


class Placeholder(click.Command):
    """What `--help` lists for a registered command: its name and help line, nothing imported."""


class LazyGroup(click.Group):
    """A group whose registered commands are imported when run, not when listed."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.registered: dict[str, Registered] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.registered})

    def get_command(self, ctx: click.Context, name: str):
        if name in self.registered:
            return Placeholder(name, help=self.registered[name].help, short_help=self.registered[name].help)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] in self.registered:
            return args[0], self._load(self.registered[args[0]]), args[1:]
        return super().resolve_command(ctx, args)

    @staticmethod
    def _load(r: Registered) -> click.Command:
        module, attr = r.target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as e:
            if not r.extra:
                raise
            raise UserError(f"'mpox {r.path}' needs the {r.extra} extra ({e.name} is missing): "
                            f"pip install -e '.[{r.extra}]'") from None


@user_errors()
def kiosk_config(path: Path | None):
    """The config at `path` (None: every default), or one line saying what is wrong."""
    from edge.config import load_config

    return load_config(path)


def default_model() -> Path:
    """The kiosk's default: the shipped Fast-MpoxNet (checkout or installed copy)."""
    from edge.config import ModelConfig

    return ModelConfig().path
