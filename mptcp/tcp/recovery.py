"""Loss detection and repair, RTT sampling and the per-segment transmission records.

Three detection modes, chosen per connection:

- SACK negotiated, ``recovery="rack"`` (default): RFC 8985 RACK-TLP (rack.py) marks segments
  lost by time; TLP probes (§7) repair tail losses; the SACK scoreboard (scoreboard.py)
  validates SACK blocks and finds newly SACKed and D-SACKed ranges.
- SACK negotiated, ``recovery="dupack"``: RFC 6675 §5 -- recovery starts on DupThresh
  duplicate ACKs or IsLost(SND.UNA); every unSACKed segment below the IsLost boundary is
  retransmitted (NextSeg rule 1), then new data (rule 2).  Rules 3-4 are not used.
- No SACK: RFC 5681 §3.2 fast retransmit with RFC 6582 NewReno fast recovery (partial ACKs
  retransmit the next hole; cwnd inflation / deflation kept here, the controller's cwnd
  stays at ssthresh), RFC 3042 limited transmit.

In every mode a retransmission timeout (RFC 6298 §5.4-§5.6) marks outstanding segments lost
(RFC 8985 §6.3 with RACK; everything not SACKed otherwise, RFC 6675 §5.1 / RFC 5681 §3.1
go-back-N) and the first one is resent at once, the rest as the (slow-starting) cwnd allows.

Sending is limited by cwnd against ``pipe`` = bytes of segments neither SACKed nor marked
lost (retransmitted ones count again, RFC 6675 §4 SetPipe); NewReno uses FlightSize.
Congestion control (cc/) is told about every reduction; ``cc_recover`` (SND.NXT at the time)
ends the episode when cumulatively acknowledged (RFC 6582 §3.2 step 3).

RTT samples (RFC 6298 §3 Karn, RFC 7323 §4 RTTM): from TSecr when timestamps are on and the
ACK advanced SND.UNA, else from the newest cumulatively acknowledged segment that was never
retransmitted.

Cost: the in-flight records are an append-only list with lazy deletion (leaving the flight is
O(1), RACK's walk from the oldest skips departed records once), so an ACK of a loss-free
transfer costs O(segments it acknowledges); :func:`fast_ack` and :func:`idle_ack` are the
paths of the commonest ACKs (header prediction, input.py) with the effects of :func:`on_ack`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mptcp.tcp import output, timers
from mptcp.tcp.events import DataAcked
from mptcp.tcp.hooks import SegmentKind
from mptcp.tcp.rack import INFINITE_TS, Rack, TlpAck, TlpProbe
from mptcp.tcp.scoreboard import AckOutcome
from mptcp.wire.options import Timestamps

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection
    from mptcp.tcp.output import Plan
    from mptcp.wire.segment import Segment

__all__ = ["TxSeg", "RecoveryState", "cwnd_room", "retransmit", "after_send", "on_ack",
           "ack_is_idle", "on_idle_ack", "idle_ack", "fast_ack",
           "on_rto", "on_tlp_timer", "on_reorder_timer", "ecn_echo", "handshake_rtt",
           "after_establish"]


class TxSeg:
    """One transmitted range (RFC 8985 §5.2 per-segment variables, plus SACK / loss marks)."""

    __slots__ = ("end_seq", "flight_at", "lost", "retransmitted", "sacked", "start", "xmit_ts")

    def __init__(self, start: int, end: int, now: float, retransmitted: bool) -> None:
        self.start = start
        self.end_seq = end
        self.xmit_ts = now
        self.retransmitted = retransmitted
        self.lost = False
        self.sacked = False
        self.flight_at = -1  # index of its entry in RecoveryState.flight; -1: not in flight

    def __repr__(self) -> str:
        marks = "".join(m for m, f in (("R", self.retransmitted), ("L", self.lost),
                                        ("S", self.sacked)) if f)
        return f"TxSeg[{self.start},{self.end_seq}){marks}"


class RecoveryState:
    """The sender's outstanding segments and loss-recovery variables."""

    def __init__(self, c: TcpConnection) -> None:
        self.c = c
        cfg = c.config
        self.segs: list[TxSeg] = []  # outstanding, by sequence, contiguous
        self.starts: list[int] = []
        # In flight = neither SACKed nor lost, in transmission order.  An append-only list
        # whose entry i is live when ``flight[i].flight_at == i`` (a segment leaving the
        # flight, or sent again, leaves a dead entry behind), compacted now and then: leaving
        # is O(1) and walking from the oldest (RACK, RFC 8985 §6.2 step 5) skips the dead
        # prefix once -- no per-ACK scan of departed records.
        self.flight: list[TxSeg] = []
        self.flight_head = 0  # entries before it are dead
        self.flight_live = 0
        self.pipe = 0  # bytes in flight
        self.lost: dict[TxSeg, None] = {}  # marked lost, not retransmitted since
        self.sacked_segs = 0
        self.rack = Rack(counters=c.mib, dup_thresh=cfg.dupthresh,
                         tlp_min_pto=cfg.tlp_min_pto)
        self.fast_recovery = False
        self.rto_recovery = False  # RFC 8985 §7.2: no PTO until the RTO episode ends
        self.recovery_point = 0
        self.force_one = False  # RTO: resend the first lost segment whatever cwnd says
        self.reduced_at = -1.0  # when the window was last reduced (RFC 8985 §9.3)
        # NewReno (RFC 6582) / limited transmit (RFC 3042)
        self.dupacks = 0
        self.recover = 0
        self.inflate = 0
        self.limited = 0
        self.cwnd_limited = False

    @property
    def mode(self) -> str:
        c = self.c
        if not c.sack_ok:
            return "newreno"
        return c.config.recovery

    def reset(self, at: int) -> None:
        """Forget every record (the sender rewound SND.NXT to ``at``)."""
        for seg in self.segs:
            seg.flight_at = -1
        self.segs.clear()
        self.starts.clear()
        self.flight.clear()
        self.flight_head = self.flight_live = 0
        self.lost.clear()
        self.pipe = 0
        self.sacked_segs = 0
        self.fast_recovery = False
        self.rto_recovery = False
        self.recovery_point = at

    def tlp_init(self) -> None:
        self.rack.tlp_init()

    def has_work(self) -> bool:
        return bool(self.lost)

    # ----------------------------------------------------------------- flight ------------
    def in_flight(self) -> Iterator[TxSeg]:
        """The segments in flight, oldest transmission first."""
        fl = self.flight
        i = self.flight_head
        n = len(fl)
        while i < n and fl[i].flight_at != i:
            i += 1
        self.flight_head = i
        while i < n:
            seg = fl[i]
            if seg.flight_at == i:
                yield seg
            i += 1

    def _enter_flight(self, seg: TxSeg) -> None:
        fl = self.flight
        if len(fl) > 64 and len(fl) > 2 * self.flight_live:
            self._rebuild_flight(list(self.in_flight()))
            fl = self.flight
        seg.flight_at = len(fl)
        fl.append(seg)
        self.flight_live += 1
        self.pipe += seg.end_seq - seg.start

    def _rebuild_flight(self, live: list[TxSeg]) -> None:
        for i, seg in enumerate(live):
            seg.flight_at = i
        self.flight = live
        self.flight_head = 0
        self.flight_live = len(live)

    # ----------------------------------------------------------------- records -----------
    def _split(self, at: int) -> None:
        """Make ``at`` a segment boundary."""
        k = bisect_right(self.starts, at) - 1
        if k < 0:
            return
        seg = self.segs[k]
        if not seg.start < at < seg.end_seq:
            return
        new = TxSeg(at, seg.end_seq, seg.xmit_ts, seg.retransmitted)
        new.lost, new.sacked = seg.lost, seg.sacked
        seg.end_seq = at
        self.segs.insert(k + 1, new)
        self.starts.insert(k + 1, at)
        if seg.flight_at >= 0:
            items = sorted([*self.in_flight(), new], key=lambda s: (s.xmit_ts, s.start))
            self._rebuild_flight(items)
        if seg in self.lost:
            self.lost[new] = None
        if seg.sacked:
            self.sacked_segs += 1

    def _range(self, start: int, end: int) -> list[TxSeg]:
        self._split(start)
        self._split(end)
        i = bisect_right(self.starts, start) - 1
        i = max(i, 0)
        out = []
        segs = self.segs
        while i < len(segs) and segs[i].start < end:
            if segs[i].end_seq > start:
                out.append(segs[i])
            i += 1
        return out

    def _leave_flight(self, seg: TxSeg) -> None:
        if seg.flight_at >= 0:
            seg.flight_at = -1
            self.flight_live -= 1
            self.pipe -= seg.end_seq - seg.start

    def on_transmit(self, start: int, end: int, now: float, retrans: bool) -> None:
        """Record a transmission of ``[start, end)``."""
        segs = self.segs
        if not segs or start >= segs[-1].end_seq:
            seg = TxSeg(start, end, now, retrans)
            segs.append(seg)
            self.starts.append(start)
            self._enter_flight(seg)
            return
        for seg in self._range(start, end):
            self._leave_flight(seg)
            self.lost.pop(seg, None)
            seg.lost = False
            seg.xmit_ts = now
            seg.retransmitted = True
            if not seg.sacked:
                self._enter_flight(seg)
        if end > segs[-1].end_seq:  # a retransmission reaching into new data
            self.on_transmit(segs[-1].end_seq, end, now, False)

    def mark_lost(self, seg: TxSeg) -> None:
        if seg.sacked or seg.lost:
            return
        self._leave_flight(seg)
        seg.lost = True
        seg.xmit_ts = INFINITE_TS
        self.lost[seg] = None

    def cum_ack(self, ack: int) -> list[TxSeg]:
        """Drop the records below ``ack``; returns those newly delivered."""
        segs = self.segs
        starts = self.starts
        k = bisect_left(starts, ack)  # records are contiguous: those starting below end there
        if k and segs[k - 1].end_seq > ack:  # ``ack`` inside a record: make it a boundary
            self._split(ack)
            k = bisect_left(starts, ack)
        done = segs[:k]
        del segs[:k]
        del starts[:k]
        delivered = []
        lost = self.lost
        for seg in done:
            if seg.flight_at >= 0:
                seg.flight_at = -1
                self.flight_live -= 1
                self.pipe -= seg.end_seq - seg.start
            if lost:
                lost.pop(seg, None)
            if seg.sacked:
                self.sacked_segs -= 1
            else:
                delivered.append(seg)
        return delivered

    def sack(self, ranges: tuple[tuple[int, int], ...]) -> list[TxSeg]:
        """Mark the segments inside newly SACKed ranges; returns them."""
        out = []
        for s, e in ranges:
            for seg in self._range(s, e):
                if not seg.sacked and seg.start >= s and seg.end_seq <= e:
                    self._leave_flight(seg)
                    self.lost.pop(seg, None)
                    seg.sacked = True
                    self.sacked_segs += 1
                    out.append(seg)
        return out


# --------------------------------------------------------------------------- helpers ------
def cwnd_room(c: TcpConnection) -> int:
    """Bytes of new data cwnd allows now."""
    r = c.rec
    if r.mode == "newreno":
        return c.cc.cwnd + r.inflate + r.limited - c.flight_size
    return c.cc.cwnd - r.pipe


def _reduce(c: TcpConnection, now: float, reason: str) -> bool:
    # The bytes in flight the reduction is computed from (RFC 5681 eq. 4, RFC 9438 §4.6):
    # SND.NXT - SND.UNA, but never more than cwnd -- after SACKs and losses that difference
    # counts data no longer in the network, and a "reduction" from it would raise cwnd
    # (RFC 9438 §4.6 allows cwnd as long as cwnd cannot grow past what is in flight).
    flight = min(c.flight_size, c.cc.cwnd)
    done = c.cc.on_congestion_event(now, flight, reason)  # type: ignore[arg-type]
    if done:
        c.cc_recover = c.snd_nxt
        c.rec.reduced_at = now
    return done


def _lost_retransmission(c: TcpConnection, now: float) -> None:
    """RFC 8985 §9.3 (without PRR, RFC 6937): a lost retransmission MUST trigger an
    additional congestion response -- RFC 5681's principle that the loss of a retransmission
    is a second indication of congestion.  The current episode ends and a new one starts
    (new recovery point, window reduced again); :func:`_rack_detect` calls this only for a
    retransmission sent after the last reduction, so it happens at most once per window.
    Without it a window left above the path's capacity by slow-start overshoot keeps the
    bottleneck queue full, and every retransmission (sent into a full drop-tail queue)
    is lost again."""
    r = c.rec
    c.cc.on_recovery_exit(now)
    c.cc_recover = None
    if _reduce(c, now, "loss"):
        r.recovery_point = c.snd_nxt
        c.mib["TcpExtTCPLostRetransmitReduction"] += 1


def idle_ack(c: TcpConnection) -> bool:
    """:func:`on_idle_ack` if :func:`ack_is_idle` (one call for both); False, having done
    nothing, otherwise."""
    r = c.rec
    if c.snd_nxt != c.snd_una or r.fast_recovery or r.rack.tlp_end_seq is not None \
            or not c.sb.quiet:
        return False
    if c.sack_ok and c.config.recovery == "rack":
        rack = r.rack
        if rack.dsack_round is not None and c.snd_una >= rack.dsack_round:
            rack.dsack_round = None
        rack.compute_reo_wnd(r.fast_recovery, r.sacked_segs, c.rtt.srtt)
        c.t_reorder = None
    return True


def ack_is_idle(c: TcpConnection) -> bool:
    """Whether :func:`on_ack` for an ACK of SND.UNA without SACK blocks that is no duplicate
    ACK would only do what :func:`on_idle_ack` does: nothing outstanding, no recovery, no
    TLP episode, an empty scoreboard."""
    r = c.rec
    sb = c.sb
    return (c.snd_nxt == c.snd_una and not r.fast_recovery and r.rack.tlp_end_seq is None
            and not sb.in_recovery and not sb.sack_ranges)


def on_idle_ack(c: TcpConnection) -> None:
    """``on_ack(c, seg, c.snd_una, [], False, now)`` when :func:`ack_is_idle` (the receiving
    side of a one-way transfer, for every data segment): with no segment delivered and none
    in flight only RACK's D-SACK round, reo_wnd (RFC 8985 §6.2 step 4) and the reordering
    timer (step 5: nothing left to wait for) are touched."""
    if not c.sack_ok or c.config.recovery != "rack":
        return  # NewReno / RFC 6675: nothing changes
    r = c.rec
    rack = r.rack
    if rack.dsack_round is not None and c.snd_una >= rack.dsack_round:
        rack.dsack_round = None
    rack.compute_reo_wnd(r.fast_recovery, r.sacked_segs, c.rtt.srtt)
    c.t_reorder = None


def handshake_rtt(c: TcpConnection, seg: Segment, now: float) -> None:
    """The first RTT sample, from the SYN / SYN-ACK exchange (Karn: none if retransmitted,
    unless a timestamp echo gives it)."""
    rtt = _ts_rtt(c, seg, now)
    if rtt is None and c.syn_retransmits == 0 and c.syn_time is not None:
        rtt = now - c.syn_time
    if rtt is not None:
        c.rtt.sample(rtt, now)
        c.rec.rack.on_rtt_sample(rtt, now)
        c.mib["TcpExtTCPMinRTTSample"] += 1


def _ts_rtt(c: TcpConnection, seg: Segment, now: float) -> float | None:
    if not c.ts_ok:
        return None
    for opt in seg.tcp.options:
        if type(opt) is Timestamps:
            ticks = (c.tsval(now) - opt.tsecr) & 0xFFFFFFFF
            if ticks < 0x7FFFFFFF:
                return ticks / c.config.ts_hz
    return None


def after_establish(c: TcpConnection) -> None:
    c.rec.recovery_point = c.snd_una


def after_send(c: TcpConnection, now: float, sent_new: bool) -> None:
    """Bookkeeping after a burst: cwnd-limited flag; the PTO is (re)started after new data
    was sent (RFC 8985 §7.2)."""
    r = c.rec
    cwnd = c.cc.cwnd
    flight = c.flight_size
    r.cwnd_limited = (flight * 2 >= cwnd) if c.cc.in_slow_start else (flight + c.smss >= cwnd)
    if sent_new:
        c.t_tlp = None
        _arm_tlp(c, now)


def _arm_tlp(c: TcpConnection, now: float) -> None:
    r = c.rec
    cfg = c.config
    flight = c.snd_nxt - c.snd_una
    if not (cfg.tlp and c.sack_ok and cfg.recovery == "rack") or not flight \
            or c.snd_wnd == 0:
        c.t_tlp = None
        return
    if c.t_tlp is not None and c.t_tlp > now:
        return
    if r.rto_recovery and c.snd_una >= r.recovery_point:
        r.rto_recovery = False
    if not r.rack.may_arm_pto(r.fast_recovery or r.rto_recovery or bool(r.lost),
                              r.sacked_segs):
        c.t_tlp = None
        return
    pto = r.rack.pto(now, c.rtt.srtt, flight <= c.smss, c.t_rto)
    c.t_tlp = now + pto


# --------------------------------------------------------------------------- sending ------
def retransmit(c: TcpConnection, now: float, out: list[Segment], plan: Plan, mss: int) -> None:
    """Send the segments marked lost, lowest first, as cwnd allows (the first one after an
    RTO or a fast retransmit regardless)."""
    send_range = output.send_range
    r = c.rec
    if not r.lost:
        return
    newreno = r.mode == "newreno"
    for seg in sorted(r.lost, key=lambda s: s.start):
        if seg not in r.lost:
            continue
        start = seg.start
        while start < seg.end_seq:
            end = min(seg.end_seq, start + mss)
            if not (r.force_one or newreno) and c.cc.cwnd - r.pipe < end - start:
                return
            reason = "rto" if r.force_one else ("fast" if newreno else r.mode)
            r.force_one = False
            if not send_range(c, start, end, now, out, plan, reason):
                return
            start = end
        if newreno and cwnd_room(c) <= 0:
            return


# --------------------------------------------------------------------------- ACKs ---------
def on_ack(c: TcpConnection, seg: Segment, ack: int, blocks: list[tuple[int, int]],
           dupack: bool, now: float) -> None:
    """Everything an acceptable ACK means for the sender (called by input.py with ``ack``
    already checked: SND.UNA - MAX.SND.WND =< ack =< SND.NXT)."""
    r = c.rec
    acked = ack - c.snd_una
    delivered: list[TxSeg] = []
    rtt: float | None = None
    if acked > 0:
        delivered = r.cum_ack(ack)
        freed = c.sendbuf.ack_to(ack)
        ts_rtt = _ts_rtt(c, seg, now)
        if ts_rtt is not None:
            rtt = ts_rtt
            # RFC 7323 Appendix G: ExpectedSamples = ceiling(FlightSize / (SMSS * 2))
            c.rtt.sample(rtt, now, from_timestamp=True, expected_samples=max(
                1, -(-max(c.snd_nxt - c.snd_una, 1) // (2 * c.smss))))
        else:
            timed = [s for s in delivered if s.xmit_ts != INFINITE_TS]
            if timed:
                last = max(timed, key=lambda s: s.xmit_ts)
                sample = now - last.xmit_ts
                if c.rtt.sample(sample, now, retransmitted=last.retransmitted):
                    rtt = sample
        if rtt is not None:
            r.rack.on_rtt_sample(rtt, now)
            c.mib["TcpExtTCPMinRTTSample"] += 1
        c.snd_una = ack
        c.retries = 0
        c.unacked_since = now
        c.mib["TcpExtTCPHPAcks"] += 1
        if c.ext_evt:
            c.notify(DataAcked(ack, freed))
        if c.sendbuf_was_full:
            c.notify_send_space()
    # SACK scoreboard (offsets from 1: the SYN is not in it)
    outcome: AckOutcome | None = None
    if c.snd_una >= 1:
        sb = c.sb
        outcome = sb.on_ack(max(ack, sb.snd_una), blocks)
        if outcome.sacked:
            delivered += r.sack(outcome.sacked)
            c.mib["TcpExtTCPSackShifted"] += len(outcome.sacked)
    dsack = outcome.dsack if outcome is not None else None
    in_flight_before = c.snd_nxt - c.snd_una
    mode = c.config.recovery if c.sack_ok else "newreno"
    if mode == "newreno":
        _newreno(c, acked, dupack, now)
    else:
        if r.fast_recovery and c.snd_una >= r.recovery_point:
            r.fast_recovery = False
        if mode == "rack":
            _rack(c, delivered, outcome, now)
        elif outcome is not None:
            _rfc6675(c, outcome, now)
        tlp = r.rack.tlp_on_ack(ack, dsack, dupack and not blocks) if mode == "rack" \
            else TlpAck.NONE
        if tlp is TlpAck.LOSS_REPAIRED:
            _reduce(c, now, "loss")
    # congestion control
    if acked > 0:
        if c.cc_recover is not None and c.snd_una >= c.cc_recover:
            c.cc_recover = None
            c.cc.on_recovery_exit(now, c.flight_size)
        c.cc.on_ack(now, acked, in_flight_before, rtt, not r.cwnd_limited)
        if c.snd_una >= c.snd_nxt:
            c.t_rto = None  # RFC 6298 §5.2
            c.t_tlp = None
        else:
            timers.arm_rto(c, now)  # §5.3
            c.t_tlp = None
            _arm_tlp(c, now)


def fast_ack(c: TcpConnection, ack: int, tsecr: int, now: float) -> bool:
    """:func:`on_ack` for an ACK of new data (SND.UNA < ack =< SND.NXT) without SACK blocks,
    echoing ``tsecr``, in the common state: RACK-TLP, no recovery, nothing SACKed or lost, no
    TLP episode or D-SACK round, no congestion episode to end, no extension listening.  The
    same effects in the same order, minus the branches that state makes idle.  Returns False,
    having changed nothing, when it does not apply (then on_ack must be called)."""
    r = c.rec
    rack = r.rack
    sb = c.sb
    cfg = c.config
    if not (c.sack_ok and cfg.recovery == "rack") or r.fast_recovery or r.lost \
            or r.sacked_segs or rack.tlp_end_seq is not None \
            or rack.dsack_round is not None or c.cc_recover is not None or c.ext_evt \
            or not sb.quiet:
        return False
    ticks = (c.tsval(now) - tsecr) & 0xFFFFFFFF
    if ticks >= 0x7FFFFFFF:
        return False  # no RTT sample from the echo: the general path times the segments
    snd_una = c.snd_una
    snd_nxt = c.snd_nxt
    acked = ack - snd_una
    delivered = r.cum_ack(ack)
    c.sendbuf.ack_to(ack)
    rtt = ticks / cfg.ts_hz
    # RFC 7323 Appendix G: ExpectedSamples = ceiling(FlightSize / (SMSS * 2))
    flight = snd_nxt - snd_una
    c.rtt.sample(rtt, now, from_timestamp=True,
                 expected_samples=max(1, -(-(flight if flight > 1 else 1) // (2 * c.smss))))
    rack.on_rtt_sample(rtt, now)
    c.mib["TcpExtTCPMinRTTSample"] += 1
    c.snd_una = ack
    c.retries = 0
    c.unacked_since = now
    c.mib["TcpExtTCPHPAcks"] += 1
    if c.sendbuf_was_full:
        c.notify_send_space()
    sb.advance(ack)  # sb.on_ack(max(ack, SND.UNA of the scoreboard), ()) when quiet
    # RFC 8985 §6.2 steps 2-5 (step 4's D-SACK part has nothing to do in this state)
    rack.update(delivered, now, None)
    rack.detect_reordering(delivered)
    _rack_detect(c, now)
    c.cc.on_ack(now, acked, snd_nxt - ack, rtt, not r.cwnd_limited)
    if ack >= snd_nxt:
        c.t_rto = None  # RFC 6298 §5.2
        c.t_tlp = None
    else:
        timers.arm_rto(c, now)  # §5.3
        c.t_tlp = None
        _arm_tlp(c, now)
    return True


def _newreno(c: TcpConnection, acked: int, dupack: bool, now: float) -> None:
    r = c.rec
    smss = c.smss
    if acked > 0:
        r.limited = 0
        if r.fast_recovery:
            if c.snd_una >= r.recover:  # full ACK, RFC 6582 §3.2 step 3
                r.fast_recovery = False
                r.inflate = 0
                r.dupacks = 0
            else:  # partial ACK, step 4: retransmit the next hole, deflate
                c.mib["TcpExtTCPPartialAck"] += 1
                _mark_first_lost(c)
                r.inflate = max(0, r.inflate - acked) + smss
        else:
            r.dupacks = 0
        return
    if not dupack:
        return
    if r.fast_recovery:
        r.inflate += smss  # step 3: each further duplicate ACK inflates
        return
    r.dupacks += 1
    if r.dupacks < c.config.dupthresh:
        r.limited = r.dupacks * smss  # RFC 3042
        return
    if r.dupacks == c.config.dupthresh and (c.snd_una > r.recover or r.recover == 0
                                            or c.snd_una == r.recover):
        # RFC 6582 §3.2 step 2 / RFC 5681 §3.2: fast retransmit, enter fast recovery
        r.recover = c.snd_nxt
        r.fast_recovery = True
        r.limited = 0
        r.inflate = c.config.dupthresh * smss
        _reduce(c, now, "loss")
        c.mib["TcpExtTCPRenoRecovery"] += 1
        c.mib["TcpExtTCPFastRetrans"] += 1
        _mark_first_lost(c)


def _mark_first_lost(c: TcpConnection) -> None:
    r = c.rec
    if r.segs:
        end = min(r.segs[0].end_seq, r.segs[0].start + c.smss)
        for seg in r._range(r.segs[0].start, end):
            r.mark_lost(seg)


def _enter_recovery(c: TcpConnection, now: float) -> None:
    r = c.rec
    r.fast_recovery = True
    r.recovery_point = c.snd_nxt
    r.rack.tlp_init()
    c.t_tlp = None
    _reduce(c, now, "loss")
    c.mib["TcpExtTCPSACKRecovery"] += 1
    c.mib["TcpExtTCPFastRetrans"] += 1


def _rack(c: TcpConnection, delivered: list[TxSeg], outcome: AckOutcome | None,
          now: float) -> None:
    """RFC 8985 §6.2 steps 2-5 for one ACK."""
    r = c.rec
    rack = r.rack
    tsecr_ts = None
    rack.update(delivered, now, tsecr_ts)
    rack.detect_reordering(delivered)
    exiting = outcome is not None and outcome.recovery_exited
    if outcome is not None and outcome.dsack is not None and not rack.reordering_seen:
        # A D-SACK shows a spurious retransmission: the original was reordered, not lost
        # (RFC 3708 §3 reasoning; RFC 8985 §6.2 step 3 alone misses a retransmitted segment)
        rack.reordering_seen = True
        c.mib["TcpExtTCPSACKReorder"] += 1
    rack.on_ack_dsack(c.snd_una, c.snd_nxt, outcome is not None and outcome.dsack is not None,
                      exiting)
    _rack_detect(c, now)


def _rack_detect(c: TcpConnection, now: float) -> None:
    r = c.rec
    rack = r.rack
    if rack.xmit_ts is not None and rack.rtt is not None:
        fl = r.flight
        i = r.flight_head
        n = len(fl)
        while i < n and fl[i].flight_at != i:
            i += 1
        r.flight_head = i
        if i == n or (fl[i].xmit_ts > rack.xmit_ts or (
                fl[i].xmit_ts == rack.xmit_ts and fl[i].end_seq >= rack.end_seq)):
            # The oldest segment in flight was not sent before the RACK segment, so neither
            # was any other: detect_loss's scan would stop there and find nothing (but it
            # computes RACK.reo_wnd first).
            rack.compute_reo_wnd(r.fast_recovery, r.sacked_segs, c.rtt.srtt)
            c.t_reorder = None
            return
    lost, timeout = r.rack.detect_loss(
        r.in_flight(), now, in_recovery=r.fast_recovery, segs_sacked=r.sacked_segs,
        srtt=c.rtt.srtt, time_ordered=True)
    reduced_at = r.reduced_at
    rexmit_lost = False
    for seg in lost:
        if seg.retransmitted and seg.xmit_ts > reduced_at:
            rexmit_lost = True  # a retransmission sent after the last reduction
        r.mark_lost(seg)
    c.t_reorder = now + timeout if timeout > 0 else None
    if lost and not r.fast_recovery:
        _enter_recovery(c, now)
    elif rexmit_lost:
        _lost_retransmission(c, now)


def _rfc6675(c: TcpConnection, outcome: AckOutcome, now: float) -> None:
    """RFC 6675 §5: enter on DupThresh / IsLost(SND.UNA); mark IsLost segments lost."""
    r = c.rec
    if outcome.enter_recovery and not r.fast_recovery:
        _enter_recovery(c, now)
        _mark_first_lost(c)
    if r.fast_recovery:
        boundary = c.sb.lost_boundary()
        for seg in list(r.in_flight()):
            if seg.start < boundary and not seg.retransmitted:
                r.mark_lost(seg)


# --------------------------------------------------------------------------- timers -------
def on_rto(c: TcpConnection, now: float) -> None:
    """RFC 6298 §5.4-§5.6 data retransmission timeout (the give-up check is the caller's)."""
    r = c.rec
    c.mib["TcpExtTCPTimeouts"] += 1
    c.rtt.backoff(now)
    c.cc.on_rto(now, c.flight_size)
    c.cc_recover = c.snd_nxt
    r.reduced_at = now
    outstanding = [s for s in r.segs if not s.sacked]
    if r.mode == "rack":
        lost = r.rack.mark_losses_on_rto([s for s in outstanding if not s.lost], now)
        for seg in lost:
            r.mark_lost(seg)
    for seg in outstanding if r.mode != "rack" else outstanding[:1]:
        r.mark_lost(seg)
    c.sb.on_rto()
    r.fast_recovery = False
    r.rto_recovery = True
    r.recovery_point = c.snd_nxt
    r.dupacks = 0
    r.inflate = 0
    r.limited = 0
    r.recover = c.snd_nxt
    r.force_one = True
    r.rack.tlp_init()
    c.t_tlp = None
    c.t_reorder = None
    c.mib["TcpExtTCPSlowStartRetrans"] += 1


def on_tlp_timer(c: TcpConnection, now: float, out_probe: list[tuple[int, int]]) -> None:
    """RFC 8985 §7.3: the PTO fired; appends the range to probe (new data or the last
    segment) to ``out_probe``; the caller sends it and calls ``probe_sent``."""
    r = c.rec
    unsent = c.sendbuf.end - c.snd_nxt
    wnd_ok = c.snd_una + c.snd_wnd - c.snd_nxt > 0
    kind = r.rack.probe_kind(unsent > 0 and wnd_ok)
    # one segment's payload with the options data segments carry now (extensions included)
    mss = output.max_payload(c, output.plan_options(c, SegmentKind.DATA))
    if kind is TlpProbe.NEW_DATA:
        n = min(unsent, mss, c.snd_una + c.snd_wnd - c.snd_nxt)
        if c.seg_boundary is not None:
            n = max(1, min(n, c.seg_boundary(c.snd_nxt)))  # one extension unit (hooks)
        out_probe.append((c.snd_nxt, c.snd_nxt + n))
    elif kind is TlpProbe.RETRANSMIT and r.segs:
        last = r.segs[-1]
        out_probe.append((max(last.start, last.end_seq - mss), last.end_seq))


def on_reorder_timer(c: TcpConnection, now: float) -> None:
    """RFC 8985 §6.2 step 5: the reordering timer fired; detect losses again."""
    c.t_reorder = None
    c.mib["TcpExtTCPRackReoTimeout"] += 1
    _rack_detect(c, now)


def ecn_echo(c: TcpConnection, now: float) -> None:
    """RFC 3168 §6.1.2: an ECE (or an extension's congestion signal): reduce once per
    window, then send CWR."""
    c.mib["TcpExtTCPECNEcho"] += 1
    if _reduce(c, now, "ecn"):
        c.cwr_pending = True
