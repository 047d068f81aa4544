"""One generic registry: `@REG.register("name")`, `REG.get(name)` with "did you mean", `REG.names()`.

Example:
    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def build_tiny(spec): ...
    >>> MODELS.get("tiny") is build_tiny
    True
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterator
from typing import Generic, TypeVar

from tfkit.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (builders, step classes, devices). Names are unique."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.what, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def load_plugins(self, group: str, base: type, *, reserved: Collection[str] = ()) -> None:
        """Register the `base` subclasses that installed packages declare under the entry-point
        `group` (once per registry). A name tfkit already has, or `reserved`, stays tfkit's; a broken
        plug-in is a warning and is skipped: a third party's bug must never take the CLI down."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            if ep.name in self._items or ep.name in reserved:
                continue
            try:
                cls = ep.load()
                if not (isinstance(cls, type) and issubclass(cls, base)):
                    raise TypeError(f"{ep.value} is not a {base.__module__}.{base.__qualname__} subclass")
                self.register(ep.name)(cls)
            except Exception as e:  # noqa: BLE001  (see the docstring)
                warnings.warn(f"tfkit: skipping {self.what} plug-in {ep.name!r} ({ep.value}): {e}", stacklevel=3)
