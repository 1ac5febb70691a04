"""One table of names for each thing a config chooses by name, with the user's additions.

jebm's energies (``energy.name``), samplers (``sampler.name``) and data sets
(``dataset.name``) each keep their names in a dict that also takes the user's
registrations. :class:`Registry` is the one implementation of ``register`` /
``unregister`` over such a dict: jebm's own names stay fixed, and every error
names the kind of thing and lists the valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any


class Registry:
    """``register``/``unregister`` for the name table ``table`` of one kind of thing.

    Args:
      kind: what the names name, for messages (``"energy"``, ``"sampler"``).
      table: the dict the config's name is looked up in; it may already hold
        jebm's own entries.
      own: jebm's own names: they cannot be registered or removed.
      role: what a registered callable is called, for messages (``"factory"``).
      reserved: further names a user may not take, for messages ``other than``.
    """

    def __init__(self, kind: str, table: MutableMapping[str, Any], own: Iterable[str], *, role: str = "factory",
                 reserved: tuple[str, ...] = ()):
        self.kind, self.table, self.own, self.role, self.reserved = kind, table, frozenset(own), role, reserved

    def registered(self) -> list[str]:
        """The user's names, sorted."""
        return sorted(set(self.table) - self.own)

    def register(self, name: str, fn: Callable) -> None:
        """Adds (or replaces) the user's ``name``; raises ValueError for a bad name or a non-callable."""
        if not isinstance(name, str) or not name or name in self.reserved:
            other = f" other than {', '.join(map(repr, self.reserved))}" if self.reserved else ""
            raise ValueError(f"{self.kind} name must be a non-empty string{other}, got {name!r}")
        if name in self.own:
            raise ValueError(f"{self.kind} name {name!r} is jebm's own; choose a name not in {sorted(self.own)}")
        if not callable(fn):
            raise ValueError(f"{self.role} for {self.kind} {name!r} must be callable, got {fn!r}")
        self.table[name] = fn

    def unregister(self, name: str) -> None:
        """Removes the user's ``name``; raises ValueError (listing the registered names) for any other."""
        if name in self.own or name not in self.table:
            raise ValueError(f"{self.kind} name {name!r} is not a registered one; registered: {self.registered()}")
        del self.table[name]
