"""Hosts: one Sans-IO stack each, with interfaces that own IPv4/IPv6 addresses.

A packet the stack emits leaves by the interface that owns its source address; a packet whose
source no interface owns, or whose interface has no link, is dropped and counted on the host.
A link delivers only packets addressed to the receiving interface: the strong end-system model
of RFC 1122 §3.3.4.2.

Two opt-in departures, for a multihomed client talking to a single-homed server over two
paths (the common MPTCP setup, RFC 8684 §1.2) without routers: ``add_route(prefix, iface)``
sends packets to ``prefix`` out of ``iface`` whatever their source (routes are looked up first,
longest prefix wins), and ``weak_host=True`` accepts on any interface a packet addressed to
any of the host's addresses (the weak end-system model, RFC 1122 §3.3.4.2).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from interop.netsim.errors import NetsimError
from interop.netsim.packet import address, format_address

if TYPE_CHECKING:
    from interop.netsim.link import Link, LinkDirection

__all__ = ["SansIOStack", "Interface", "Host", "AddressLike"]

AddressLike = str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address


@runtime_checkable
class SansIOStack(Protocol):
    """What the simulator drives: the Sans-IO contract of DESIGN.md (time passed in)."""

    def receive(self, packet: bytes, now: float) -> None:
        """One IP packet in."""

    def packets_to_send(self, now: float) -> list[bytes]:
        """IP packets out (the stack's outbox is drained by the call)."""

    def get_timer(self) -> float | None:
        """The next deadline in virtual seconds, or None."""

    def handle_timer(self, now: float) -> None:
        """Called at (or after) the deadline ``get_timer`` returned."""


class Interface:
    """A network interface of a host: addresses, and at most one point-to-point link."""

    def __init__(self, host: Host, name: str, addresses: Iterable[bytes]) -> None:
        self.host = host
        self.name = name
        self.addresses: set[bytes] = set(addresses)
        self.link: Link | None = None
        self.out: LinkDirection | None = None  # the direction leaving this interface

    def __repr__(self) -> str:
        return f"<Interface {self.host.name}.{self.name}>"

    @property
    def label(self) -> str:
        return f"{self.host.name}.{self.name}"


class Host:
    """A node running one Sans-IO stack.  Build hosts with :meth:`Simulator.add_host`."""

    def __init__(self, name: str, stack: SansIOStack, *, weak_host: bool = False) -> None:
        for meth in ("receive", "packets_to_send", "get_timer", "handle_timer"):
            if not callable(getattr(stack, meth, None)):
                raise NetsimError(f"stack of host {name!r} has no {meth}() method")
        self.name = name
        self.stack = stack
        self.interfaces: dict[str, Interface] = {}
        self.counters: Counter[str] = Counter()
        self.by_address: dict[bytes, Interface] = {}
        self.weak_host = weak_host
        # (network, mask, prefix length, address length, interface), longest prefix first
        self.routes: list[tuple[int, int, int, int, Interface]] = []
        self._route_cache: dict[bytes, Interface | None] = {}
        # the simulator's view of the stack's timer: deadline scheduled and its generation
        self.timer_at: float | None = None
        self.timer_gen = 0

    def __repr__(self) -> str:
        return f"<Host {self.name}>"

    def add_interface(self, name: str, *addresses: AddressLike) -> Interface:
        """A new interface owning ``addresses`` (text like ``"10.0.0.1"``/``"fd00::1"``,
        packed bytes, or ipaddress objects)."""
        if name in self.interfaces:
            raise NetsimError(f"host {self.name!r} already has an interface {name!r}")
        iface = Interface(self, name, ())
        self.interfaces[name] = iface
        for a in addresses:
            self.add_address(iface, a)
        return iface

    def add_address(self, iface: Interface, addr: AddressLike) -> None:
        """Give ``iface`` one more address (unique within the host)."""
        packed = address(addr)
        other = self.by_address.get(packed)
        if other is not None and other is not iface:
            raise NetsimError(
                f"host {self.name!r}: address {format_address(packed)} already on {other.name}")
        iface.addresses.add(packed)
        self.by_address[packed] = iface

    def add_route(self, prefix: str, iface: Interface | str) -> None:
        """Send packets for ``prefix`` (e.g. ``"10.0.2.0/24"``, ``"fd00:2::/64"``) out of
        ``iface``, whatever their source address."""
        if isinstance(iface, str):
            iface = self.interface(iface)
        if iface.host is not self:
            raise NetsimError(f"interface {iface.label} is not on host {self.name!r}")
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError as exc:
            raise NetsimError(f"not a prefix: {prefix!r}") from exc
        size = 32 if net.version == 4 else 128
        mask = ((1 << net.prefixlen) - 1) << (size - net.prefixlen)
        self.routes.append((int(net.network_address), mask, net.prefixlen, size // 8, iface))
        self.routes.sort(key=lambda r: -r[2])
        self._route_cache.clear()

    def route(self, dst: bytes) -> Interface | None:
        """The interface a route sends ``dst`` to, or None (then the source decides)."""
        try:
            return self._route_cache[dst]
        except KeyError:
            pass
        value = int.from_bytes(dst, "big")
        found = None
        for net, mask, _plen, alen, iface in self.routes:
            if alen == len(dst) and value & mask == net:
                found = iface
                break
        self._route_cache[dst] = found
        return found

    def interface(self, name: str) -> Interface:
        try:
            return self.interfaces[name]
        except KeyError:
            raise NetsimError(f"host {self.name!r} has no interface {name!r}") from None
