"""The Sans-IO TCP connection (one 4-tuple, or one MPTCP subflow): RFC 9293.

This module holds the connection's state (the TCB, RFC 9293 §3.3.1) and its public API; the
protocol logic lives in sibling modules, one concern each, as functions of the connection:

- handshake.py -- opening: SYN / SYN-ACK options and negotiation (§3.7.1, RFC 7323 §2-§3,
  RFC 2018 §2, RFC 3168 §6.1.1), LISTEN and SYN-SENT processing (§3.10.7.2-3), TFO (RFC 7413);
- input.py -- segment arrival in the other states (§3.10.7.4, RFC 5961, RFC 7323 §5 PAWS);
- recovery.py -- loss detection and repair (RFC 6582, RFC 6675, RFC 8985) and the per-segment
  transmission records;
- output.py -- building segments (options, hooks), sending data under rwnd/cwnd with Nagle
  and SWS avoidance (§3.7.4, §3.8.6), ACK policy (§3.8.6.3), RSTs (§3.10.7.1);
- timers.py -- RTO (RFC 6298 §5), persist (§3.8.6.1), delayed ACK, keepalive (§3.8.4),
  TIME-WAIT (§3.6.1), TLP / RACK reordering timers, user timeout (§3.8.3).

Sequence numbers are kept as 64-bit offsets from the ISN (``mptcp.tcp.seqnum.SeqSpace``):
offset 0 is the SYN, data starts at 1, a FIN after n data bytes is at n + 1.

Sans-IO contract (DESIGN.md): ``receive(segment, now)``, ``packets_to_send(now)``,
``get_timer()``, ``handle_timer(now)``, ``next_event()``; the application calls
``send`` / ``read`` / ``shutdown_write`` / ``close`` / ``abort``.  Randomness only from the
injected ``random.Random``.

Urgent data (RFC 9293 §3.8.5 / RFC 6093): the urgent pointer is ignored and the data
delivered inline (counted as ``TcpExtTCPUrgIgnored``); we never send URG.
"""

from __future__ import annotations

import ipaddress
import random
from collections import deque
from collections.abc import Callable

from mptcp.tcp import handshake, input, output, recovery, timers
from mptcp.tcp.cc import CongestionControl, create
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.events import (
    ConnectionFailed,
    Event,
    Reset,
    SendBufferFree,
    StateChanged,
    TcpMib,
)
from mptcp.tcp.hooks import TcpExtension, overrides
from mptcp.tcp.isn import IsnGenerator
from mptcp.tcp.recvbuf import ReceiveBuffer
from mptcp.tcp.rtt import RttEstimator
from mptcp.tcp.scoreboard import Scoreboard
from mptcp.tcp.sendbuf import SendBuffer
from mptcp.tcp.seqnum import SeqSpace
from mptcp.tcp.state import CAN_SEND, SYNCHRONIZED, TcpState, Trigger, transition
from mptcp.tcp.tfo import TfoClientCache, TfoServer
from mptcp.wire.ip import IPHeader
from mptcp.wire.segment import Segment

__all__ = ["TcpConnection", "TcpStateError", "Endpoint", "normalize_endpoint"]

_CURR_ESTAB = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})  # RFC 4022 tcpCurrEstab
_ESTABLISHED = TcpState.ESTABLISHED  # (an Enum member lookup costs ~0.1 us each time)

Endpoint = tuple[bytes, int]
"""(packed IPv4/IPv6 address, port)."""


class TcpStateError(ValueError):
    """An application call is not allowed in the connection's state (RFC 9293 §3.10
    "error: connection closing", "connection does not exist", ...)."""


def normalize_endpoint(ep: tuple[bytes | str, int]) -> Endpoint:
    """(address as text or packed bytes, port) -> (packed bytes, port), validated."""
    addr, port = ep
    if isinstance(addr, str):
        addr = ipaddress.ip_address(addr).packed
    if len(addr) not in (4, 16):
        raise TcpStateError(f"address of {len(addr)} bytes")
    if not 0 <= port <= 0xFFFF:
        raise TcpStateError(f"port {port} out of range")
    return bytes(addr), port


class TcpConnection:
    """One TCP connection.  Build with :meth:`connect` (active open) or let a ``Stack``
    listener build it (:meth:`accept_syn`, passive open)."""

    def __init__(
        self,
        local: tuple[bytes | str, int],
        remote: tuple[bytes | str, int],
        config: TcpConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
        *,
        mib: TcpMib | None = None,
        isn: int | None = None,
        isn_gen: IsnGenerator | None = None,
        tfo_cache: TfoClientCache | None = None,
        tfo_server: TfoServer | None = None,
    ) -> None:
        cfg = config if config is not None else TcpConfig()
        self.config = cfg
        self.rng = rng if rng is not None else random.Random(0)
        self.local = normalize_endpoint(local)
        self.remote = normalize_endpoint(remote)
        if len(self.local[0]) != len(self.remote[0]):
            raise TcpStateError("local and remote addresses of different families")
        self.ipv6 = len(self.local[0]) == 16
        self.mib = mib if mib is not None else TcpMib()
        self._state = TcpState.CLOSED
        self.created = now
        self.passive = False
        if isn is None:
            gen = isn_gen
            if gen is None:
                gen = (IsnGenerator(cfg.isn_secret) if cfg.isn_secret is not None
                       else IsnGenerator.from_rng(self.rng))
            isn = gen.isn(self.local, self.remote, now)
        # --- send sequence space (RFC 9293 §3.3.1), offsets from ISS ---
        self.iss = isn
        self.snd = SeqSpace(isn)
        self.snd_una = 0
        self.snd_nxt = 0  # highest sequence sent + 1 (retransmissions do not move it)
        self.snd_wnd = 0
        self.snd_wl1 = 0  # offset in the receive space
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.sendbuf = SendBuffer(cfg.send_buffer, start=1, counters=self.mib)
        self.sendbuf_was_full = False
        self.write_shut = False  # shutdown_write / close called
        self.read_shut = False  # close called: the application will not read any more
        # --- receive sequence space, known once the peer's SYN arrives ---
        self.irs: int | None = None
        self.rcv = SeqSpace(0)
        self.recvbuf = ReceiveBuffer(cfg.recv_buffer, start=1, dsack=cfg.dsack,
                                     counters=self.mib)
        self.rcv_adv = 0  # right edge of the window we advertised (offset)
        self.last_ack_sent = 0  # Last.ACK.sent (RFC 7323 §4.3), offset
        self.app_buffer = bytearray()  # in-order bytes after receive transforms
        self.eof_reported = False
        # --- negotiated options ---
        self.ts_ok = False
        self.sack_ok = False
        self.ws_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = cfg.our_wscale if cfg.window_scaling else 0
        self.ecn_ok = False
        self.peer_mss = 1220 if self.ipv6 else 536  # RFC 9293 §3.7.1 default
        self._mss_for: tuple[int, bool] = (-1, False)  # (peer_mss, ts_ok) of the two below
        self._mss_send = self._smss = 0
        self.ts_recent = 0
        self.ts_recent_time: float | None = None  # None = TS.Recent invalid
        self.ts_offset = self.rng.getrandbits(32) if cfg.ts_random_offset else 0
        # --- handshake bookkeeping ---
        self.syn_options_sent: dict[str, bool] = {}
        self.syn_retransmits = 0
        self.syn_time: float | None = None  # first SYN / SYN-ACK transmission
        self.need_syn = False  # a SYN / SYN-ACK is due
        self.close_pending = False  # close() in SYN-RECEIVED, performed once established
        self.tfo_cache = tfo_cache
        self.tfo_server = tfo_server
        self.tfo_cookie: bytes | None = None  # the cookie to send in our SYN
        self.tfo_request = False
        self.tfo_syn_data = 0  # data bytes carried by our SYN
        self.tfo_fast_opened = False  # server: accepted SYN data; client: SYN data acked
        self.tfo_send_cookie: bytes | None = None  # server: cookie to put in the SYN-ACK
        # --- RTT, congestion control, loss recovery ---
        strict = cfg.rto_initial >= 1.0 and cfg.rto_max >= 60.0
        self.rtt = RttEstimator(min_rto=cfg.rto_min, max_rto=cfg.rto_max,
                                initial_rto=cfg.rto_initial, strict=strict)
        self.cc: CongestionControl = create(cfg.cc, self.smss, **dict(cfg.cc_params))
        self.sb = Scoreboard(1, self.smss, dup_thresh=cfg.dupthresh, counters=self.mib)
        self.rec = recovery.RecoveryState(self)
        self.cc_recover: int | None = None  # SND.NXT when the last cc reduction began
        self.retries = 0  # consecutive RTO expiries
        self.unacked_since = now  # when the oldest unacknowledged data was sent / progressed
        # --- ECN (RFC 3168) ---
        self.ece_pending = False  # receiver: echo ECE until CWR arrives
        self.cwr_pending = False  # sender: set CWR on the next new data segment
        # --- ACK policy (RFC 9293 §3.8.6.3) ---
        self.ack_now = False
        self.pure_ack = False  # an extension wants a data-less ACK (e.g. MPTCP ADD_ADDR)
        # an extension's limit on new-data segments: max bytes from a sequence offset
        self.seg_boundary: Callable[[int], int] | None = None
        self.dsack_pending = False
        self.delack_bytes = 0
        self.challenge_window = 0.0
        self.challenge_count = 0
        # --- timers (absolute deadlines, None = stopped) ---
        self.t_rto: float | None = None
        self.t_persist: float | None = None
        self.persist_backoff = 0
        self.persist_probe = False  # a window probe byte is outstanding
        self.t_delack: float | None = None
        self.t_keepalive: float | None = None
        self.keepalive_sent = 0
        self.t_timewait: float | None = None
        self.t_tlp: float | None = None
        self.t_reorder: float | None = None
        self.last_activity = now
        self.last_send = now
        # --- output queue and events ---
        self.wake: Callable[[TcpConnection], None] | None = None
        """Set by a Stack: called when an application call may have made output due."""
        self.outq: list[Segment] = []
        self.gso_mss = 0  # output.collect: the data payload size of the latest plan
        self.ip_headers: dict[int, IPHeader] = {}  # by ECN codepoint (output.ip_header)
        self.events: deque[Event] = deque()
        # --- extensions ---
        self.exts: list[TcpExtension] = []
        self.ext_seg: tuple[TcpExtension, ...] = ()
        self.ext_send: tuple[TcpExtension, ...] = ()
        self.ext_recv: tuple[TcpExtension, ...] = ()
        self.ext_opts: tuple[TcpExtension, ...] = ()
        self.ext_hdr: tuple[TcpExtension, ...] = ()
        self.ext_evt: tuple[TcpExtension, ...] = ()
        self.ext_ecn = False
        self.fast_path = cfg.header_prediction  # no extension attached (add_extension)
        for factory in cfg.extensions:
            self.add_extension(factory())

    # ------------------------------------------------------------------ construction ----------
    @classmethod
    def connect(
        cls,
        local: tuple[bytes | str, int],
        remote: tuple[bytes | str, int],
        config: TcpConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
        **kw: object,
    ) -> TcpConnection:
        """Active OPEN (RFC 9293 §3.10.1): CLOSED -> SYN-SENT; the SYN goes out with the
        next ``packets_to_send`` (data written before then may ride in a TFO SYN).
        Keyword arguments: ``mib``, ``isn``, ``isn_gen``, ``tfo_cache``."""
        conn = cls(local, remote, config, rng, now, **kw)  # type: ignore[arg-type]
        handshake.active_open(conn, now)
        return conn

    @classmethod
    def accept_syn(
        cls,
        seg: Segment,
        config: TcpConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
        **kw: object,
    ) -> TcpConnection:
        """Passive open: a listener got ``seg`` (a SYN without ACK, RFC 9293 §3.10.7.2);
        returns the connection in SYN-RECEIVED with its SYN-ACK queued.  Keyword arguments:
        ``mib``, ``isn``, ``isn_gen``, ``tfo_server``."""
        local = (bytes(seg.ip.dst), seg.tcp.dport)
        remote = (bytes(seg.ip.src), seg.tcp.sport)
        conn = cls(local, remote, config, rng, now, **kw)  # type: ignore[arg-type]
        handshake.passive_open(conn, seg, now)
        return conn

    def add_extension(self, ext: TcpExtension) -> None:
        """Attach an extension (hooks.py); extensions are called in the order added."""
        self.exts.append(ext)
        exts = tuple(self.exts)
        self.ext_seg = tuple(e for e in exts if overrides(e, "on_segment"))
        self.ext_send = tuple(e for e in exts if overrides(e, "transform_send"))
        self.ext_recv = tuple(e for e in exts if overrides(e, "transform_receive"))
        self.ext_opts = tuple(e for e in exts if overrides(e, "option_space"))
        self.ext_hdr = tuple(e for e in exts if overrides(e, "on_header"))
        self.ext_evt = tuple(e for e in exts if overrides(e, "on_event"))
        self.ext_ecn = any(e.handles_ecn for e in exts)
        self.fast_path = False
        ext.attach(self)

    # ------------------------------------------------------------------ derived values --------
    @property
    def mss_send(self) -> int:
        """Effective send MSS before options (RFC 9293 §3.7.1), clamped to the path."""
        if self.peer_mss != self._mss_for[0] or self.ts_ok is not self._mss_for[1]:
            self._derive_mss()
        return self._mss_send

    @property
    def smss(self) -> int:
        """SMSS for congestion control and recovery: MSS less the timestamps option."""
        if self.peer_mss != self._mss_for[0] or self.ts_ok is not self._mss_for[1]:
            self._derive_mss()
        return self._smss

    def _derive_mss(self) -> None:
        """(Re)compute mss_send and smss for the current peer_mss and ts_ok (they are read
        for every segment; the inputs change during the handshake only)."""
        m = min(self.peer_mss, self.config.mss)
        if self.config.path_mss is not None:
            m = min(m, self.config.path_mss)
        self._mss_send = max(m, 64)
        self._smss = self._mss_send - (12 if self.ts_ok else 0)
        self._mss_for = (self.peer_mss, self.ts_ok)

    @property
    def gso_segment_size(self) -> int:
        """Payload bytes of each wire segment a super-segment (``TcpConfig.gso_size``) is to
        be cut into by a TSO/GSO driver: the send MSS less the options of a data segment
        (timestamps; a super-segment carrying k option bytes is cut every ``mss_send - k``
        bytes -- the engine sizes super-segments in multiples of that)."""
        if self.gso_mss:
            return self.gso_mss  # the payload size the last data was built with (options)
        return max(1, self.mss_send - (12 if self.ts_ok else 0))

    @property
    def rcv_nxt(self) -> int:
        """RCV.NXT as an offset (the FIN counts once it is in order)."""
        rb = self.recvbuf
        return rb.rcv_nxt + 1 if rb.fin_reached else rb.rcv_nxt

    @property
    def flight_size(self) -> int:
        """RFC 5681 FlightSize: SND.NXT - SND.UNA (sequence space, FIN included)."""
        return self.snd_nxt - self.snd_una

    @property
    def rcv_wnd(self) -> int:
        """RCV.WND as last advertised (right edge minus RCV.NXT)."""
        return max(0, self.rcv_adv - self.rcv_nxt)

    def tsval(self, now: float) -> int:
        """Our timestamp clock (RFC 7323 §5.4), ``ts_hz`` ticks per second."""
        return (self.ts_offset + int(now * self.config.ts_hz)) & 0xFFFFFFFF

    @property
    def state(self) -> TcpState:
        """The RFC 9293 state (changed only through :meth:`set_state`)."""
        return self._state

    @property
    def is_closed(self) -> bool:
        return self.state is TcpState.CLOSED

    @property
    def synchronized(self) -> bool:
        return self.state in SYNCHRONIZED

    # ------------------------------------------------------------------ state and events ------
    def set_state(self, trigger: Trigger) -> None:
        """Apply an RFC 9293 transition (state.py) and report it."""
        old = self._state
        new = transition(old, trigger)
        self._state = new
        was, now_est = old in _CURR_ESTAB, new in _CURR_ESTAB
        if was != now_est:
            self.mib["TcpCurrEstab"] += 1 if now_est else -1
        self.emit(StateChanged(old, new))
        if new is TcpState.TIME_WAIT:
            timers.enter_time_wait(self)
        elif new is TcpState.CLOSED:
            timers.stop_all(self)

    def emit(self, event: Event) -> None:
        """Queue an application event and pass it to the extensions."""
        self.events.append(event)
        for ext in self.ext_evt:
            ext.on_event(self, event)

    def notify(self, event: Event) -> None:
        """An engine notice (DataAcked, Retransmitted): extensions only."""
        for ext in self.ext_evt:
            ext.on_event(self, event)

    def fail(self, reason: str, *, reset: bool = False, counter: str | None = None) -> None:
        """Close the connection on an error: ConnectionFailed(reason) (or Reset(reason) with
        ``reset``), optionally after queueing a RST (RFC 9293 §3.10.7)."""
        if counter is not None:
            self.mib.incr(counter)
        if self.state is TcpState.CLOSED:
            return
        if self.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            self.mib.incr("TcpAttemptFails")
        elif self.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            self.mib.incr("TcpEstabResets")
        self.set_state(Trigger.ABORT)
        self.emit(Reset(reason) if reset else ConnectionFailed(reason))

    def next_event(self) -> Event | None:
        """The oldest pending event, or None."""
        return self.events.popleft() if self.events else None

    # ------------------------------------------------------------------ Sans-IO ---------------
    def receive(self, seg: Segment, now: float) -> None:
        """One incoming segment for this 4-tuple (already parsed and checksum-checked)."""
        self.mib["TcpInSegs"] += 1
        self.last_activity = now
        self.keepalive_sent = 0
        if self.ext_seg and not input.run_segment_hooks(self, seg, now):
            return
        state = self._state
        if state is _ESTABLISHED and self.fast_path \
                and input.header_prediction(self, seg, now):
            return
        if state is TcpState.SYN_SENT:
            handshake.syn_sent_arrives(self, seg, now)
        elif state is TcpState.CLOSED or state is TcpState.LISTEN:
            self.outq.extend(output.closed_reply(seg, self.mib))
        else:
            input.segment_arrives(self, seg, now)

    def packets_to_send(self, now: float) -> list[Segment]:
        """Every segment due now (control replies, SYNs, data, retransmissions, ACKs)."""
        return output.collect(self, now)

    def get_timer(self) -> float | None:
        """The earliest deadline (RTO, persist, delayed ACK, keepalive, TIME-WAIT, TLP,
        RACK reordering), or None."""
        return timers.next_deadline(self)

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline is <= ``now``."""
        timers.expire(self, now)

    # ------------------------------------------------------------------ application -----------
    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Queue application data (RFC 9293 §3.10.2 SEND); returns how many bytes were taken
        (back-pressure: at most the free send-buffer space; SendBufferFree follows)."""
        st = self.state
        if st is TcpState.CLOSED:
            raise TcpStateError("connection does not exist")
        if self.write_shut or st not in CAN_SEND:
            raise TcpStateError("connection closing")
        n = min(len(data), self.sendbuf.free)
        if n < len(data):
            self.sendbuf_was_full = True
            if n == 0:
                self.mib["TcpExtTCPSndBufFull"] += 1
                return 0
        chunk = bytes(data[:n])
        for ext in self.ext_send:
            chunk = ext.transform_send(self, chunk)
        self.sendbuf.capacity = max(self.sendbuf.capacity,
                                    self.sendbuf.buffered + len(chunk))
        self.sendbuf.write(chunk)
        self.sendbuf.capacity = self.config.send_buffer
        if self.wake is not None:
            self.wake(self)
        return n

    @property
    def send_space(self) -> int:
        """Bytes ``send`` would accept now."""
        if self.write_shut or self.state not in CAN_SEND:
            return 0
        return self.sendbuf.free

    def read(self, max_bytes: int = -1) -> bytes:
        """In-order received bytes (up to ``max_bytes``; all when negative); b"" when none.
        Reading may open the receive window (a window update follows, §3.8.6.2.2)."""
        if self.ext_recv:
            input.pull_transformed(self)
            buf = self.app_buffer
            n = len(buf) if max_bytes < 0 else min(max_bytes, len(buf))
            data = bytes(buf[:n])
            del buf[:n]
            input.pull_transformed(self)
        else:
            data = self.recvbuf.read(max_bytes)
        if data:
            output.after_read(self)
            if self.wake is not None and self.ack_now:
                self.wake(self)
        return data

    @property
    def readable(self) -> int:
        """Bytes ``read`` would return now."""
        if self.ext_recv:
            input.pull_transformed(self)
            return len(self.app_buffer)
        return self.recvbuf.readable

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and everything before it was read."""
        return self.recvbuf.eof and not self.app_buffer

    def shutdown_write(self) -> None:
        """Half-close (RFC 9293 §3.10.4 CLOSE for the sending direction): a FIN goes out
        after the queued data; reading goes on."""
        st = self.state
        if st is TcpState.CLOSED:
            raise TcpStateError("connection does not exist")
        if self.write_shut:
            return
        self.write_shut = True
        if self.wake is not None:
            self.wake(self)
        if st is TcpState.SYN_SENT:
            if self.sendbuf.buffered == 0:
                self.set_state(Trigger.CLOSE)  # delete the TCB (§3.10.4 SYN-SENT)
                return
            self.close_pending = True  # choice: queued data is still delivered, then FIN
            return
        if st is TcpState.SYN_RECEIVED:
            self.close_pending = True  # queued until ESTABLISHED (§3.10.4)
            return
        if st in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            self.sendbuf.close()
            self.set_state(Trigger.CLOSE)

    def close(self) -> None:
        """CLOSE (RFC 9293 §3.10.4): FIN after the queued data; the application reads no
        more.  Like Linux (RFC 2525 §2.17), unread data makes it a RST instead."""
        if self.state is TcpState.CLOSED:
            return
        self.read_shut = True
        if self.readable or self.recvbuf.out_of_order:
            self.abort(counter="TcpExtTCPAbortOnClose")
            return
        self.shutdown_write()

    def abort(self, counter: str = "TcpExtTCPAbortOnClose") -> None:
        """ABORT (RFC 9293 §3.10.5): a RST in SYN-RECEIVED and the synchronized states
        (except the closing ones), then CLOSED."""
        st = self.state
        if st is TcpState.CLOSED:
            return
        if self.wake is not None:
            self.wake(self)
        if st in (TcpState.SYN_RECEIVED, TcpState.ESTABLISHED, TcpState.FIN_WAIT_1,
                  TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT):
            # RFC 5961 §3.2: the peer takes a RST only at its RCV.NXT (or in its window, with a
            # challenge); after a zero-window probe SND.NXT lies past that window, so like
            # Linux (tcp_acceptable_seq) send at min(SND.NXT, SND.UNA + SND.WND)
            at = min(self.snd_nxt, self.snd_una + self.snd_wnd)
            output.queue_rst(self, self.snd.seq(max(at, self.snd_una)), None)
        self.mib.incr(counter)
        self.fail("aborted", reset=True)

    def ecn_congestion(self, now: float) -> None:
        """For ECN-owning extensions (AccECN): react to congestion as to an ECE."""
        recovery.ecn_echo(self, now)

    def notify_send_space(self) -> None:
        """Emit SendBufferFree once after a back-pressured send, when room reappears."""
        if self.sendbuf_was_full and self.sendbuf.free > 0 and self.state in CAN_SEND \
                and not self.write_shut:
            self.sendbuf_was_full = False
            self.emit(SendBufferFree(self.sendbuf.free))

    # ------------------------------------------------------------------ introspection --------
    def info(self) -> dict[str, object]:
        """A snapshot (like Linux's tcp_info) for logs and tests."""
        return {
            "state": self.state.value, "snd_una": self.snd_una, "snd_nxt": self.snd_nxt,
            "snd_wnd": self.snd_wnd, "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd,
            "mss": self.mss_send, "ts": self.ts_ok, "sack": self.sack_ok,
            "wscale": (self.snd_wscale, self.rcv_wscale) if self.ws_ok else None,
            "ecn": self.ecn_ok, "cwnd": self.cc.cwnd, "ssthresh": self.cc.ssthresh,
            "rto": self.rtt.rto, "srtt": self.rtt.srtt, "retries": self.retries,
        }

    def __repr__(self) -> str:
        return (f"<TcpConnection {self.state.value} {self.local[1]}->{self.remote[1]} "
                f"una={self.snd_una} nxt={self.snd_nxt} rcv={self.rcv_nxt}>")
