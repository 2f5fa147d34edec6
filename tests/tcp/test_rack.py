"""RACK-TLP (RFC 8985): each §6.2 step, §6.3, §7 TLP, and the RFC's worked examples."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.rack import (
    INFINITE_TS,
    MinRttFilter,
    Rack,
    RackError,
    TlpAck,
    TlpProbe,
    sent_after,
)


@dataclass
class Seg:
    """The engine's per-segment record (RFC 8985 §5.2), as a test double."""

    seq: int
    end_seq: int
    xmit_ts: float
    retransmitted: bool = False
    lost: bool = False

    def retransmit(self, now: float) -> None:  # §6.1 RACK_retransmit_data
        self.retransmitted = True
        self.xmit_ts = now
        self.lost = False

    def mark_lost(self) -> None:
        self.lost = True
        self.xmit_ts = INFINITE_TS


def segs(n: int, t: float = 0.0, size: int = 100, gap: float = 0.0) -> list[Seg]:
    return [Seg(i * size, (i + 1) * size, t + i * gap) for i in range(n)]


# --- §6.2 step 1 ---------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.2")
def test_min_rtt_is_windowed() -> None:
    f = MinRttFilter(window=10.0)
    assert f.value is None
    assert f.update(0.050, now=0.0) == 0.050
    assert f.update(0.080, now=1.0) == 0.050
    assert f.update(0.090, now=9.0) == 0.050  # still inside the window
    assert f.update(0.200, now=20.0) == 0.200  # the old minimum expired
    assert f.update(0.150, now=21.0) == 0.150
    with pytest.raises(RackError):
        MinRttFilter(0)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0.001, 5)), min_size=1, max_size=50))
def test_min_rtt_filter_never_below_true_window_min(samples: list[tuple[float, float]]) -> None:
    """The estimate is one of the samples no older than the window, and no sample of the
    last 3/4 window is below it."""
    f = MinRttFilter(window=4.0)
    now = 0.0
    seen: list[tuple[float, float]] = []
    for dt, rtt in samples:
        now += dt
        seen.append((now, rtt))
        est = f.update(rtt, now)
        assert est in [r for t, r in seen if t > now - 4.0 - 1e-9]
        assert all(est <= r for t, r in seen if t >= now - 3.0 + 1e-9)


# --- §6.2 step 2 ---------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.2")
def test_sent_after_breaks_ties_by_sequence() -> None:
    assert sent_after(2.0, 0, 1.0, 500)
    assert not sent_after(1.0, 500, 2.0, 0)
    assert sent_after(1.0, 200, 1.0, 100)
    assert not sent_after(1.0, 100, 1.0, 100)


@pytest.mark.rfc("8985", "6.2")
def test_update_tracks_most_recently_sent_delivered_segment() -> None:
    r = Rack()
    r.on_rtt_sample(0.1, now=0.1)
    a, b, c = Seg(0, 100, 0.0), Seg(100, 200, 0.0), Seg(200, 300, 0.05)
    r.update([c, a], now=0.2)
    assert (r.xmit_ts, r.end_seq) == (0.05, 300)
    assert r.rtt == pytest.approx(0.15)  # the last sample in xmit_ts order is c's
    r.update([b], now=0.3)  # sent earlier: RACK.segment unchanged, RACK.rtt still updated
    assert (r.xmit_ts, r.end_seq) == (0.05, 300)
    assert r.rtt == pytest.approx(0.3)
    r2 = Rack()
    r2.update([Seg(0, 100, 1.0), Seg(100, 200, 1.0)], now=1.5)
    assert r2.end_seq == 200  # same timestamp: the higher sequence wins


@pytest.mark.rfc("8985", "6.2")
def test_update_ignores_possibly_spurious_retransmissions() -> None:
    r = Rack()
    seg = Seg(0, 100, 0.0)
    seg.retransmit(1.0)
    r.update([seg], now=1.2)
    assert r.xmit_ts is None  # min_RTT unknown: the "rtt < min_rtt" check cannot pass
    r.on_rtt_sample(0.1, now=1.0)
    r.update([seg], now=1.05)  # 50 ms after the retransmission < min_RTT: the original's ACK
    assert r.xmit_ts is None
    r.update([seg], now=1.2, tsecr_ts=0.5)  # TSecr echoes an earlier transmission
    assert r.xmit_ts is None
    r.update([seg], now=1.2, tsecr_ts=1.0)
    assert r.xmit_ts == 1.0 and r.rtt == pytest.approx(0.2)


# --- §6.2 step 3 ---------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.2")
def test_reordering_detected_only_for_never_retransmitted_segments() -> None:
    c: dict[str, int] = {}
    r = Rack(counters=c)
    s = segs(4)
    assert not r.detect_reordering([s[2]])
    assert r.fack == 300
    s[0].retransmit(0.5)
    assert not r.detect_reordering([s[0]])  # below fack but retransmitted
    assert r.detect_reordering([s[1]])  # below fack, original transmission
    assert c["TcpExtTCPSACKReorder"] == 1


# --- §6.2 step 4 ---------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.2")
def test_reo_wnd_zero_without_reordering_when_dupthresh_or_recovery() -> None:
    r = Rack()
    r.on_rtt_sample(0.1, now=0.0)
    assert r.compute_reo_wnd(in_recovery=False, segs_sacked=0, srtt=0.1) == pytest.approx(0.025)
    assert r.compute_reo_wnd(in_recovery=False, segs_sacked=3, srtt=0.1) == 0
    assert r.compute_reo_wnd(in_recovery=True, segs_sacked=0, srtt=0.1) == 0
    r.reordering_seen = True
    assert r.compute_reo_wnd(in_recovery=True, segs_sacked=5, srtt=0.1) == pytest.approx(0.025)
    assert Rack().compute_reo_wnd(in_recovery=False, segs_sacked=0, srtt=None) == 0


@pytest.mark.rfc("8985", "6.2")
def test_dsack_grows_reo_wnd_once_per_round_bounded_by_srtt_and_persists_16() -> None:
    c: dict[str, int] = {}
    r = Rack(counters=c)
    r.on_rtt_sample(0.1, now=0.0)
    r.on_ack_dsack(snd_una=0, snd_nxt=1000, dsack=True, exiting_recovery=False)
    assert r.reo_wnd_mult == 2 and r.dsack_round == 1000 and r.reo_wnd_persist == 16
    r.on_ack_dsack(snd_una=500, snd_nxt=1500, dsack=True, exiting_recovery=False)
    assert r.reo_wnd_mult == 2  # same round
    r.on_ack_dsack(snd_una=1000, snd_nxt=2000, dsack=True, exiting_recovery=False)
    assert r.reo_wnd_mult == 3 and r.dsack_round == 2000
    assert r.compute_reo_wnd(False, 0, srtt=0.5) == pytest.approx(3 * 0.1 / 4)
    for _ in range(10):
        r.on_ack_dsack(3000, 3000, dsack=True, exiting_recovery=False)
    assert r.compute_reo_wnd(False, 0, srtt=0.2) == pytest.approx(0.2)  # bounded by SRTT
    mult = r.reo_wnd_mult
    for i in range(16):
        assert r.reo_wnd_mult == mult
        r.on_ack_dsack(10_000, 10_000, dsack=False, exiting_recovery=True)
        assert r.reo_wnd_persist == 15 - i
    assert r.reo_wnd_mult == 1
    assert c["TcpExtTCPRackReoWndReset"] == 1 and c["TcpExtTCPRackReoWndInc"] == mult - 1


# --- §6.2 step 5 ---------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.2")
def test_detect_loss_marks_after_rtt_plus_reo_wnd_and_returns_max_timeout() -> None:
    r = Rack()
    r.on_rtt_sample(0.1, now=0.0)
    flight = segs(5, gap=0.01)  # sent at 0, .01, .02, .03, .04
    r.update([flight[4]], now=0.14)  # RACK.segment = the last one
    # reo_wnd = 0.025; lost iff xmit + 0.1 + 0.025 <= now
    lost, timeout = r.detect_loss(flight[:4], now=0.14, in_recovery=False, segs_sacked=1,
                                  srtt=0.1)
    assert [s.seq for s in lost] == [0, 100]
    assert timeout == pytest.approx(0.03 + 0.125 - 0.14)  # the latest deadline
    lost, timeout = r.detect_loss(flight[2:4], now=0.2, in_recovery=False, segs_sacked=1,
                                  srtt=0.1)
    assert [s.seq for s in lost] == [200, 300] and timeout == 0


@pytest.mark.rfc("8985", "6.2")
def test_detect_loss_ignores_segments_sent_after_rack_segment() -> None:
    r = Rack()
    r.on_rtt_sample(0.1, now=0.0)
    flight = segs(4, t=1.0)  # same timestamp: sequence breaks the tie
    r.update([flight[1]], now=1.1)
    lost, _ = r.detect_loss(flight, now=5.0, in_recovery=False, segs_sacked=1, srtt=0.1)
    assert [s.seq for s in lost] == [0]
    flight[0].mark_lost()
    lost, _ = r.detect_loss(flight, now=5.0, in_recovery=False, segs_sacked=1, srtt=0.1)
    assert lost == []  # already lost (INFINITE_TS): skipped
    assert r.detect_loss([], 0.0, in_recovery=False, segs_sacked=0, srtt=None) == ([], 0.0)


@pytest.mark.rfc("8985", "6.2")
@given(st.lists(st.tuples(st.floats(0, 2), st.integers(1, 5)), min_size=1, max_size=30),
       st.floats(0, 3), st.floats(0.01, 0.5))
def test_time_ordered_scan_equals_full_scan(
    raw: list[tuple[float, int]], now_extra: float, rtt: float
) -> None:
    flight: list[Seg] = []
    seq = 0
    for t, n in raw:
        flight.append(Seg(seq, seq + n, t))
        seq += n
    r = Rack()
    r.on_rtt_sample(rtt, now=0.0)
    newest = max(flight, key=lambda s: (s.xmit_ts, s.end_seq))
    r.update([newest], now=newest.xmit_ts + rtt)
    rest = [s for s in flight if s is not newest]
    now = newest.xmit_ts + now_extra
    full = r.detect_loss(rest, now, in_recovery=False, segs_sacked=1, srtt=rtt)
    by_time = sorted(rest, key=lambda s: (s.xmit_ts, s.end_seq))
    fast = r.detect_loss(by_time, now, in_recovery=False, segs_sacked=1, srtt=rtt,
                         time_ordered=True)
    assert sorted(s.seq for s in full[0]) == sorted(s.seq for s in fast[0])
    assert full[1] == fast[1]
    for s in full[0]:  # the RFC's loss condition, independently
        assert s.xmit_ts + rtt + r.reo_wnd - now <= 0


# --- §6.3 ----------------------------------------------------------------------------------


@pytest.mark.rfc("8985", "6.3")
def test_rto_marks_first_and_timed_out_segments_example_3_5() -> None:
    """§3.5: one segment sent, two more right before its RTO fires: only the first is lost."""
    r = Rack()
    r.on_rtt_sample(0.1, now=0.0)
    r.update([Seg(-100, 0, 0.0)], now=0.1)  # an earlier delivery gave RACK.rtt = 0.1
    first = Seg(0, 100, 0.1)
    late = [Seg(100, 200, 1.05), Seg(200, 300, 1.06)]
    lost = r.mark_losses_on_rto([*late, first], now=1.1)
    assert lost == [first]
    lost = r.mark_losses_on_rto([*late, first], now=1.3)  # a round trip later: all of them
    assert {s.seq for s in lost} == {0, 100, 200}
    assert r.mark_losses_on_rto([], now=2.0) == []


# --- §7 TLP --------------------------------------------------------------------------------


@pytest.mark.rfc("8985", "7.2")
def test_pto_computation() -> None:
    r = Rack(tlp_max_ack_delay=0.04)
    assert r.pto(now=0.0, srtt=0.1, flight_is_one_segment=False, rto_expiration=5.0) == 0.2
    assert r.pto(0.0, 0.1, True, 5.0) == pytest.approx(0.24)
    assert r.pto(0.0, None, False, 5.0) == 1.0  # no SRTT: 1 second
    assert r.pto(0.0, 0.1, False, 0.15) == pytest.approx(0.15)  # RTO fires first
    assert r.pto(1.0, 0.1, False, None) == 0.2
    assert Rack.may_arm_pto(in_recovery=False, segs_sacked=0)
    assert not Rack.may_arm_pto(in_recovery=True, segs_sacked=0)
    assert not Rack.may_arm_pto(in_recovery=False, segs_sacked=2)


@pytest.mark.rfc("8985", "7.3")
def test_probe_selection_and_conditions() -> None:
    c: dict[str, int] = {}
    r = Rack(counters=c)
    assert r.probe_kind(new_data_sendable=True) is TlpProbe.NONE  # no RTT sample yet
    r.on_rtt_sample(0.1, now=0.0)
    assert r.probe_kind(new_data_sendable=True) is TlpProbe.NEW_DATA
    assert r.probe_kind(new_data_sendable=False) is TlpProbe.RETRANSMIT
    r.on_probe_sent(snd_nxt=1000, retransmission=True)
    assert r.tlp_end_seq == 1000 and r.tlp_is_retrans
    assert c["TcpExtTCPLossProbes"] == 1
    r.on_rtt_sample(0.1, now=0.5)
    assert r.probe_kind(True) is TlpProbe.NONE  # a probe is still in flight
    r.tlp_init()
    assert r.probe_kind(True) is TlpProbe.NEW_DATA
    r.on_probe_sent(snd_nxt=1100, retransmission=False)
    r.tlp_init()
    assert r.probe_kind(True) is TlpProbe.NONE  # no RTT sample since the last probe


@pytest.mark.rfc("8985", "7.4.2")
def test_tlp_episode_end_detection() -> None:
    c: dict[str, int] = {}
    r = Rack(counters=c)
    assert r.tlp_on_ack(500, None, False) is TlpAck.NONE  # no episode
    r.on_probe_sent(1000, retransmission=False)
    assert r.tlp_on_ack(900, None, False) is TlpAck.NONE
    assert r.tlp_on_ack(1000, None, False) is TlpAck.DELIVERED
    assert r.tlp_end_seq is None
    r.on_probe_sent(1000, retransmission=True)
    assert r.tlp_on_ack(1000, (900, 1000), False) is TlpAck.SPURIOUS  # case 1
    r.on_probe_sent(1000, retransmission=True)
    assert r.tlp_on_ack(1000, None, True) is TlpAck.SPURIOUS  # case 2
    r.on_probe_sent(1000, retransmission=True)
    assert r.tlp_on_ack(1000, None, False) is TlpAck.NONE  # wait for more evidence
    assert r.tlp_end_seq == 1000
    assert r.tlp_on_ack(1100, None, False) is TlpAck.LOSS_REPAIRED
    assert c["TcpExtTCPLossProbeRecovery"] == 1 and c["TcpExtTCPLossProbeSpurious"] == 2


# --- the RFC's examples ---------------------------------------------------------------------


class Sender:
    """A minimal engine loop over Rack, enough to replay the RFC 8985 figures."""

    def __init__(self, flight: list[Seg], srtt: float) -> None:
        self.rack = Rack()
        self.flight = flight
        self.srtt = srtt
        self.acked: set[int] = set()  # seq of delivered segments
        self.snd_una = 0
        self.in_recovery = False

    def ack(self, now: float, delivered: list[Seg], rtt_sample: float | None = None) -> list[Seg]:
        r = self.rack
        if rtt_sample is not None:
            r.on_rtt_sample(rtt_sample, now)
        r.update(delivered, now)
        r.detect_reordering(delivered)
        self.acked |= {s.seq for s in delivered}
        while self.snd_una in self.acked:
            self.snd_una += 100
        r.on_ack_dsack(self.snd_una, self.flight[-1].end_seq, False, False)
        outstanding = [s for s in self.flight if s.seq not in self.acked and not s.lost]
        sacked = len([s for s in self.flight if s.seq in self.acked and s.seq >= self.snd_una])
        lost, _ = r.detect_loss(outstanding, now, in_recovery=self.in_recovery,
                                segs_sacked=sacked, srtt=self.srtt)
        for s in lost:
            s.mark_lost()
        if lost and not self.in_recovery:
            self.in_recovery = True
            r.tlp_init()
        return lost


@pytest.mark.rfc("8985", "3.4")
def test_figure_1_fast_recovery_with_tlp() -> None:
    rtt = 0.125
    p = segs(4)  # 1. P0..P3 sent at t=0; P1, P2, P3 dropped
    snd = Sender(p, srtt=rtt)
    assert snd.ack(rtt, [p[0]], rtt_sample=rtt) == []  # 2. ACK P0
    r = snd.rack
    assert Rack.may_arm_pto(in_recovery=False, segs_sacked=0)
    pto = r.pto(now=rtt, srtt=rtt, flight_is_one_segment=False, rto_expiration=rtt + 1.0)
    assert pto == 2 * rtt  # 3a. two RTTs later the TLP timer fires
    t = rtt + pto
    assert r.probe_kind(new_data_sendable=False) is TlpProbe.RETRANSMIT
    p[3].retransmit(t)  # 3b. TLP retransmits P3
    r.on_probe_sent(snd_nxt=400, retransmission=True)
    t += rtt  # 4./5a. SACK for P3
    lost = snd.ack(t, [p[3]])
    assert [s.seq for s in lost] == [100, 200]  # 5b. RACK marks P1, P2 lost
    assert r.tlp_on_ack(snd.snd_una, None, False) is TlpAck.NONE  # TLP state was reset
    p[1].retransmit(t)  # 5c. P1, P2 retransmitted; P1's retransmission dropped
    p[2].retransmit(t)
    t += rtt  # 6. SACK P2 & P3
    lost = snd.ack(t, [p[2]])
    assert [s.seq for s in lost] == [100]  # 7a. the retransmission of P1 is lost
    assert r.counters["TcpExtTCPLostRetransmit"] == 1
    p[1].retransmit(t)  # 7b.
    t += rtt
    assert snd.ack(t, [p[1]]) == []  # 8. ACK P3
    assert snd.snd_una == 400


@pytest.mark.rfc("8985", "9.1")
def test_example_tail_drop_in_application_limited_flight() -> None:
    """§9.1 example 1: P1, P2, P3 sent reo_wnd apart; P1 and P3 lost.  SACK of P2 marks P1;
    the cumulative ACK of R1 marks P3 -- no RTO needed."""
    rtt = 0.125
    p = segs(3, gap=0.0625)
    snd = Sender(p, srtt=rtt)
    snd.rack.on_rtt_sample(rtt, now=0.0)
    t = p[1].xmit_ts + rtt
    assert [s.seq for s in snd.ack(t, [p[1]])] == [0]
    p[0].retransmit(t)
    t += rtt
    assert [s.seq for s in snd.ack(t, [p[0]])] == [200]


@pytest.mark.rfc("8985", "7.2")
def test_pto_floor_for_microsecond_rtts() -> None:
    """2 x SRTT on a local link is microseconds: the configured floor (Linux: 10 ms) keeps
    probes from firing while the ACK is still being processed; the RTO cap still applies."""
    rack = Rack(tlp_min_pto=0.01)
    assert rack.pto(0.0, 0.0001, False, None) == pytest.approx(0.01)
    assert rack.pto(0.0, 0.05, False, None) == pytest.approx(0.1)
    assert rack.pto(0.0, 0.0001, True, None) == pytest.approx(0.01 + rack.tlp_max_ack_delay)
    assert rack.pto(0.0, 0.0001, False, 0.004) == pytest.approx(0.004)
    assert Rack().pto(0.0, 0.0001, False, None) == pytest.approx(0.0002)
