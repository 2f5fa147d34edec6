"""Congestion control for the Sans-IO TCP engine: the interface and a registry by name.

``create("reno" | "cubic", smss, **params)`` builds a controller; other packages (MPTCP's
coupled LIA / OLIA / BALIA) add theirs with :func:`register`.  The interface and the contract
with the engine are documented in :mod:`mptcp.tcp.cc.base`; the algorithms are
:mod:`mptcp.tcp.cc.reno` (RFC 5681 / RFC 6582) and :mod:`mptcp.tcp.cc.cubic` (RFC 9438).
"""

from __future__ import annotations

from collections.abc import Callable

from mptcp.tcp.cc.base import (
    INFINITE_SSTHRESH,
    CcError,
    CcEvent,
    CcEventKind,
    CcParams,
    CcState,
    CongestionControl,
    CongestionReason,
    SlowStart,
    SlowStartStep,
    StandardSlowStart,
    rfc5681_initial_window,
    rfc6928_initial_window,
)
from mptcp.tcp.cc.cubic import Cubic, CubicRegion
from mptcp.tcp.cc.reno import Reno

__all__ = [
    "INFINITE_SSTHRESH",
    "CcError",
    "CcEvent",
    "CcEventKind",
    "CcParams",
    "CcState",
    "CongestionControl",
    "CongestionReason",
    "Cubic",
    "CubicRegion",
    "Factory",
    "Reno",
    "SlowStart",
    "SlowStartStep",
    "StandardSlowStart",
    "available",
    "create",
    "register",
    "rfc5681_initial_window",
    "rfc6928_initial_window",
]

Factory = Callable[..., CongestionControl]
"""Builds a controller from ``(smss, **params)``."""

_REGISTRY: dict[str, Factory] = {}


def register(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Make ``factory`` available to :func:`create` under ``name`` (case-insensitive)."""
    key = name.lower()
    if not key:
        raise CcError("congestion-control name must not be empty")
    if key in _REGISTRY and not replace:
        raise CcError(f"congestion control {name!r} is already registered")
    _REGISTRY[key] = factory


def available() -> tuple[str, ...]:
    """Registered names, sorted."""
    return tuple(sorted(_REGISTRY))


def create(name: str, smss: int, **params: object) -> CongestionControl:
    """Build the controller registered as ``name`` for sender MSS ``smss`` (bytes).

    Unknown names and unknown or invalid parameters raise :class:`CcError`.
    """
    factory = _REGISTRY.get(name.lower())
    if factory is None:
        raise CcError(f"unknown congestion control {name!r} (available: {', '.join(available())})")
    try:
        return factory(smss, **params)
    except TypeError as exc:
        raise CcError(f"bad parameters for {name!r}: {exc}") from None


register("reno", Reno)
register("cubic", Cubic)
