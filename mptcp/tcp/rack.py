"""RACK-TLP loss detection (RFC 8985) as a pure state object driven by the engine.

Implements RFC 8985 §6.2 steps 1-5 (min_RTT filter, RACK.segment tracking, reordering
detection, DSACK-adapted reordering window, time-based loss detection and the reordering
timer), §6.3 (losses on RTO), §7.1-§7.4 (TLP state, PTO computation and arming conditions,
probe selection, TLP episode end and the single-loss-repaired detection).

Per-segment state (RFC 8985 §5.2) is the engine's: any object with ``end_seq``, ``xmit_ts``
and ``retransmitted`` attributes (:class:`RackSegment`) will do; times are the floats the
engine passes as ``now`` (seconds), sequence numbers are 64-bit stream offsets
(``mptcp.tcp.seqnum``), ``end_seq`` exclusive.

Engine contract, in the order of RFC 8985 §6.2 for every ACK:

1. :meth:`Rack.on_rtt_sample` for each RFC 6298 / RFC 7323 RTT sample (step 1; also counts
   as "an RTT sample since the last probe" for §7.3).
2. :meth:`Rack.update` with the segments newly cumulatively or selectively acknowledged by
   the ACK (step 2, sorted here by ``xmit_ts``; the engine passes the TSecr as a time).
3. :meth:`Rack.detect_reordering` with the same segments (step 3, sorted here by ``end_seq``).
4. :meth:`Rack.on_ack_dsack` with whether the ACK carried a D-SACK and whether it ended a
   recovery episode (the stateful part of step 4's ``RACK_update_reo_wnd``).
5. :meth:`Rack.detect_loss` over the outstanding segments not SACKed and not already marked
   lost (step 5); mark the returned ones lost; a positive timeout arms the RACK reordering
   timer, whose expiry calls :meth:`Rack.detect_loss` again.
6. :meth:`Rack.tlp_on_ack` (§7.4.2); if it returns :attr:`TlpAck.LOSS_REPAIRED`, invoke the
   congestion response of a fast recovery.

Timers (§8): one engine timer multiplexed between RACK reorder, TLP PTO and RTO; arm the PTO
with :meth:`Rack.pto` when :meth:`Rack.may_arm_pto` allows it, on expiry ask
:meth:`Rack.probe_kind`, send, call :meth:`Rack.on_probe_sent`, then re-arm the RTO.  Reset
TLP with :meth:`Rack.tlp_init` on connection start and on entering fast or RTO recovery.

Choices where the RFC leaves room: min_RTT is a windowed minimum over ``min_rtt_window``
seconds (300 s like Linux's tcp_min_rtt_wlen) kept in four sub-window buckets; a
retransmitted segment is not used for RACK.rtt while min_RTT is unknown (step 2's check
cannot pass); TLP.max_ack_delay defaults to 200 ms; a D-SACK "matches" TLP.end_seq when it
covers the probe's last octet.

Counters: ``TcpExtTCPSACKReorder`` (reordering first seen), ``TcpExtTCPLostRetransmit``,
``TcpExtTCPLossProbes``, ``TcpExtTCPLossProbeRecovery``; not in Linux:
``TcpExtTCPRackLost`` (segments marked lost by §6.2 step 5 or §6.3),
``TcpExtTCPRackReoWndInc`` / ``TcpExtTCPRackReoWndReset`` (step 4 adaptation),
``TcpExtTCPLossProbeSpurious`` (§7.4.2 cases 1 and 2).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable, MutableMapping
from typing import Protocol, TypeVar

__all__ = [
    "Rack", "RackSegment", "RackError", "TlpProbe", "TlpAck", "MinRttFilter", "INFINITE_TS",
    "sent_after",
]

INFINITE_TS = math.inf  # RFC 8985 §5.2: Segment.xmit_ts of a segment not in flight
_BUCKETS = 4


class RackError(ValueError):
    """API misuse (negative RTT sample, bad configuration)."""


class RackSegment(Protocol):
    """The per-segment variables RACK reads (RFC 8985 §5.2); the engine owns them."""

    @property
    def end_seq(self) -> int: ...

    @property
    def xmit_ts(self) -> float: ...

    @property
    def retransmitted(self) -> bool: ...


S = TypeVar("S", bound=RackSegment)


class TlpProbe(enum.Enum):
    """What to send when the PTO fires (RFC 8985 §7.3)."""

    NONE = "none"  # a probe is in flight or no RTT sample since the last one: re-arm RTO
    NEW_DATA = "new_data"  # the lowest-sequence unsent segment
    RETRANSMIT = "retransmit"  # the highest-sequence segment sent (ending at SND.NXT)


class TlpAck(enum.Enum):
    """What an ACK meant for the TLP episode (RFC 8985 §7.4.2)."""

    NONE = "none"  # no episode, or the ACK does not reach TLP.end_seq yet
    DELIVERED = "delivered"  # the new-data probe was acknowledged
    SPURIOUS = "spurious"  # cases 1 (D-SACK) and 2 (DupAck): both copies arrived
    LOSS_REPAIRED = "loss_repaired"  # the probe repaired a loss: congestion response


def sent_after(t1: float, seq1: int, t2: float, seq2: int) -> bool:
    """RFC 8985 §6.2 ``RACK_sent_after``: (t1, seq1) was sent after (t2, seq2); ties in time
    are broken by sequence."""
    return t1 > t2 or (t1 == t2 and seq1 > seq2)


class MinRttFilter:
    """Windowed minimum of RTT samples (RFC 8985 §6.2 step 1): exact per bucket of
    ``window / 4`` seconds, so a path change is forgotten after at most ``window`` seconds."""

    __slots__ = ("_buckets", "_min", "window")

    def __init__(self, window: float) -> None:
        if not window > 0:
            raise RackError(f"min_RTT window must be positive, not {window}")
        self.window = window
        self._buckets: deque[tuple[int, float]] = deque()  # (bucket index, min in bucket)
        self._min: float | None = None  # min over the buckets (they change in update only)

    def update(self, rtt: float, now: float) -> float:
        """Add a sample; returns the windowed minimum."""
        idx = math.floor(now * _BUCKETS / self.window)
        b = self._buckets
        if b and b[-1][0] >= idx:
            if rtt < b[-1][1]:
                b[-1] = (b[-1][0], rtt)
        else:
            b.append((idx, rtt))
        while b[0][0] <= idx - _BUCKETS:
            b.popleft()
        m = b[0][1] if len(b) == 1 else min(m for _, m in b)
        self._min = m
        return m

    @property
    def value(self) -> float | None:
        """The current minimum (None before any sample)."""
        return self._min


class Rack:
    """RACK-TLP per-connection variables (RFC 8985 §5.3) and algorithms."""

    __slots__ = (
        "_min_rtt", "_rtt_since_probe", "counters", "dsack_round", "dup_thresh", "end_seq",
        "fack", "reo_wnd", "reo_wnd_mult", "reo_wnd_persist", "reordering_seen", "rtt",
        "tlp_end_seq", "tlp_is_retrans", "tlp_max_ack_delay", "tlp_min_pto", "xmit_ts",
    )

    def __init__(
        self,
        *,
        min_rtt_window: float = 300.0,
        tlp_max_ack_delay: float = 0.2,
        tlp_min_pto: float = 0.0,
        dup_thresh: int = 3,
        counters: MutableMapping[str, int] | None = None,
    ) -> None:
        if tlp_max_ack_delay < 0 or tlp_min_pto < 0 or dup_thresh < 1:
            raise RackError("bad tlp_max_ack_delay or dup_thresh")
        self.tlp_min_pto = tlp_min_pto
        self.xmit_ts: float | None = None  # RACK.xmit_ts; None until something is delivered
        self.end_seq = 0  # RACK.end_seq
        self.rtt: float | None = None  # RACK.rtt
        self.fack = 0  # RACK.fack
        self.reordering_seen = False
        self.reo_wnd = 0.0
        self.dsack_round: int | None = None
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.tlp_end_seq: int | None = None
        self.tlp_is_retrans = False
        self.tlp_max_ack_delay = tlp_max_ack_delay
        self.dup_thresh = dup_thresh
        self._min_rtt = MinRttFilter(min_rtt_window)
        self._rtt_since_probe = False
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}

    def _bump(self, name: str, n: int = 1) -> None:
        c = self.counters
        c[name] = c.get(name, 0) + n

    # --- step 1 ------------------------------------------------------------------------------
    @property
    def min_rtt(self) -> float | None:
        """RACK.min_RTT (None before the first sample)."""
        return self._min_rtt.value

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        """Step 1: an RTT measurement (RFC 6298 / RFC 7323) was taken."""
        if rtt < 0:
            raise RackError(f"negative RTT sample {rtt}")
        self._min_rtt.update(rtt, now)
        self._rtt_since_probe = True

    # --- step 2 ------------------------------------------------------------------------------
    def update(
        self, delivered: Iterable[RackSegment], now: float, tsecr_ts: float | None = None
    ) -> None:
        """Step 2 ``RACK_update()`` for the segments this ACK newly acknowledged.

        ``tsecr_ts`` is the time (in ``now``'s clock, rounded *up* to the end of its TSval
        clock tick) at which the TSval this ACK echoes was sent; None without timestamps.
        """
        # The RFC's loop visits the segments in transmission order; its outcome is the
        # RACK.rtt of the last one that qualifies and RACK.xmit_ts / end_seq moved to it if
        # it was sent after the current RACK segment: one pass finds that segment.
        min_rtt = self._min_rtt.value
        best: RackSegment | None = None
        best_ts = 0.0
        best_end = 0
        for seg in delivered:
            xmit = seg.xmit_ts
            if xmit == INFINITE_TS:
                continue  # marked lost and not retransmitted since: no timing information
            if seg.retransmitted:
                if tsecr_ts is not None and tsecr_ts < xmit:
                    continue  # acknowledges an earlier transmission
                if min_rtt is None or now - xmit < min_rtt:
                    continue  # too fast to be for the last retransmission
            if best is None or xmit > best_ts or (xmit == best_ts and seg.end_seq > best_end):
                best, best_ts, best_end = seg, xmit, seg.end_seq
        if best is None:
            return
        self.rtt = now - best_ts
        if self.xmit_ts is None or sent_after(best_ts, best_end, self.xmit_ts, self.end_seq):
            self.xmit_ts = best_ts
            self.end_seq = best_end

    # --- step 3 ------------------------------------------------------------------------------
    def detect_reordering(self, delivered: Iterable[RackSegment]) -> bool:
        """Step 3 ``RACK_detect_reordering()``; returns RACK.reordering_seen."""
        # In end_seq order (the RFC's loop) RACK.fack only grows, so a segment is below it
        # exactly when it is below RACK.fack as it was before this ACK: no sorting needed.
        fack = high = self.fack
        reordered = False
        for seg in delivered:
            end = seg.end_seq
            if end > high:
                high = end
            elif end < fack and not seg.retransmitted:
                reordered = True
        self.fack = high
        if reordered:
            if not self.reordering_seen:
                self._bump("TcpExtTCPSACKReorder")
            self.reordering_seen = True
        return self.reordering_seen

    # --- step 4 ------------------------------------------------------------------------------
    def on_ack_dsack(
        self, snd_una: int, snd_nxt: int, dsack: bool, exiting_recovery: bool
    ) -> None:
        """Step 4, the state part of ``RACK_update_reo_wnd()``: once per ACK."""
        if self.dsack_round is not None and snd_una >= self.dsack_round:
            self.dsack_round = None
        if self.dsack_round is None and dsack:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = 16
            self._bump("TcpExtTCPRackReoWndInc")
        elif exiting_recovery:
            self.reo_wnd_persist -= 1
            if self.reo_wnd_persist <= 0 and self.reo_wnd_mult != 1:
                self.reo_wnd_mult = 1
                self._bump("TcpExtTCPRackReoWndReset")

    def compute_reo_wnd(self, in_recovery: bool, segs_sacked: int, srtt: float | None) -> float:
        """Step 4, the value part of ``RACK_update_reo_wnd()`` (also stored in reo_wnd)."""
        min_rtt = self._min_rtt.value
        if not self.reordering_seen and (in_recovery or segs_sacked >= self.dup_thresh):
            wnd = 0.0
        elif min_rtt is None:
            wnd = 0.0  # §3.3.2 rule 1: zero without an RTT estimate
        else:
            wnd = self.reo_wnd_mult * min_rtt / 4
            if srtt is not None:
                wnd = min(wnd, srtt)  # §3.3.2 rule 3: bounded by SRTT
        self.reo_wnd = wnd
        return wnd

    # --- step 5 ------------------------------------------------------------------------------
    def detect_loss(
        self,
        outstanding: Iterable[S],
        now: float,
        *,
        in_recovery: bool,
        segs_sacked: int,
        srtt: float | None,
        time_ordered: bool = False,
    ) -> tuple[list[S], float]:
        """Step 5 ``RACK_detect_loss()``: (segments now lost, reorder timeout).

        ``outstanding`` are the segments neither acknowledged nor SACKed (already lost ones
        with ``xmit_ts == INFINITE_TS`` are skipped).  With ``time_ordered`` they come in
        ascending ``xmit_ts`` order and the scan stops at the first segment not sent before
        RACK.segment (the §6.2 optimization).  The engine sets Segment.lost and
        Segment.xmit_ts = INFINITE_TS on each returned segment; a timeout > 0 arms the RACK
        reordering timer for that many seconds.
        """
        reo_wnd = self.compute_reo_wnd(in_recovery, segs_sacked, srtt)
        lost: list[S] = []
        rack_ts, rack_end, rtt = self.xmit_ts, self.end_seq, self.rtt
        if rack_ts is None or rtt is None:
            return lost, 0.0
        timeout = 0.0
        for seg in outstanding:
            xmit = seg.xmit_ts
            if xmit == INFINITE_TS:
                continue  # already lost, not retransmitted since
            if rack_ts > xmit or (rack_ts == xmit and rack_end > seg.end_seq):
                remaining = xmit + rtt + reo_wnd - now
                if remaining <= 0:
                    lost.append(seg)
                    if seg.retransmitted:
                        self._bump("TcpExtTCPLostRetransmit")
                else:
                    timeout = max(remaining, timeout)
            elif time_ordered:
                break
        if lost:
            self._bump("TcpExtTCPRackLost", len(lost))
        return lost, timeout

    # --- §6.3 --------------------------------------------------------------------------------
    def mark_losses_on_rto(self, outstanding: Iterable[S], now: float) -> list[S]:
        """§6.3 ``RACK_mark_losses_on_RTO()``: the segment holding SND.UNA (the lowest
        ``end_seq`` passed) and every segment sent more than RACK.rtt + RACK.reo_wnd ago."""
        segs = list(outstanding)
        if not segs:
            return []
        first = min(segs, key=lambda s: s.end_seq)
        rtt = self.rtt
        lost = [
            s for s in segs
            if s is first or (rtt is not None and s.xmit_ts + rtt + self.reo_wnd - now <= 0)
        ]
        self._bump("TcpExtTCPRackLost", len(lost))
        return lost

    # --- TLP §7 ------------------------------------------------------------------------------
    def tlp_init(self) -> None:
        """§7.1 ``TLP_init()``: connection start, entering fast recovery or RTO recovery."""
        self.tlp_end_seq = None
        self.tlp_is_retrans = False

    @staticmethod
    def may_arm_pto(in_recovery: bool, segs_sacked: int) -> bool:
        """§7.2: after sending new data (not a probe) or an ACK cumulatively acknowledging new
        data, (re)start the PTO unless in fast/RTO recovery or some segment is SACKed."""
        return not in_recovery and segs_sacked == 0

    def pto(
        self, now: float, srtt: float | None, flight_is_one_segment: bool,
        rto_expiration: float | None,
    ) -> float:
        """§7.2 ``TLP_calc_PTO()``: the PTO interval in seconds (>= 0)."""
        if srtt is not None:
            pto = max(2 * srtt, self.tlp_min_pto)
            if flight_is_one_segment:
                pto += self.tlp_max_ack_delay
        else:
            pto = 1.0
        if rto_expiration is not None and now + pto > rto_expiration:
            pto = max(0.0, rto_expiration - now)
        return pto

    def probe_kind(self, new_data_sendable: bool) -> TlpProbe:
        """§7.3: what the loss probe is, given whether a previously unsent segment exists
        and fits the peer's receive window.  Pure; :meth:`on_probe_sent` records it."""
        if self.tlp_end_seq is not None or not self._rtt_since_probe:
            return TlpProbe.NONE
        return TlpProbe.NEW_DATA if new_data_sendable else TlpProbe.RETRANSMIT

    def on_probe_sent(self, snd_nxt: int, retransmission: bool) -> None:
        """§7.3: the probe went out; ``snd_nxt`` is SND.NXT after sending it."""
        self.tlp_end_seq = snd_nxt
        self.tlp_is_retrans = retransmission
        self._rtt_since_probe = False
        self._bump("TcpExtTCPLossProbes")

    def tlp_on_ack(
        self, ack: int, dsack: tuple[int, int] | None, dupack_without_sack: bool
    ) -> TlpAck:
        """§7.4.2 ``TLP_process_ack()`` for every ACK (``ack`` as an offset)."""
        end = self.tlp_end_seq
        if end is None or ack < end:
            return TlpAck.NONE
        if not self.tlp_is_retrans:
            self.tlp_end_seq = None
            return TlpAck.DELIVERED
        if dsack is not None and dsack[0] < end <= dsack[1]:
            self.tlp_end_seq = None  # case 1
            self._bump("TcpExtTCPLossProbeSpurious")
            return TlpAck.SPURIOUS
        if ack > end:
            self.tlp_end_seq = None
            self._bump("TcpExtTCPLossProbeRecovery")
            return TlpAck.LOSS_REPAIRED
        if dupack_without_sack:
            self.tlp_end_seq = None  # case 2
            self._bump("TcpExtTCPLossProbeSpurious")
            return TlpAck.SPURIOUS
        return TlpAck.NONE
