"""Open descriptors inside a named network namespace while the process stays in its own.

``setns(2)`` with ``CLONE_NEWNET`` moves only the *calling thread*; a socket, a netlink socket
or a ``/dev/net/tun`` file opened there stays bound to that namespace after the thread moves
back (network_namespaces(7), ``ip-netns(8)`` keeps named namespaces as bind mounts under
``/var/run/netns/NAME``).  Python 3.11 has no ``os.setns``, so this calls the libc wrapper
through ctypes.  The thread's own namespace is saved from ``/proc/thread-self/ns/net`` (not
``/proc/self``, which names the main thread's).
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mptcp.io.driver import DriverError

__all__ = ["NETNS_RUN_DIR", "netns_path", "check_name", "in_netns", "ipr", "exec_argv"]

NETNS_RUN_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")

_libc: Any = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise DriverError(err, f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def check_name(name: str) -> str:
    """``name`` if it is a plausible namespace name (no path tricks), else DriverError."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise DriverError(f"bad network namespace name {name!r}")
    return name


def netns_path(name: str) -> str:
    """The bind mount that ``ip netns add NAME`` creates."""
    return os.path.join(NETNS_RUN_DIR, check_name(name))


@contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``name`` (None: stay put).

    Descriptors opened in the body belong to ``name``; the thread returns to its previous
    namespace on exit, also when the body raises.  Not re-entrant across threads: use it on
    the thread that opens the descriptors and do not await inside it.
    """
    if name is None:
        yield
        return
    path = netns_path(name)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DriverError(f"network namespace {name!r} does not exist ({path})") from None
    except PermissionError as e:
        raise DriverError(f"cannot open network namespace {name!r}: {e}") from e
    try:
        saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(saved)
        finally:
            os.close(saved)
    finally:
        os.close(target)


def ipr(netns: str | None = None) -> Any:
    """A pyroute2 ``IPRoute`` whose netlink socket lives in ``netns`` (None: ours).

    The socket is opened by this thread inside the namespace (no helper process, unlike
    ``IPRoute(netns=...)`` which forks); the caller closes it (``with ipr(ns) as r: ...``).
    """
    from pyroute2 import IPRoute

    with in_netns(netns):
        return IPRoute()


def exec_argv(netns: str | None, argv: list[str]) -> list[str]:
    """``argv`` run inside ``netns`` through ``ip netns exec`` (unchanged for None)."""
    if netns is None:
        return list(argv)
    return ["ip", "netns", "exec", check_name(netns), *argv]
