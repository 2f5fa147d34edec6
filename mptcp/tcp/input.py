"""Segment arrival in SYN-RECEIVED and the synchronized states: RFC 9293 §3.10.7.4.

In order: extension hooks (hooks.py, hook 1); RFC 7323 §5.3 PAWS (R1-R3: SEG.TSval older
than TS.Recent -> drop and ACK, unless TS.Recent is older than 24 days, §5.5) and the missing
timestamp rule (§3.2: a non-RST segment without TSopt is dropped once negotiated); the
acceptability test (§3.10.7.4 table, zero windows, ACKs of a zero-window probe still
processed); RST (RFC 5961 §3.2: exact RCV.NXT resets, in-window -> challenge ACK); SYN
(RFC 5961 §4.2: challenge ACK; a retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again);
ACK (SYN-RECEIVED -> ESTABLISHED; RFC 5961 §5.2 ACK acceptability
SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT; window update SND.WL1/WL2; FIN acknowledged ->
FIN-WAIT-2 / TIME-WAIT / CLOSED); URG (ignored); text (reassembly, delayed / immediate ACK,
RFC 3168 §6.1.3 CE -> ECE); FIN (CLOSE-WAIT / CLOSING / TIME-WAIT, restart of the 2 MSL
timer on a retransmitted FIN).

Choice (RFC 7323 §4.3 leaves the moment open): TS.Recent is updated after the segment passed
the acceptability, RST and SYN checks (as Linux does), so an unacceptable segment cannot
poison it.

:func:`header_prediction` takes the in-order data segments and the ACKs of new data of an
established connection past the general path, with the same effects
(``TcpConfig.header_prediction``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mptcp.tcp import handshake, output, recovery, timers
from mptcp.tcp.events import ConnectionClosed, DataReceived, EofReceived, Reset
from mptcp.tcp.hooks import Verdict
from mptcp.tcp.recvbuf import ReassemblyError
from mptcp.tcp.state import CAN_RECEIVE, TcpState, Trigger
from mptcp.wire.ip import ECN_CE
from mptcp.wire.options import NOP, Sack, Timestamps
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection

__all__ = ["run_segment_hooks", "segment_arrives", "header_prediction", "process_text_and_fin",
           "pull_transformed"]

_HALF = 1 << 31
_MASK = 0xFFFFFFFF
_ESTABLISHED = TcpState.ESTABLISHED  # (an Enum member lookup costs ~0.1 us each time)


def run_segment_hooks(c: TcpConnection, seg: Segment, now: float) -> bool:
    """Hook 1; False when an extension consumed or vetoed the segment."""
    for ext in c.ext_seg:
        verdict = ext.on_segment(c, seg, now)
        if verdict is Verdict.ACCEPT:
            continue
        c.mib["TcpExtTCPExtVeto"] += 1
        if verdict is Verdict.RESET and c.state is not TcpState.CLOSED:
            output.queue_rst(c, c.snd.seq(c.snd_nxt), None)
            c.fail("extension", reset=True)
        return False
    return True


def _options(seg: Segment) -> tuple[Timestamps | None, Sack | None]:
    ts: Timestamps | None = None
    sack: Sack | None = None
    for opt in seg.tcp.options:
        t = type(opt)
        if t is Timestamps:
            ts = opt  # type: ignore[assignment]
        elif t is Sack:
            sack = opt  # type: ignore[assignment]
    return ts, sack


def segment_arrives(c: TcpConnection, seg: Segment, now: float) -> None:
    """RFC 9293 §3.10.7.4 "Otherwise" (every state but CLOSED, LISTEN, SYN-SENT)."""
    tcp = seg.tcp
    flags = tcp.flags
    rst = flags & RST
    ts, sack = _options(seg)
    rcv_nxt = c.rcv_nxt
    seq = c.rcv.offset(tcp.seq, rcv_nxt)
    payload = seg.payload
    # RFC 7323 §3.2: a non-RST segment without the negotiated timestamps is dropped
    if c.ts_ok and ts is None and not rst:
        c.mib["TcpExtTCPTSMissingDrop"] += 1
        return
    # RFC 7323 §5.3 R1: PAWS
    if c.ts_ok and ts is not None and not rst and c.ts_recent_time is not None \
            and 0 < ((c.ts_recent - ts.tsval) & 0xFFFFFFFF) < _HALF:
        if now - c.ts_recent_time > c.config.paws_idle_limit:
            c.mib["TcpExtPAWSIdleReset"] += 1  # §5.5: TS.Recent invalid after 24 days
            c.ts_recent_time = None
        else:
            c.mib["TcpExtPAWSEstab"] += 1
            c.ack_now = True
            return
    # Acceptability (§3.10.7.4 first)
    seglen = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    wnd = c.rcv_wnd
    if c.state is TcpState.SYN_RECEIVED and flags & SYN and tcp.seq == c.irs:
        if not flags & ACK:
            c.need_syn = True  # the peer did not get our SYN-ACK: send it again (like Linux)
            return
        # Simultaneous open: the peer's SYN-ACK repeats the SYN we have; only the new part
        # (its ACK, any text) is processed (§3.10.7.4: "only the new parts").
        flags &= ~SYN
        seq += 1
        seglen -= 1
    # RFC 7323 §4.3 (2), placed before the acceptability test as in its Appendix D: an old
    # duplicate (a retransmission after a lost ACK, Appendix H (f)(1)) refreshes TS.Recent,
    # so the ACK it draws does not echo a stale TSval (an RTT sample inflated by the RTO)
    if c.ts_ok and ts is not None and not rst and not flags & SYN \
            and seq <= c.last_ack_sent and (
                c.ts_recent_time is None
                or ((ts.tsval - c.ts_recent) & 0xFFFFFFFF) < _HALF):
        c.ts_recent = ts.tsval
        c.ts_recent_time = now
    if not _acceptable(seq, seglen, rcv_nxt, wnd):
        if rst:
            return
        if wnd == 0 and seq == rcv_nxt and flags & ACK:
            # Zero window: still process ACKs (and RSTs, URGs); drop the text (§3.10.7.4)
            c.ack_now = True
            payload = b""
            flags &= ~(FIN | SYN)
            seglen = 0
        else:
            c.mib["TcpExtTCPACKSkipped"] += 1
            if c.state is TcpState.TIME_WAIT and flags & FIN and seq + seglen == rcv_nxt:
                timers.enter_time_wait(c)  # the peer's FIN again: restart 2 MSL
            if payload and seq + len(payload) <= rcv_nxt and c.sack_ok and c.config.dsack:
                try:  # RFC 2883: report the duplicate
                    c.recvbuf.accept(seq, payload)
                    c.dsack_pending = True
                except ReassemblyError:
                    pass
            c.ack_now = True
            return
    # second: RST (RFC 5961 §3.2)
    if rst:
        if seq == rcv_nxt:
            c.mib["TcpInRsts"] += 1
            if c.state is TcpState.SYN_RECEIVED and c.passive:
                c.mib["TcpAttemptFails"] += 1
                c.set_state(Trigger.RCV_RST)  # back to LISTEN = the listener goes on
                c.emit(Reset("connection reset"))
            elif c.state in (TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT):
                c.set_state(Trigger.RCV_RST)
                c.emit(ConnectionClosed())
            elif c.state is TcpState.SYN_RECEIVED:
                c.fail("refused")
            else:
                c.fail("connection reset", reset=True)
        else:
            output.challenge_ack(c, now, "")
        return
    # fourth: SYN (RFC 5961 §4.2)
    if flags & SYN:
        output.challenge_ack(c, now, "TcpExtTCPSYNChallenge")
        return
    # fifth: ACK
    if not flags & ACK:
        return
    ack = c.snd.offset(tcp.ack, c.snd_una)
    if c.state is TcpState.SYN_RECEIVED:
        if not c.snd_una < ack <= c.snd_nxt:
            output.queue_rst(c, tcp.ack, None, seg)
            return
        recovery.handshake_rtt(c, seg, now)
        c.snd_una = ack
        c.snd_wnd = tcp.window << c.snd_wscale
        c.max_snd_wnd = max(c.max_snd_wnd, c.snd_wnd)
        c.snd_wl1 = seq
        c.snd_wl2 = ack
        c.sendbuf.ack_to(max(ack, 1))
        c.sb.on_ack(max(ack, 1))
        if ack > 1:
            c.rec.cum_ack(ack)
        handshake.establish(c, now, Trigger.RCV_ACK_OF_SYN, None)
    else:
        if ack > c.snd_nxt:
            c.mib["TcpExtTCPACKUnsent"] += 1
            c.ack_now = True
            return
        if ack < c.snd_una - c.max_snd_wnd:
            c.mib["TcpExtTCPACKTooOld"] += 1
            output.challenge_ack(c, now, "")
            return
        _process_ack(c, seg, seq, ack, sack, now)
        if c.state is TcpState.CLOSED:
            return
    if flags & URG:
        c.mib["TcpExtTCPUrgIgnored"] += 1  # RFC 6093: urgent data delivered inline
    if payload or flags & FIN:
        process_text_and_fin(c, seg, seq, now, payload, flags)


def header_prediction(c: TcpConnection, seg: Segment, now: float) -> bool:
    """The two commonest segments of an ESTABLISHED connection, handled without the general
    path above (Van Jacobson's header prediction; the effects are exactly those of
    :func:`segment_arrives`, which tests/tcp/test_header_prediction.py checks by running
    scenarios both ways).  Returns False, having changed nothing, for any other segment.

    Both shapes: flags ACK (PSH allowed), the options every segment of the connection
    carries (NOP NOP TSopt with timestamps, none without) and PAWS passed (RFC 7323 §5.3),
    SEG.SEQ = RCV.NXT with nothing queued out of order and no FIN seen, no extension
    attached, classic ECN off, our FIN not queued, and SND.UNA =< SEG.ACK =< SND.NXT:

    1. in-order data that fits the receive buffer (the receiver of a bulk transfer);
    2. a pure ACK of new data, or an ACK of SND.UNA with nothing outstanding (not a
       duplicate ACK, RFC 5681 §2) -- the sender.
    """
    tcp = seg.tcp
    flags = tcp.flags
    if flags | PSH != ACK | PSH or c.ecn_ok or c.read_shut:
        return False
    opts = tcp.options
    ts: Timestamps | None = None
    if c.ts_ok:
        if len(opts) != 3 or opts[0] is not NOP or opts[1] is not NOP:
            return False
        ts = opts[2]  # type: ignore[assignment]
        if type(ts) is not Timestamps:
            return False
    elif opts:
        return False
    rb = c.recvbuf
    payload = seg.payload
    n = len(payload)
    room = rb.in_order_room()
    if n > room or room < 0:
        return False
    seq = rb.rcv_nxt  # RCV.NXT: no FIN seen
    if tcp.seq != (c.rcv.isn + seq) & _MASK or (n and c.rcv_adv <= seq):
        return False  # not the next segment, or no window open (acceptability test)
    snd_una = c.snd_una
    acked = (tcp.ack - c.snd.isn - snd_una) & _MASK
    if acked > c.snd_nxt - snd_una or c.sendbuf.fin_offset is not None:
        return False
    if not n and not acked and c.snd_nxt != snd_una:
        return False  # possibly a duplicate ACK
    if ts is not None:
        tsval = ts.tsval
        if c.ts_recent_time is not None and 0 < ((c.ts_recent - tsval) & _MASK) < _HALF:
            return False  # PAWS
        # RFC 7323 §4.3 (2)
        if seq <= c.last_ack_sent and (
                c.ts_recent_time is None or ((tsval - c.ts_recent) & _MASK) < _HALF):
            c.ts_recent = tsval
            c.ts_recent_time = now
    # fifth: ACK (_process_ack without SACK blocks; never a duplicate ACK here)
    ack = snd_una + acked
    if not n and not acked:
        c.mib["TcpExtTCPPureAcks"] += 1
    if acked:
        if ts is None or not recovery.fast_ack(c, ack, ts.tsecr, now):
            recovery.on_ack(c, seg, ack, [], False, now)
    elif not recovery.idle_ack(c):
        recovery.on_ack(c, seg, ack, [], False, now)
    if c.snd_wl1 < seq or (c.snd_wl1 == seq and c.snd_wl2 <= ack):
        _update_send_window(c, seq, ack, tcp.window << c.snd_wscale, now)
    if not n:
        return True
    if c._state is not _ESTABLISHED:
        process_text_and_fin(c, seg, seq, now, payload, flags)
        return True
    # seventh: segment text, in order (process_text_and_fin's path for it)
    rb.append(payload)
    if not c.ack_now:
        _delay_ack(c, n, now)
    c.events.append(DataReceived(n))  # emit(): no extension is listening
    return True


def _acceptable(seq: int, seglen: int, rcv_nxt: int, wnd: int) -> bool:
    """The four cases of the RFC 9293 §3.10.7.4 acceptability test."""
    if seglen == 0:
        if wnd == 0:
            return seq == rcv_nxt
        return rcv_nxt <= seq < rcv_nxt + wnd
    if wnd == 0:
        return False
    end = seq + seglen - 1
    return rcv_nxt <= seq < rcv_nxt + wnd or rcv_nxt <= end < rcv_nxt + wnd


def _process_ack(c: TcpConnection, seg: Segment, seq: int, ack: int, sack: Sack | None,
                 now: float) -> None:
    tcp = seg.tcp
    wnd = tcp.window << c.snd_wscale
    blocks: list[tuple[int, int]] = []
    if sack is not None and c.sack_ok:
        off = c.snd.offset
        una = c.snd_una
        blocks = [(off(a, una), off(b, una)) for a, b in sack.blocks]
    # RFC 5681 §2 duplicate ACK: no data, no SYN/FIN, same ACK and window, data outstanding
    dupack = (ack == c.snd_una and not seg.payload and not tcp.flags & (SYN | FIN)
              and wnd == c.snd_wnd and c.snd_nxt > c.snd_una)
    if not seg.payload and ack == c.snd_una:
        c.mib["TcpExtTCPPureAcks"] += 1
    if c.ecn_ok and tcp.flags & ECE and not c.ext_ecn and ack > c.snd_una - c.max_snd_wnd:
        recovery.ecn_echo(c, now)
    if ack >= c.snd_una:
        recovery.on_ack(c, seg, ack, blocks, dupack, now)
    # Window update (§3.10.7.4 fifth, ESTABLISHED): only for SND.UNA =< SEG.ACK, and
    # not from an older segment (SND.WL1 / SND.WL2)
    if ack >= c.snd_una and (c.snd_wl1 < seq or (c.snd_wl1 == seq and c.snd_wl2 <= ack)):
        _update_send_window(c, seq, ack, wnd, now)
    _fin_acked(c, now)


def _fin_acked(c: TcpConnection, now: float) -> None:
    """Our FIN acknowledged: FIN-WAIT-1 -> FIN-WAIT-2, CLOSING -> TIME-WAIT,
    LAST-ACK -> CLOSED."""
    if not c.sendbuf.fin_acked:
        return
    st = c.state
    if st is TcpState.FIN_WAIT_1:
        c.set_state(Trigger.RCV_ACK_OF_FIN)
        timers.arm_fin_wait_2(c, now)
    elif st is TcpState.CLOSING or st is TcpState.LAST_ACK:
        c.set_state(Trigger.RCV_ACK_OF_FIN)
        c.emit(ConnectionClosed())


def process_text_and_fin(c: TcpConnection, seg: Segment, seq: int, now: float,
                         payload: bytes | None = None, flags: int | None = None) -> None:
    """§3.10.7.4 seventh (segment text) and eighth (FIN)."""
    tcp = seg.tcp
    if payload is None:
        payload = seg.payload
    if flags is None:
        flags = tcp.flags
    if flags & SYN:
        seq += 1  # data of a SYN-ACK starts after the SYN
    fin = bool(flags & FIN)
    st = c.state
    if st not in CAN_RECEIVE:
        if fin and st is TcpState.TIME_WAIT:
            c.ack_now = True  # a retransmitted FIN: ACK it, restart 2 MSL (§3.10.7.4)
            timers.enter_time_wait(c)
        elif payload or fin:
            c.ack_now = True
        return
    if payload and c.read_shut and seq + len(payload) > c.rcv_nxt:
        # New data after close(): RFC 2525 §2.17 / Linux answer with a RST (a retransmitted
        # duplicate is only acknowledged, as Linux does)
        output.queue_rst(c, c.snd.seq(c.snd_nxt), None)
        c.fail("data after close", reset=True, counter="TcpExtTCPAbortOnData")
        return
    rb = c.recvbuf
    if c.ecn_ok and not c.ext_ecn:
        if flags & CWR:
            c.ece_pending = False  # RFC 3168 §6.1.3
        if seg.ip.ecn == ECN_CE:
            c.ece_pending = True
            c.mib["TcpExtTCPECNCE"] += 1
            c.ack_now = True
    before = rb.readable
    had_gap = rb.out_of_order > 0
    was_fin = rb.fin_reached
    try:
        res = rb.accept(seq, payload, fin)
    except ReassemblyError:
        c.mib["TcpExtTCPRcvPastFin"] += 1
        c.ack_now = True
        return
    if res.duplicate:
        c.dsack_pending = c.sack_ok and c.config.dsack
        c.ack_now = True
    if res.trimmed:
        c.mib["TcpExtTCPRcvQDrop"] += 1
    if res.queued or (res.delivered and had_gap) or res.trimmed:
        c.ack_now = True  # out of order, or a gap fill (RFC 5681 §4.2)
        c.mib["TcpExtTCPOFOImmediateAck"] += 1
    elif res.delivered and rb.readable > before and not c.ack_now:
        _delay_ack(c, res.delivered, now)
    if res.delivered and not c.read_shut:
        c.emit(DataReceived(res.delivered))
    if rb.fin_reached and not was_fin:
        _fin_arrives(c, now)


def _delay_ack(c: TcpConnection, n: int, now: float) -> None:
    """RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2: ACK at least every second full-sized segment,
    otherwise within ``delack_timeout``."""
    cfg = c.config
    if not cfg.delayed_ack:
        c.ack_now = True
        return
    c.delack_bytes += n
    if c.delack_bytes >= cfg.delack_segments * c.smss:
        c.ack_now = True
        c.mib["TcpExtTCPDelAckQuick"] += 1
    elif c.t_delack is None:
        c.t_delack = now + cfg.delack_timeout


def _fin_arrives(c: TcpConnection, now: float) -> None:
    """§3.10.7.4 eighth: the FIN is in order."""
    c.ack_now = True
    if not c.read_shut:
        c.emit(EofReceived())
    st = c.state
    if st in (TcpState.SYN_RECEIVED, TcpState.ESTABLISHED):
        c.set_state(Trigger.RCV_FIN)
    elif st is TcpState.FIN_WAIT_1:
        if c.sendbuf.fin_acked:
            c.set_state(Trigger.RCV_FIN_ACK_OF_FIN)
        else:
            c.set_state(Trigger.RCV_FIN)
            return
        c.emit(ConnectionClosed())
    elif st is TcpState.FIN_WAIT_2:
        c.set_state(Trigger.RCV_FIN)
        c.emit(ConnectionClosed())


def pull_transformed(c: TcpConnection) -> None:
    """Move in-order bytes through the receive transforms (hook 2) to the app buffer."""
    data = c.recvbuf.read()
    if not data:
        return
    for ext in reversed(c.ext_recv):
        data = ext.transform_receive(c, data)
    c.app_buffer += data


def _update_send_window(c: TcpConnection, seq: int, ack: int, wnd: int, now: float) -> None:
    """RFC 9293 §3.10.7.4 (fifth, ESTABLISHED): take the window of a segment that is not older
    than the last update (SND.WL1 / SND.WL2); a window opening from zero stops the persist
    timer."""
    old = c.snd_wnd
    c.snd_wnd = wnd
    c.snd_wl1 = seq
    c.snd_wl2 = ack
    if wnd > c.max_snd_wnd:
        c.max_snd_wnd = wnd
    if wnd > 0 and old == 0:
        timers.window_opened(c, now)
