"""Control of the Linux in-kernel MPTCP path manager inside a network namespace.

The kernel path manager (``net.mptcp.pm_type=0``, kernel Documentation/networking/mptcp.rst)
decides which subflows a connection opens (RFC 8684 §3.2 MP_JOIN) and which addresses it
announces or withdraws (§3.4.1 ADD_ADDR, §3.4.2 REMOVE_ADDR), from a per-namespace list of
*endpoints* and two *limits*; it is driven through the ``mptcp_pm`` generic netlink family
(include/uapi/linux/mptcp_pm.h).  Changing an endpoint's backup flag makes the kernel send
MP_PRIO on the subflows using it (§3.3.8); deleting an endpoint closes its subflows and sends
REMOVE_ADDR.

Every call opens a pyroute2 ``MPTCP`` generic-netlink socket with the calling thread inside
namespace ``ns`` (:func:`mptcp.io.netns.in_netns`: the socket stays bound to that namespace)
and closes it afterwards; nothing touches the host's namespace.

Where pyroute2 (0.9.7) falls short:

- it has no method for ``MPTCP_PM_CMD_SET_FLAGS`` (backup / fullmesh changes): the command is
  built with pyroute2's own ``mptcp_msg`` class and sent with the socket's ``nlm_request``;
  only if that is unavailable (another pyroute2 version) does :func:`endpoint_set_flags` fall
  back to ``ip -n NS mptcp endpoint change id ID backup|nobackup fullmesh|nofullmesh``;
- it declares ``MPTCP_PM_ADDR_ATTR_IF_IDX`` as an opaque ``hex`` attribute, so the interface
  index (``dev=``) is passed as the packed native-endian ``s32`` the kernel expects;
- ``ADD_ADDR`` answers with a bare acknowledgement, so :func:`endpoint_add` learns the id the
  kernel picked from a ``GET_ADDR`` dump.
"""

from __future__ import annotations

import errno as errno_mod
import socket
import struct
import subprocess
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, TypeVar

from mptcp.io.driver import DriverError
from mptcp.io.netns import check_name, in_netns

__all__ = [
    "FLAG_BITS", "LinuxPmError", "Endpoint", "Limits", "limits", "endpoint_add",
    "endpoint_del", "endpoint_set_flags", "endpoint_set_backup", "endpoints", "flush",
]

# MPTCP_PM_ADDR_FLAG_* (include/uapi/linux/mptcp.h)
FLAG_BITS: dict[str, int] = {
    "signal": 1 << 0, "subflow": 1 << 1, "backup": 1 << 2, "fullmesh": 1 << 3,
    "implicit": 1 << 4, "laminar": 1 << 5,
}
_SETTABLE = ("signal", "subflow", "backup", "fullmesh")
_CMD_SET_FLAGS = 7  # MPTCP_PM_CMD_SET_FLAGS
_NLA_F_NESTED = 0x8000

T = TypeVar("T")


class LinuxPmError(RuntimeError):
    """A path-manager operation failed; ``errno`` is the kernel's error code if it gave one."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class Endpoint:
    """One path-manager endpoint (``ip mptcp endpoint show``)."""

    id: int
    addr: str
    port: int
    flags: frozenset[str]
    raw_flags: int
    ifindex: int | None = None


@dataclass(frozen=True)
class Limits:
    """``subflows``: additional subflows per connection; ``add_addr_accepted``: ADD_ADDRs
    accepted per connection (each may create a subflow)."""

    subflows: int
    add_addr_accepted: int


@contextmanager
def _pm(ns: str) -> Iterator[Any]:
    """A pyroute2 MPTCP socket opened inside ``ns`` (closed on exit)."""
    try:
        from pyroute2.netlink.generic.mptcp import MPTCP
    except ImportError as e:  # pragma: no cover - pyroute2 is a dev dependency
        raise LinuxPmError(f"pyroute2 MPTCP support missing: {e}") from e
    try:
        with in_netns(check_name(ns)):
            sock = MPTCP()
    except DriverError as e:
        raise LinuxPmError(f"namespace {ns!r}: {e}") from e
    except OSError as e:
        raise LinuxPmError(f"cannot open the mptcp_pm netlink family in {ns!r}: {e}",
                           e.errno) from e
    try:
        yield sock
    finally:
        sock.close()


def _call(what: str, fn: Callable[[], T]) -> T:
    """Run a netlink request; kernel errors become LinuxPmError with their errno."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return fn()
    except NetlinkError as e:
        code = int(e.code)
        raise LinuxPmError(f"{what}: {errno_mod.errorcode.get(code, code)} "
                           f"({e.args[1] if len(e.args) > 1 else ''})", code) from e
    except OSError as e:
        raise LinuxPmError(f"{what}: {e}", e.errno) from e


def _flag_bits(flags: Collection[str]) -> int:
    bits = 0
    for name in flags:
        if name not in _SETTABLE:
            raise LinuxPmError(f"unknown endpoint flag {name!r} (one of {', '.join(_SETTABLE)})")
        bits |= FLAG_BITS[name]
    return bits


def _flag_names(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in FLAG_BITS.items() if bits & bit)


def _attrs(msg: Any) -> dict[str, Any]:
    return {name: value for name, value, *_ in msg.get("attrs", [])}


def _endpoint(msg: Any) -> Endpoint:
    nested = _attrs(msg).get("MPTCP_PM_ATTR_ADDR")
    a = _attrs(nested) if nested is not None else {}
    raw = int(a.get("MPTCP_PM_ADDR_ATTR_FLAGS", 0))
    ifidx = a.get("MPTCP_PM_ADDR_ATTR_IF_IDX")
    index: int | None = None
    if ifidx:  # pyroute2 renders the s32 as "xx:xx:xx:xx" hex bytes
        try:
            index = struct.unpack("=i", bytes.fromhex(str(ifidx).replace(":", "")))[0]
        except (ValueError, struct.error):
            index = None
    return Endpoint(
        id=int(a.get("MPTCP_PM_ADDR_ATTR_ID", 0)),
        addr=str(a.get("MPTCP_PM_ADDR_ATTR_ADDR4") or a.get("MPTCP_PM_ADDR_ATTR_ADDR6") or ""),
        port=int(a.get("MPTCP_PM_ADDR_ATTR_PORT", 0)), flags=_flag_names(raw), raw_flags=raw,
        ifindex=index or None)


# -- public API ---------------------------------------------------------------------------------

def limits(ns: str, *, subflows: int | None = None,
           add_addr_accepted: int | None = None) -> Limits:
    """Set the limits given (``ip mptcp limits set``; the kernel caps both at 8) and return
    the namespace's limits afterwards."""
    kw: dict[str, int] = {}
    for key, value in (("subflows", subflows), ("add_addr_accepted", add_addr_accepted)):
        if value is not None:
            if not 0 <= value <= 255:
                raise LinuxPmError(f"{key} {value} out of range")
            kw[key] = value
    with _pm(ns) as pm:
        if kw:
            _call("set limits", lambda: pm.limits("set", **kw))
        (msg,) = _call("get limits", lambda: tuple(pm.limits("show")))
    a = _attrs(msg)
    return Limits(subflows=int(a.get("MPTCP_PM_ATTR_SUBFLOWS", 0)),
                  add_addr_accepted=int(a.get("MPTCP_PM_ATTR_RCV_ADD_ADDRS", 0)))


def endpoints(ns: str) -> list[Endpoint]:
    """The namespace's endpoints, by id."""
    with _pm(ns) as pm:
        msgs = _call("dump endpoints", lambda: tuple(pm.endpoint("show")))
    return sorted((_endpoint(m) for m in msgs), key=lambda e: e.id)


def endpoint_add(
    ns: str, addr: str, *, dev: str | None = None, id: int | None = None,
    port: int | None = None, flags: Collection[str] = (),
) -> int:
    """Add an endpoint (``ip mptcp endpoint add ADDR [dev DEV] [id ID] [port P] FLAGS``) and
    return its id.  ``flags`` among ``signal`` (announce it with ADD_ADDR), ``subflow`` (open
    a subflow from it), ``backup``, ``fullmesh``; a ``port`` needs ``signal``."""
    try:
        family = socket.AF_INET6 if ip_address(addr).version == 6 else socket.AF_INET
    except ValueError as e:
        raise LinuxPmError(f"bad endpoint address {addr!r}") from e
    kw: dict[str, Any] = {"addr6" if family == socket.AF_INET6 else "addr4": addr,
                          "flags": _flag_bits(flags)}
    if id is not None:
        if not 1 <= id <= 255:
            raise LinuxPmError(f"endpoint id {id} out of 1..255")
        kw["id"] = id
    if port is not None:
        if not 0 <= port <= 65535:
            raise LinuxPmError(f"port {port} out of range")
        kw["port"] = port
    with _pm(ns) as pm:
        if dev is not None:
            with in_netns(ns):
                try:
                    index = socket.if_nametoindex(dev)
                except OSError as e:
                    raise LinuxPmError(f"no device {dev!r} in {ns}: {e}", e.errno) from e
            kw["if_idx"] = struct.pack("=i", index)
        _call(f"add endpoint {addr}", lambda: pm.endpoint("add", **kw))
        if id is not None:
            return id
        msgs = _call("dump endpoints", lambda: tuple(pm.endpoint("show")))
    want = ip_address(addr)
    for ep in map(_endpoint, msgs):
        if ep.addr and ip_address(ep.addr) == want and ep.port == (port or 0):
            return ep.id
    raise LinuxPmError(f"endpoint {addr} added but not listed")


def _resolve(ns: str, endpoint: int | str) -> Endpoint:
    eps = endpoints(ns)
    for ep in eps:
        if isinstance(endpoint, int):
            if ep.id == endpoint:
                return ep
        elif ep.addr and ip_address(ep.addr) == ip_address(endpoint):
            return ep
    raise LinuxPmError(f"no endpoint {endpoint!r} in {ns} (have {[e.id for e in eps]})",
                       errno_mod.ENOENT)


def endpoint_del(ns: str, endpoint: int | str) -> None:
    """Delete an endpoint (by id or address): the kernel closes the subflows using it and
    sends REMOVE_ADDR (RFC 8684 §3.4.2) on the connections that used or announced it."""
    ep = _resolve(ns, endpoint)
    with _pm(ns) as pm:
        _call(f"delete endpoint {ep.id}", lambda: pm.endpoint("del", id=ep.id))


def endpoint_set_flags(ns: str, endpoint: int | str, *, backup: bool | None = None,
                       fullmesh: bool | None = None) -> Endpoint:
    """Change an endpoint's backup / fullmesh flags (``ip mptcp endpoint change``; None =
    keep); returns the endpoint as it is afterwards.  A backup change makes the kernel send
    MP_PRIO on every subflow using the endpoint (RFC 8684 §3.3.8)."""
    ep = _resolve(ns, endpoint)
    bits = ep.raw_flags
    for name, value in (("backup", backup), ("fullmesh", fullmesh)):
        if value is not None:
            bits = bits | FLAG_BITS[name] if value else bits & ~FLAG_BITS[name]
    with _pm(ns) as pm:
        request = getattr(pm, "nlm_request", None)
        if request is None:  # pyroute2 without a raw request: ip(8) does it
            _ip_change(ns, ep.id, backup, fullmesh)
        else:
            from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
            from pyroute2.netlink.generic.mptcp import mptcp_msg

            msg = mptcp_msg()
            msg["cmd"] = _CMD_SET_FLAGS
            msg["version"] = 1
            msg["attrs"] = [("MPTCP_PM_ATTR_ADDR", {"attrs": [
                ("MPTCP_PM_ADDR_ATTR_ID", ep.id), ("MPTCP_PM_ADDR_ATTR_FLAGS", bits)]},
                _NLA_F_NESTED)]
            _call(f"set flags of endpoint {ep.id}",
                  lambda: tuple(request(msg, msg_type=pm.prid,
                                        msg_flags=NLM_F_REQUEST | NLM_F_ACK)))
    return _resolve(ns, ep.id)


def endpoint_set_backup(ns: str, endpoint: int | str, backup: bool) -> Endpoint:
    """``ip mptcp endpoint change ADDR backup|nobackup``: the kernel sends MP_PRIO."""
    return endpoint_set_flags(ns, endpoint, backup=backup)


def flush(ns: str) -> None:
    """Delete every endpoint (``ip mptcp endpoint flush``)."""
    with _pm(ns) as pm:
        _call("flush endpoints", lambda: pm.endpoint("flush"))


def _ip_change(ns: str, ep_id: int, backup: bool | None, fullmesh: bool | None) -> None:
    argv = ["ip", "-n", check_name(ns), "mptcp", "endpoint", "change", "id", str(ep_id)]
    if backup is not None:
        argv.append("backup" if backup else "nobackup")
    if fullmesh is not None:
        argv.append("fullmesh" if fullmesh else "nofullmesh")
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LinuxPmError(f"{' '.join(argv)}: {e}") from e
    if res.returncode != 0:
        raise LinuxPmError(f"{' '.join(argv)}: {res.stderr.strip()}")
