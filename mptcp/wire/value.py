"""Typed wire values: immutable, cheap to build, compared by type *and* fields.

Every header and option value is a ``typing.NamedTuple`` decorated with :func:`wire_value`.
A NamedTuple is immutable and costs ~0.2 us to build through ``tuple.__new__`` (a frozen
slotted dataclass costs 1.4 us for ten fields on this machine), which matters on the
per-segment hot path.  Plain tuple equality would make ``Mss(7) == WindowScale(7)``; the
decorator replaces ``__eq__``/``__ne__``/``__hash__`` so that values of different types are
never equal.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def _eq(self: tuple[Any, ...], other: object) -> bool:
    return type(self) is type(other) and tuple.__eq__(self, other)


def _ne(self: tuple[Any, ...], other: object) -> bool:
    return not _eq(self, other)


def _hash(self: tuple[Any, ...]) -> int:
    return hash((type(self).__name__, tuple.__hash__(self)))


def wire_value(cls: T) -> T:
    """Class decorator for NamedTuple wire values: type-aware equality and hashing."""
    cls.__eq__ = _eq  # type: ignore[assignment]
    cls.__ne__ = _ne  # type: ignore[assignment]
    cls.__hash__ = _hash  # type: ignore[assignment]
    return cls
