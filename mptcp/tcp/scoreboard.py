"""The SACK scoreboard of a TCP sender and the RFC 6675 loss recovery bookkeeping.

Implements, over 64-bit stream offsets (``mptcp.tcp.seqnum``):

* RFC 6675 §3 the scoreboard and §4 ``Update()`` (:meth:`Scoreboard.on_ack`), ``IsLost()``
  (:meth:`Scoreboard.is_lost`), ``SetPipe()`` (:attr:`Scoreboard.pipe`), ``NextSeg()``
  rules 1-5 (:meth:`Scoreboard.next_seg`);
* RFC 6675 §2 the duplicate-ACK definition and §5 the DupAcks counting, the decision to
  enter loss recovery (steps 1-2), entering it (step 4.1, 4.3), (A) leaving it, (C.2)-(C.3)
  HighRxt / HighData / RescueRxt updates; §5.1 RTO interaction;
* RFC 2018 §4 / RFC 2883 §5 SACK block validation and D-SACK detection at the sender (the
  first block is a D-SACK when it lies below the ACK field or inside the second block).

Offsets: ``snd_una`` is HighACK + 1, ``high_data`` is HighData + 1 (SND.NXT at its highest),
``high_rxt`` is HighRxt + 1, ``recovery_point`` is RecoveryPoint + 1 and ``rescue_rxt`` is
RescueRxt + 1: every variable is an exclusive end, so "S =< HighRxt" reads ``s < high_rxt``.

Cost per ACK: O(log n + k) with n SACK ranges and k ranges merged or acknowledged by it.
``IsLost`` is monotone (a lower offset has at least as much SACKed above it), so the lost
octets are the holes below one boundary, found by walking at most DupThresh ranges from the
top; ``pipe`` is computed from running totals in O(DupThresh).

Engine contract (one call per event, offsets in the engine's space, FIN counted as one octet
when the segment carries it):

* ``on_transmit(start, end, rule)`` after sending any segment (``rule`` from the
  :class:`NextSeg` that chose it, None for ordinary sends).
* ``on_ack(ack, blocks)`` for each ACK whose ACK field is acceptable (=< SND.NXT); ``blocks``
  are the SACK blocks unwrapped to offsets, in the order received.  Read
  :class:`AckOutcome`: ``enter_recovery`` is RFC 6675 §5 steps (1)/(2) firing.
* ``enter_recovery()`` to start loss recovery (congestion response is the engine's);
  then, while ``cwnd - pipe >= SMSS`` (§5 (C)), ``next_seg()`` + send + ``on_transmit``.
* ``on_rto()`` when the retransmission timer fires (§5.1).

Choices where the RFCs leave room: a NextSeg segment never extends over SACKed octets; rules
1-4 are skipped after an RTO, where every unSACKed octet below RecoveryPoint counts as lost
and :meth:`Scoreboard.next_seg` fills the holes from SND.UNA upward ("a relatively
straightforward approach", §5.1); SACK information is kept across an RTO unless the engine
asks to expunge it (RFC 2018 §8 vs. [Errata1610]); SACK blocks beyond HighData or inverted
are discarded (``TcpExtTCPSACKDiscard``), blocks reaching below SND.UNA are trimmed.

Counters: ``TcpExtTCPSACKDiscard``, ``TcpExtTCPDSACKRecv`` (D-SACK below the ACK field),
``TcpExtTCPDSACKOfoRecv`` (D-SACK above it), ``TcpExtTCPSackRecovery`` (recoveries entered),
``TcpExtTCPSACKReneging``, and, not in Linux, ``TcpExtTCPSackRescueRetrans`` (NextSeg rule 4)
and ``TcpExtTCPSackRecoveryExit``.
"""

from __future__ import annotations

import enum
from collections.abc import MutableMapping, Sequence
from typing import NamedTuple

from mptcp.tcp.seqnum import RangeSet

__all__ = [
    "Scoreboard", "ScoreboardError", "RecoveryState", "NextSegRule", "NextSeg", "AckOutcome",
    "DUP_THRESH",
]

DUP_THRESH = 3  # RFC 6675 §2 / RFC 5681 §3.2
_new = tuple.__new__


class ScoreboardError(ValueError):
    """API misuse: an ACK beyond HighData, an empty transmission, recovery entered twice."""


class RecoveryState(enum.Enum):
    """Loss recovery phase of the sender (RFC 6675 §5, §5.1)."""

    OPEN = "open"  # no recovery: DupAcks counting may start one
    FAST_RECOVERY = "fast_recovery"  # §5 step (4) until SND.UNA passes RecoveryPoint
    RTO_RECOVERY = "rto_recovery"  # §5.1: after an RTO, until SND.UNA >= RecoveryPoint


_OPEN = RecoveryState.OPEN  # (an Enum member lookup costs ~0.1 us each time)


class NextSegRule(enum.IntEnum):
    """Which RFC 6675 §4 NextSeg() rule chose a segment."""

    LOST = 1  # rule (1), also §5 (4.3) and the post-RTO hole filling
    NEW_DATA = 2  # rule (2)
    UNSACKED = 3  # rule (3)
    RESCUE = 4  # rule (4)


class NextSeg(NamedTuple):
    """A segment to transmit: octets ``[start, end)`` chosen by ``rule``."""

    start: int
    end: int
    rule: NextSegRule


class AckOutcome(NamedTuple):
    """What :meth:`Scoreboard.on_ack` learnt from one ACK."""

    acked: int  # octets newly cumulatively acknowledged (SND.UNA advance)
    sacked: tuple[tuple[int, int], ...]  # octet ranges newly SACKed, lowest first
    sacked_bytes: int  # their total
    dsack: tuple[int, int] | None  # the D-SACK block (RFC 2883), not entered as SACK
    dupack: bool  # RFC 6675 §2 duplicate acknowledgment (new SACK information)
    enter_recovery: bool  # RFC 6675 §5 steps (1)/(2): invoke fast retransmit now
    recovery_exited: bool  # §5 (A), or the end of RTO recovery (SND.UNA >= RecoveryPoint)
    discarded: int  # SACK blocks ignored as invalid or entirely old
    reneging: bool  # SACKed data sits at SND.UNA yet was not cumulatively acknowledged


class Scoreboard:
    """SACK scoreboard and RFC 6675 recovery variables of one sending direction.

    ``snd_una`` is the first offset that will be sent (normally 1 with
    :class:`mptcp.tcp.seqnum.SeqSpace`: the SYN is acknowledged by the handshake).
    """

    __slots__ = (
        "_hd", "_hr", "_rescue", "_rp", "_sacked", "_sacked_below_hr", "_una", "counters",
        "dup_thresh", "dupacks", "smss", "state",
    )

    def __init__(
        self,
        snd_una: int,
        smss: int,
        *,
        dup_thresh: int = DUP_THRESH,
        counters: MutableMapping[str, int] | None = None,
    ) -> None:
        if smss <= 0 or dup_thresh <= 0:
            raise ScoreboardError(f"bad smss {smss} or dup_thresh {dup_thresh}")
        self._sacked = RangeSet()
        self._una = snd_una
        self._hd = snd_una
        self._hr = snd_una
        self._sacked_below_hr = 0  # SACKed octets in [snd_una, high_rxt): pipe in O(1)
        self._rescue: int | None = None
        self._rp = snd_una
        self.state = RecoveryState.OPEN
        self.dupacks = 0
        self.smss = smss
        self.dup_thresh = dup_thresh
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}

    # --- variables (read-only views) ------------------------------------------------------
    @property
    def snd_una(self) -> int:
        """HighACK + 1: the oldest unacknowledged offset."""
        return self._una

    @property
    def high_data(self) -> int:
        """HighData + 1: one past the highest offset ever sent."""
        return self._hd

    @property
    def high_rxt(self) -> int:
        """HighRxt + 1: one past the highest offset retransmitted in this recovery."""
        return self._hr

    @property
    def rescue_rxt(self) -> int | None:
        """RescueRxt + 1, None while undefined."""
        return self._rescue

    @property
    def recovery_point(self) -> int:
        """RecoveryPoint + 1 (HighData + 1 when recovery or the last RTO started)."""
        return self._rp

    @property
    def in_recovery(self) -> bool:
        """Fast recovery or RTO recovery."""
        return self.state is not RecoveryState.OPEN

    @property
    def sacked_bytes(self) -> int:
        """Octets SACKed above SND.UNA."""
        return self._sacked.total

    @property
    def sack_ranges(self) -> int:
        """Number of discontiguous SACKed ranges."""
        return len(self._sacked)

    @property
    def quiet(self) -> bool:
        """Nothing SACKed and no recovery: :meth:`on_ack` without blocks only moves SND.UNA
        (:meth:`advance`)."""
        return self.state is _OPEN and not self._sacked._starts

    def advance(self, ack: int) -> None:
        """``on_ack(ack)`` without SACK blocks when :attr:`quiet`, for a caller that does not
        need the :class:`AckOutcome` (acked = the SND.UNA advance, nothing else)."""
        if ack > self._hd:
            raise ScoreboardError(f"ACK {ack} beyond HighData {self._hd}")
        if ack > self._una:
            self._una = ack
            if self._hr <= ack:
                self._reset_hr()
            self.dupacks = 0

    @property
    def outstanding(self) -> int:
        """Octets sent and not cumulatively acknowledged (FlightSize, RFC 5681)."""
        return self._hd - self._una

    def sacked(self) -> list[tuple[int, int]]:
        """The SACKed ranges, lowest first."""
        return self._sacked.ranges()

    def is_sacked(self, offset: int) -> bool:
        """Whether ``offset`` was selectively acknowledged."""
        return offset in self._sacked

    def first_unsacked(self, offset: int) -> int:
        """The lowest un-SACKed offset at or after ``max(offset, snd_una)``."""
        return self._sacked.first_absent(max(offset, self._una))

    def _bump(self, name: str, n: int = 1) -> None:
        c = self.counters
        c[name] = c.get(name, 0) + n

    # --- transmission ------------------------------------------------------------------------
    def on_transmit(self, start: int, end: int, rule: NextSegRule | None = None) -> None:
        """Record that octets ``[start, end)`` were sent (RFC 6675 §5 (C.2), (C.3))."""
        if end <= start or start < 0:
            raise ScoreboardError(f"empty or negative transmission [{start}, {end})")
        hd = self._hd
        if start < hd and rule is not NextSegRule.RESCUE:
            self._raise_hr(min(end, hd))  # (C.2): rule (4) leaves HighRxt alone
        if rule is NextSegRule.RESCUE:
            self._rescue = self._rp  # §4 rule (4): RescueRxt = RecoveryPoint
            self._bump("TcpExtTCPSackRescueRetrans")
        if end > hd:
            self._hd = end  # (C.3)

    def _raise_hr(self, to: int) -> None:
        hr = self._hr
        if to > hr:
            self._sacked_below_hr += self._sacked.covered(max(hr, self._una), to)
            self._hr = to

    def _reset_hr(self) -> None:
        self._hr = self._una
        self._sacked_below_hr = 0

    # --- ACK processing ----------------------------------------------------------------------
    def on_ack(self, ack: int, blocks: Sequence[tuple[int, int]] = ()) -> AckOutcome:
        """RFC 6675 §4 Update() and §5 DupAcks processing for one ACK.

        ``ack`` is the ACK field as an offset (an old one, below SND.UNA, only contributes
        its SACK blocks); ``blocks`` are ``(left, right)`` offsets as received.
        """
        if ack > self._hd:
            raise ScoreboardError(f"ACK {ack} beyond HighData {self._hd}")
        if not blocks and not self._sacked and self.state is _OPEN:
            # Nothing SACKed, no recovery (every ACK of a loss-free transfer): only SND.UNA
            # can move; the same outcome as the general path below, without its work.
            acked = 0
            if ack > self._una:
                acked = ack - self._una
                self._una = ack
                if self._hr <= ack:
                    self._reset_hr()
                self.dupacks = 0
            return _new(AckOutcome, (acked, (), 0, None, False, False, False, 0, False))
        dsack: tuple[int, int] | None = None
        if blocks:
            s0, e0 = blocks[0]
            if s0 < e0 and (s0 < ack or (
                    len(blocks) > 1 and blocks[1][0] <= s0 and e0 <= blocks[1][1])):
                dsack = (s0, e0)  # RFC 2883 §5
                self._bump("TcpExtTCPDSACKRecv" if s0 < ack else "TcpExtTCPDSACKOfoRecv")
                blocks = blocks[1:]
        sacked = self._sacked
        acked = 0
        if ack > self._una:
            acked = ack - self._una
            removed = sacked.remove_below(ack)
            self._una = ack
            if self._hr <= ack:
                self._reset_hr()
            else:
                self._sacked_below_hr -= removed
        una, hd, hr = self._una, self._hd, self._hr
        new: list[tuple[int, int]] = []
        discarded = 0
        below_hr = 0
        for s, e in blocks:
            if e <= s or e > hd or e <= una:
                discarded += 1
                continue
            for gs, ge in sacked.add_gaps(max(s, una), e):
                new.append((gs, ge))
                if gs < hr:
                    below_hr += min(ge, hr) - gs
        self._sacked_below_hr += below_hr
        if discarded:
            self._bump("TcpExtTCPSACKDiscard", discarded)
        new.sort()
        newly = 0
        for gs, ge in new:
            newly += ge - gs
        dupack = newly > 0  # RFC 6675 §2
        if acked:
            self.dupacks = 0  # §5: a cumulative ACK resets DupAcks
        exited = False
        if self.state is not RecoveryState.OPEN and una >= self._rp:
            exited = True  # §5 (A) / §5.1; scoreboard above SND.UNA is kept
            self.state = RecoveryState.OPEN
            self._rescue = None
            self._reset_hr()
            self._bump("TcpExtTCPSackRecoveryExit")
        enter = False
        if dupack and self.state is RecoveryState.OPEN:
            self.dupacks += 1
            if self.dupacks >= self.dup_thresh or self.is_lost(una):  # §5 steps (1), (2)
                enter = True
            else:
                self._reset_hr()  # §5 (3.1) HighRxt = HighACK
        reneging = bool(sacked) and sacked.low == una and ack >= una  # not an old ACK
        if reneging:
            self._bump("TcpExtTCPSACKReneging")
        return AckOutcome(acked, tuple(new), newly, dsack, dupack, enter, exited, discarded,
                          reneging)

    # --- RFC 6675 §4 functions ---------------------------------------------------------------
    def _boundary(self) -> tuple[int, int]:
        """(B, SACKed octets at or above B): an unSACKed octet is lost iff it is below B."""
        sacked = self._sacked
        starts, ends = sacked._starts, sacked._ends
        n = len(starts)
        b, above = self._una, sacked.total
        limit = (self.dup_thresh - 1) * self.smss
        acc = 0
        stop = max(0, n - self.dup_thresh)
        k = n - 1
        while k >= stop:
            acc += ends[k] - starts[k]
            # IsLost: more than (DupThresh-1)*SMSS octets SACKed above, or DupThresh
            # discontiguous SACKed ranges above (the DupThresh-th range from the top).
            if acc > limit or k == n - self.dup_thresh:
                b, above = starts[k], acc
                break
            k -= 1
        if self.state is RecoveryState.RTO_RECOVERY and self._rp > b:
            b = self._rp  # §5.1: everything outstanding at the RTO is presumed lost
            above = sacked.covered(b, self._hd)
        return b, above

    def lost_boundary(self) -> int:
        """Every unSACKed offset below this one is lost (IsLost true), none above."""
        return self._boundary()[0]

    def is_lost(self, offset: int) -> bool:
        """RFC 6675 §4 IsLost(SeqNum), literally, for any offset; O(DupThresh + log n).

        After an RTO every unSACKed offset below RecoveryPoint is lost as well (§5.1)."""
        sacked = self._sacked
        if (self.state is RecoveryState.RTO_RECOVERY and offset < self._rp
                and offset not in sacked):
            return True
        starts, ends = sacked._starts, sacked._ends
        limit = (self.dup_thresh - 1) * self.smss
        acc = count = 0
        k = len(starts) - 1
        while k >= 0 and starts[k] > offset:  # whole ranges above: count and octets
            acc += ends[k] - starts[k]
            count += 1
            if acc > limit or count >= self.dup_thresh:
                return True
            k -= 1
        if k >= 0 and ends[k] - 1 > offset:  # ``offset`` is inside range k
            acc += ends[k] - 1 - offset
        return acc > limit

    @property
    def pipe(self) -> int:
        """RFC 6675 §4 SetPipe(): octets estimated in flight."""
        una, hd = self._una, self._hd
        sacked_total = self._sacked.total
        unsacked = hd - una - sacked_total
        b, above = self._boundary()
        lost = (b - una) - (sacked_total - above) if b > una else 0
        retrans = (self._hr - una) - self._sacked_below_hr if self._hr > una else 0
        return unsacked - lost + retrans  # (a) not lost, plus (b) =< HighRxt

    def _hole(self, s: int, limit: int) -> int:
        """End of the segment starting at unSACKed ``s``: SMSS, next SACK, or ``limit``."""
        nxt = self._sacked.next_start(s)
        end = min(s + self.smss, limit)
        return end if nxt is None else min(end, nxt)

    def next_seg(self, sendable_new: int = 0) -> NextSeg | None:
        """RFC 6675 §4 NextSeg(); ``sendable_new`` is how many unsent octets the send buffer
        holds *and* the peer's window allows.  Pure: the engine calls :meth:`on_transmit`
        once it sent the segment."""
        una, hd = self._una, self._hd
        s = self._sacked.first_absent(max(self._hr, una))
        if self.state is RecoveryState.RTO_RECOVERY:
            if s < self._rp:  # §5.1 fill in the holes
                return NextSeg(s, self._hole(s, self._rp), NextSegRule.LOST)
        elif s < hd and s < self._boundary()[0]:  # rule (1): (1.a), (1.b), (1.c)
            return NextSeg(s, self._hole(s, hd), NextSegRule.LOST)
        if sendable_new > 0:  # rule (2)
            return NextSeg(hd, hd + min(self.smss, sendable_new), NextSegRule.NEW_DATA)
        if self.state is RecoveryState.RTO_RECOVERY:
            return None
        sacked = self._sacked
        if sacked and s < sacked._starts[-1]:  # rule (3): (1.a) and (1.b)
            return NextSeg(s, self._hole(s, hd), NextSegRule.UNSACKED)
        if (self.state is RecoveryState.FAST_RECOVERY and hd - una > sacked.total
                and (self._rescue is None or una > self._rescue)):  # rule (4)
            if sacked and sacked._ends[-1] == hd:
                top = sacked._starts[-1]  # highest unSACKed octet is top - 1
                low = sacked._ends[-2] if len(sacked) > 1 else una
            else:
                top = hd
                low = sacked._ends[-1] if sacked else una
            return NextSeg(max(low, top - self.smss), top, NextSegRule.RESCUE)
        return None  # rule (5)

    # --- recovery transitions ----------------------------------------------------------------
    def enter_recovery(self) -> NextSeg | None:
        """RFC 6675 §5 step (4): RecoveryPoint = HighData (4.1); returns the segment to fast
        retransmit (4.3) and sets HighRxt and RescueRxt to its end.  None (and no state
        change) when every outstanding octet is SACKed."""
        if self.state is not RecoveryState.OPEN:
            raise ScoreboardError(f"enter_recovery in state {self.state.name}")
        s = self.first_unsacked(self._una)
        if s >= self._hd:
            return None
        self.state = RecoveryState.FAST_RECOVERY
        self._rp = self._hd
        end = self._hole(s, self._hd)
        self._reset_hr()
        self._raise_hr(end)
        self._rescue = end
        self._bump("TcpExtTCPSackRecovery")
        return NextSeg(s, end, NextSegRule.LOST)

    def on_rto(self, expunge_sack: bool = False) -> None:
        """RFC 6675 §5.1: RecoveryPoint = HighData, recovery terminated; no new recovery
        until SND.UNA >= RecoveryPoint.  ``expunge_sack`` drops all SACK information
        (RFC 2018 §8's SHOULD, relaxed by [Errata1610])."""
        if expunge_sack:
            self._sacked.clear()
        self.state = RecoveryState.RTO_RECOVERY
        self._rp = self._hd
        self._rescue = None
        self._reset_hr()
