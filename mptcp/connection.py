"""The Sans-IO MPTCP connection (RFC 8684): keys, the data-level byte streams over several
subflows, DATA_ACK, DATA_FIN and the data-level close, checksums, fallback to TCP.

An :class:`MptcpConnection` owns its subflows (:class:`~mptcp.multipath.Subflow`: a
:class:`~mptcp.tcp.connection.TcpConnection` in the host's TCP
:class:`~mptcp.tcp.stack.Stack` with a :class:`~mptcp.subflow.SubflowExt`) and presents the
application the same API as a ``TcpConnection`` (``send`` / ``read`` / ``readable`` /
``at_eof`` / ``shutdown_write`` / ``close`` / ``abort`` / ``events`` / ``state``), so the trio
runner and stream API drive it unchanged.  Application events are the TCP ones
(``Connected``, ``DataReceived``, ``SendBufferFree``, ``EofReceived``, ``ConnectionClosed``,
``Reset``, ``ConnectionFailed``); MPTCP decisions are reported as :mod:`mptcp.events`
(``FallbackToTcp``, ``SubflowEstablished``, ``AddressAnnounced`` ...) in the same queue,
counted in the MIB, and given to the path manager (:mod:`mptcp.pm`).

- RFC 8684 §3.1: 64-bit keys from the injected randomness, locally unique tokens
  (:class:`~mptcp.keys.TokenTable`), IDSN = low 64 bits of SHA-256(key); checksums are used
  when either side sets flag A (§3.1, §3.3.1).
- §3.2 / §3.4: more subflows (MP_JOIN), addresses, priorities: :mod:`mptcp.multipath`.
- §3.3: data goes to the subflows the scheduler (:mod:`mptcp.sched`) picks, in chunks whose
  DSN->SSN runs the subflow extension maps per segment; data of a dead or stale subflow is
  reinjected on the others (§3.3.6); received subflow bytes move to the data level through
  the peer's mappings (:meth:`pump`), within the data-level receive window (§3.3.4); DATA_ACKs
  free the data-level send buffer (§3.3.2).
- §3.3.3 / Appendix D: ``close`` queues a DATA_FIN (one DSN) after the data; the subflows are
  closed with TCP FINs once our DATA_FIN is acknowledged and the peer's arrived, as Linux
  does, and ``ConnectionClosed`` is reported then.  The DATA_FIN is repeated on an RTO
  schedule until acknowledged.  If the data-level close makes no progress for
  ``data_fin_timeout`` after ``close()``, the connection is aborted with MP_FASTCLOSE and the
  failure reported.
- §3.7: fallback to TCP on the initial subflow while it is the only one, MP_FAIL, resets of
  a subflow: :mod:`mptcp.failure`.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mptcp import failure, multipath, transfer
from mptcp.datalevel import DataLevelError, DataReceiveBuffer, DataSendBuffer
from mptcp.events import MptcpConnected, MptcpReset
from mptcp.multipath import Announcement, Subflow
from mptcp.sched import Scheduler, create_scheduler
from mptcp.subflow import SubflowExt
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.events import (
    Connected,
    ConnectionClosed,
    ConnectionFailed,
    EofReceived,
    Event,
    Reset,
    SendBufferFree,
)
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_crypto import token_and_idsn

if TYPE_CHECKING:
    from mptcp.pm import PathManager
    from mptcp.stack import MptcpStack
    from mptcp.tcp.config import TcpConfig

__all__ = ["MptcpConfig", "MptcpConnection"]

_MASK64 = (1 << 64) - 1
_CHUNK = 64 * 1024
S = TcpState
_OPEN = (S.ESTABLISHED, S.CLOSE_WAIT)


@dataclass(frozen=True)
class MptcpConfig:
    """Connection-level parameters."""

    checksums: bool = False
    """Request DSS checksums (flag A in MP_CAPABLE, RFC 8684 §3.1)."""
    send_buffer: int = 4 << 20
    recv_buffer: int = 4 << 20
    data_fin_timeout: float = 60.0
    """After ``close()``, abort (MP_FASTCLOSE) when the data-level close made no progress for
    this long."""
    blackhole_retries: int = 2
    """RFC 8684 §3.7 / Linux: after this many unanswered MP_CAPABLE SYNs, retry without
    MPTCP (a middlebox may drop SYNs with unknown options)."""
    blackhole_ttl: float = 3600.0
    """How long such a destination is remembered (connections to it start as plain TCP)."""
    scheduler: str = "minrtt"
    """The packet scheduler (:data:`mptcp.sched.SCHEDULERS`)."""
    stale_after_rtos: int = 2
    """A subflow with this many RTOs in a row is stale: its data is reinjected and it gets
    no new data until it makes progress (Linux: ``stale_loss_cnt``)."""
    add_addr_timeout: float = 2.0
    """ADD_ADDR is repeated after this long until echoed (RFC 8684 §3.4.1)."""
    add_addr_retries: int = 3
    no_join_to_initial: bool = False
    """Set flag C in our MP_CAPABLE: no joins to our initial address/port (RFC 8684 §3.1)."""


class MptcpConnection:
    """One MPTCP connection (see the module docstring)."""

    # failure / fallback / abort paths (RFC 8684 §3.5-§3.7), in mptcp.failure
    set_fallback = failure.set_fallback
    syn_blackhole = failure.syn_blackhole
    fallback_safe = failure.fallback_safe
    fail = failure.fail
    fastclose = failure.fastclose
    on_fastclose = failure.on_fastclose
    on_tcprst = failure.on_tcprst
    on_infinite_mapping = failure.on_infinite_mapping
    on_checksum_failure = failure.on_checksum_failure
    on_mp_fail = failure.on_mp_fail
    _enter_infinite = failure._enter_infinite
    _force_segment = failure._force_segment
    on_bad_mapping = failure.on_bad_mapping
    # several subflows, addresses, priorities (RFC 8684 §3.2-§3.4), in mptcp.multipath
    create_subflow = multipath.create_subflow
    close_subflow = multipath.close_subflow
    reset_subflow = multipath.reset_subflow
    set_backup = multipath.set_backup
    announce = multipath.announce
    remove_addr = multipath.remove_addr
    on_add_addr = multipath.on_add_addr
    on_remove_addr = multipath.on_remove_addr
    on_mp_prio = multipath.on_mp_prio
    subflow_count = multipath.subflow_count
    subflows_info = multipath.subflows_info
    # the data paths (RFC 8684 §3.3), in mptcp.transfer
    _pump_receive = transfer.pump_receive
    _receive_from = transfer.receive_from
    _receive_checked = transfer.receive_checked
    _send_chunk = transfer.send_chunk
    _allowance = transfer.allowance
    _usable = transfer.usable
    _pump_send = transfer.pump_send
    _pump_reinject = transfer.pump_reinject

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
        self.sub: TcpConnection | None = None  # the initial subflow (MP_CAPABLE)
        self.ext: SubflowExt | None = None
        self.subs: list[Subflow] = []
        self.next_sid = 0
        self.initial_local: tuple[bytes, int] | None = None
        self.initial_remote: tuple[bytes, int] | None = None
        self.peer_no_join = False  # the peer's MP_CAPABLE flag C (RFC 8684 §3.1)
        self.announced: dict[int, Announcement] = {}
        self.echo_pending: list[tuple[int, bytes, int | None]] = []
        self.rm_pending: list[int] = []
        self.remote_addrs: dict[int, tuple[bytes, int | None]] = {}
        self.reinject: collections.deque[tuple[int, int, int]] = collections.deque()
        """(dsn, length, the subflow id it was on) to send again on another subflow."""
        self.sched: Scheduler = create_scheduler(config.scheduler)
        self.pm: PathManager | None = None
        self._pm_queue: list[Event] = []
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
        self.fin_retx_due = False
        self.close_started: float | None = None
        self.last_progress = now
        self.peer_edge: int | None = None  # DATA_ACK + window: the peer's data-level edge
        # the data-level retransmission timer (transfer.data_rtx_timer): started at the last
        # DATA_ACK progress or when data went out with none outstanding; None: disarmed
        self.dack_at: float | None = None
        self.data_rto = 0.0  # its current timeout (0: not backed off)
        self.subflow_closing = False
        self.fastclose_pending = False  # our RSTs carry MP_FASTCLOSE (RFC 8684 §3.5)
        self.fastclose_received = False
        self.tcprst_reason = 0  # the MP_TCPRST reason on our RSTs (RFC 8684 §3.6)
        self.tcprst_transient = False
        self.peer_tcprst: int | None = None
        self.mp_fail_send: int | None = None  # DSN for MP_FAIL on our next segments (§3.7)
        self.infinite_send: tuple[int, int] | None = None  # (dsn, ssn) of our infinite map
        self.awaiting_infinite = False  # we sent MP_FAIL: the peer's infinite mapping is due
        self._fin_counted = False
        self.awaiting_peer_infinite = False  # fell back on the MP_FAIL answer: count its map
        self.created = now
        self._now = now
        self.wake: Any = None  # set by the stack (dirty marking), like TcpConnection.wake

    # ------------------------------------------------------------------ subflows ------------
    def attach_subflow(self, sub: TcpConnection, ext: SubflowExt) -> None:
        """The initial subflow (MP_CAPABLE, address IDs 0)."""
        self.sub = sub
        self.ext = ext
        self.initial_local = sub.local
        self.initial_remote = sub.remote
        multipath.add_subflow(self, sub, ext, local_id=0, remote_id=0, join=False)

    def subflows(self) -> Iterator[TcpConnection]:
        for sf in self.subs:
            yield sf.conn

    def subflow_of(self, conn: TcpConnection) -> Subflow | None:
        for sf in self.subs:
            if sf.conn is conn:
                return sf
        return None

    @property
    def local(self) -> tuple[bytes, int]:
        assert self.initial_local is not None
        return self.initial_local

    @property
    def remote(self) -> tuple[bytes, int]:
        assert self.initial_remote is not None
        return self.initial_remote

    def local_id_of(self, address: bytes | str) -> int:
        """Our address ID of ``address``: 0 for the initial subflow's, the ID we announced
        it with (RFC 8684 §3.4.1: one ID per address), else the stack's."""
        addr = ipaddress.ip_address(address).packed if isinstance(address, str) else address
        if self.initial_local is not None and addr == self.initial_local[0]:
            return 0
        for ann in self.announced.values():
            if ann.address == addr:
                return ann.address_id
        return self.stack.local_address_id(addr)

    def remote_id_of(self, remote: tuple[bytes, int]) -> int:
        """The peer's address ID of ``remote`` (0: its initial address; else its ADD_ADDR)."""
        for aid, (addr, port) in self.remote_addrs.items():
            if addr == remote[0] and (port is None or port == remote[1]):
                return aid
        return 0

    def pm_event(self, ev: Event) -> None:
        if self.pm is not None:
            self._pm_queue.append(ev)

    def control_wanted(self) -> bool:
        return bool(self.rm_pending or self.echo_pending
                    or any(a.due for a in self.announced.values()))

    # ------------------------------------------------------------------ keys ----------------
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

    def _close_deadline(self) -> float | None:
        if self.close_started is None or self.subflow_closing or self.failed is not None \
                or self.fallback is not None:
            return None
        return max(self.close_started, self.last_progress) + self.config.data_fin_timeout

    def timers(self) -> list[float]:
        """Data-level deadlines (the stack's ``get_timer`` includes them): the DATA_FIN
        retransmission, the data-level close timeout after ``close()`` (without it a
        connection whose peer vanished -- its RST lost -- would wait in FIN-WAIT-2 for ever),
        ADD_ADDR retransmissions and the path manager's."""
        out: list[float] = []
        if self.fin_retx_at is not None and not self.sendbuf.fin_acked:
            out.append(self.fin_retx_at)
        d = self._close_deadline()
        if d is not None:
            out.append(d)
        d = transfer.data_rtx_deadline(self)
        if d is not None:
            out.append(d)
        for ann in self.announced.values():
            if ann.retx_at is not None and not ann.echoed and not ann.due:
                out.append(ann.retx_at)
        if self.pm is not None:
            t = self.pm.next_timer(self)
            if t is not None:
                out.append(t)
        return out

    # ------------------------------------------------------------------ called by the ext ---
    def touch(self) -> None:
        if self.wake is not None:
            self.wake(self)

    def snd_una(self) -> int:
        return self.sendbuf.una

    def rcv_nxt(self) -> int:
        return self.recvbuf.rcv_nxt if self.recvbuf is not None else 0

    def data_ack(self) -> int:
        return self.rcv_nxt()

    def on_data_ack(self, ack: int, now: float, window: int | None = None) -> None:
        try:
            freed = self.sendbuf.ack(ack)
        except DataLevelError:
            self.mib.incr("MPTcpExtDataAckBeyondNxt")
            return
        if window is not None:
            # RFC 8684 §3.3.4: the receive window is shared, relative to the DATA_ACK; its
            # right edge never moves left (a smaller one is kept as it was)
            edge = (ack + window) & _MASK64
            if self.peer_edge is None or 0 < (edge - self.peer_edge) & _MASK64 < (1 << 63):
                self.peer_edge = edge
        if freed:
            self.last_progress = now
            self.dack_at = now
            self.data_rto = 0.0
            if self.sendbuf_was_full and self.send_space > 0:
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

    def _rto(self) -> float:
        rtos = [sf.conn.rtt.rto for sf in self.subs if sf.conn.state in _OPEN]
        return max(min(rtos) if rtos else 1.0, 0.2)

    def note_data_fin_sent(self) -> None:
        if self.fin_sent_at is None:
            self.mib.incr("MPTcpExtDataFinTx")
            self.fin_sent_at = self._now
        self.fin_retx_due = False
        if self.fin_retx_at is None or self.fin_retx_at <= self._now:
            # the stack's get_timer watches it: the DATA_FIN is repeated until acknowledged
            self.fin_retx_at = self._now + self._rto()

    def on_data_fin(self, dsn: int) -> None:
        if self.recvbuf is None:
            return
        try:
            self.recvbuf.data_fin(dsn)
        except DataLevelError:
            self.mib.incr("MPTcpExtMappingInvalid")
            return
        self.touch()

    # ------------------------------------------------------------------ the pump ------------
    def pump(self, now: float) -> None:
        """Move data between the data level and the subflows, drain subflow events, run the
        close sequence (called by the stack after anything happened)."""
        self._now = now
        if self.sub is None:
            return
        self._subflow_events()
        if self.fallback is not None:
            self._pump_fallback()
        elif self.recvbuf is not None:
            multipath.check_subflows(self, now)
            multipath.control_timers(self, now)
            self._pump_receive()
            transfer.data_rtx_timer(self, now)
            self._pump_send()
            if self.dack_at is None and self.sendbuf.una != self.sendbuf.nxt:
                self.dack_at = now  # new data out: the data-level timer starts
            self._closing(now)
            self._all_gone()
        elif self.close_started is not None and \
                now >= self.close_started + self.config.data_fin_timeout:
            self.subflow_closing = True
            self.fail("closed before MPTCP was established", reset=True)
        self._report()
        if self._pm_queue and self.pm is not None:
            queue, self._pm_queue = self._pm_queue, []
            for ev in queue:
                self.pm.on_event(self, ev, now)
        if self.pm is not None:
            self.pm.on_timer(self, now)

    def _subflow_events(self) -> None:
        for sf in self.subs:
            ev = sf.conn.events
            while ev:
                e = ev.popleft()
                t = type(e)
                if t is Connected:
                    if not sf.join and (self.fallback is not None or self.remote_key is not None):
                        self._established()
                elif t is Reset or t is ConnectionFailed:
                    reason = str(e.reason)  # type: ignore[attr-defined]
                    if sf.reason is None:
                        sf.reason = reason
                    if self.closed_reported:
                        continue  # the connection is closed already (§3.3.3): a subflow's
                        # end afterwards changes nothing
                    if self.failed is None and not self._others_alive(sf):
                        self.failed = reason
                        self.events.append(e)
                        self.events.append(MptcpReset(reason, self.peer_tcprst))
                    elif self.failed is None:
                        self.mib.incr("MPTcpExtSubflowsFailed")
                elif t is EofReceived and self.fallback is None and self.recvbuf is not None \
                        and not self.recvbuf.fin_received:
                    # a subflow FIN without DATA_FIN: the subflow is closing (RFC 8684 §3.3.3)
                    self.mib.incr("MPTcpExtSubflowFinWithoutDataFin")

    def _others_alive(self, sf: Subflow) -> bool:
        """Another subflow may still carry the connection (RFC 8684 §3.3.3: one subflow's
        end is not the connection's)."""
        return self.fallback is None and any(
            o is not sf and not o.closed and o.conn.state is not S.CLOSED
            and (o.usable or o.conn.state in (S.SYN_SENT, S.SYN_RECEIVED)) for o in self.subs)

    def _all_gone(self) -> None:
        """Every subflow ended before the data-level close: the connection failed."""
        if self.failed is not None or self.closed_reported or not self.subs:
            return
        if any(sf.conn.state is not S.CLOSED for sf in self.subs):
            return
        sb, rb = self.sendbuf, self.recvbuf
        if sb.fin_acked and rb is not None and rb.fin_received:
            return
        self.failed = "every subflow closed before the data-level close completed"
        self.events.append(ConnectionFailed(self.failed))
        self.events.append(MptcpReset(self.failed, self.peer_tcprst))

    def _established(self) -> None:
        if self.fully_established:
            return
        self.fully_established = True
        self.mib.incr("MPTcpExtMPCurrEstab")  # a gauge: decremented in _report
        self._estab_gauge = True
        if not self.connected_reported:
            self.connected_reported = True
            self.events.append(MptcpConnected(fallback=self.fallback is not None,
                                              checksums=self.checksums))
            self.events.append(Connected())
            if self.pm is not None and self.fallback is None:
                self._pm_queue.append(MptcpConnected(fallback=False, checksums=self.checksums))

    def _closing(self, now: float) -> None:
        sb, rb = self.sendbuf, self.recvbuf
        assert rb is not None
        if self.fin_sent_at is not None and not sb.fin_acked:
            rto = self._rto()
            if self.fin_retx_at is None:
                self.fin_retx_at = self.fin_sent_at + rto
            elif now >= self.fin_retx_at:
                self.fin_retx_due = True
                self.fin_retx_at = now + 2 * rto
                # retransmit on another subflow than last time if one is usable
                usable = self._usable() or [sf for sf in self.subs if sf.conn.state in _OPEN]
                if usable:
                    sf = usable[self.mib.get("MPTcpExtDataFinTx", 0) % len(usable)]
                    sf.conn.ack_now = True
                    if sf.conn.wake is not None:
                        sf.conn.wake(sf.conn)
        done = sb.fin_acked and rb.fin_received
        deadline = self._close_deadline()
        if deadline is not None and now >= deadline and not done:
            # RFC 8684 §3.3.3: the data-level close made no progress: give up loudly
            self.subflow_closing = True
            self.fastclose()
            if self.failed == "fastclose sent" or self.failed == "aborted":
                self.failed = "data-level close timed out"
                self.events.append(ConnectionFailed(self.failed))
            return
        if done and not self.subflow_closing:
            self.subflow_closing = True  # (also ends the close timer: see timers())
            for sf in self.subs:
                c = sf.conn
                if c.state in _OPEN:
                    if c.readable:
                        c.read()  # nothing the data level wants: the mapping ended
                    c.close()
                elif c.state in (S.SYN_SENT, S.SYN_RECEIVED):
                    c.abort()

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
        if self.write_shut and sb.nxt == sb.end and sub.state in _OPEN and not sub.write_shut:
            sub.shutdown_write()
        if self.infinite_send is not None and sub.snd_nxt >= sub.sendbuf.end \
                and sub.state in _OPEN:
            sub.pure_ack = True  # the infinite mapping still has to go out (§3.7)

    _estab_gauge = False

    def _report(self) -> None:
        if not self.eof_reported and self.at_eof:
            self.eof_reported = True
            self.events.append(EofReceived())
        if not self.closed_reported and self.failed is None:
            rb = self.recvbuf
            if self.fallback is not None:
                sub = self.sub
                if sub is not None and sub.state in (S.TIME_WAIT, S.CLOSED):
                    self.closed_reported = True
                    self.events.append(ConnectionClosed())
            elif self.sendbuf.fin_acked and rb is not None and rb.fin_received \
                    and (rb.eof or self.read_shut):
                # RFC 8684 §3.3.3: both DATA_FINs acknowledged: the connection is closed
                # (the subflows finish their own closes in the background)
                self.closed_reported = True
                self.events.append(ConnectionClosed())
        if self.sendbuf_was_full and self.send_space > 0:
            self.sendbuf_was_full = False
            self.events.append(SendBufferFree(self.send_space))
        if self._estab_gauge and (self.closed_reported or self.failed is not None):
            self._estab_gauge = False  # the connection is over
            self.mib.incr("MPTcpExtMPCurrEstab", -1)

    # ------------------------------------------------------------------ application API -----
    @property
    def state(self) -> TcpState:
        """The data-level state, in TCP's names (RFC 8684 Appendix D)."""
        sub = self.sub
        if sub is None:
            return S.CLOSED
        st = sub.state
        if self.fallback is not None:
            return st
        if self.failed is not None:
            return S.CLOSED
        if not self.fully_established and not self.connected_reported:
            if st in (S.SYN_SENT, S.SYN_RECEIVED, S.CLOSED):
                return st
            return S.SYN_RECEIVED if not self.client else S.SYN_SENT
        if self.closed_reported:
            alive = any(sf.conn.state is not S.CLOSED for sf in self.subs)
            return S.TIME_WAIT if alive else S.CLOSED
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
            self.touch()  # the data-level window opened: move more from the subflows
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
            "rcv_nxt": self.rcv_nxt(), "subflows": len(self.subs),
            "subflow": sub.info() if sub is not None else None,
            "subflow_list": self.subflows_info(), "scheduler": self.sched.name,
        }

    def __repr__(self) -> str:
        return (f"<MptcpConnection {self.state.value} token={self.local_token:08x} "
                f"fallback={self.fallback!r} subflows={len(self.subs)}>")
