"""An in-memory link: two packet drivers joined by a datagram socketpair.

:meth:`MemoryLink.pair` returns two :class:`~mptcp.io.driver.Driver` objects, one per end of a
non-blocking ``socket.socketpair(AF_UNIX, SOCK_DGRAM)``.  One datagram is one IP packet, as on
a TUN device (``IFF_TUN | IFF_NO_PI``, Linux Documentation/networking/tuntap.rst), so the
runner (:mod:`mptcp.io.runner`) waits on a real descriptor with trio exactly as it does on a
TUN, and in-process tests and demos need no privilege.

- No offloads (``tso=False``, ``csum_offload=False``): packets are carried as the stack wrote
  them and arrive with ``csum_ok=False`` (the receiving stack verifies checksums, RFC 9293
  §3.1).  A packet longer than ``mtu`` is dropped and counted, like a link without TSO would.
- Linux charges an AF_UNIX datagram to the sender's ``SO_SNDBUF`` until the peer reads it
  (net/unix/af_unix.c, ``unix_dgram_sendmsg``); both ends get large buffers (``SO_SNDBUFFORCE``
  when permitted, else ``SO_SNDBUF`` up to ``net.core.wmem_max``).  When the kernel still says
  EAGAIN / ENOBUFS the packets stay queued in the driver (``pending`` / ``flush``, as the
  :class:`Driver` contract asks); nothing is dropped silently.
- The peer end being closed (ECONNREFUSED / ENOTCONN / EPIPE) is a down link: packets are
  dropped and counted in ``stats["drops"]``.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections import deque
from collections.abc import Iterable

from mptcp.io.driver import DriverError, RxPacket, TxPacket

__all__ = ["MemoryLink", "MemoryDriver"]

_BUFFER = 8 * 1024 * 1024
"""Requested SO_SNDBUF / SO_RCVBUF of each end (the kernel doubles what it grants)."""
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_LINK_DOWN = frozenset({errno.ECONNREFUSED, errno.ENOTCONN, errno.EPIPE, errno.ECONNRESET})
_RECV_SIZE = 65536  # a datagram never exceeds this (IP total length is 16 bits)


class MemoryDriver:
    """One end of a :class:`MemoryLink` (implements :class:`~mptcp.io.driver.Driver`)."""

    tso = False
    csum_offload = False

    def __init__(self, sock: socket.socket, mtu: int) -> None:
        if not 68 <= mtu <= 65535:
            raise DriverError(f"mtu {mtu} outside 68..65535")
        sock.setblocking(False)
        _set_buffers(sock)
        self.mtu = mtu
        self._sock = sock
        self._fd = sock.fileno()
        self._queue: deque[bytes] = deque()
        self.ports: set[int] = set()
        """Ports claimed by ``bind_port`` (kept for observation; nothing to install)."""
        self.stats: dict[str, int] = {
            "rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0,
            "queued": 0, "queue_max": 0, "drops": 0, "oversize_drops": 0,
        }

    # -- Driver ------------------------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        out: list[RxPacket] = []
        recv = self._sock.recv
        nbytes = 0
        try:
            for _ in range(limit):
                pkt = recv(_RECV_SIZE)
                nbytes += len(pkt)
                out.append((pkt, False))
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in _LINK_DOWN:
                raise DriverError(f"memory link receive: {e}") from e
        if out:
            st = self.stats
            st["rx_packets"] += len(out)
            st["rx_bytes"] += nbytes
        return out

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        if self._queue:
            self._enqueue(p for p, _ in packets)
            self.flush(now)
            return
        send = self._sock.send
        mtu = self.mtu
        sent = nbytes = 0
        st = self.stats
        for i, (pkt, _gso) in enumerate(packets):
            if len(pkt) > mtu:
                st["oversize_drops"] += 1
                st["drops"] += 1
                continue
            try:
                send(pkt)
            except (BlockingIOError, InterruptedError):
                self._enqueue(p for p, _ in packets[i:])
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self._enqueue(p for p, _ in packets[i:])
                    break
                if e.errno in _LINK_DOWN:
                    st["drops"] += len(packets) - i
                    break
                raise DriverError(f"memory link send: {e}") from e
            sent += 1
            nbytes += len(pkt)
        st["tx_packets"] += sent
        st["tx_bytes"] += nbytes

    def pending(self) -> int:
        return len(self._queue)

    def flush(self, now: float) -> None:
        q = self._queue
        send = self._sock.send
        st = self.stats
        while q:
            pkt = q[0]
            try:
                send(pkt)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    return
                if e.errno in _LINK_DOWN:
                    st["drops"] += len(q)
                    q.clear()
                    return
                raise DriverError(f"memory link send: {e}") from e
            q.popleft()
            st["tx_packets"] += 1
            st["tx_bytes"] += len(pkt)

    def get_timer(self) -> float | None:
        return None

    def poll(self, now: float) -> None:
        return None

    def bind_port(self, port: int) -> None:
        self.ports.add(port)

    def unbind_port(self, port: int) -> None:
        self.ports.discard(port)

    def close(self) -> None:
        self._queue.clear()
        self._sock.close()

    # -- internals ---------------------------------------------------------------------------
    def _enqueue(self, packets: Iterable[bytes]) -> None:
        q = self._queue
        mtu = self.mtu
        st = self.stats
        for pkt in packets:
            if len(pkt) > mtu:
                st["oversize_drops"] += 1
                st["drops"] += 1
                continue
            q.append(pkt)
            st["queued"] += 1
        st["queue_max"] = max(st["queue_max"], len(q))

    def __repr__(self) -> str:
        return f"<MemoryDriver fd={self._fd} mtu={self.mtu} pending={len(self._queue)}>"


class MemoryLink:
    """Factory of connected :class:`MemoryDriver` pairs."""

    @staticmethod
    def pair(mtu: int = 1500) -> tuple[MemoryDriver, MemoryDriver]:
        """Two drivers, each delivering what the other sends (close both when done)."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            return MemoryDriver(a, mtu), MemoryDriver(b, mtu)
        except BaseException:
            a.close()
            b.close()
            raise


def _set_buffers(sock: socket.socket) -> None:
    for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF),
                         (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
