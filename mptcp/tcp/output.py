"""Building and sending segments.

- Segment assembly: IPv4 or IPv6 by the connection's addresses, options in Linux's layout
  (NOP NOP TS first, then NOP NOP SACK), extension options (hooks.py) after the engine's own,
  which are trimmed in the order of hooks.DROP_ORDER_OTHER when an extension needs room.
- Window advertisement: RFC 7323 §2.3 (scaled), RFC 9293 §3.8.6.2.2 receiver SWS avoidance
  (the right edge moves only by min(RCV.BUFF / 2, MSS) or more; never to the left).
- Sending data: RFC 9293 §3.8.6.2.1 sender SWS avoidance and §3.7.4 Nagle, bounded by the
  peer's window and cwnd (RFC 5681); PSH on the segment that empties the send queue;
  segment payload size is a parameter (``TcpConfig.gso_size`` allows super-segments for
  TSO/GSO drivers: ``TcpConnection.gso_segment_size`` tells them how to cut).
- ACKs: RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2 (every ACK-worthy event sets ``ack_now`` or arms
  the delayed-ACK timer; any segment we send carries the ACK), RFC 5961 §7 challenge-ACK rate
  limit, RFC 3168 §6.1.2-§6.1.5 ECN marks (ECT(0) on new data, CWR once after a reduction,
  ECE echoed until CWR).
- RSTs: RFC 9293 §3.10.7.1 (no connection: never answer a RST; <SEQ=SEG.ACK><CTL=RST> if the
  segment has ACK, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>), RFC 7323 §5.2
  (timestamps in a RST answering a segment that had them: TSval 0, TSecr = its TSval).

Cost: segments are built with ``tuple.__new__``; the IP header of a connection is built once
per ECN codepoint; a burst of new data computes what its segments share (options, ACK field,
window) once (:func:`_send_new`), and a pure ACK without SACK blocks is built inline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from mptcp.tcp import handshake, recovery, timers
from mptcp.tcp.events import Retransmitted
from mptcp.tcp.hooks import MAX_OPTION_SPACE, HookError, OutHeader, SegmentKind
from mptcp.tcp.state import TcpState
from mptcp.wire.ip import ECN_ECT0, ECN_NOT_ECT, IPHeader, ipv4, ipv6
from mptcp.wire.options import NOP, Sack, TcpOption, Timestamps, serialize_options
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, TcpHeader

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection
    from mptcp.tcp.events import TcpMib

__all__ = [
    "Plan", "rst_for", "closed_reply", "queue_rst", "challenge_ack", "plan_options",
    "assemble", "collect", "after_read", "send_range", "window_field", "own_options",
    "max_payload", "ip_header",
]

_MASK = 0xFFFFFFFF
_new = tuple.__new__
_SENDING = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT_1,
            TcpState.CLOSING, TcpState.LAST_ACK)  # a tuple: ``in`` tests identity first
_NEW_DATA_STATES = (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT)
_NO_ACK_STATES = (TcpState.CLOSED, TcpState.SYN_SENT, TcpState.LISTEN)
# Members read once: ``TcpState.X`` costs a lookup through the Enum metaclass each time
_ESTABLISHED = TcpState.ESTABLISHED
_SYN_RECEIVED = TcpState.SYN_RECEIVED
_DATA = SegmentKind.DATA
_ACK = SegmentKind.ACK


class Plan(NamedTuple):
    """The option budget of the segments about to be built (computed once per burst)."""

    kind: SegmentKind
    ts: bool
    sack_blocks: int
    reserve: int  # bytes reserved for extension options
    size: int  # engine option bytes (padded) + reserve


# --------------------------------------------------------------------------- RSTs ---------
def _ts_of(seg: Segment) -> Timestamps | None:
    for opt in seg.tcp.options:
        if type(opt) is Timestamps:
            return opt
    return None


def rst_for(seg: Segment) -> Segment | None:
    """RFC 9293 §3.10.7.1: the RST answering ``seg`` when no connection exists (None for an
    incoming RST)."""
    tcp = seg.tcp
    if tcp.flags & RST:
        return None
    if tcp.flags & ACK:
        seq, ack, flags = tcp.ack, 0, RST
    else:
        seglen = len(seg.payload) + (1 if tcp.flags & SYN else 0) + (1 if tcp.flags & FIN else 0)
        seq, ack, flags = 0, (tcp.seq + seglen) & _MASK, RST | ACK
    ts = _ts_of(seg)
    opts: tuple[TcpOption, ...] = (NOP, NOP, Timestamps(0, ts.tsval)) if ts else ()
    ip = seg.ip
    hdr = ipv4(ip.dst, ip.src) if len(ip.src) == 4 else ipv6(ip.dst, ip.src)
    return Segment(hdr, TcpHeader(tcp.dport, tcp.sport, seq, ack, flags, 0, 0, 0, opts), b"")


def closed_reply(seg: Segment, mib: TcpMib) -> list[Segment]:
    """The reply of a CLOSED connection / closed port (RFC 9293 §3.10.7.1), counted."""
    rst = rst_for(seg)
    if rst is None:
        return []
    mib["TcpOutRsts"] += 1
    return [rst]


def queue_rst(c: TcpConnection, seq32: int, ack32: int | None,
              cause: Segment | None = None) -> None:
    """Queue a RST from this connection (RST,ACK when ``ack32`` is given)."""
    flags = RST | (ACK if ack32 is not None else 0)
    opts: list[TcpOption] = []
    ts = _ts_of(cause) if cause is not None else None
    if ts is not None:
        opts = [NOP, NOP, Timestamps(0, ts.tsval)]  # RFC 7323 §5.2
    elif cause is None and c.ts_ok:
        opts = [NOP, NOP, Timestamps(c.tsval(c.last_activity), c.ts_recent)]
    size = 12 if opts else 0
    c.outq.append(assemble(c, SegmentKind.RST, None, flags, opts, size, b"", False,
                           c.last_activity, seq32=seq32, ack32=ack32 or 0, window=0))
    c.mib["TcpOutRsts"] += 1


def challenge_ack(c: TcpConnection, now: float, counter: str) -> None:
    """RFC 5961 §3.2 / §4.2 / §5.2 challenge ACK, at most ``challenge_ack_limit`` per second
    (§7)."""
    if now - c.challenge_window >= 1.0:
        c.challenge_window = now
        c.challenge_count = 0
    if c.challenge_count >= c.config.challenge_ack_limit:
        c.mib["TcpExtTCPChallengeACKLimited"] += 1
        return
    c.challenge_count += 1
    c.mib["TcpExtTCPChallengeACK"] += 1
    if counter:
        c.mib[counter] += 1
    c.ack_now = True


# --------------------------------------------------------------------------- assembly -----
def window_field(c: TcpConnection) -> int:
    """The window to advertise, scaled (RFC 7323 §2.3), after receiver SWS avoidance."""
    rb = c.recvbuf
    edge = rb.right_edge
    if edge > c.rcv_adv:
        threshold = min(rb.capacity // 2, c.mss_send)
        if edge - c.rcv_adv >= threshold or c.rcv_adv - rb.rcv_nxt >= threshold:
            c.rcv_adv = edge
    wnd = max(0, c.rcv_adv - rb.rcv_nxt) >> c.rcv_wscale
    if wnd > 0xFFFF:
        wnd = 0xFFFF
    if wnd == 0:
        c.mib["TcpExtTCPWantZeroWindowAdv"] += 1
    return wnd


def plan_options(c: TcpConnection, kind: SegmentKind) -> Plan:
    """The engine's own option bytes for a non-SYN segment and the extensions' reserve."""
    ts = c.ts_ok
    blocks = 0
    if c.sack_ok:
        n = c.recvbuf.ooo_ranges + (1 if c.dsack_pending else 0)
        blocks = min(n, 3 if ts else 4)
    if not blocks and not c.ext_opts:
        if kind is _DATA:  # (identity tests: hashing an Enum runs Python code)
            return _PLAN_DATA_TS if ts else _PLAN_DATA
        if kind is _ACK:
            return _PLAN_ACK_TS if ts else _PLAN_ACK
        return _PLANS[kind, ts]
    reserve = 0
    if c.ext_opts:
        reserve = sum(e.option_space(c, kind) for e in c.ext_opts)
        while True:
            own = (12 if ts else 0) + (4 + 8 * blocks if blocks else 0)
            if MAX_OPTION_SPACE - own >= reserve:
                break
            if blocks:
                blocks -= 1
                c.mib["TcpExtTCPSACKDroppedForOpt"] += 1
            elif ts:
                ts = False
                c.mib["TcpExtTCPTSDroppedForOpt"] += 1
            else:
                break
        reserve = min(reserve, MAX_OPTION_SPACE - own)
    own = (12 if ts else 0) + (4 + 8 * blocks if blocks else 0)
    return Plan(kind, ts, blocks, reserve, own + ((reserve + 3) & ~3))


_PLANS = {(kind, ts): Plan(kind, ts, 0, 0, 12 if ts else 0)
          for kind in SegmentKind for ts in (False, True)}
"""The plans without SACK blocks and extensions (the commonest), built once."""
_PLAN_DATA, _PLAN_DATA_TS = _PLANS[SegmentKind.DATA, False], _PLANS[SegmentKind.DATA, True]
_PLAN_ACK, _PLAN_ACK_TS = _PLANS[SegmentKind.ACK, False], _PLANS[SegmentKind.ACK, True]


def own_options(c: TcpConnection, plan: Plan, now: float) -> tuple[list[TcpOption], int]:
    if not plan.sack_blocks:  # the common case: timestamps or nothing
        if plan.ts:
            return [NOP, NOP, _new(Timestamps, (c.tsval(now), c.ts_recent))], 12
        return [], 0
    opts: list[TcpOption] = []
    size = 0
    if plan.ts:
        opts += [NOP, NOP, Timestamps(c.tsval(now), c.ts_recent)]
        size = 12
    if plan.sack_blocks and plan.kind is not SegmentKind.RST:
        blocks = c.recvbuf.sack_blocks(plan.sack_blocks)
        c.dsack_pending = False
        if blocks:
            seq = c.rcv.seq
            opts += [NOP, NOP, Sack(tuple((seq(a), seq(b)) for a, b in blocks))]
            size += 4 + 8 * len(blocks)
    return opts, size


def assemble(
    c: TcpConnection,
    kind: SegmentKind,
    seq: int | None,
    flags: int,
    opts: list[TcpOption],
    size: int,
    payload: bytes,
    retrans: bool,
    now: float,
    *,
    window: int | None = None,
    seq32: int | None = None,
    ack32: int | None = None,
    ecn: int = ECN_NOT_ECT,
) -> Segment:
    """Build one segment: ``seq`` is the stream offset (or ``seq32`` a raw number for RSTs),
    ``opts`` / ``size`` the engine's options; extension options and header hooks are applied
    here (hooks 3 and 4)."""
    if seq32 is None:
        seq32 = (c.snd.isn + (seq or 0)) & _MASK
    if c.ext_opts or c.ext_hdr:
        hdr = OutHeader(kind, flags, ecn, seq or 0, len(payload), retrans)
        if c.ext_opts:
            opts = list(opts)
            space = MAX_OPTION_SPACE - size
            for ext in c.ext_opts:
                extra = ext.write_options(c, kind, space, hdr)
                if extra:
                    n = len(serialize_options(extra))
                    if n > space:
                        raise HookError(f"{type(ext).__name__} wrote {n} option bytes, "
                                        f"{space} free")
                    opts += extra
                    space -= n
        for ext in c.ext_hdr:
            ext.on_header(c, hdr)
        flags = (flags & ~0x1C0) | (hdr.flags & 0x1C0)
        ecn = hdr.ecn & 3
    if flags & ACK:
        rcv_nxt = c.rcv_nxt
        if ack32 is None:
            ack32 = (c.rcv.isn + rcv_nxt) & _MASK
        c.last_ack_sent = rcv_nxt
    elif ack32 is None:
        ack32 = 0
    if window is None:
        window = window_field(c)
    ip = c.ip_headers.get(ecn)
    if ip is None:
        ip = c.ip_headers[ecn] = ip_header(c, ecn)
    return _new(Segment, (ip, _new(TcpHeader, (c.local[1], c.remote[1], seq32, ack32, flags,
                                               window, 0, 0, tuple(opts))), payload))


def ip_header(c: TcpConnection, ecn: int) -> IPHeader:
    """The IP header of every segment ``c`` sends with this ECN codepoint (immutable: the
    connection keeps one per codepoint in ``ip_headers``)."""
    la = c.local[0]
    ra = c.remote[0]
    tos = c.config.tos | ecn
    return (ipv6(la, ra, traffic_class=tos, hop_limit=c.config.ttl) if c.ipv6
            else ipv4(la, ra, tos=tos, ttl=c.config.ttl))


# --------------------------------------------------------------------------- sending ------
def collect(c: TcpConnection, now: float) -> list[Segment]:
    """Everything due now: queued control segments, SYN / SYN-ACK, data, the pending ACK."""
    out = c.outq
    st = c._state
    if not (out or c.ack_now or c.need_syn or c.pure_ack) and st is _ESTABLISHED \
            and c.snd_nxt >= c.sendbuf.seq_end() and not c.rec.lost:
        return []  # nothing queued, due or sendable: what the general path finds
    c.outq = []
    if c.need_syn and st in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
        out.append(handshake.build_syn(c, now))
    elif st in _SENDING:
        _send_data(c, now, out)
    if (c.ack_now or c.pure_ack) and c.irs is not None and st not in _NO_ACK_STATES:
        c.pure_ack = False
        _send_ack(c, now, out)
    return out


def _send_ack(c: TcpConnection, now: float, out: list[Segment]) -> None:
    plan = plan_options(c, _ACK)
    flags = ACK | (ECE if c.ece_pending else 0)
    seq = c.snd_nxt if c._state is not _SYN_RECEIVED else 1
    if plan.sack_blocks or c.ext_hdr or c.ext_opts:
        opts, size = own_options(c, plan, now)
        out.append(assemble(c, _ACK, seq, flags, opts, size, b"", False, now))
    else:  # own_options() and assemble() for their commonest case, inline
        rcv_nxt = c.rcv_nxt
        c.last_ack_sent = rcv_nxt
        ip = c.ip_headers.get(ECN_NOT_ECT)
        if ip is None:
            ip = c.ip_headers[ECN_NOT_ECT] = ip_header(c, ECN_NOT_ECT)
        out.append(_new(Segment, (ip, _new(TcpHeader, (
            c.local[1], c.remote[1], (c.snd.isn + seq) & _MASK, (c.rcv.isn + rcv_nxt) & _MASK,
            flags, window_field(c), 0, 0,
            (NOP, NOP, _new(Timestamps, (c.tsval(now), c.ts_recent))) if plan.ts else ())),
            b"")))
    _acked(c)


def _acked(c: TcpConnection) -> None:
    c.ack_now = False
    c.delack_bytes = 0
    c.t_delack = None


def send_range(c: TcpConnection, start: int, end: int, now: float, out: list[Segment],
               plan: Plan, reason: str | None) -> int:
    """Send sequence offsets ``[start, end)`` (data, plus the FIN if ``end`` covers it) in one
    segment; ``reason`` is None for new data, else the retransmission's cause.  Returns the
    sequence space sent (0 if nothing could be)."""
    sb = c.sendbuf
    fin_at = sb.fin_offset
    data_end = end if fin_at is None else min(end, fin_at)
    n = max(0, data_end - start)
    payload = sb.peek(start, n) if n else b""
    fin = fin_at is not None and end > fin_at and start <= fin_at
    if not payload and not fin:
        return 0
    flags = ACK
    if fin:
        flags |= FIN
    if payload and start + n >= sb.end:
        flags |= PSH
    retrans = reason is not None
    ecn = ECN_NOT_ECT
    if c.ecn_ok and payload and not retrans:
        ecn = ECN_ECT0  # RFC 3168 §6.1.5: never on retransmissions
        if c.cwr_pending:
            flags |= CWR
            c.cwr_pending = False
    if c.ece_pending:
        flags |= ECE
    opts, size = own_options(c, plan, now)
    seg_end = start + n + (1 if fin else 0)
    out.append(assemble(c, SegmentKind.DATA, start, flags, opts, size, payload, retrans, now,
                        ecn=ecn))
    _acked(c)
    c.last_send = now
    if seg_end > c.snd_nxt:
        c.snd_nxt = seg_end
    c.sb.on_transmit(start, seg_end, None)
    c.rec.on_transmit(start, seg_end, now, retrans)
    if retrans:
        c.mib["TcpRetransSegs"] += 1
        if c.ext_evt:
            c.notify(Retransmitted(start, seg_end - start, reason or ""))
    else:
        c.mib["TcpOutSegs"] += 1
        if payload:
            c.mib["TcpExtTCPOrigDataSent"] += 1
    timers.arm_rto_if_stopped(c, now)
    return seg_end - start


def max_payload(c: TcpConnection, plan: Plan) -> int:
    """Payload bytes of one MSS-sized segment with this plan's options."""
    return max(1, c.mss_send - plan.size)


def _send_data(c: TcpConnection, now: float, out: list[Segment]) -> None:
    sb = c.sendbuf
    fin_at = sb.fin_offset
    fin_unsent = fin_at is not None and c.snd_nxt <= fin_at
    unsent = sb.end - c.snd_nxt
    if unsent <= 0 and not fin_unsent and not c.rec.has_work():
        return
    plan = plan_options(c, _DATA)
    mss = max_payload(c, plan)
    c.gso_mss = mss  # what a TSO driver cuts this call's super-segments at (extension options)
    # 1. retransmissions (loss recovery, RTO, TLP): recovery.py decides, cwnd permitting
    recovery.retransmit(c, now, out, plan, mss)
    if c._state not in _NEW_DATA_STATES and not fin_unsent:
        return
    # 2. new data (RFC 9293 §3.8.6.2.1 and §3.7.4)
    nxt_before = c.snd_nxt
    gso = c.config.gso_size
    seg_max = mss if gso is None else max(mss, (gso // mss) * mss)
    if fin_at is None and c.fast_path and not (c.ecn_ok or c.ece_pending or plan.sack_blocks):
        _send_new(c, now, out, plan, mss, seg_max)
    else:
        _send_new_general(c, now, out, plan, mss, seg_max)
    if c.snd_nxt < sb.end and c.snd_wnd == 0 and c.snd_nxt == c.snd_una:
        timers.arm_persist(c, now)
    recovery.after_send(c, now, c.snd_nxt > nxt_before)


def _send_new_general(c: TcpConnection, now: float, out: list[Segment], plan: Plan, mss: int,
                      seg_max: int) -> None:
    """New data segment by segment (RFC 9293 §3.8.6.2.1 sender SWS avoidance, §3.7.4 Nagle,
    bounded by the peer's window and cwnd; a FIN rides on the last segment)."""
    sb = c.sendbuf
    fin_at = sb.fin_offset
    while True:
        unsent = sb.end - c.snd_nxt
        fin_unsent = fin_at is not None and c.snd_nxt <= fin_at
        if unsent <= 0:
            if fin_unsent and c.snd_nxt == fin_at:
                send_range(c, fin_at, fin_at + 1, now, out, plan, None)  # a bare FIN
            break
        wnd_left = c.snd_una + c.snd_wnd - c.snd_nxt
        cwnd_left = recovery.cwnd_room(c)
        # an extension may cut segments where its per-segment metadata changes (an MPTCP
        # subflow: where the DSN->SSN mapping jumps, RFC 8684 §3.3.1)
        lim = unsent if c.seg_boundary is None else max(1, min(unsent,
                                                             c.seg_boundary(c.snd_nxt)))
        want = min(lim, seg_max)
        n = min(want, wnd_left, cwnd_left)
        if n <= 0:
            break
        nothing_in_flight = c.snd_nxt == c.snd_una
        if n < min(lim, mss):
            # Window- or cwnd-limited runt: sender SWS avoidance (§3.8.6.2.1)
            if n < cwnd_left and wnd_left < want:
                if not (nothing_in_flight or n >= c.max_snd_wnd // 2):
                    break
            else:
                break
        elif n < mss and c.config.nagle and not nothing_in_flight and not fin_unsent \
                and lim == unsent:
            break  # Nagle (§3.7.4): a small segment waits for the outstanding data's ACK
        if n > mss and n % mss and n < lim:
            n -= n % mss  # super-segments are whole MSS multiples except at the end
        end = c.snd_nxt + n
        if fin_unsent and fin_at == end:
            end += 1  # the FIN rides on the last data segment
        if not send_range(c, c.snd_nxt, end, now, out, plan, None):
            break


def _send_new(c: TcpConnection, now: float, out: list[Segment], plan: Plan, mss: int,
              seg_max: int) -> None:
    """The loop of :func:`_send_data` over new data when every segment of the burst gets the
    same header but for SEQ and PSH: no FIN queued, no extension, no ECN marks, no SACK
    blocks.  Decisions (windows, SWS avoidance, Nagle, super-segment sizes) and effects are
    those of that loop with :func:`send_range`; the invariant parts of the segments (IP
    header, options, ACK field, window) are computed once."""
    sb = c.sendbuf
    r = c.rec
    scoreboard = c.sb
    data_end = sb.end
    nxt = c.snd_nxt
    if nxt >= data_end:
        return
    snd_una = c.snd_una
    right = snd_una + c.snd_wnd
    cwnd = c.cc.cwnd
    newreno = not c.sack_ok
    nagle = c.config.nagle
    half_max_wnd = c.max_snd_wnd // 2
    isn = c.snd.isn
    sent = 0
    opts: tuple[TcpOption, ...] = ()
    hdr: tuple[int, ...] = ()
    ip: IPHeader | None = None
    while True:
        unsent = data_end - nxt
        if unsent <= 0:
            break
        wnd_left = right - nxt
        cwnd_left = (cwnd + r.inflate + r.limited - (nxt - snd_una)) if newreno \
            else cwnd - r.pipe
        want = unsent if unsent < seg_max else seg_max
        n = min(want, wnd_left, cwnd_left)
        if n <= 0:
            break
        if n < min(unsent, mss):
            # Window- or cwnd-limited runt: sender SWS avoidance (§3.8.6.2.1)
            if n < cwnd_left and wnd_left < want:
                if not (nxt == snd_una or n >= half_max_wnd):
                    break
            else:
                break
        elif n < mss and nagle and nxt != snd_una:
            break  # Nagle (§3.7.4)
        if n > mss and n % mss and n < unsent:
            n -= n % mss
        end = nxt + n
        if ip is None:  # the first segment: what assemble() computes for each
            opts = tuple(own_options(c, plan, now)[0])
            rcv_nxt = c.rcv_nxt
            c.last_ack_sent = rcv_nxt
            window = window_field(c)
            ip = c.ip_headers.get(ECN_NOT_ECT)
            if ip is None:
                ip = c.ip_headers[ECN_NOT_ECT] = ip_header(c, ECN_NOT_ECT)
            hdr = (c.local[1], c.remote[1], (c.rcv.isn + rcv_nxt) & _MASK)
        elif window == 0:
            c.mib["TcpExtTCPWantZeroWindowAdv"] += 1  # window_field() for each segment
        lp, rp, ack32 = hdr
        out.append(_new(Segment, (ip, _new(TcpHeader, (
            lp, rp, (isn + nxt) & _MASK, ack32, ACK | PSH if end >= data_end else ACK,
            window, 0, 0, opts)), sb.peek(nxt, n))))
        c.snd_nxt = end
        scoreboard.on_transmit(nxt, end, None)
        r.on_transmit(nxt, end, now, False)
        if c.t_rto is None:
            timers.arm_rto_if_stopped(c, now)
        nxt = end
        sent += 1
    if sent:
        _acked(c)
        c.last_send = now
        mib = c.mib
        mib["TcpOutSegs"] += sent
        mib["TcpExtTCPOrigDataSent"] += sent


def after_read(c: TcpConnection) -> None:
    """The application read: announce a window that grew by a useful amount (§3.8.6.2.2)
    when the last one was small."""
    rb = c.recvbuf
    if c.state not in (TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2):
        return
    if rb.fin_reached:
        return
    threshold = min(rb.capacity // 2, c.mss_send)
    grown = rb.right_edge - c.rcv_adv
    if grown >= threshold and (c.rcv_adv - rb.rcv_nxt) < max(threshold, rb.capacity // 2):
        c.ack_now = True
        c.mib["TcpExtTCPWindowUpdate"] += 1
