"""Raw-socket driver: the stack uses an address the kernel also owns on a real interface
(e.g. a veth), sending through raw IP sockets and receiving through a packet socket.

- Send: ``socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`` (``IP_HDRINCL`` implied, raw(7)) and
  ``socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)`` (header included, raw(7)/ipv6(7)), bound to the
  interface.  Packets carry full checksums and fit the MTU (no offloads).
- Receive: an ``AF_PACKET``/``SOCK_RAW`` socket bound to the interface (packet(7); the kernel
  allows ``PACKET_VNET_HDR`` on ``SOCK_RAW`` only, so the link-layer header -- 14 bytes of
  Ethernet on a veth -- is read and skipped).  With ``PACKET_VNET_HDR``, packets from a
  kernel peer across a veth -- often GSO/GRO super-packets with a partial checksum (Linux
  ``CHECKSUM_PARTIAL``) -- come with a virtio-net header (:mod:`mptcp.io.vnet`, virtio spec
  §5.1.6) whose flags give ``csum_ok``.  A classic
  BPF filter (``SO_ATTACH_FILTER``, Documentation/networking/filter.rst) makes the kernel
  queue only incoming TCP to our addresses and bound ports; ``PACKET_IGNORE_OUTGOING`` keeps
  our own sends out.
- The kernel's TCP must not answer packets meant for the stack (it would reset them, RFC 9293
  §3.10.7.1): packet sockets see packets before netfilter, so an nftables table
  (``inet mlab_<hex>``, nft(8)) with a set of the stack's ports drops them in the input hook.
  :meth:`RawDriver.bind_port` / :meth:`RawDriver.unbind_port` edit the set; :meth:`close`
  (and a finalizer, also run at interpreter exit) deletes the table.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import secrets
import shutil
import socket
import struct
import subprocess
import weakref
from collections import deque
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import TracebackType

from mptcp.io.driver import DriverError, QueuedTx, RxPacket, TxPacket
from mptcp.io.netns import in_netns
from mptcp.io.vnet import RX_CSUM_OK, VNET_HDR_LEN

__all__ = ["RawDriver", "build_filter", "nft_available"]

SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

_BUF = 65535 + VNET_HDR_LEN + 64  # a GSO/GRO super-packet is at most 64 KB of IP
_RETRY = (errno.EAGAIN, errno.ENOBUFS)
_MAX_FILTER_PORTS = 200  # beyond this the filter matches addresses only (jump range)
_IFREQ_MTU = struct.Struct("16si20x")
_IFREQ_HW = struct.Struct("16sH22x")
# link-layer header length by ARPHRD_* type (linux/if_arp.h): Ethernet, loopback; none, raw IP
_L2_LEN = {1: 14, 772: 14, 0xFFFE: 0, 519: 0}

Address = str | tuple[str, int]


# -- classic BPF ------------------------------------------------------------------------
# linux/filter.h, linux/bpf_common.h
_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_SKF_AD_OFF = -0x1000
_SKF_AD_PROTOCOL = 0
_SKF_AD_PKTTYPE = 4
_ACCEPT = 0xFFFFFFFF
_INSN = struct.Struct("HBBI")

# An instruction with symbolic jumps: (code, jt label, jf label, k); "" = next instruction.
_Ins = tuple[int, str, str, int]


def _assemble(prog: list[_Ins | str]) -> bytes:
    """Resolve labels (plain strings in ``prog``) into relative jump offsets."""
    labels: dict[str, int] = {}
    insns: list[_Ins] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for pc, (code, jt, jf, k) in enumerate(insns):
        offs = []
        for label in (jt, jf):
            off = labels[label] - pc - 1 if label else 0
            if not 0 <= off <= 255:
                raise DriverError(f"BPF jump to {label!r} out of range ({off})")
            offs.append(off)
        out.append(_INSN.pack(code, offs[0], offs[1], k & 0xFFFFFFFF))
    return b"".join(out)


def build_filter(addresses: Sequence[str], ports: Sequence[int] | None, l2: int = 0) -> bytes:
    """A classic BPF program for a ``SOCK_RAW`` packet socket whose IP header starts at
    offset ``l2`` (the link-layer header length): accept incoming (not ``PACKET_OUTGOING``)
    unfragmented TCP whose destination is one of ``addresses`` and, unless ``ports`` is
    None, one of ``ports``; drop the rest.  IPv6 TCP must follow the fixed header directly
    (no extension headers)."""
    v4 = [int(a) for a in map(ip_address, addresses) if a.version == 4]
    v6 = [int(a) for a in map(ip_address, addresses) if a.version == 6]
    prog: list[_Ins | str] = [
        (_LD_W_ABS, "", "", _SKF_AD_OFF + _SKF_AD_PKTTYPE),
        (_JEQ_K, "drop", "", socket.PACKET_OUTGOING),
        (_LD_W_ABS, "", "", _SKF_AD_OFF + _SKF_AD_PROTOCOL),
        (_JEQ_K, "v4", "", ETH_P_IP),
        (_JEQ_K, "v6", "", ETH_P_IPV6),
        "drop", (_RET_K, "", "", 0),
    ]

    def port_check(prefix: str, load: list[_Ins]) -> None:
        if ports is None:
            prog.extend([(_RET_K, "", "", _ACCEPT)])
            return
        prog.extend(load)
        prog.extend((_JEQ_K, f"{prefix}_ok", "", p) for p in sorted(set(ports)))
        prog.extend([(_RET_K, "", "", 0), f"{prefix}_ok", (_RET_K, "", "", _ACCEPT)])

    if v4:
        prog.extend([
            "v4",
            (_LD_B_ABS, "", "", l2 + 9),
            (_JEQ_K, "", "v4_drop", socket.IPPROTO_TCP),
            (_LD_H_ABS, "", "", l2 + 6),
            (_JSET_K, "v4_drop", "", 0x1FFF),  # a fragment: no TCP header to look at
            (_LD_W_ABS, "", "", l2 + 16),
        ])
        prog.extend((_JEQ_K, "v4_port", "", a) for a in v4)
        prog.extend(["v4_drop", (_RET_K, "", "", 0), "v4_port"])
        port_check("v4", [(_LDX_B_MSH, "", "", l2), (_LD_H_IND, "", "", l2 + 2)])
    else:
        prog.extend(["v4", (_RET_K, "", "", 0)])
    if v6:
        prog.extend(["v6", (_LD_B_ABS, "", "", l2 + 6),
                     (_JEQ_K, "", "v6_drop", socket.IPPROTO_TCP)])
        for i, a in enumerate(v6):
            words = [(a >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)]
            miss = f"v6_next{i}"
            for j, w in enumerate(words):
                prog.append((_LD_W_ABS, "", "", l2 + 24 + 4 * j))
                prog.append((_JEQ_K, "v6_port" if j == 3 else "", miss, w))
            prog.append(miss)
        prog.extend(["v6_drop", (_RET_K, "", "", 0), "v6_port"])
        port_check("v6", [(_LD_H_ABS, "", "", l2 + 42)])
    else:
        prog.extend(["v6", (_RET_K, "", "", 0)])
    return _assemble(prog)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // _INSN.size, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    del buf  # the kernel copied the program


# -- nftables ---------------------------------------------------------------------------
def nft_available() -> bool:
    return shutil.which("nft") is not None


def _nft(netns: str | None, script: str) -> None:
    """Run an nft script in ``netns`` (the child process inherits this thread's namespace)."""
    nft = shutil.which("nft")
    if nft is None:
        raise DriverError("nft (nftables) not found: the raw-socket driver needs it to keep "
                          "the kernel's TCP from resetting the stack's connections")
    with in_netns(netns):
        try:
            res = subprocess.run([nft, "-f", "-"], input=script, capture_output=True,
                                 text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DriverError(f"nft failed: {e}") from e
    if res.returncode != 0:
        raise DriverError(f"nft failed ({res.returncode}): {res.stderr.strip()}\n{script}")


def _delete_table(netns: str | None, table: str) -> None:
    """Finalizer: remove the table (quietly: the namespace may already be gone)."""
    with contextlib.suppress(DriverError):
        _nft(netns, f"delete table inet {table}\n")


def _family_expr(a: IPv4Address | IPv6Address) -> str:
    return "ip" if a.version == 4 else "ip6"


# -- the driver -------------------------------------------------------------------------
class RawDriver(QueuedTx):
    """Raw IP sockets out, a packet socket in, nftables keeping the kernel's TCP away.

    ``addresses``: the stack's addresses (``"10.0.1.1"`` or ``("10.0.1.1", 24)``), which the
    kernel also has on ``ifname``.  ``port_filter``: the BPF filter also matches the bound
    ports (so the stack never sees, and never resets, the kernel's own connections on the
    same address).
    """

    tso = False
    csum_offload = False

    def __init__(
        self,
        ifname: str,
        addresses: Sequence[Address],
        *,
        netns: str | None = None,
        bufsize: int = 8 << 20,
        port_filter: bool = True,
    ) -> None:
        if not addresses:
            raise DriverError("RawDriver needs at least one address")
        try:
            addrs = [ip_address(a if isinstance(a, str) else a[0]) for a in addresses]
        except ValueError as e:
            raise DriverError(f"bad address: {e}") from e
        if not nft_available():
            raise DriverError("nft (nftables) not found: the raw-socket driver needs it to "
                              "keep the kernel's TCP from resetting the stack's connections")
        self.ifname = ifname
        self.netns = netns
        self.addresses = [str(a) for a in addrs]
        self.port_filter = port_filter
        self.ports: set[int] = set()
        self.table = f"mlab_{secrets.token_hex(4)}"
        self.counters: dict[str, int] = {
            "rx_packets": 0, "tx_packets": 0, "tx_queued": 0, "tx_errors": 0,
        }
        self.last_error: str | None = None
        self._queue: deque[TxPacket] = deque()
        self._dst: dict[bytes, str] = {}
        self._buf = bytearray(_BUF)
        self._view = memoryview(self._buf)
        self._tx4: socket.socket | None = None
        self._tx6: socket.socket | None = None
        self._rx: socket.socket | None = None
        self._finalizer: weakref.finalize[[str | None, str], RawDriver] | None = None
        self.mtu = 0
        self._skip = VNET_HDR_LEN
        self._l2 = 0
        has4 = any(a.version == 4 for a in addrs)
        has6 = any(a.version == 6 for a in addrs)
        try:
            with in_netns(netns):
                self._open_sockets(ifname, has4, has6, bufsize)
            self._install_table(addrs)
        except BaseException:
            self.close()
            raise

    def _open_sockets(self, ifname: str, has4: bool, has6: bool, bufsize: int) -> None:
        try:
            dev = ifname.encode()
            if has4:
                s = self._tx4 = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                              socket.IPPROTO_RAW)
                _setup_tx(s, dev, bufsize)
            if has6:
                s = self._tx6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW,
                                              socket.IPPROTO_RAW)
                _setup_tx(s, dev, bufsize)
            # protocol 0: the socket receives nothing until the filter is in place and bind()
            rx = self._rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            hatype = _IFREQ_HW.unpack(fcntl.ioctl(rx.fileno(), SIOCGIFHWADDR,
                                                  _IFREQ_HW.pack(dev, 0)))[1]
            if hatype not in _L2_LEN:
                raise DriverError(f"{ifname!r}: unsupported link type (ARPHRD {hatype})")
            self._skip = VNET_HDR_LEN + _L2_LEN[hatype]
            self._l2 = _L2_LEN[hatype]
            rx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
            with contextlib.suppress(OSError):  # Linux < 4.20: the filter drops them anyway
                rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            _force_buf(rx, SO_RCVBUFFORCE, socket.SO_RCVBUF, bufsize)
            self._refilter()
            rx.setblocking(False)
            proto = ETH_P_ALL if has4 and has6 else ETH_P_IP if has4 else ETH_P_IPV6
            rx.bind((ifname, proto))
            mtu = _IFREQ_MTU.unpack(fcntl.ioctl(rx.fileno(), SIOCGIFMTU,
                                                _IFREQ_MTU.pack(dev, 0)))[1]
            self.mtu = int(mtu)
        except OSError as e:
            if isinstance(e, DriverError):
                raise
            raise DriverError(e.errno, f"raw sockets on {ifname!r}: {e.strerror or e}") from e

    def _install_table(self, addrs: Sequence[IPv4Address | IPv6Address]) -> None:
        rules = []
        for fam in ("ip", "ip6"):
            mine = [str(a) for a in addrs if _family_expr(a) == fam]
            if mine:
                rules.append(f"        {fam} daddr {{ {', '.join(mine)} }} "
                             f"tcp dport @ports counter drop")
        # priority -300: before every usual input chain; any input-hook rule runs before the
        # packet reaches the kernel's TCP (tcp_v4_rcv / tcp_v6_rcv).
        script = (
            f"table inet {self.table} {{\n"
            f"    set ports {{\n        type inet_service\n    }}\n"
            f"    chain input {{\n"
            f"        type filter hook input priority -300; policy accept;\n"
            + "\n".join(rules) + "\n    }\n}\n"
        )
        _nft(self.netns, script)
        self._finalizer = weakref.finalize(self, _delete_table, self.netns, self.table)

    def _refilter(self) -> None:
        if self._rx is None:
            return
        ports: list[int] | None = sorted(self.ports)
        if not self.port_filter or len(self.ports) > _MAX_FILTER_PORTS:
            ports = None
        _attach_filter(self._rx, build_filter(self.addresses, ports, self._l2))

    # -- Driver protocol ---------------------------------------------------------------
    def fileno(self) -> int:
        if self._rx is None:
            return -1
        return self._rx.fileno()

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        rx = self._rx
        if rx is None:
            raise DriverError(errno.EBADF, "RawDriver is closed")
        out: list[RxPacket] = []
        append = out.append
        recv_into = rx.recv_into
        buf = self._buf
        view = self._view
        skip = self._skip
        try:
            for _ in range(limit):
                n = recv_into(buf)
                # the virtio-net header's flags: NEEDS_CSUM (partial checksum, e.g. a peer's
                # GSO packet across a veth) or DATA_VALID mean the kernel vouches for it
                append((bytes(view[skip:n]), buf[0] & RX_CSUM_OK != 0))
        except BlockingIOError:
            pass
        except OSError as e:
            self.counters["rx_errors"] = self.counters.get("rx_errors", 0) + 1
            if not out:
                raise DriverError(e.errno, f"packet socket on {self.ifname!r}: {e.strerror}"
                                  ) from e
            self.last_error = f"recv: {e}"
        self.counters["rx_packets"] += len(out)
        return out

    def _write(self, packets: Sequence[TxPacket]) -> int:
        s4 = self._tx4
        s6 = self._tx6
        dsts = self._dst
        i = 0
        n = len(packets)
        errors = 0
        while i < n:
            pkt, gso = packets[i]
            try:
                v = pkt[0] >> 4
                if v == 4 and s4 is not None and not gso:
                    key = pkt[16:20]
                    dst = dsts.get(key) or self._dst_for(key, socket.AF_INET)
                    s4.sendto(pkt, (dst, 0))
                elif v == 6 and s6 is not None and not gso:
                    key = pkt[24:40]
                    dst = dsts.get(key) or self._dst_for(key, socket.AF_INET6)
                    s6.sendto(pkt, (dst, 0))
                else:
                    raise DriverError(f"cannot send IPv{v} packet (gso_size {gso}) on "
                                      f"{self.ifname!r}")
            except OSError as e:
                if e.errno in _RETRY:
                    break
                if e.errno == errno.EBADF:
                    raise DriverError(errno.EBADF, "RawDriver is closed") from e
                errors += 1
                self.last_error = f"send: {e}"
            except (IndexError, ValueError) as e:  # empty or mangled packet
                errors += 1
                self.last_error = f"send: {e!r}"
            i += 1
        c = self.counters
        c["tx_packets"] += i - errors
        if errors:
            c["tx_errors"] += errors
        return i

    def _dst_for(self, key: bytes, family: int) -> str:
        if len(self._dst) > 4096:
            self._dst.clear()
        dst = self._dst[key] = socket.inet_ntop(family, key)
        return dst

    def get_timer(self) -> float | None:
        return None

    def poll(self, now: float) -> None:
        return None

    def bind_port(self, port: int) -> None:
        """Keep the kernel's TCP away from ``port`` on our addresses (nftables set) and let
        the packet socket deliver it."""
        if not 0 < port < 65536:
            raise DriverError(f"port {port} out of range")
        if port in self.ports:
            return
        _nft(self.netns, f"add element inet {self.table} ports {{ {port} }}\n")
        self.ports.add(port)
        self._refilter()

    def unbind_port(self, port: int) -> None:
        if port not in self.ports:
            return
        self.ports.discard(port)
        self._refilter()
        _nft(self.netns, f"delete element inet {self.table} ports {{ {port} }}\n")

    def close(self) -> None:
        """Close the sockets and delete the nftables table."""
        for name in ("_rx", "_tx4", "_tx6"):
            s = getattr(self, name)
            if s is not None:
                s.close()
                setattr(self, name, None)
        if self._finalizer is not None:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._rx is None

    def __enter__(self) -> RawDriver:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RawDriver({self.ifname!r}, {self.addresses!r}, netns={self.netns!r}, "
                f"table={self.table!r})")


def _setup_tx(s: socket.socket, dev: bytes, bufsize: int) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev)
    _force_buf(s, SO_SNDBUFFORCE, socket.SO_SNDBUF, bufsize)
    s.setblocking(False)


def _force_buf(s: socket.socket, force: int, plain: int, size: int) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, force, size)  # root: beyond net.core.*mem_max
    except PermissionError:
        s.setsockopt(socket.SOL_SOCKET, plain, size)
