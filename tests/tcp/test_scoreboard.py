"""SACK scoreboard and RFC 6675 loss recovery, checked against a per-octet model that reads
RFC 6675 §4 literally (IsLost, SetPipe, NextSeg) plus scenario tests of §5 and RFC 2883."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from mptcp.tcp.scoreboard import (
    NextSeg,
    NextSegRule,
    RecoveryState,
    Scoreboard,
    ScoreboardError,
)

SMSS = 10
D = 3

# --- the literal per-octet model ---------------------------------------------------------


class Model:
    """RFC 6675 §4 over a Python set of SACKed octets, with the scoreboard's own HighRxt,
    RescueRxt, RecoveryPoint and state (their updates are tested by the scenarios)."""

    def __init__(self, una: int) -> None:
        self.una = una
        self.hd = una
        self.sacked: set[int] = set()

    def runs(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for x in sorted(self.sacked):
            if out and out[-1][1] == x:
                out[-1] = (out[-1][0], x + 1)
            else:
                out.append((x, x + 1))
        return out

    def is_lost(self, s: int) -> bool:
        """IsLost(SeqNum): DupThresh discontiguous SACKed sequences above, or more than
        (DupThresh - 1) * SMSS octets SACKed above."""
        above = sum(1 for r in self.runs() if r[0] > s)
        octets = sum(1 for x in self.sacked if x > s)
        return above >= D or octets > (D - 1) * SMSS

    def pipe(self, sb: Scoreboard) -> int:
        pipe = 0
        for s1 in range(self.una, self.hd):
            if s1 in self.sacked:
                continue
            if sb.state is RecoveryState.RTO_RECOVERY and s1 < sb.recovery_point:
                lost = True
            else:
                lost = self.is_lost(s1)
            if not lost:
                pipe += 1  # (a)
            if s1 < sb.high_rxt:  # (b) S1 =< HighRxt
                pipe += 1
        return pipe

    def next_seg_start(self, sb: Scoreboard, sendable: int) -> tuple[int, NextSegRule] | None:
        top = max(self.sacked) if self.sacked else -1
        cand = [s for s in range(max(sb.high_rxt, self.una), self.hd) if s not in self.sacked]
        if sb.state is RecoveryState.RTO_RECOVERY:
            lost = [s for s in cand if s < sb.recovery_point]
            if lost:
                return lost[0], NextSegRule.LOST
            return (self.hd, NextSegRule.NEW_DATA) if sendable > 0 else None
        rule1 = [s for s in cand if s < top and self.is_lost(s)]
        if rule1:
            return rule1[0], NextSegRule.LOST
        if sendable > 0:
            return self.hd, NextSegRule.NEW_DATA
        rule3 = [s for s in cand if s < top]
        if rule3:
            return rule3[0], NextSegRule.UNSACKED
        unsacked = [s for s in range(self.una, self.hd) if s not in self.sacked]
        if (sb.state is RecoveryState.FAST_RECOVERY and unsacked
                and (sb.rescue_rxt is None or self.una > sb.rescue_rxt)):
            return max(unsacked), NextSegRule.RESCUE  # the octet it MUST include
        return None


def check(sb: Scoreboard, m: Model) -> None:
    assert sb.snd_una == m.una and sb.high_data == m.hd
    assert sb.sacked() == m.runs()
    assert sb.sacked_bytes == len(m.sacked)
    for s in range(m.una, m.hd):
        expect = m.is_lost(s) or (
            sb.state is RecoveryState.RTO_RECOVERY and s < sb.recovery_point
            and s not in m.sacked)
        assert sb.is_lost(s) == expect, s
    assert sb.pipe == m.pipe(sb)


def check_next(sb: Scoreboard, m: Model, sendable: int) -> NextSeg | None:
    seg = sb.next_seg(sendable)
    want = m.next_seg_start(sb, sendable)
    if want is None:
        assert seg is None
        return None
    assert seg is not None
    assert seg.rule == want[1]
    assert 0 < seg.end - seg.start <= SMSS
    if seg.rule is NextSegRule.RESCUE:
        assert seg.start <= want[0] < seg.end
    else:
        assert seg.start == want[0]
    if seg.rule is not NextSegRule.NEW_DATA:
        assert all(x not in m.sacked for x in range(seg.start, seg.end))
        assert seg.end <= m.hd
    return seg


OPS = ["send"] * 2 + ["ack"] * 6 + ["next"] * 6 + ["rto"]


@pytest.mark.rfc("6675", "4")
@given(st.data(), st.integers(0, 1 << 40), st.integers(0, 12 * SMSS))
def test_scoreboard_matches_literal_rfc6675_model(
    data: st.DataObject, base: int, initial: int
) -> None:
    sb = Scoreboard(base, SMSS, dup_thresh=D)
    m = Model(base)
    dupacks = 0
    if initial:
        sb.on_transmit(base, base + initial)
        m.hd += initial
    for _ in range(data.draw(st.integers(0, 40))):
        op = data.draw(st.sampled_from(OPS))
        arg = data.draw(st.integers(0, 2 * SMSS))
        if op == "send":
            if arg:
                sb.on_transmit(m.hd, m.hd + arg)
                m.hd += arg
        elif op == "ack":
            advance = data.draw(st.integers(0, m.hd - m.una)) if arg < 6 else 0
            ack = m.una + advance
            raw = data.draw(st.lists(
                st.tuples(st.integers(m.una - 8, m.hd + 2), st.integers(-1, 2 * SMSS)),
                max_size=4))
            blocks = [(a, a + n) for a, n in raw]
            state_before = sb.state
            out = sb.on_ack(ack, blocks)
            # model: D-SACK detection (RFC 2883 §5), then validation and Update()
            if blocks and blocks[0][0] < blocks[0][1] and (
                blocks[0][0] < ack or (len(blocks) > 1 and blocks[1][0] <= blocks[0][0]
                                       and blocks[0][1] <= blocks[1][1])):
                assert out.dsack == blocks[0]
                blocks = blocks[1:]
            else:
                assert out.dsack is None
            acked = max(0, ack - m.una)
            m.una = max(m.una, ack)
            m.sacked = {x for x in m.sacked if x >= m.una}
            new: set[int] = set()
            for s, e in blocks:
                if s < e <= m.hd and e > m.una:
                    new |= set(range(max(s, m.una), e)) - m.sacked
            m.sacked |= new
            assert out.acked == acked
            assert out.sacked_bytes == len(new)
            assert out.dupack == bool(new)  # RFC 6675 §2
            if acked:
                dupacks = 0
            in_rec = state_before is not RecoveryState.OPEN and not out.recovery_exited
            if out.dupack and not in_rec:
                dupacks += 1
                assert out.enter_recovery == (dupacks >= D or m.is_lost(m.una))
            else:
                assert not out.enter_recovery
            assert sb.dupacks == dupacks
            if out.enter_recovery:
                event("enter recovery")
                seg = sb.enter_recovery()
                if all(x in m.sacked for x in range(m.una, m.hd)):  # reneging corner
                    assert seg is None and sb.state is RecoveryState.OPEN
                else:
                    assert sb.state is RecoveryState.FAST_RECOVERY
                    assert sb.recovery_point == m.hd  # (4.1)
                    assert seg is not None and seg.start == min(
                        x for x in range(m.una, m.hd) if x not in m.sacked)  # (4.3)
                    assert sb.high_rxt == seg.end and sb.rescue_rxt == seg.end
        elif op == "next":
            seg = check_next(sb, m, max(0, arg - SMSS))
            event(f"{sb.state.name} next_seg {seg.rule.name if seg else None}")
            if seg is not None:
                sb.on_transmit(seg.start, seg.end, seg.rule)
                m.hd = max(m.hd, seg.end)
        else:
            sb.on_rto()
            assert sb.recovery_point == m.hd
        check(sb, m)
        check_next(sb, m, 0)


# --- scenarios ----------------------------------------------------------------------------


def flight(n_segments: int, smss: int = 100, base: int = 1) -> Scoreboard:
    sb = Scoreboard(base, smss)
    for i in range(n_segments):
        sb.on_transmit(base + i * smss, base + (i + 1) * smss)
    return sb


@pytest.mark.rfc("6675", "2")
def test_duplicate_ack_needs_new_sack_information() -> None:
    sb = flight(10)
    out = sb.on_ack(1, [(201, 301)])
    assert out.dupack and out.sacked == ((201, 301),) and sb.dupacks == 1
    out = sb.on_ack(1, [(201, 301)])  # same information again: not a duplicate ACK
    assert not out.dupack and sb.dupacks == 1
    out = sb.on_ack(101, [(201, 401)])  # new cumulative ACK *and* new SACK: a dupack
    assert out.acked == 100 and out.dupack and sb.dupacks == 1


@pytest.mark.rfc("6675", "5")
def test_enter_recovery_after_dupthresh_small_segments() -> None:
    """§5 step (1): three dupacks each SACKing less than SMSS still trigger recovery."""
    sb = flight(10)
    assert not sb.on_ack(1, [(501, 511)]).enter_recovery
    assert not sb.on_ack(1, [(521, 531), (501, 511)]).enter_recovery
    out = sb.on_ack(1, [(541, 551), (521, 531), (501, 511)])
    assert out.enter_recovery and sb.dupacks == 3


@pytest.mark.rfc("6675", "5")
def test_enter_recovery_on_islost_with_one_ack() -> None:
    """§5 step (2): one ACK SACKing three segments makes IsLost(HighACK + 1) true."""
    sb = flight(10)
    out = sb.on_ack(1, [(101, 401)])
    assert sb.dupacks == 1 and out.enter_recovery
    assert sb.is_lost(1) and not sb.is_lost(401)


@pytest.mark.rfc("6675", "4")
def test_islost_by_bytes_and_by_count() -> None:
    sb = flight(10)
    sb.on_ack(1, [(101, 301)])  # exactly 2*SMSS: not more than (DupThresh-1)*SMSS
    assert not sb.is_lost(1)
    sb.on_ack(1, [(301, 302)])  # one more octet
    assert sb.is_lost(1) and sb.is_lost(100)
    assert not sb.is_lost(150)  # SACKed: never lost
    sb2 = flight(10)
    sb2.on_ack(1, [(201, 202), (401, 402), (601, 602)])  # three tiny discontiguous blocks
    assert sb2.is_lost(200) and not sb2.is_lost(202)


@pytest.mark.rfc("6675", "5")
def test_fast_recovery_episode() -> None:
    c: dict[str, int] = {}
    sb = Scoreboard(1, 100, counters=c)
    for i in range(10):
        sb.on_transmit(1 + 100 * i, 101 + 100 * i)
    sb.on_ack(1, [(201, 301)])
    sb.on_ack(1, [(201, 401)])
    out = sb.on_ack(1, [(201, 501)])
    assert out.enter_recovery
    first = sb.enter_recovery()
    assert first == NextSeg(1, 101, NextSegRule.LOST)  # (4.3) from HighACK + 1
    assert sb.recovery_point == 1001 and sb.high_rxt == 101 and sb.rescue_rxt == 101
    assert c["TcpExtTCPSackRecovery"] == 1
    sb.on_transmit(first.start, first.end, first.rule)
    # lost: [1,101) retransmitted (counts once), [101,201) lost; [501,1001) in flight
    assert sb.pipe == 100 + 500
    seg = sb.next_seg()
    assert seg == NextSeg(101, 201, NextSegRule.LOST)  # rule (1)
    sb.on_transmit(seg.start, seg.end, seg.rule)
    assert sb.high_rxt == 201
    # nothing lost left, no new data: rule (3) needs an unSACKed octet above HighRxt below
    # the highest SACK: none; rule (4) needs HighACK > RescueRxt: not yet
    assert sb.next_seg() is None
    assert sb.next_seg(sendable_new=50) == NextSeg(1001, 1051, NextSegRule.NEW_DATA)
    out = sb.on_ack(101, [(201, 501)])  # partial ACK: HighACK + 1 = 101 > RescueRxt? no
    assert not out.recovery_exited and sb.state is RecoveryState.FAST_RECOVERY
    out = sb.on_ack(501, [(601, 701)])
    # one SACKed segment above 501 does not make it lost: rule (3), not rule (1)
    assert not sb.is_lost(501)
    assert sb.next_seg() == NextSeg(501, 601, NextSegRule.UNSACKED)
    out = sb.on_ack(701)
    # §4 rule (4): HighACK (700) > RescueRxt (100): one rescue, of the highest octets
    seg = sb.next_seg()
    assert seg == NextSeg(901, 1001, NextSegRule.RESCUE)
    sb.on_transmit(seg.start, seg.end, seg.rule)
    assert sb.rescue_rxt == sb.recovery_point == 1001
    assert sb.high_rxt == 701  # (C.2) not for rule (4)
    assert sb.next_seg() is None  # only one rescue per recovery
    out = sb.on_ack(1001)  # (A): covers RecoveryPoint
    assert out.recovery_exited and not sb.in_recovery
    assert c["TcpExtTCPSackRecoveryExit"] == 1


@pytest.mark.rfc("6675", "5")
def test_scoreboard_above_recovery_point_survives_exit() -> None:
    sb = flight(10)
    sb.on_ack(1, [(101, 401)])
    sb.enter_recovery()
    sb.on_transmit(1001, 1101)  # new data during recovery
    sb.on_transmit(1101, 1201)
    out = sb.on_ack(1001, [(1101, 1201)])
    assert out.recovery_exited
    assert sb.sacked() == [(1101, 1201)]  # "SHOULD NOT be cleared"


@pytest.mark.rfc("6675", "5.1")
def test_rto_blocks_new_recovery_until_recovery_point() -> None:
    sb = flight(10)
    sb.on_ack(1, [(301, 401)])
    sb.on_rto()
    assert sb.state is RecoveryState.RTO_RECOVERY and sb.recovery_point == 1001
    assert sb.sacked() == [(301, 401)]  # kept unless expunged
    assert sb.pipe == 0  # everything outstanding is presumed lost
    seg = sb.next_seg()
    assert seg == NextSeg(1, 101, NextSegRule.LOST)
    sb.on_transmit(*seg)
    assert sb.pipe == 100
    out = sb.on_ack(101, [(301, 401), (501, 801)])
    assert out.dupack and not out.enter_recovery  # MUST NOT start a new recovery
    assert sb.next_seg() == NextSeg(101, 201, NextSegRule.LOST)
    out = sb.on_ack(1001)
    assert out.recovery_exited and not sb.in_recovery
    sb.on_transmit(1001, 1501)
    out = sb.on_ack(1001, [(1101, 1401)])
    assert out.enter_recovery  # allowed again


@pytest.mark.rfc("2018", "8")
def test_rto_can_expunge_sack_information() -> None:
    sb = flight(10)
    sb.on_ack(1, [(301, 401)])
    sb.on_rto(expunge_sack=True)
    assert sb.sacked() == [] and sb.sacked_bytes == 0


@pytest.mark.rfc("2883", "5")
def test_dsack_detection_both_forms() -> None:
    c: dict[str, int] = {}
    sb = Scoreboard(1, 100, counters=c)
    sb.on_transmit(1, 1001)
    sb.on_ack(501)
    out = sb.on_ack(501, [(101, 201)])  # first block below the ACK field
    assert out.dsack == (101, 201) and not out.dupack and sb.sacked() == []
    out = sb.on_ack(501, [(701, 801), (601, 901)])  # first block inside the second
    assert out.dsack == (701, 801)
    assert sb.sacked() == [(601, 901)]
    assert c["TcpExtTCPDSACKRecv"] == 1 and c["TcpExtTCPDSACKOfoRecv"] == 1
    out = sb.on_ack(501, [(901, 1001), (601, 901)])  # adjacent, not inside: plain SACK
    assert out.dsack is None and sb.sacked() == [(601, 1001)]


@pytest.mark.rfc("2018", "4")
def test_invalid_sack_blocks_are_discarded() -> None:
    c: dict[str, int] = {}
    sb = Scoreboard(1, 100, counters=c)
    sb.on_transmit(1, 501)
    sb.on_ack(101)
    out = sb.on_ack(101, [(301, 201), (401, 601), (1, 51)])
    # inverted, beyond HighData, entirely below SND.UNA (and not first: not a D-SACK)
    assert out.discarded == 3 and out.dsack is None and out.sacked == ()
    assert c["TcpExtTCPSACKDiscard"] == 3
    out = sb.on_ack(101, [(201, 301), (51, 151)])  # straddles SND.UNA: trimmed
    assert sb.sacked() == [(101, 151), (201, 301)]
    assert out.reneging  # SACKed data at SND.UNA not cumulatively acknowledged


def test_api_misuse() -> None:
    sb = flight(2)
    with pytest.raises(ScoreboardError):
        sb.on_ack(10_000)
    with pytest.raises(ScoreboardError):
        sb.on_transmit(5, 5)
    sb.on_ack(1, [(101, 201)])
    sb.enter_recovery()
    with pytest.raises(ScoreboardError):
        sb.enter_recovery()
    with pytest.raises(ScoreboardError):
        Scoreboard(0, 0)
