"""Registries: build things by name, as timm's ``create_model`` does.

One :class:`Registry` per kind of thing (models, location encoders, index backends, query
modes...). Entries are added with a decorator where they are defined; nothing is imported
at package import time, so a registry is filled by importing the modules that define its
entries (see :meth:`Registry.load`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not registered; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """A name → factory table.

    Args:
        kind: what the entries are, for error messages ("model", "location encoder").
        modules: dotted module names whose import registers the entries; imported lazily
            on first lookup, so importing the registry itself has no side effects.
    """

    def __init__(self, kind: str, modules: Iterable[str] = ()) -> None:
        self.kind = kind
        self._modules = list(modules)
        self._loaded = False
        self._factories: dict[str, Callable[..., T]] = {}
        self._tags: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **tags: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name`` with optional tags (e.g. task="tiles")."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            self._tags[name] = dict(tags)
            return factory

        return decorate

    def load(self) -> None:
        """Import the modules that register entries (once)."""
        if not self._loaded:
            for module in self._modules:  # an import error propagates: a listed module must load
                importlib.import_module(module)
            self._loaded = True

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the entry ``name`` with keyword arguments ``kwargs``."""
        return self.get(name)(**kwargs)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        self.load()
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self, **tags: Any) -> list[str]:
        """Registered names, sorted, keeping those whose tags match ``tags``."""
        self.load()
        return sorted(
            n for n, t in self._tags.items() if all(t.get(k) == v for k, v in tags.items())
        )

    def tags(self, name: str) -> dict[str, Any]:
        self.get(name)
        return dict(self._tags[name])

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._factories
