"""The packet-driver interface every I/O back end and middleware implements.

A driver moves whole IP packets (no link-layer header) between a Sans-IO ``Stack`` and the
network.  It never blocks: the runner (:mod:`mptcp.io.runner`) waits on :meth:`Driver.fileno`
with trio and calls :meth:`Driver.recv_batch` until it returns nothing (read until EAGAIN,
DESIGN.md "I/O").  Middlewares (:mod:`mptcp.io.middleware`) wrap a driver and implement the
same interface, so they stack like smoltcp's.

Offloads (virtio-net header, TUN ``TUNSETOFFLOAD``, ``PACKET_VNET_HDR``):

- receive: a packet whose checksum the kernel vouches for (``VIRTIO_NET_HDR_F_DATA_VALID``,
  or ``F_NEEDS_CSUM`` = a locally generated packet with a partial checksum) comes with
  ``csum_ok=True``; the stack then skips its own verification.  Such packets may be TCP
  super-packets (GRO/TSO) longer than the MTU.
- send: with ``csum_offload`` the stack may leave the TCP checksum field holding only the
  pseudo-header sum (``Segment.to_bytes(partial=True)``); the driver asks the kernel to finish
  it.  With ``tso`` a packet may carry more payload than one MTU: ``gso_size`` (payload bytes
  per wire segment) tells the kernel where to cut; 0 = a packet that needs no cutting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Driver", "RxPacket", "TxPacket", "DriverError", "QueuedTx"]

RxPacket = tuple[bytes, bool]
"""(IP packet, csum_ok): csum_ok = the kernel verified (or will compute) its checksums."""

TxPacket = tuple[bytes, int]
"""(IP packet, gso_size): gso_size = TCP payload bytes per wire segment, 0 = send as is."""


class DriverError(OSError):
    """A driver could not be set up or used (missing privilege, device, tool)."""


@runtime_checkable
class Driver(Protocol):
    """Moves IP packets; non-blocking; one file descriptor to wait on."""

    mtu: int
    """Largest IP packet the link carries without segmentation offload."""
    tso: bool
    """``send_batch`` accepts TCP packets longer than ``mtu`` with a ``gso_size``."""
    csum_offload: bool
    """``send_batch`` accepts TCP packets whose checksum field holds only the pseudo-header
    sum (the kernel completes it)."""

    def fileno(self) -> int:
        """The descriptor that becomes readable when packets arrive (always a real one; the
        in-memory driver uses a socketpair)."""
        ...

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        """Up to ``limit`` packets that arrived, without blocking ([] at EAGAIN)."""
        ...

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        """Hand packets to the network without blocking.  What the kernel cannot take now
        (EAGAIN / ENOBUFS) stays queued inside the driver: :meth:`pending` tells, and
        :meth:`flush` retries; nothing is dropped silently (a counted drop at most)."""
        ...

    def pending(self) -> int:
        """Packets queued by ``send_batch`` that the kernel has not taken yet."""
        ...

    def flush(self, now: float) -> None:
        """Retry the queued packets (call when the descriptor is writable)."""
        ...

    def get_timer(self) -> float | None:
        """The next time the driver needs ``poll`` (delay lines in middlewares), or None."""
        ...

    def poll(self, now: float) -> None:
        """Release what is due at ``now`` (delayed sends go out; delayed receives become
        available to ``recv_batch``)."""
        ...

    def bind_port(self, port: int) -> None:
        """The stack now owns local TCP ``port`` (a listener or a connection's port): a raw
        socket driver keeps the kernel's TCP away from it (nftables); others do nothing."""
        ...

    def unbind_port(self, port: int) -> None:
        """The stack no longer uses ``port``."""
        ...

    def close(self) -> None:
        """Release the device / sockets and anything installed for it (nftables rules)."""
        ...


class QueuedTx:
    """``send_batch`` / ``pending`` / ``flush`` for a driver whose ``_write(packets)`` writes
    until the kernel pushes back (EAGAIN / ENOBUFS) and returns how many it consumed: the
    rest waits in ``_queue``, in order, for the next ``flush`` -- nothing is dropped
    silently."""

    _queue: deque[TxPacket]
    counters: dict[str, int]

    def _write(self, packets: Sequence[TxPacket]) -> int:
        raise NotImplementedError

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        if self._queue:
            self._queue.extend(packets)
            self.flush(now)
            return
        sent = self._write(packets)
        if sent < len(packets):
            self._queue.extend(packets[sent:])
            self.counters["tx_queued"] += len(packets) - sent

    def pending(self) -> int:
        return len(self._queue)

    def flush(self, now: float) -> None:
        q = self._queue
        while q:
            batch = list(q)
            q.clear()
            sent = self._write(batch)
            if sent < len(batch):
                q.extend(batch[sent:])
                return
