"""Path managers: who opens, accepts, announces and removes subflows and addresses
(RFC 8684 §3.2, §3.4; RFC 6897 §5 for the API; Linux's in-kernel and userspace path
managers as the model).

A path manager gets every MPTCP event of a connection (``MptcpConnected`` once fully
established, ``SubflowEstablished``, ``SubflowClosed``, ``AddressAnnounced``,
``AddressRemoved``, ``PriorityChanged``) and acts through the connection's commands:
``create_subflow``, ``close_subflow``, ``set_backup``, ``announce``, ``remove_addr``.  The
stack asks it whether to accept a peer's MP_JOIN (:meth:`PathManager.accept_join`).

- :class:`FullMeshPM` -- like Linux's in-kernel manager: :class:`Endpoint` s with the flags
  ``signal`` (announce it with ADD_ADDR), ``subflow`` (open a subflow from it to the peer's
  initial address), ``backup`` (its subflows are backups, MP_JOIN B) and ``fullmesh`` (open a
  subflow from it to every address the peer announces), :class:`Limits` (``subflows``:
  additional subflows per connection; ``add_addr_accepted``: peer announcements acted on);
  a subflow that ended with an error while the connection lives is reopened after a backoff
  (the reconnect policy for a path that comes back).
- :class:`UserspacePM` -- nothing automatic: the events are queued for the application
  (:attr:`UserspacePM.events`), which calls the connection's commands itself (Linux's
  userspace path manager, driven by a daemon).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mptcp.events import AddressAnnounced, MptcpConnected, SubflowClosed, SubflowEstablished

if TYPE_CHECKING:
    from mptcp.connection import MptcpConnection
    from mptcp.tcp.events import Event
    from mptcp.wire.mptcp_handshake import MpJoinSyn

__all__ = ["PathManager", "Endpoint", "Limits", "FullMeshPM", "UserspacePM", "PmError"]


class PmError(ValueError):
    """A bad path-manager configuration (endpoint, limit, route)."""


@dataclass(frozen=True)
class Endpoint:
    """A local address the path manager may use (Linux: ``ip mptcp endpoint``)."""

    address: str
    id: int
    port: int | None = None
    signal: bool = False
    subflow: bool = False
    backup: bool = False
    fullmesh: bool = False

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError as e:
            raise PmError(f"endpoint address {self.address!r}: {e}") from None
        if not 1 <= self.id <= 255:
            raise PmError(f"endpoint id {self.id} not in 1..255 (0 is the initial address)")

    @property
    def packed(self) -> bytes:
        return ipaddress.ip_address(self.address).packed

    @classmethod
    def parse(cls, text: str, default_id: int) -> Endpoint:
        """``ADDR[,signal][,subflow][,backup][,fullmesh][,port=P][,id=N]``."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise PmError("empty endpoint")
        kw: dict[str, object] = {}
        eid = default_id
        for p in parts[1:]:
            if p in ("signal", "subflow", "backup", "fullmesh"):
                kw[p] = True
            elif p.startswith("port="):
                kw["port"] = int(p[5:])
            elif p.startswith("id="):
                eid = int(p[3:])
            else:
                raise PmError(f"unknown endpoint flag {p!r}")
        return cls(parts[0], eid, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Limits:
    """Linux's ``ip mptcp limits`` (defaults as Linux's: 2 and 0)."""

    subflows: int = 2
    add_addr_accepted: int = 0


class PathManager:
    """The base: accepts joins up to a limit, does nothing on its own."""

    name = "none"
    max_subflows = 8

    def on_event(self, mc: MptcpConnection, ev: Event, now: float) -> None:
        """An MPTCP event of ``mc`` (after the pump that produced it)."""

    def on_timer(self, mc: MptcpConnection, now: float) -> None:
        """Called on every pump of ``mc``; act on deadlines given by :meth:`next_timer`."""

    def next_timer(self, mc: MptcpConnection) -> float | None:
        return None

    def accept_join(self, mc: MptcpConnection, syn: MpJoinSyn, local: bytes) -> bool:
        """The peer's MP_JOIN SYN to our address ``local`` (RFC 8684 §3.2: "the receiving
        host MAY refuse" -- Linux: the ``subflows`` limit)."""
        return _extra_subflows(mc) < self.max_subflows

    def local_id(self, address: bytes) -> int | None:
        """Our address ID of ``address`` if the manager knows it."""
        return None

    def forget(self, mc: MptcpConnection) -> None:
        """``mc`` is gone."""


def _extra_subflows(mc: MptcpConnection) -> int:
    return sum(1 for sf in mc.subs if sf.join and not sf.closed and not sf.closing)


@dataclass
class _ConnState:
    accepted: int = 0  # peer announcements acted on
    retry: dict[tuple[str, bytes, int], tuple[float, int]] = field(default_factory=dict)
    """(local, remote address, port) -> (when to reopen, attempt)."""


class FullMeshPM(PathManager):
    """Linux-like in-kernel path manager (see the module docstring)."""

    name = "fullmesh"

    def __init__(self, endpoints: list[Endpoint] | None = None, limits: Limits | None = None,
                 *, routes: list[tuple[str, str]] | None = None, reconnect_delay: float = 1.0,
                 reconnect_tries: int = 5) -> None:
        self.endpoints = list(endpoints or [])
        ids = [e.id for e in self.endpoints]
        if len(set(ids)) != len(ids):
            raise PmError("endpoint ids must be unique")
        self.limits = limits or Limits()
        self.max_subflows = self.limits.subflows
        # source selection for joins to announced addresses: (network, local address)
        self.routes = [(ipaddress.ip_network(n, strict=False), ipaddress.ip_address(a).packed)
                       for n, a in (routes or [])]
        self.reconnect_delay = reconnect_delay
        self.reconnect_tries = reconnect_tries
        self.state: dict[MptcpConnection, _ConnState] = {}

    def _st(self, mc: MptcpConnection) -> _ConnState:
        st = self.state.get(mc)
        if st is None:
            st = self.state[mc] = _ConnState()
        return st

    def local_id(self, address: bytes) -> int | None:
        for e in self.endpoints:
            if e.packed == address:
                return e.id
        return None

    def _source_for(self, mc: MptcpConnection, dst: bytes) -> bytes:
        ip = ipaddress.ip_address(dst)
        for net, src in self.routes:
            if ip.version == net.version and ip in net:
                return src
        return mc.local[0]

    def _open(self, mc: MptcpConnection, local: bytes, remote: tuple[bytes, int], *,
              backup: bool, local_id: int | None) -> None:
        if _extra_subflows(mc) >= self.limits.subflows:
            return
        for sf in mc.subs:  # one subflow per (local, remote) pair
            c = sf.conn
            if not sf.closed and c.local[0] == local and c.remote == remote:
                return
        if len(local) != len(remote[0]):
            return  # no mixed-family subflow from this address
        try:
            sf = mc.create_subflow((local, 0), remote, backup=backup, local_id=local_id)
        except ValueError:
            return
        sf.endpoint = (local, remote)

    def on_event(self, mc: MptcpConnection, ev: Event, now: float) -> None:
        if isinstance(ev, MptcpConnected):
            for e in self.endpoints:
                if e.signal:
                    mc.announce(e.id, e.packed, e.port)
            for e in self.endpoints:
                if e.subflow and e.packed != mc.local[0]:
                    self._open(mc, e.packed, mc.remote, backup=e.backup, local_id=e.id)
        elif isinstance(ev, AddressAnnounced):
            st = self._st(mc)
            if st.accepted >= self.limits.add_addr_accepted:
                mc.mib.incr("MPTcpExtAddAddrDrop")
                return
            st.accepted += 1
            addr = ipaddress.ip_address(ev.address).packed
            remote = (addr, ev.port if ev.port is not None else mc.remote[1])
            mesh = [e for e in self.endpoints if e.fullmesh and len(e.packed) == len(addr)]
            if mesh:
                for e in mesh:
                    self._open(mc, e.packed, remote, backup=e.backup, local_id=e.id)
            else:
                src = self._source_for(mc, addr)
                e2 = next((e for e in self.endpoints if e.packed == src), None)
                self._open(mc, src, remote, backup=e2.backup if e2 else False,
                           local_id=e2.id if e2 else None)
        elif isinstance(ev, SubflowClosed):
            self._maybe_reconnect(mc, ev, now)
        elif isinstance(ev, SubflowEstablished):
            st = self._st(mc)
            for sf in mc.subs:
                if sf.name == ev.subflow and isinstance(sf.endpoint, tuple):
                    key = _retry_key(sf.endpoint)
                    st.retry.pop(key, None)

    def _maybe_reconnect(self, mc: MptcpConnection, ev: SubflowClosed, now: float) -> None:
        """A subflow we opened ended with an error while the connection goes on: reopen
        it after a backoff (the path may come back)."""
        if mc.failed is not None or mc.write_shut or mc.subflow_closing:
            return
        for sf in mc.subs:
            if sf.name != ev.subflow or not isinstance(sf.endpoint, tuple):
                continue
            if sf.reason is None or "removed" in sf.reason or "path manager" in sf.reason:
                return
            if not sf.reported:
                return  # never established (refused, unreachable): Linux does not retry
            _local, remote = sf.endpoint
            if mc.remote_id_of(remote) not in mc.remote_addrs and remote != mc.remote:
                return  # the peer withdrew that address
            st = self._st(mc)
            key = _retry_key(sf.endpoint)
            _, n = st.retry.get(key, (0.0, 0))
            if n >= self.reconnect_tries:
                return
            st.retry[key] = (now + self.reconnect_delay * (2 ** n), n + 1)
            mc.touch()
            return

    def next_timer(self, mc: MptcpConnection) -> float | None:
        st = self.state.get(mc)
        if st is None or not st.retry:
            return None
        due = [t for t, _ in st.retry.values() if t > 0]
        return min(due) if due else None

    def on_timer(self, mc: MptcpConnection, now: float) -> None:
        st = self.state.get(mc)
        if st is None or mc.failed is not None or mc.write_shut:
            return
        for key, (t, n) in list(st.retry.items()):
            if 0 < t <= now:
                st.retry[key] = (0.0, n)  # wait for the outcome
                local, addr, port = key
                e = self.local_id(bytes.fromhex(local))
                ep = next((x for x in self.endpoints if x.id == e), None)
                self._open(mc, bytes.fromhex(local), (addr, port),
                           backup=ep.backup if ep else False, local_id=e)

    def forget(self, mc: MptcpConnection) -> None:
        self.state.pop(mc, None)


def _retry_key(endpoint: tuple[bytes, tuple[bytes, int]]) -> tuple[str, bytes, int]:
    local, (addr, port) = endpoint
    return (local.hex(), addr, port)


class UserspacePM(PathManager):
    """Events for the application; commands are the connection's methods."""

    name = "userspace"

    def __init__(self, max_subflows: int = 8) -> None:
        self.max_subflows = max_subflows
        self.events: deque[tuple[MptcpConnection, Event]] = deque()

    def on_event(self, mc: MptcpConnection, ev: Event, now: float) -> None:
        self.events.append((mc, ev))
