"""TUN driver: the stack's IP packets through a Linux TUN device, optionally with virtio-net
offloads (checksum offload and TSO/GSO super-packets).

Kernel interface (Documentation/networking/tuntap.rst, ``include/uapi/linux/if_tun.h``):
``open("/dev/net/tun")``, ``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI`` (bare IP packets), plus
``IFF_VNET_HDR`` so every packet carries a ``struct virtio_net_hdr`` (:mod:`mptcp.io.vnet`,
virtio spec §5.1.6) and ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)`` so the kernel
hands us, and accepts from us, TCP packets with partial checksums and up to 64 KB of payload.
The device lives as long as the descriptor (not persistent): :meth:`TunDriver.close` removes
it.  Link settings (MTU, a long transmit queue, addresses, routes, link up) go through
rtnetlink (pyroute2) in the device's namespace.

The kernel side of the device gets ``addresses`` (e.g. 10.0.2.1/24); the stack itself uses
another address of that subnet (e.g. 10.0.2.2) and the kernel routes to it through the device.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections import deque
from collections.abc import Sequence
from ipaddress import ip_interface
from types import TracebackType
from typing import Any

from mptcp.io.driver import DriverError, QueuedTx, RxPacket, TxPacket
from mptcp.io.netns import in_netns, ipr
from mptcp.io.vnet import RX_CSUM_OK, VNET_HDR_LEN, VnetError, tx_header

__all__ = [
    "TunDriver", "TUNSETIFF", "TUNSETOFFLOAD", "TUNSETVNETHDRSZ", "TUNSETVNETLE",
    "IFF_TUN", "IFF_NO_PI", "IFF_VNET_HDR", "TUN_F_CSUM", "TUN_F_TSO4", "TUN_F_TSO6",
    "TUN_F_TSO_ECN",
]

# include/uapi/linux/if_tun.h: _IOW('T', nr, int)
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUNSETVNETLE = 0x400454DC
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08

_IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, flags, padding to 40 bytes
_INT = struct.Struct("i")
_MAX_PACKET = 65535 + 64  # largest GSO super-packet (IP total length is 16 bits) + slack
_RETRY = (errno.EAGAIN, errno.ENOBUFS)

Route = str | tuple[str, str | None]


class TunDriver(QueuedTx):
    """A TUN device in namespace ``netns`` implementing the :class:`mptcp.io.driver.Driver`
    protocol.

    ``addresses``: (address, prefix length) pairs for the kernel side of the device.
    ``routes``: extra kernel routes through the device, ``"dst/len"`` or ``(dst, gateway)``.
    ``offload``: virtio-net header + checksum offload + TSO (``tso``/``csum_offload``).
    ``txqueuelen``: the kernel queues packets for us there; Linux's default of 500 drops
    under load.
    """

    def __init__(
        self,
        ifname: str = "mlab0",
        *,
        netns: str | None = None,
        addresses: Sequence[tuple[str, int]] = (("10.0.2.1", 24),),
        routes: Sequence[Route] = (),
        mtu: int = 1500,
        offload: bool = True,
        txqueuelen: int = 10000,
    ) -> None:
        name = ifname.encode()
        if not 0 < len(name) < 16 or b"/" in name or b" " in name:
            raise DriverError(f"bad interface name {ifname!r}")
        if not 68 <= mtu <= 65535:
            raise DriverError(f"MTU {mtu} out of range")
        self.ifname = ifname
        self.netns = netns
        self.mtu = mtu
        self.tso = offload
        self.csum_offload = offload
        self._vnet = offload
        self._queue: deque[TxPacket] = deque()
        self.counters: dict[str, int] = {
            "rx_packets": 0, "tx_packets": 0, "tx_queued": 0, "tx_errors": 0,
        }
        self.last_error: str | None = None
        self._fd = -1
        self._fd = self._open(name, offload, netns)
        try:
            self._configure(netns, mtu, txqueuelen, addresses, routes)
        except BaseException:
            self.close()
            raise

    # -- setup -------------------------------------------------------------------------
    @staticmethod
    def _open(name: bytes, offload: bool, netns: str | None) -> int:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
        with in_netns(netns):
            try:
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                raise DriverError(e.errno, f"cannot open /dev/net/tun: {e.strerror}") from e
        try:
            fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name, flags))
            if offload:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, _INT.pack(VNET_HDR_LEN))
                fcntl.ioctl(fd, TUNSETVNETLE, _INT.pack(1))
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError as e:
            os.close(fd)
            raise DriverError(e.errno, f"TUN setup of {name.decode()!r} failed: {e.strerror}"
                              ) from e
        return fd

    def _configure(
        self, netns: str | None, mtu: int, txqueuelen: int,
        addresses: Sequence[tuple[str, int]], routes: Sequence[Route],
    ) -> None:
        try:
            with ipr(netns) as r:
                found = r.link_lookup(ifname=self.ifname)
                if not found:
                    raise DriverError(f"TUN device {self.ifname!r} not found after TUNSETIFF")
                idx = found[0]
                r.link("set", index=idx, mtu=mtu, txqlen=txqueuelen)
                for addr, plen in addresses:
                    iface = ip_interface(f"{addr}/{plen}")
                    kw: dict[str, Any] = {}
                    if iface.version == 6:
                        kw["flags"] = 0x02  # IFA_F_NODAD: usable at once
                    r.addr("add", index=idx, address=str(iface.ip), prefixlen=plen, **kw)
                r.link("set", index=idx, state="up")
                for route in routes:
                    dst, gw = (route, None) if isinstance(route, str) else route
                    if gw is None:
                        r.route("add", dst=dst, oif=idx)
                    else:
                        r.route("add", dst=dst, gateway=gw, oif=idx)
        except DriverError:
            raise
        except Exception as e:  # pyroute2 NetlinkError, ValueError from ip_interface
            raise DriverError(f"configuring {self.ifname!r} in netns {netns!r} failed: {e}"
                              ) from e

    # -- Driver protocol ---------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        out: list[RxPacket] = []
        append = out.append
        read = os.read
        fd = self._fd
        try:
            if self._vnet:
                for _ in range(limit):
                    data = read(fd, _MAX_PACKET)
                    # kernel-generated packets (maybe GSO super-packets) carry NEEDS_CSUM:
                    # their TCP checksum is partial; DATA_VALID: verified by the kernel
                    append((data[VNET_HDR_LEN:], data[0] & RX_CSUM_OK != 0))
            else:
                for _ in range(limit):
                    append((read(fd, _MAX_PACKET), False))
        except BlockingIOError:
            pass
        except OSError as e:
            self.counters["rx_errors"] = self.counters.get("rx_errors", 0) + 1
            if out:  # hand over what we have; the error comes back on the next call
                self.last_error = f"read: {e}"
            else:
                raise DriverError(e.errno, f"read from {self.ifname!r}: {e.strerror}") from e
        self.counters["rx_packets"] += len(out)
        return out

    def _write(self, packets: Sequence[TxPacket]) -> int:
        """Write packets until the kernel pushes back; returns how many were consumed (sent
        or dropped with a counted error)."""
        fd = self._fd
        i = 0
        n = len(packets)
        errors = 0
        if self._vnet:
            writev = os.writev
            hdr = tx_header
            partial = self.csum_offload
            while i < n:
                pkt, gso = packets[i]
                try:
                    writev(fd, (hdr(pkt, gso, partial), pkt))
                except OSError as e:
                    if e.errno in _RETRY:
                        break
                    errors += 1
                    self._error(e)
                i += 1
        else:
            write = os.write
            while i < n:
                pkt, gso = packets[i]
                try:
                    if gso:
                        raise VnetError(f"gso_size {gso} without offload on {self.ifname!r}")
                    write(fd, pkt)
                except OSError as e:
                    if e.errno in _RETRY:
                        break
                    errors += 1
                    self._error(e)
                i += 1
        c = self.counters
        c["tx_packets"] += i - errors
        if errors:
            c["tx_errors"] += errors
        return i

    def _error(self, e: OSError) -> None:
        if e.errno == errno.EBADF:
            raise DriverError(errno.EBADF, f"TUN {self.ifname!r} is closed") from e
        self.last_error = f"write: {e}"

    def get_timer(self) -> float | None:
        return None

    def poll(self, now: float) -> None:
        return None

    def bind_port(self, port: int) -> None:
        return None  # the kernel never sees the stack's address as its own

    def unbind_port(self, port: int) -> None:
        return None

    def close(self) -> None:
        """Close the descriptor; the (non-persistent) device disappears with it."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self) -> TunDriver:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"TunDriver({self.ifname!r}, netns={self.netns!r}, mtu={self.mtu}, "
                f"offload={self._vnet}, fd={self._fd})")

