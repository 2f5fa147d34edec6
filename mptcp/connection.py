"""The Sans-IO MPTCP connection (RFC 8684): keys, the data-level byte streams, DATA_ACK,
DATA_FIN and the data-level close, checksums, fallback to TCP.

An :class:`MptcpConnection` owns its subflows (one in this version; the structures are per
subflow) -- :class:`~mptcp.tcp.connection.TcpConnection` objects in the host's TCP
:class:`~mptcp.tcp.stack.Stack`, each with a :class:`~mptcp.subflow.SubflowExt` -- and
presents the application the same API as a ``TcpConnection`` (``send`` / ``read`` /
``readable`` / ``at_eof`` / ``shutdown_write`` / ``close`` / ``abort`` / ``events`` /
``state``), so the trio runner and stream API drive it unchanged.  Application events are
the TCP ones (``Connected``, ``DataReceived``, ``SendBufferFree``, ``EofReceived``,
``ConnectionClosed``, ``Reset``, ``ConnectionFailed``); MPTCP decisions are reported as
:mod:`mptcp.events` (``FallbackToTcp`` ...) in the same queue and counted in the MIB.

- RFC 8684 §3.1: 64-bit keys from the injected randomness, locally unique tokens
  (:class:`~mptcp.keys.TokenTable`), IDSN = low 64 bits of SHA-256(key); checksums are used
  when either side sets flag A (§3.1, §3.3.1).
- §3.3: data is handed to the subflow in chunks whose DSN->SSN runs the subflow extension
  maps per segment; received subflow bytes move to the data level through the peer's
  mappings (:meth:`pump`), bounded by the data-level receive window (§3.3.4); DATA_ACKs free
  the data-level send buffer (§3.3.2).
- §3.3.3 / Appendix D: ``close`` queues a DATA_FIN (one DSN) after the data; the subflow is
  closed with a TCP FIN once our DATA_FIN is acknowledged and the peer's arrived (or after a
  timeout), as Linux does; the connection reports ``ConnectionClosed`` when the subflow is
  done.  The DATA_FIN is repeated on an RTO schedule until acknowledged.
- §3.7: fallback to TCP (no MP_CAPABLE in the SYN/ACK, MPTCP options stripped from the third
  ACK or the first data): the subflow's bytes are then the connection's, unchanged.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mptcp.datalevel import DataLevelError, DataReceiveBuffer, DataSendBuffer
from mptcp.events import (
    ChecksumError,
    FallbackToTcp,
    FastCloseReceived,
    FastCloseSent,
    MpFailReceived,
    MpFailSent,
    MptcpConnected,
    MptcpReset,
)
from mptcp.subflow import SubflowExt
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.events import (
    Connected,
    ConnectionClosed,
    ConnectionFailed,
    DataReceived,
    EofReceived,
    Event,
    Reset,
    SendBufferFree,
)
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_crypto import dss_checksum_ok, token_and_idsn

if TYPE_CHECKING:
    from mptcp.stack import MptcpStack
    from mptcp.tcp.config import TcpConfig

__all__ = ["MptcpConfig", "MptcpConnection"]

_MASK64 = (1 << 64) - 1
_CHUNK = 64 * 1024
S = TcpState


@dataclass(frozen=True)
class MptcpConfig:
    """Connection-level parameters."""

    checksums: bool = False
    """Request DSS checksums (flag A in MP_CAPABLE, RFC 8684 §3.1)."""
    send_buffer: int = 4 << 20
    recv_buffer: int = 4 << 20
    data_fin_timeout: float = 60.0
    """Give up waiting for the data-level close after this long and close the subflow."""
    blackhole_retries: int = 2
    """RFC 8684 §3.7 / Linux: after this many unanswered MP_CAPABLE SYNs, retry without
    MPTCP (a middlebox may drop SYNs with unknown options)."""
    blackhole_ttl: float = 3600.0
    """How long such a destination is remembered (connections to it start as plain TCP)."""


class MptcpConnection:
    """One MPTCP connection (see the module docstring)."""

    def __init__(self, stack: MptcpStack, *, client: bool, config: MptcpConfig,
                 tcp_config: TcpConfig, now: float) -> None:
        self.stack = stack
        self.client = client
        self.config = config
        self.tcp_config = tcp_config
        self.mib = stack.mib
        key, tok, idsn = stack.tokens.new_key(stack.rng)
        self.local_key = key
        self.local_token = tok
        self.local_idsn = idsn
        stack.tokens.register(tok, self)
        self.remote_key: int | None = None
        self.remote_token: int | None = None
        self.remote_idsn = 0
        self.checksums = config.checksums
        self.fallback: str | None = None
        self.sub: TcpConnection | None = None
        self.ext: SubflowExt | None = None
        self.sendbuf = DataSendBuffer(idsn, config.send_buffer)
        self.recvbuf: DataReceiveBuffer | None = None
        self.events: collections.deque[Event] = collections.deque()
        self.write_shut = False
        self.read_shut = False
        self.ack_now = False
        self.fully_established = False
        self.connected_reported = False
        self.eof_reported = False
        self.closed_reported = False
        self.failed: str | None = None
        self.sendbuf_was_full = False
        self.fin_sent_at: float | None = None
        self.fin_retx_at: float | None = None
        self.close_started: float | None = None
        self.subflow_closing = False
        self.fastclose_pending = False  # our RSTs carry MP_FASTCLOSE (RFC 8684 §3.5)
        self.fastclose_received = False
        self.tcprst_reason = 0  # the MP_TCPRST reason on our RSTs (RFC 8684 §3.6)
        self.tcprst_transient = False
        self.peer_tcprst: int | None = None
        self.mp_fail_send: int | None = None  # DSN for MP_FAIL on our next segments (§3.7)
        self.infinite_send: tuple[int, int] | None = None  # (dsn, ssn) of our infinite map
        self.awaiting_infinite = False  # we sent MP_FAIL: the peer's infinite mapping is due
        self.created = now
        self.wake: Any = None  # set by the stack (dirty marking), like TcpConnection.wake

    # ------------------------------------------------------------------ subflows ------------
    def attach_subflow(self, sub: TcpConnection, ext: SubflowExt) -> None:
        self.sub = sub
        self.ext = ext
        sub.add_extension(ext)

    def subflows(self) -> Iterator[TcpConnection]:
        if self.sub is not None:
            yield self.sub

    @property
    def local(self) -> tuple[bytes, int]:
        assert self.sub is not None
        return self.sub.local

    @property
    def remote(self) -> tuple[bytes, int]:
        assert self.sub is not None
        return self.sub.remote

    # ------------------------------------------------------------------ keys, fallback ------
    def set_remote_key(self, key: int, peer_wants_checksums: bool) -> None:
        if self.remote_key is not None:
            return
        self.remote_key = key
        self.remote_token, self.remote_idsn = token_and_idsn(key)
        self.recvbuf = DataReceiveBuffer(self.remote_idsn, self.config.recv_buffer)
        if peer_wants_checksums:
            self.checksums = True  # RFC 8684 §3.1: either side's A means checksums
        self.touch()

    def local_idsn_plus1(self) -> int:
        return (self.local_idsn + 1) & _MASK64

    def set_fallback(self, reason: str, counter: str) -> None:
        """RFC 8684 §3.7: go on as plain TCP on the (only) subflow."""
        if self.fallback is not None:
            return
        if not self.fallback_safe():
            # data already moved through mappings the peer acknowledged: the byte streams
            # may no longer line up without an infinite mapping (§3.7): reset instead
            self.fail(f"fallback after data ({reason})", reset=True, tcprst=1)
            return
        sb = self.sendbuf
        if sb.nxt != sb.una:
            sb.ack(sb.nxt)  # already in the subflow: TCP delivers it from now on
        self.fallback = reason
        self.mib.incr(counter)
        self.mib.incr("MPTcpExtFallback")
        self.events.append(FallbackToTcp(reason))
        # everything written so far goes straight to the subflow from now on
        self.touch()

    def syn_blackhole(self) -> None:
        """Our MP_CAPABLE SYNs went unanswered: fall back and remember the destination."""
        if self.fallback is not None or self.sub is None:
            return
        self.set_fallback("SYN blackhole: retried without MP_CAPABLE",
                          "MPTcpExtMPCapableSYNTXDrop")
        self.mib.incr("MPTcpExtBlackhole")
        self.stack.blackholed[self.sub.remote[0]] = self._now + self.config.blackhole_ttl

    def timers(self) -> list[float]:
        """Data-level deadlines (the stack's ``get_timer`` includes them): the DATA_FIN
        retransmission, and the data-level close timeout after ``close()`` (without it a
        connection whose peer vanished -- its RST lost -- would wait in FIN-WAIT-2 for ever)."""
        out: list[float] = []
        if self.fin_retx_at is not None and not self.sendbuf.fin_acked:
            out.append(self.fin_retx_at)
        if self.close_started is not None and not self.subflow_closing \
                and self.failed is None and self.fallback is None:
            out.append(self.close_started + self.config.data_fin_timeout)
        return out

    def fallback_safe(self) -> bool:
        """The subflow's byte streams equal the data-level ones (so plain TCP can take over
        without an infinite mapping): nothing was DATA_ACKed by the peer, our data went into
        the subflow in one run from its first byte, and nothing from the peer moved to the
        data level, or it did with the same identity offset."""
        ext, sb, rb = self.ext, self.sendbuf, self.recvbuf
        if ext is None:
            return True
        if ext.data_ack_seen and sb.una != self.local_idsn_plus1():
            return False
        runs = ext.send_maps
        if runs and (len(runs) > 1 or runs[0][0] != 1
                     or runs[0][1] != self.local_idsn_plus1()):
            return False
        if rb is not None and ext.read_ssn > 1:
            return (rb.rcv_nxt - self.remote_idsn - ext.read_ssn) & _MASK64 == 0
        return True

    def fail(self, reason: str, *, reset: bool, tcprst: int | None = None) -> None:
        """End the connection with ``reason``; ``reset`` aborts the subflow (a RST carrying
        MP_TCPRST ``tcprst``, RFC 8684 §3.6)."""
        if self.failed is None:
            self.failed = reason
            self.events.append(Reset(reason) if reset else ConnectionFailed(reason))
            self.events.append(MptcpReset(reason, tcprst))
        if tcprst is not None:
            self.tcprst_reason = tcprst
        if reset and self.sub is not None and self.sub.state is not S.CLOSED:
            self.sub.abort()

    # ------------------------------------------------------------------ §3.5 / §3.6 ---------
    def fastclose(self) -> None:
        """RFC 8684 §3.5 option R: a RST with MP_FASTCLOSE (the peer's key) on every subflow,
        then CLOSED.  Before MPTCP is up (or after fallback) it is a plain abort."""
        if self.failed is not None:
            return
        if self.fallback is None and self.remote_key is not None:
            self.fastclose_pending = True
            self.events.append(FastCloseSent())
        self.fail("fastclose sent" if self.fastclose_pending else "aborted", reset=True,
                  tcprst=0)
        self.touch()

    def on_fastclose(self, key: int, on_rst: bool) -> bool:
        """An MP_FASTCLOSE arrived; True when it carries our key (then the connection is
        over: option R on a RST, option A on an ACK -- answered by a RST)."""
        if key != self.local_key:
            self.mib.incr("MPTcpExtFastcloseIgnoredBadKey")  # RFC 8684 §3.5: the valid key
            return False
        self.mib.incr("MPTcpExtMPFastcloseRx")
        if not self.fastclose_received:
            self.fastclose_received = True
            self.events.append(FastCloseReceived())
            if self.failed is None:
                self.failed = "fastclose received"
                self.events.append(Reset("fastclose received"))
                self.events.append(MptcpReset("fastclose received", self.peer_tcprst))
        self.touch()
        return True

    def on_tcprst(self, reason: int, transient: bool) -> None:
        self.mib.incr("MPTcpExtMPRstRx")
        self.peer_tcprst = reason
        self.touch()

    # ------------------------------------------------------------------ called by the ext ---
    def touch(self) -> None:
        if self.wake is not None:
            self.wake(self)

    def on_other_option(self, ext: SubflowExt, opt: object, now: float) -> bool:
        """Options other than MP_CAPABLE / DSS (MP_FASTCLOSE, MP_TCPRST ...): True drops the
        segment."""
        return False

    def snd_una(self) -> int:
        return self.sendbuf.una

    def rcv_nxt(self) -> int:
        return self.recvbuf.rcv_nxt if self.recvbuf is not None else 0

    def data_ack(self) -> int:
        return self.rcv_nxt()

    def on_data_ack(self, ack: int, now: float) -> None:
        try:
            freed = self.sendbuf.ack(ack)
        except DataLevelError:
            self.mib.incr("MPTcpExtDataAckBeyondNxt")
            return
        if freed and self.sendbuf_was_full and self.send_space > 0:
            self.sendbuf_was_full = False
            self.events.append(SendBufferFree(self.send_space))
        if not self.fully_established:
            self._established()
        self.touch()

    def data_fin_dsn(self) -> int | None:
        return self.sendbuf.fin_dsn if self.sendbuf.fin_queued else None

    def data_fin_due(self) -> bool:
        """Our DATA_FIN is to go out on the next DSS (all data mapped, not acknowledged)."""
        sb = self.sendbuf
        if not sb.fin_queued or sb.fin_acked or sb.nxt != sb.fin_dsn:
            return False
        return self.fin_sent_at is None or self.fin_retx_due

    fin_retx_due = False

    def note_data_fin_sent(self) -> None:
        if self.fin_sent_at is None:
            self.mib.incr("MPTcpExtDataFinTx")
            self.fin_sent_at = self._now
        self.fin_retx_due = False
        if self.fin_retx_at is None or self.fin_retx_at <= self._now:
            # the stack's get_timer watches it: the DATA_FIN is repeated until acknowledged
            rto = self.sub.rtt.rto if self.sub is not None else 1.0
            self.fin_retx_at = self._now + max(rto, 0.2)

    def on_data_fin(self, dsn: int) -> None:
        if self.recvbuf is None:
            return
        try:
            self.recvbuf.data_fin(dsn)
        except DataLevelError:
            self.mib.incr("MPTcpExtMappingInvalid")
            return
        self.mib.incr("MPTcpExtDataFinRx")
        self.touch()

    def on_infinite_mapping(self, ext: SubflowExt, dsn: int, ssn: int) -> None:
        """The peer switched to an infinite mapping (RFC 8684 §3.7): from the last byte it
        knows we DATA_ACKed, its subflow bytes are the stream, unchecked."""
        self.mib.incr("MPTcpExtInfiniteMapRx")
        self._enter_infinite("infinite mapping received")

    def on_checksum_failure(self, ext: SubflowExt, dsn: int, data: bytes) -> None:
        """RFC 8684 §3.7 with one subflow: the mapping at ``dsn`` failed its checksum; keep
        its bytes aside, send MP_FAIL on our ACKs, wait for the peer's infinite mapping."""
        self.mib.incr("MPTcpExtDataCsumErr")
        self.events.append(ChecksumError(dsn))
        if self.awaiting_infinite:
            return
        self.awaiting_infinite = True
        self.mp_fail_send = dsn
        ext.held = data
        self.events.append(MpFailSent(dsn))
        self._force_segment()

    def on_mp_fail(self, ext: SubflowExt, dsn: int) -> None:
        """The peer's checksum failed on our data from ``dsn`` (RFC 8684 §3.7): answer with
        an infinite mapping (and an MP_FAIL of our own: "the receiver of an MP_FAIL MUST
        also respond with an MP_FAIL"), then plain TCP both ways."""
        self.mib.incr("MPTcpExtMPFailRx")
        self.events.append(MpFailReceived(dsn))
        if self.fallback is not None:
            return
        if not self.awaiting_infinite:
            self.mp_fail_send = self.rcv_nxt() if self.recvbuf is not None else dsn
        self._enter_infinite("MP_FAIL received")

    def _enter_infinite(self, reason: str) -> None:
        if self.fallback is not None:
            return
        ext, sb, rb = self.ext, self.sendbuf, self.recvbuf
        assert ext is not None
        self.fallback = f"checksum failure: {reason}"
        self.mib.incr("MPTcpExtFallback")
        self.mib.incr("MPTcpExtFallbackChecksum")
        self.events.append(FallbackToTcp(self.fallback))
        self.awaiting_infinite = False
        # our direction: an infinite mapping from the last byte the peer DATA_ACKed
        if sb.una != sb.nxt or ext.send_maps:
            ssn = ext.ssn_of(sb.una)
            if ssn is not None:
                self.infinite_send = (sb.una, ssn)
        if rb is not None and ext.held:
            rb.insert(rb.rcv_nxt, ext.held)  # the stream as the path delivered it
            self.events.append(DataReceived(len(ext.held)))
            ext.read_ssn += len(ext.held)
            ext.held = b""
        self._force_segment()
        self.touch()

    def _force_segment(self) -> None:
        sub = self.sub
        if sub is not None:
            sub.ack_now = True
            if sub.wake is not None:
                sub.wake(sub)

    def on_bad_mapping(self, ext: SubflowExt, why: str) -> None:
        self.mib.incr("MPTcpExtMappingInvalid")
        self.fail(f"invalid mapping: {why}", reset=True, tcprst=1)  # MPTCP-specific error


    # ------------------------------------------------------------------ the pump ------------
    _now = 0.0

    def pump(self, now: float) -> None:
        """Move data between the data level and the subflow, drain subflow events, run the
        close sequence (called by the stack after anything happened)."""
        self._now = now
        sub = self.sub
        if sub is None:
            return
        self._subflow_events(now)
        if self.fallback is not None:
            self._pump_fallback()
        elif self.recvbuf is not None:
            self._pump_receive()
            self._pump_send()
            self._closing(now)
        elif self.close_started is not None and \
                now >= self.close_started + self.config.data_fin_timeout:
            self.subflow_closing = True
            self.fail("closed before MPTCP was established", reset=True)
        self._report()

    def _subflow_events(self, now: float) -> None:
        sub = self.sub
        assert sub is not None
        ev = sub.events
        while ev:
            e = ev.popleft()
            t = type(e)
            if t is Connected:
                if self.fallback is not None or self.remote_key is not None:
                    self._established()
            elif t is Reset or t is ConnectionFailed:
                if self.failed is None:
                    self.failed = e.reason  # type: ignore[attr-defined]
                    self.events.append(e)
                    self.events.append(MptcpReset(self.failed or "", self.peer_tcprst))
            elif t is EofReceived and self.fallback is None and self.recvbuf is not None \
                    and not self.recvbuf.fin_received:
                # a subflow FIN without DATA_FIN: the subflow is closing (RFC 8684 §3.3.3)
                self.mib.incr("MPTcpExtSubflowFinWithoutDataFin")

    def _established(self) -> None:
        if self.fully_established:
            return
        self.fully_established = True
        self.mib.incr("MPTcpExtMPCurrEstab")
        if not self.connected_reported:
            self.connected_reported = True
            self.events.append(MptcpConnected(fallback=self.fallback is not None,
                                              checksums=self.checksums))
            self.events.append(Connected())

    def _pump_receive(self) -> None:
        sub, ext, rb = self.sub, self.ext, self.recvbuf
        assert sub is not None and ext is not None and rb is not None
        new = 0
        while True:
            avail = sub.readable
            if avail <= 0 or self.awaiting_infinite:
                break
            if self.checksums:
                got = self._receive_checked(avail)
                if got < 0:
                    break
                new += got
                continue
            hit = ext.recv_maps.lookup(ext.read_ssn)
            if hit is None:
                break  # the mapping has not arrived yet
            dsn, contiguous = hit
            room = rb.window
            if room <= 0:
                break  # data-level window full: leave it in the subflow (its window closes)
            n = min(avail, contiguous, room)
            data = sub.read(n)
            if not data:
                break
            new += rb.insert(dsn, data)
            ext.read_ssn += len(data)
            ext.recv_maps.consume(ext.read_ssn)
        if new:
            self.events.append(DataReceived(new))
            self.ack_now = True
        if not self.fully_established and (new or rb.fin_received):
            self._established()

    def _receive_checked(self, avail: int) -> int:
        """Move one whole checksummed mapping to the data level (RFC 8684 §3.3.1: the
        checksum covers the mapping); -1 when it cannot move yet (incomplete, no room)."""
        sub, ext, rb = self.sub, self.ext, self.recvbuf
        assert sub is not None and ext is not None and rb is not None
        entry = ext.csum_maps.get(ext.read_ssn)
        if entry is None:
            return -1  # the mapping has not arrived yet
        dsn, length, fin, csum = entry
        if avail < length or rb.window < length:
            return -1
        data = sub.read(length)
        if len(data) != length:
            return -1
        del ext.csum_maps[ext.read_ssn]
        if not dss_checksum_ok(dsn, ext.read_ssn & 0xFFFFFFFF, length + fin, data, csum):
            self.on_checksum_failure(ext, dsn, data)
            return -1
        ext.read_ssn += length
        ext.recv_maps.consume(ext.read_ssn)
        return rb.insert(dsn, data)

    def _pump_send(self) -> None:
        sub, ext, sb = self.sub, self.ext, self.sendbuf
        assert sub is not None and ext is not None
        if sub.state not in (S.ESTABLISHED, S.CLOSE_WAIT):
            return
        while True:
            space = sub.send_space
            if space <= 0:
                break
            got = sb.take(min(space, _CHUNK))
            if got is None:
                break
            dsn, data = got
            ssn = sub.sendbuf.end  # relative SSN of the chunk's first byte
            taken = sub.send(data)
            if taken != len(data):  # cannot happen: we asked for at most send_space
                sb.rewind((dsn + taken) & _MASK64)
            ext.map_sent(ssn, dsn, taken)
        if self.data_fin_due():
            sub.ack_now = True  # a segment must carry the DATA_FIN
            if sub.wake is not None:
                sub.wake(sub)

    def _closing(self, now: float) -> None:
        sub, sb, rb = self.sub, self.sendbuf, self.recvbuf
        assert sub is not None and rb is not None
        if self.fin_sent_at is not None and not sb.fin_acked:
            rto = max(sub.rtt.rto, 0.2)
            if self.fin_retx_at is None:
                self.fin_retx_at = self.fin_sent_at + rto
            elif now >= self.fin_retx_at:
                self.fin_retx_due = True
                self.fin_retx_at = now + 2 * rto
                sub.ack_now = True
                if sub.wake is not None:
                    sub.wake(sub)
        done_tx = sb.fin_acked
        done_rx = rb.fin_received
        timed_out = self.close_started is not None and \
            now >= self.close_started + self.config.data_fin_timeout  # the same sum timers() uses
        if ((done_tx and done_rx) or timed_out) and not self.subflow_closing:
            self.subflow_closing = True  # (also ends the close timer: see timers())
            if sub.state in (S.ESTABLISHED, S.CLOSE_WAIT):
                if sub.readable:
                    sub.read()  # nothing the data level wants: the mapping ended with the FIN
                sub.close()

    def _pump_fallback(self) -> None:
        """Plain TCP: the subflow is the connection."""
        sub = self.sub
        assert sub is not None
        sb = self.sendbuf
        while sb.nxt != sb.end and sub.send_space > 0:
            got = sb.take(min(sub.send_space, _CHUNK))
            if got is None:
                break
            _, data = got
            sub.send(data)
            sb.ack(sb.nxt)  # TCP acknowledges it now: nothing to keep at the data level
        if self.write_shut and sb.nxt == sb.end and sub.state in (S.ESTABLISHED, S.CLOSE_WAIT) \
                and not sub.write_shut:
            sub.shutdown_write()

    def _report(self) -> None:
        sub = self.sub
        assert sub is not None
        if not self.eof_reported and self.at_eof:
            self.eof_reported = True
            self.events.append(EofReceived())
        if not self.closed_reported and sub.state in (S.TIME_WAIT, S.CLOSED) \
                and self.failed is None:
            self.closed_reported = True
            rb = self.recvbuf
            if self.fallback is not None or (self.sendbuf.fin_acked and rb is not None
                                              and rb.fin_received):
                self.events.append(ConnectionClosed())
            else:
                # the subflow ended before the data-level close (timeout, peer's FIN): what
                # was not DATA_ACKed may not have been delivered -- say so
                self.failed = "subflow closed before the data-level close completed"
                self.events.append(ConnectionFailed(self.failed))
                self.events.append(MptcpReset(self.failed, self.peer_tcprst))
        if self.sendbuf_was_full and self.send_space > 0:
            self.sendbuf_was_full = False
            self.events.append(SendBufferFree(self.send_space))

    # ------------------------------------------------------------------ application API -----
    @property
    def state(self) -> TcpState:
        """The data-level state, in TCP's names (RFC 8684 Appendix D)."""
        sub = self.sub
        if sub is None:
            return S.CLOSED
        st = sub.state
        if self.fallback is not None or st in (S.SYN_SENT, S.SYN_RECEIVED, S.CLOSED):
            return st
        if self.failed is not None:
            return S.CLOSED
        if st is S.TIME_WAIT:
            return st
        if not self.fully_established and not self.connected_reported:
            return S.SYN_RECEIVED if not self.client else S.SYN_SENT
        rb = self.recvbuf
        fin_rx = rb is not None and rb.fin_received
        if not self.write_shut:
            return S.CLOSE_WAIT if fin_rx else S.ESTABLISHED
        if fin_rx:
            return S.LAST_ACK
        return S.FIN_WAIT_2 if self.sendbuf.fin_acked else S.FIN_WAIT_1

    @property
    def send_space(self) -> int:
        if self.write_shut or self.failed is not None:
            return 0
        return self.sendbuf.free

    def send(self, data: bytes | bytearray | memoryview) -> int:
        if self.failed is not None or self.sub is None:
            raise TcpStateError("connection does not exist")
        if self.write_shut:
            raise TcpStateError("connection closing")
        n = self.sendbuf.write(bytes(data[: self.sendbuf.free]))
        if n < len(data):
            self.sendbuf_was_full = True
        self.touch()
        return n

    @property
    def readable(self) -> int:
        if self.fallback is not None:
            early = self.recvbuf.readable if self.recvbuf is not None else 0
            return early + (self.sub.readable if self.sub is not None else 0)
        return self.recvbuf.readable if self.recvbuf is not None else 0

    def read(self, max_bytes: int = -1) -> bytes:
        rb = self.recvbuf
        if self.fallback is not None and rb is not None and rb.readable:
            return rb.read(max_bytes)  # what arrived before the fallback first
        if self.fallback is not None:
            assert self.sub is not None
            data = self.sub.read(max_bytes)
            self.ack_now = self.sub.ack_now
            return data
        if self.recvbuf is None:
            return b""
        data = self.recvbuf.read(max_bytes)
        if data:
            self.touch()  # the data-level window opened: move more from the subflow
            self.ack_now = True
        return data

    @property
    def at_eof(self) -> bool:
        if self.fallback is not None:
            return self.sub is not None and self.sub.at_eof
        return self.recvbuf is not None and self.recvbuf.eof

    def shutdown_write(self) -> None:
        if self.write_shut:
            return
        self.write_shut = True
        if self.fallback is None:
            self.sendbuf.close()
        self.touch()

    def close(self) -> None:
        self.read_shut = True
        if self.close_started is None:
            self.close_started = self._now  # data_fin_timeout runs from here (not half-close)
        if self.failed is not None:
            return
        if self.readable:
            self.abort()
            return
        self.shutdown_write()

    def abort(self) -> None:
        """ABORT at the connection level: MP_FASTCLOSE (RFC 8684 §3.5 option R)."""
        self.fastclose()

    def next_event(self) -> Event | None:
        return self.events.popleft() if self.events else None

    def info(self) -> dict[str, object]:
        sub = self.sub
        return {
            "state": self.state.value, "mptcp": self.fallback is None,
            "fallback": self.fallback, "checksums": self.checksums,
            "local_token": f"{self.local_token:08x}",
            "remote_token": None if self.remote_token is None else f"{self.remote_token:08x}",
            "snd_una": self.sendbuf.una, "snd_nxt": self.sendbuf.nxt,
            "rcv_nxt": self.rcv_nxt(), "subflows": 1 if sub is not None else 0,
            "subflow": sub.info() if sub is not None else None,
        }

    def __repr__(self) -> str:
        return (f"<MptcpConnection {self.state.value} token={self.local_token:08x} "
                f"fallback={self.fallback!r}>")
