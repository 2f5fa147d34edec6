"""Throw-away network-namespace topologies for interop tests and benchmarks.

A :class:`Topology` creates uniquely named namespaces (``mlab-<role>-<hex>``, ip-netns(8)),
links them with veth pairs (veth(4)), sets namespace-local sysctls, shapes links with tbf
(tc-tbf(8)) and impairs them with nftables netdev-egress rules (nft(8): ``numgen random``
loss, ``ip ecn set ce`` CE marking -- this kernel has no netem), and starts processes inside
them.  Everything it created is torn down in ``__exit__`` (processes it started, by pid; then
the namespaces, which takes their veths, TUN devices, qdiscs and nft tables with them), also
when the body raises.

Safety: it only touches namespaces it created, never the host's, and refuses addresses outside
10.0.0.0/8 and fd00::/8 (:func:`check_address`).

:func:`stack_and_peer` builds the canonical two-host path for the interop tests: our stack in
namespace S (behind a TUN device, or on S's veth through raw sockets) and a kernel peer in P.
:func:`two_paths` joins S and P by two independent paths for multipath MPTCP (RFC 8684 §3.2
MP_JOIN subflows, §3.4 address signalling): source-based policy routing in S makes a subflow's
path a function of our local address.  :meth:`Topology.blackhole` silently drops everything on
one device (path failure, RFC 8684 §3.3.6 / the failover tests).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_interface, ip_network
from types import TracebackType
from typing import Any, Literal

from mptcp.io.netns import in_netns
from mptcp.io.raw import RawDriver
from mptcp.io.tun import TunDriver

__all__ = [
    "ALLOWED_NETWORKS", "TopologyError", "check_address", "skip_reason", "Topology", "Path",
    "stack_and_peer", "PathLeg", "TwoPaths", "two_paths", "ProgressStall", "progress_stall",
]

ALLOWED_NETWORKS = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))
_ROLE = re.compile(r"[a-z0-9]{1,12}")
_DEV = re.compile(r"[A-Za-z0-9_.-]{1,15}")
_TIMEOUT = 30.0
# linux/sockios.h, linux/ethtool.h (legacy per-feature set commands)
_SIOCETHTOOL = 0x8946
_ETHTOOL_SRXCSUM = 0x15
_ETHTOOL_STXCSUM = 0x17
_ETHTOOL_STSO = 0x1F
_ETHTOOL_SGSO = 0x24
_ETHTOOL_SGRO = 0x2C


class TopologyError(RuntimeError):
    """A topology operation failed or was refused (unsafe address, foreign namespace)."""


def check_address(addr: str) -> str:
    """``addr`` (an address or a network, ``"10.0.1.1"``, ``"10.0.2.0/24"``) if it lies in
    10.0.0.0/8 or fd00::/8; TopologyError otherwise (traffic must stay in private test
    ranges)."""
    try:
        net = ip_interface(addr).network
    except ValueError as e:
        raise TopologyError(f"bad address {addr!r}: {e}") from e
    for allowed in ALLOWED_NETWORKS:
        if net.version == allowed.version and net.subnet_of(allowed):  # type: ignore[arg-type]
            return addr
    raise TopologyError(f"address {addr!r} is outside 10.0.0.0/8 and fd00::/8: refused")


def skip_reason(*, tun: bool = False, tools: Sequence[str] = ("ip", "nft")) -> str | None:
    """Why namespace tests cannot run here (for ``pytest.skip``), or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if tun and not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"needs the {tool!r} tool"
    return None


def _dev(name: str) -> str:
    if not _DEV.fullmatch(name):
        raise TopologyError(f"bad device name {name!r}")
    return name


class Topology:
    """Namespaces, links and processes that all disappear at the end of the ``with`` block.

    ::

        with Topology() as topo:
            a, b = topo.add_ns("a"), topo.add_ns("b")
            topo.veth(a, b, "10.0.1.1", "10.0.1.2", 24)
            topo.run(a, ["ping", "-c1", "10.0.1.2"])
    """

    def __init__(self, prefix: str = "mlab") -> None:
        if not _ROLE.fullmatch(prefix):
            raise TopologyError(f"bad prefix {prefix!r}")
        self.prefix = prefix
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.closed = False

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None,
    ) -> None:
        if et is None:
            self.close()
            return
        with contextlib.suppress(TopologyError):  # keep the body's exception in front
            self.close()

    # -- namespaces and commands -------------------------------------------------------
    def add_ns(self, role: str) -> str:
        """Create namespace ``<prefix>-<role>-<8 hex>`` with ``lo`` up; returns its name."""
        if self.closed:
            raise TopologyError("topology already torn down")
        if not _ROLE.fullmatch(role):
            raise TopologyError(f"bad role {role!r} (lower-case letters and digits)")
        name = f"{self.prefix}-{role}-{secrets.token_hex(4)}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def _ours(self, ns: str) -> str:
        if ns not in self.namespaces:
            raise TopologyError(f"namespace {ns!r} was not created by this topology")
        return ns

    def ip(self, ns: str, *args: str) -> str:
        """``ip -n NS ARGS...``; returns stdout."""
        return _run(["ip", "-n", self._ours(ns), *args]).stdout

    def run(
        self, ns: str, argv: Sequence[str], *, check: bool = True, timeout: float = _TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion inside ``ns`` (``ip netns exec``), capturing text."""
        return _run(["ip", "netns", "exec", self._ours(ns), *argv], check=check,
                    timeout=timeout, input=input)

    def popen(self, ns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``ns``; it is terminated (by pid) at teardown."""
        proc = subprocess.Popen(["ip", "netns", "exec", self._ours(ns), *argv], **kw)
        self.procs.append(proc)
        return proc

    # -- links, addresses, routes ------------------------------------------------------
    def veth(
        self, ns_a: str, ns_b: str, addr_a: str | None, addr_b: str | None, prefix: int = 24,
        name_a: str = "veth0", name_b: str = "veth0", mtu: int = 1500,
    ) -> None:
        """A veth pair ``ns_a:name_a <-> ns_b:name_b`` (created inside ``ns_a`` with its peer
        put straight into ``ns_b``: never in the host namespace), addressed and up."""
        self._ours(ns_b)
        for a in (addr_a, addr_b):
            if a is not None:
                check_address(f"{a}/{prefix}")
        self.ip(ns_a, "link", "add", _dev(name_a), "mtu", str(mtu), "type", "veth",
                "peer", "name", _dev(name_b), "mtu", str(mtu), "netns", ns_b)
        if addr_a is not None:
            self.addr(ns_a, name_a, addr_a, prefix)
        if addr_b is not None:
            self.addr(ns_b, name_b, addr_b, prefix)
        self.ip(ns_a, "link", "set", name_a, "up")
        self.ip(ns_b, "link", "set", name_b, "up")

    def addr(self, ns: str, dev: str, addr: str, prefix: int) -> None:
        """Add ``addr/prefix`` to ``dev`` (IPv6 without duplicate address detection)."""
        cidr = check_address(f"{addr}/{prefix}")
        extra = ["nodad"] if ":" in addr else []
        self.ip(ns, "addr", "add", cidr, "dev", _dev(dev), *extra)

    def route(self, ns: str, dst: str, via: str, dev: str | None = None) -> None:
        """``ip route add DST via VIA`` in ``ns`` (``dst`` may be ``"default"``: inside our
        namespace that still cannot leave it)."""
        if dst != "default":
            check_address(dst)
        check_address(via)
        extra = ["dev", _dev(dev)] if dev else []
        self.ip(ns, "route", "add", dst, "via", via, *extra)

    def sysctl(self, ns: str, key: str, value: str | int) -> None:
        """Set a ``net.*`` sysctl inside ``ns`` only (the host's are never touched)."""
        if not re.fullmatch(r"net\.[A-Za-z0-9_.-]+", key) or ".." in key:
            raise TopologyError(f"refusing sysctl {key!r}: only namespace-local net.* keys")
        self.run(ns, ["sysctl", "-qw", f"{key}={value}"])

    def offloads(
        self, ns: str, dev: str, *, tx_csum: bool | None = None, rx_csum: bool | None = None,
        tso: bool | None = None, gso: bool | None = None, gro: bool | None = None,
    ) -> None:
        """Switch ``dev``'s offloads (legacy ``SIOCETHTOOL`` set commands, linux/ethtool.h;
        None = leave as is).  Turning ``tx_csum`` off makes the kernel finish partial
        checksums in software before the device; ``tso``/``gso`` off make it send wire-sized
        packets."""
        cmds = ((tx_csum, _ETHTOOL_STXCSUM), (rx_csum, _ETHTOOL_SRXCSUM),
                (tso, _ETHTOOL_STSO), (gso, _ETHTOOL_SGSO), (gro, _ETHTOOL_SGRO))
        name = _dev(dev).encode()
        with in_netns(self._ours(ns)), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for value, cmd in cmds:
                if value is None:
                    continue
                data = ctypes.create_string_buffer(struct.pack("II", cmd, int(value)), 8)
                ifreq = struct.pack("16sP16x", name, ctypes.addressof(data))
                try:
                    fcntl.ioctl(s.fileno(), _SIOCETHTOOL, ifreq)
                except OSError as e:
                    raise TopologyError(f"ethtool command {cmd:#x} on {ns}:{dev}: {e}") from e

    # -- shaping and impairment --------------------------------------------------------
    def tbf(
        self, ns: str, dev: str, rate_bit: int, burst: int | None = None,
        latency: float = 0.05,
    ) -> None:
        """Token-bucket rate limit on ``dev``'s egress (tc-tbf(8)); ``burst`` in bytes
        (default: 10 ms at the rate, at least 2 full frames), ``latency`` in seconds (the
        longest a packet may wait in the queue)."""
        if rate_bit <= 0 or latency <= 0:
            raise TopologyError(f"bad tbf rate {rate_bit} / latency {latency}")
        if burst is None:
            burst = max(2 * 1514, rate_bit // 800)
        _run(["tc", "-n", self._ours(ns), "qdisc", "replace", "dev", _dev(dev), "root", "tbf",
              "rate", f"{rate_bit}bit", "burst", str(burst),
              "latency", f"{latency * 1e3:.3f}ms"])

    def nft(self, ns: str, script: str) -> None:
        """Apply an nft script inside ``ns``."""
        self.run(ns, ["nft", "-f", "-"], input=script)

    def _netdev_table(self, ns: str, kind: str, dev: str, rules: list[str]) -> None:
        table = f"mlab_{kind}_{_dev(dev).replace('-', '_').replace('.', '_')}"
        body = "".join(f"        {r}\n" for r in rules)
        script = (
            f"add table netdev {table}\ndelete table netdev {table}\n"  # replace atomically
            + (f"table netdev {table} {{\n"
               f"    chain egress {{\n"
               f"        type filter hook egress device \"{dev}\" priority 0; policy accept;\n"
               f"{body}    }}\n}}\n" if rules else "")
        )
        self.nft(ns, script)

    @staticmethod
    def _chance(percent: float) -> str:
        """The nft match for "with probability ``percent`` %" (in 0.01 % steps)."""
        if not 0 <= percent <= 100:
            raise TopologyError(f"percentage {percent} out of 0..100")
        n = round(percent * 100)
        return "" if n >= 10000 else f"numgen random mod 10000 < {n} "

    def nft_loss(self, ns: str, dev: str, percent: float) -> None:
        """Drop ``percent`` % of ``dev``'s egress packets at random (0 removes the rule).

        The netdev egress hook sees packets before segmentation: a GSO/TSO super-packet is
        one packet to it (turn segmentation offloads off where per-wire-packet loss
        matters)."""
        rules = [f"{self._chance(percent)}counter drop"] if percent else []
        self._netdev_table(ns, "loss", dev, rules)

    def blackhole(self, ns: str, dev: str) -> float:
        """Drop every frame ``dev`` sends or receives (nftables netdev egress and ingress hooks,
        ARP/ND included): the path through ``dev`` goes dark without any signal, as when a
        link fails silently.  One table per device (``mlab_bh_<dev>``), independent of the
        :meth:`nft_loss` / :meth:`nft_ce` tables; :meth:`unblackhole` removes it.  Returns
        ``time.monotonic()`` right after the rules are in place (``nft`` takes ~20 ms)."""
        table = f"mlab_bh_{_dev(dev).replace('-', '_').replace('.', '_')}"
        chains = "".join(
            f"    chain {hook} {{\n"
            f"        type filter hook {hook} device \"{dev}\" priority -500; policy accept;\n"
            f"        counter drop\n    }}\n" for hook in ("egress", "ingress"))
        self.nft(ns, f"add table netdev {table}\ndelete table netdev {table}\n"
                     f"table netdev {table} {{\n{chains}}}\n")
        return time.monotonic()

    def unblackhole(self, ns: str, dev: str) -> None:
        """Undo :meth:`blackhole` on ``dev`` (a no-op if it was not black-holed)."""
        table = f"mlab_bh_{_dev(dev).replace('-', '_').replace('.', '_')}"
        self.nft(ns, f"add table netdev {table}\ndelete table netdev {table}\n")

    def nft_ce(self, ns: str, dev: str, percent: float) -> None:
        """Mark ``percent`` % of ``dev``'s ECN-capable (ECT(0)/ECT(1)) egress packets CE
        (RFC 3168 §5); 0 removes the rules."""
        chance = self._chance(percent)
        rules = [
            f"ip ecn {{ ect0, ect1 }} {chance}counter ip ecn set ce",
            f"ip6 ecn {{ ect0, ect1 }} {chance}counter ip6 ecn set ce",
        ] if percent else []
        self._netdev_table(ns, "ce", dev, rules)

    # -- teardown ----------------------------------------------------------------------
    def close(self) -> None:
        """Terminate the processes we started (by pid), then delete our namespaces."""
        if self.closed:
            return
        self.closed = True
        errors: list[str] = []
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            res = _run(["ip", "netns", "del", ns], check=False)
            if res.returncode != 0:
                errors.append(f"{ns}: {res.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise TopologyError("teardown failed: " + "; ".join(errors))


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = _TIMEOUT,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                             input=input)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TopologyError(f"{' '.join(argv)}: {e}") from e
    if check and res.returncode != 0:
        raise TopologyError(f"{' '.join(argv)} failed ({res.returncode}): "
                            f"{res.stderr.strip()}")
    return res


# -- the canonical two-host path --------------------------------------------------------
@dataclass(frozen=True)
class Path:
    """Our stack in ``stack_ns``, a kernel peer in ``peer_ns``, one veth between them.

    ``stack_addr`` / ``peer_addr`` / ``tun_kernel_addr`` are of the family the path was
    built for (IPv6 when ``ipv6``); the ``*4`` / ``*6`` fields give each family explicitly.
    """

    driver: Literal["tun", "raw"]
    stack_ns: str
    peer_ns: str
    stack_addr: str
    peer_addr: str
    tun_kernel_addr: str | None
    stack_dev: str
    peer_dev: str
    mtu: int
    ipv6: bool
    stack_addr4: str
    peer_addr4: str
    stack_addr6: str | None = None
    peer_addr6: str | None = None
    tun_kernel_addr6: str | None = None
    tun_dev: str = "mlab0"
    tun_addresses: tuple[tuple[str, int], ...] = field(default=())

    def make_driver(self, offload: bool = True) -> TunDriver | RawDriver:
        """The driver for the stack: a TUN device in S (created now) or raw sockets on S's
        veth (``offload`` does not apply)."""
        if self.driver == "tun":
            return TunDriver(self.tun_dev, netns=self.stack_ns, addresses=self.tun_addresses,
                             mtu=self.mtu, offload=offload)
        addrs = [self.stack_addr4] + ([self.stack_addr6] if self.stack_addr6 else [])
        return RawDriver(self.stack_dev, addrs, netns=self.stack_ns)


def stack_and_peer(
    topo: Topology, *, driver: Literal["tun", "raw"] = "tun", ipv6: bool = False,
    mtu: int = 1500,
) -> Path:
    """Namespaces S (stack) and P (kernel peer); veth S:veth0 10.0.1.1/24 <-> P:veth0
    10.0.1.2/24 (plus fd00:1::1/64 <-> fd00:1::2/64 with ``ipv6``).

    ``driver="tun"``: S forwards; the stack will sit behind TUN ``mlab0`` (kernel side
    10.0.2.1/24 / fd00:2::1/64, stack 10.0.2.2 / fd00:2::2) created by
    :meth:`Path.make_driver`; P routes 10.0.2.0/24 (fd00:2::/64) via S.
    ``driver="raw"``: the stack uses S's own 10.0.1.1 (fd00:1::1) through raw sockets.
    """
    if driver not in ("tun", "raw"):
        raise TopologyError(f"unknown driver {driver!r}")
    s = topo.add_ns("s")
    p = topo.add_ns("p")
    topo.veth(s, p, "10.0.1.1", "10.0.1.2", 24, "veth0", "veth0", mtu)
    if ipv6:
        topo.addr(s, "veth0", "fd00:1::1", 64)
        topo.addr(p, "veth0", "fd00:1::2", 64)
    for ns in (s, p):
        topo.sysctl(ns, "net.ipv4.conf.all.rp_filter", 0)
        topo.sysctl(ns, "net.ipv4.conf.default.rp_filter", 0)
    common: dict[str, Any] = {
        "driver": driver, "stack_ns": s, "peer_ns": p, "stack_dev": "veth0",
        "peer_dev": "veth0", "mtu": mtu, "ipv6": ipv6, "peer_addr4": "10.0.1.2",
        "peer_addr6": "fd00:1::2" if ipv6 else None,
        "peer_addr": "fd00:1::2" if ipv6 else "10.0.1.2",
    }
    if driver == "raw":
        return Path(stack_addr="fd00:1::1" if ipv6 else "10.0.1.1", tun_kernel_addr=None,
                    stack_addr4="10.0.1.1", stack_addr6="fd00:1::1" if ipv6 else None,
                    **common)
    topo.sysctl(s, "net.ipv4.ip_forward", 1)
    topo.sysctl(s, "net.ipv4.conf.all.send_redirects", 0)
    topo.route(p, "10.0.2.0/24", "10.0.1.1")
    tun_addrs: list[tuple[str, int]] = [("10.0.2.1", 24)]
    if ipv6:
        topo.sysctl(s, "net.ipv6.conf.all.forwarding", 1)
        topo.route(p, "fd00:2::/64", "fd00:1::1")
        tun_addrs.append(("fd00:2::1", 64))
    return Path(
        stack_addr="fd00:2::2" if ipv6 else "10.0.2.2",
        tun_kernel_addr="fd00:2::1" if ipv6 else "10.0.2.1",
        stack_addr4="10.0.2.2", stack_addr6="fd00:2::2" if ipv6 else None,
        tun_kernel_addr6="fd00:2::1" if ipv6 else None, tun_addresses=tuple(tun_addrs),
        **common,
    )


# -- two paths between the same two hosts (multipath MPTCP, RFC 8684 §3.2 / §3.4) --------------
@dataclass(frozen=True)
class PathLeg:
    """One of the two paths of :class:`TwoPaths`: the veth pair it runs over and the addresses
    whose traffic takes it.

    ``stack_addr`` is "our" address on this path (the TUN-side stack address, or S's own veth
    address with ``kernel_both``); ``peer_addr`` the kernel peer's address on this path;
    ``veth_addr`` S's own address on the veth.  ``*4`` / ``*6`` give each family explicitly,
    the unsuffixed fields the family the topology was built for."""

    index: int
    stack_dev: str
    peer_dev: str
    stack_addr: str
    peer_addr: str
    veth_addr: str
    tun_kernel_addr: str | None
    table: int
    stack_addr4: str
    peer_addr4: str
    veth_addr4: str
    tun_kernel_addr4: str | None
    stack_addr6: str | None
    peer_addr6: str | None
    veth_addr6: str | None
    tun_kernel_addr6: str | None


@dataclass(frozen=True)
class TwoPaths:
    """Namespaces S (our stack) and P (a kernel MPTCP peer) joined by two independent paths.

    Invariant: **a subflow's path is decided by S's local address** of that subflow (our
    address): S routes by source (policy routing, one table per path), P routes by
    destination (its main table), so both directions of every subflow take the same veth,
    also for "cross" subflows (our path-2 address to P's path-1 address takes path 2).
    """

    stack_ns: str
    peer_ns: str
    paths: tuple[PathLeg, PathLeg]
    ipv6: bool
    mtu: int
    kernel_both: bool
    tun_dev: str = "mlab0"
    tun_addresses: tuple[tuple[str, int], ...] = field(default=())

    @property
    def stack_addrs(self) -> tuple[str, str]:
        """Our two addresses (path 1, path 2)."""
        return (self.paths[0].stack_addr, self.paths[1].stack_addr)

    @property
    def peer_addrs(self) -> tuple[str, str]:
        """The kernel peer's two addresses (path 1, path 2)."""
        return (self.paths[0].peer_addr, self.paths[1].peer_addr)

    @property
    def stack_devs(self) -> tuple[str, str]:
        return (self.paths[0].stack_dev, self.paths[1].stack_dev)

    @property
    def peer_devs(self) -> tuple[str, str]:
        return (self.paths[0].peer_dev, self.paths[1].peer_dev)

    def path_of(self, stack_addr: str) -> int | None:
        """The path (1 or 2) that traffic from/to our address ``stack_addr`` takes (an
        ``"ip"`` or ``"ip:port"`` / ``"[v6]:port"`` string), None if it is not ours."""
        host = _host_of(stack_addr)
        for leg in self.paths:
            if host in (leg.stack_addr4, leg.stack_addr6):
                return leg.index
        return None

    def as_path(self, index: int = 1) -> Path:
        """Path ``index`` as a single :class:`Path` (for the one-path helpers such as
        ``interop.our_peer.start_on_path``); its ``tun_addresses`` carry both TUN addresses,
        so the TUN device it makes serves both paths."""
        leg = self.paths[index - 1]
        return Path(
            driver="raw" if self.kernel_both else "tun", stack_ns=self.stack_ns,
            peer_ns=self.peer_ns, stack_addr=leg.stack_addr, peer_addr=leg.peer_addr,
            tun_kernel_addr=leg.tun_kernel_addr, stack_dev=leg.stack_dev, peer_dev=leg.peer_dev,
            mtu=self.mtu, ipv6=self.ipv6, stack_addr4=leg.stack_addr4, peer_addr4=leg.peer_addr4,
            stack_addr6=leg.stack_addr6, peer_addr6=leg.peer_addr6,
            tun_kernel_addr6=leg.tun_kernel_addr6, tun_dev=self.tun_dev,
            tun_addresses=self.tun_addresses)

    def make_driver(self, offload: bool = True) -> TunDriver:
        """The TUN device in S carrying both kernel-side TUN addresses (created now)."""
        if self.kernel_both:
            raise TopologyError("a kernel_both topology has no TUN side (the stack addresses "
                                "are S's own veth addresses)")
        return TunDriver(self.tun_dev, netns=self.stack_ns, addresses=self.tun_addresses,
                         mtu=self.mtu, offload=offload)


def _host_of(addr: str) -> str:
    """``"10.0.1.1:80"`` / ``"[fd00::1]:80"`` / plain address -> the address."""
    if addr.startswith("["):
        return addr[1:addr.index("]")]
    if addr.count(":") == 1:
        return addr.split(":")[0]
    return addr


# (path index, S veth, P veth, veth v4 net, veth v6 net, TUN v4 net, TUN v6 net)
_LEGS = ((1, "veth0", "veth0", "10.0.1", "fd00:1:", "10.0.2", "fd00:2:"),
         (2, "veth1", "veth1", "10.0.11", "fd00:11:", "10.0.3", "fd00:3:"))


def two_paths(
    topo: Topology, *, ipv6: bool = False, mtu: int = 1500, kernel_both: bool = False,
    rate_bit: int | None = None,
) -> TwoPaths:
    """S and P joined by two veth pairs: path 1 S:veth0 10.0.1.1/24 <-> P:veth0 10.0.1.2/24,
    path 2 S:veth1 10.0.11.1/24 <-> P:veth1 10.0.11.2/24 (with ``ipv6`` also fd00:1::/64 and
    fd00:11::/64, ::1 in S and ::2 in P).  ``rp_filter`` 0 in both namespaces.

    TUN mode (default): S forwards; our stack sits behind TUN ``mlab0`` (made by
    :meth:`TwoPaths.make_driver`) with addresses 10.0.2.2 (path 1) and 10.0.3.2 (path 2),
    kernel side 10.0.2.1/24 and 10.0.3.1/24 (fd00:2::2 / fd00:3::2 on fd00:2::1/64 /
    fd00:3::1/64).  S: ``ip rule from 10.0.2.0/24 table 102`` (default via 10.0.1.2 dev veth0)
    and ``from 10.0.3.0/24 table 103`` (default via 10.0.11.2 dev veth1), so traffic from our
    path-2 address leaves on veth1 even to P's path-1 address.  P: 10.0.2.0/24 via 10.0.1.1,
    10.0.3.0/24 via 10.0.11.1 (destination routing: replies and P's own subflows to our
    path-2 address take veth1 whatever P's source address, so every subflow is symmetric).

    ``kernel_both``: no TUN; S's own veth addresses 10.0.1.1 and 10.0.11.1 are the "stack"
    addresses (Linux MPTCP in S against Linux MPTCP in P), with source rules
    ``from 10.0.1.1 table 101`` / ``from 10.0.11.1 table 111`` in S.

    ``rate_bit``: a tbf rate limit on all four veth egresses (each path, each direction).
    """
    s = topo.add_ns("s")
    p = topo.add_ns("p")
    for ns in (s, p):  # before the veths exist, so they inherit 0 from "default"
        topo.sysctl(ns, "net.ipv4.conf.all.rp_filter", 0)
        topo.sysctl(ns, "net.ipv4.conf.default.rp_filter", 0)
    if not kernel_both:
        topo.sysctl(s, "net.ipv4.ip_forward", 1)
        topo.sysctl(s, "net.ipv4.conf.all.send_redirects", 0)
        topo.sysctl(s, "net.ipv4.conf.default.send_redirects", 0)
        if ipv6:
            topo.sysctl(s, "net.ipv6.conf.all.forwarding", 1)
    legs: list[PathLeg] = []
    tun_addrs: list[tuple[str, int]] = []
    for index, s_dev, p_dev, v4, v6, t4, t6 in _LEGS:
        topo.veth(s, p, f"{v4}.1", f"{v4}.2", 24, s_dev, p_dev, mtu)
        for ns, dev in ((s, s_dev), (p, p_dev)):
            topo.sysctl(ns, f"net.ipv4.conf.{dev}.rp_filter", 0)
        if ipv6:
            topo.addr(s, s_dev, f"{v6}:1", 64)
            topo.addr(p, p_dev, f"{v6}:2", 64)
        if rate_bit is not None:
            topo.tbf(s, s_dev, rate_bit)
            topo.tbf(p, p_dev, rate_bit)
        if kernel_both:
            ours4, ours6, src4, src6 = f"{v4}.1", f"{v6}:1", f"{v4}.1/32", f"{v6}:1/128"
            kern4: str | None = None
            kern6: str | None = None
        else:
            ours4, ours6, src4, src6 = f"{t4}.2", f"{t6}:2", f"{t4}.0/24", f"{t6}:/64"
            kern4, kern6 = f"{t4}.1", f"{t6}:1"
            tun_addrs.append((kern4, 24))
            topo.route(p, f"{t4}.0/24", f"{v4}.1", p_dev)
            if ipv6:
                tun_addrs.append((kern6, 64))
                topo.route(p, f"{t6}:/64", f"{v6}:1", p_dev)
        table = 100 + int(ours4.split(".")[2])
        _source_route(topo, s, src4, f"{v4}.2", s_dev, table)
        if ipv6:
            _source_route(topo, s, src6, f"{v6}:2", s_dev, table)
        legs.append(PathLeg(
            index=index, stack_dev=s_dev, peer_dev=p_dev,
            stack_addr=ours6 if ipv6 else ours4, peer_addr=f"{v6}:2" if ipv6 else f"{v4}.2",
            veth_addr=f"{v6}:1" if ipv6 else f"{v4}.1",
            tun_kernel_addr=kern6 if ipv6 else kern4, table=table,
            stack_addr4=ours4, peer_addr4=f"{v4}.2", veth_addr4=f"{v4}.1",
            tun_kernel_addr4=kern4, stack_addr6=ours6 if ipv6 else None,
            peer_addr6=f"{v6}:2" if ipv6 else None, veth_addr6=f"{v6}:1" if ipv6 else None,
            tun_kernel_addr6=kern6 if ipv6 else None))
    return TwoPaths(stack_ns=s, peer_ns=p, paths=(legs[0], legs[1]), ipv6=ipv6, mtu=mtu,
                    kernel_both=kernel_both, tun_addresses=tuple(tun_addrs))


def _source_route(topo: Topology, ns: str, src: str, via: str, dev: str, table: int) -> None:
    """Policy routing in ``ns``: packets from ``src`` use table ``table``, whose default
    route is ``via`` on ``dev`` (ip-rule(8))."""
    check_address(src)
    check_address(via)
    fam = "-6" if ":" in src else "-4"
    topo.ip(ns, fam, "route", "add", "default", "via", via, "dev", _dev(dev),
            "table", str(table))
    topo.ip(ns, fam, "rule", "add", "from", src, "table", str(table))


# -- how a transfer behaved after a failure (with Topology.blackhole) ---------------------------
@dataclass(frozen=True)
class ProgressStall:
    """What a counter of ``progress`` events (``interop.linux_peer --progress-interval``) did
    after an instant ``since``; see :func:`progress_stall`."""

    resumed_after: float | None
    longest_gap: float
    rate_before: float
    rate_after: float
    at_since: int
    final: int


def progress_stall(
    events: Sequence[dict[str, Any]], since: float, key: str = "bytes_in", *,
    window: float = 0.1, fraction: float = 0.25, hold: float = 1.0, lookback: float = 0.5,
) -> ProgressStall:
    """Analyse the ``key`` counter (``bytes_in`` / ``bytes_out``) of the ``progress`` events
    among ``events`` after ``since`` (a ``time.monotonic()`` instant: CLOCK_MONOTONIC is the
    same in every process and namespace).

    ``rate_before``: bytes/s over the ``lookback`` s before ``since``.  A sample is *moving*
    if the counter then grows at >= ``fraction`` x ``rate_before`` over the next ``window``
    s (> 0 bytes without samples before ``since``).  The stall starts at the first sample
    after ``since`` without an increase; ``resumed_after`` is the time from ``since`` to the
    first increase after that from which every sample for ``hold`` s is moving (sustained
    progress again, not a trickle of retransmissions); 0.0 if the counter never stalled,
    None if it never resumed.  ``longest_gap``: the longest time between two increases after
    ``since``; ``rate_after``: bytes/s from the resumption to the last increase.  The flat
    tail after the last increase (the end of the transfer) is ignored.  Everything is at the
    sampling resolution: sample well below the stall times of interest, with several
    segments per sample (or a pause in the data is taken for a stall)."""
    samples = sorted((float(e["t"]), int(e.get(key) or 0)) for e in events
                     if e.get("event") == "progress")
    before = [(t, v) for t, v in samples if t <= since]
    after = [(t, v) for t, v in samples if t > since]
    while len(after) >= 2 and after[-2][1] >= after[-1][1]:
        after.pop()
    base = before[-1][1] if before else (samples[0][1] if samples else 0)
    old = [(t, v) for t, v in before if t >= since - lookback]
    rate_before = ((old[-1][1] - old[0][1]) / (old[-1][0] - old[0][0])
                   if len(old) >= 2 and old[-1][0] > old[0][0] else 0.0)
    pts = before[-1:] + after

    def moving(i: int) -> bool:
        ti, vi = pts[i]
        j = next((k for k in range(i + 1, len(pts)) if pts[k][0] >= ti + window), len(pts) - 1)
        tj, vj = pts[j]
        if tj - ti < window / 2:  # the transfer ends sooner: too short to judge
            return True
        return vj > vi and (vj - vi) / (tj - ti) >= fraction * rate_before

    resumed: float | None = None
    t_res, v_res = since, base
    start = next((k for k in range(1, len(pts)) if pts[k][1] <= pts[k - 1][1]), None)
    if start is None and len(pts) > 1:  # never stalled
        resumed = 0.0
    for k in range(start or len(pts), len(pts)):
        if pts[k][1] > pts[k - 1][1] and all(
                moving(i) for i in range(k, len(pts)) if pts[i][0] <= pts[k][0] + hold):
            (t_res, v_res), resumed = pts[k], pts[k][0] - since
            break
    longest, last_t, last_v = 0.0, since, base
    for t, v in after:
        if v > last_v:
            longest, last_t, last_v = max(longest, t - last_t), t, v
    end_t, end_v = after[-1] if after else (since, base)
    rate_after = (end_v - v_res) / (end_t - t_res) if resumed is not None and end_t > t_res \
        else 0.0
    return ProgressStall(resumed_after=resumed, longest_gap=longest, rate_before=rate_before,
                         rate_after=rate_after, at_since=base, final=max([base] + [
                             v for _, v in after]))
