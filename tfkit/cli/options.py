"""Click options generated from the API's frozen config dataclasses, so the CLI and the Python API
take the same options with the same defaults.

Example:
    >>> @click.command()
    ... @config_options(TrainConfig)
    ... def train(**kw): cfg = config_from(TrainConfig, kw)
"""
from __future__ import annotations

import dataclasses
import enum
import typing

import click


def _click_type(field, hints):
    hint = hints[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return click.Choice([m.value for m in base])
    return {int: int, float: float, bool: bool, str: str}.get(base, str)


def config_options(cls, *, exclude: tuple[str, ...] = (), rename: dict | None = None, prefix: str = "",
                   defaults=None):
    """Decorator adding one `--field-name` option per dataclass field (default shown; the field's
    `metadata["help"]`, where it has one, is the option's help).

    `prefix` namespaces the flags (`--model-alpha`); `rename` maps a field to another flag name
    ("" = the bare prefix); `defaults` is an instance whose values replace the class defaults."""
    rename = rename or {}
    hints = typing.get_type_hints(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in exclude:
                continue
            if defaults is not None:
                default = getattr(defaults, f.name)
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            default = default.value if isinstance(default, enum.Enum) else default
            flag = ("--" + prefix + rename.get(f.name, f.name).replace("_", "-")).rstrip("-")
            param = prefix.replace("-", "_") + f.name
            helptext = f.metadata.get("help")
            if isinstance(default, bool):
                fn = click.option(f"{flag}/--no-{flag[2:]}", param, default=default, show_default=True,
                                  help=helptext)(fn)
            else:
                fn = click.option(flag, param, type=_click_type(f, hints), default=default,
                                  show_default=True, help=helptext)(fn)
        return fn

    return decorate


def config_from(cls, kwargs: dict, *, prefix: str = "", **fixed):
    """Pop the dataclass's fields out of click's kwargs and build the config."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {n: kwargs.pop(prefix.replace("-", "_") + n) for n in names if prefix.replace("-", "_") + n in kwargs}
    return cls(**{**values, **fixed})
