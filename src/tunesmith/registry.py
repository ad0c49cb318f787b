"""One registry shape for every pluggable part (methods, stages, formats, exporters, engines,
metrics): ``register(name)`` (a duplicate is an error), ``get(name)`` (unknown -> a one-line
ConfigError with the nearest name and the known ones), and discovery: a registry that names a
package imports its modules on first use, so a new method or stage is one new file. Modules
named ``_*`` are not imported by discovery: helpers that register nothing and load heavy
libraries (``methods/_adalora_budget.py`` imports the Trainer stack) stay out of config
parsing.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from .config_parse import suggest
from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what an entry is, for messages ("method", "stage", ...).
        key: the config key that selects an entry, for messages (default: ``kind``).
        package: a package whose modules register entries when imported (discovery).
        extra: names shown as known besides the entries (e.g. ``auto``).
    """

    def __init__(self, kind: str, key: str | None = None, package: str | None = None,
                 extra: tuple[str, ...] = ()):
        self.kind, self.key, self.package, self.extra = kind, key or kind, package, extra
        self._entries: dict[str, T] = {}
        self._discovered = package is None

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a second entry of the same name is a bug."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str, build: Callable[[Callable], T] | None = None):
        """Decorator: register the function (or ``build(function)``) under ``name``."""

        def wrap(fn):
            self.add(name, build(fn) if build else fn)
            return fn

        return wrap

    def discover(self) -> None:
        """Import every module of the package once (each registers its own entries)."""
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> T:
        """The entry ``name``; unknown -> ConfigError naming the key, the nearest and the known."""
        self.discover()
        if name not in self._entries:
            known = [*self.extra, *self._entries]
            raise ConfigError(f"key '{self.key}': unknown {self.kind} '{name}'"
                              f"{suggest(name, known)}; known: {', '.join(known)}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        self.discover()
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self.discover()
        return list(self._entries.items())

    def values(self) -> list[T]:
        self.discover()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
