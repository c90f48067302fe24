"""Plug-in registries: one per extension kind, filled by decorators, entry points and 'module:attr' names.

A lookup tries, in order: what was registered under the name, the built-ins (named by a lazy 'module:attr'
of a dict, so that nothing is imported before it is needed), the entry-point group ``evoplastic.plugins``
(each entry point names a module whose import registers its plug-ins; loaded once, on the first miss),
and finally the name itself read as 'module:attr'. Torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any

from evoplastic.errors import PluginError

ENTRY_POINT_GROUP = "evoplastic.plugins"


def import_object(path: str) -> Any:
    """The object named 'package.module:attr' (attr may be dotted); a PluginError naming it when it is gone."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise PluginError(f"cannot import {path!r} ({type(err).__name__}: {err}); install or put its module on "
                          f"PYTHONPATH, or choose another value") from None
    return obj


@cache
def load_entry_points() -> tuple[str, ...]:
    """Import every module of the ``evoplastic.plugins`` entry-point group once; their names."""
    loaded = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry.load()
        loaded.append(entry.name)
    return tuple(loaded)


@dataclass
class Registry:
    """Named plug-ins of one kind; ``wrap`` turns what a user registers into the kind's object."""

    kind: str
    builtins: str = ""
    """'module:attr' of a dict name -> 'module:attr' of the built-in objects (imported lazily), or ''."""
    wrap: Callable[[str, Any], Any] = lambda name, obj: obj
    entries: dict[str, Any] = field(default_factory=dict)

    def register(self, name: str, obj: Any, replace: bool = False) -> Any:
        """Add obj under name (wrapped); a second registration of a name needs replace=True."""
        if not replace and name in self.entries:
            raise PluginError(f"a {self.kind} named {name!r} is registered already; pass replace=True to replace it")
        if name in self._builtin_paths():
            raise PluginError(f"{name!r} is a built-in {self.kind}; register yours under another name")
        self.entries[name] = self.wrap(name, obj)
        return self.entries[name]

    def get(self, name: str) -> Any:
        """The plug-in called name (see the module docstring for the lookup order)."""
        found = self._find(name)
        if found is None:
            load_entry_points()
            found = self._find(name)
        if found is None and ":" in name:
            obj = import_object(name)  # its import may register it under its own name (a decorator)
            found = next((e for e in self.entries.values() if getattr(e, "source", None) == name), None)
            if found is None:
                found = self.entries[name] = self.wrap(name, obj)
        if found is None:
            raise PluginError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}, "
                              f"or name a plug-in as 'module:attr'")
        return found

    def names(self) -> tuple[str, ...]:
        """Built-in names, then registered ones (entry points loaded)."""
        load_entry_points()
        return tuple(dict.fromkeys([*self._builtin_paths(), *self.entries]))

    def _builtin_paths(self) -> dict[str, str]:
        return import_object(self.builtins) if self.builtins else {}

    def _find(self, name: str) -> Any:
        if name in self.entries:
            return self.entries[name]
        path = self._builtin_paths().get(name)
        return import_object(path) if path else None
