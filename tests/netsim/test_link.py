"""Link model: exact timing in virtual time, FIFO under jitter, queue and rate, loss (random and
Gilbert-Elliott), duplication, reordering, ECN marking, flaps and routing."""

from __future__ import annotations

import math

import pytest

from interop.netsim import (
    DropReason,
    GilbertElliott,
    LinkParams,
    NetsimError,
    Simulator,
)
from interop.netsim.packet import ecn_of, with_ce
from mptcp.wire.ip import ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT, IPv4Header, ipv4
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from tests.netsim.endpoints import A4, A6, B4, B6, Echoer, Pinger, make_packet, number_of, pair

EPS = 1e-12


def _sink_pair(params: LinkParams, v6: bool = False) -> tuple[Simulator, Pinger, Pinger]:
    sim = Simulator(seed=7)
    a, b = Pinger(), Pinger()
    pair(sim, a, b, params, v6=v6)
    return sim, a, b


def test_propagation_delay_exact() -> None:
    sim = Simulator()
    ping, echo = Pinger(), Echoer()
    pair(sim, ping, echo, ab=LinkParams(delay=0.010), ba=LinkParams(delay=0.025))
    ping.add_numbered([0.5], A4, B4)
    assert sim.run().reason == "idle"
    assert echo.received[0][0] == pytest.approx(0.510, abs=EPS)
    assert ping.received[0][0] == pytest.approx(0.535, abs=EPS)


def test_serialization_delay_exact() -> None:
    rate = 1_000_000.0
    sim, a, b = _sink_pair(LinkParams(delay=0.002, rate=rate))
    a.add_numbered([0.0, 0.0, 0.0], A4, B4, size=960)  # 1000-byte IP packets
    sim.run()
    size = len(b.received[0][1])
    assert size == 1000
    ser = size * 8 / rate
    got = [t for t, _ in b.received]
    assert got == pytest.approx([ser + 0.002, 2 * ser + 0.002, 3 * ser + 0.002], abs=EPS)
    # a packet offered after the queue drained only waits for its own serialization
    sim2, a2, b2 = _sink_pair(LinkParams(delay=0.002, rate=rate))
    a2.add_numbered([0.0, 1.0], A4, B4, size=960)
    sim2.run()
    assert b2.received[1][0] == pytest.approx(1.0 + ser + 0.002, abs=EPS)


def test_rate_limits_throughput() -> None:
    rate = 10e6
    sim, a, b = _sink_pair(LinkParams(delay=0.01, rate=rate))
    a.add_numbered([0.0] * 400, A4, B4, size=1210)  # 1250-byte packets: 1 ms each
    sim.run()
    assert len(b.received) == 400
    first, last = b.received[0][0], b.received[-1][0]
    nbytes = sum(len(p) for _, p in b.received)
    # 399 packets arrive in the time it takes to serialize 399 of them
    measured = (nbytes - len(b.received[0][1])) * 8 / (last - first)
    assert measured == pytest.approx(rate, rel=1e-9)
    assert last == pytest.approx(0.4 + 0.01, abs=1e-9)


def test_fifo_with_jitter() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.010, jitter=0.005))
    times = [i * 0.0001 for i in range(2000)]
    a.add_numbered(times, A4, B4)
    sim.run()
    nums = [number_of(p) for _, p in b.received]
    assert nums == sorted(nums) and len(nums) == 2000
    one_way = [t - times[n] for (t, _), n in zip(b.received, nums, strict=True)]
    assert min(one_way) >= 0.005 - EPS
    assert max(one_way) - min(one_way) > 0.004  # the jitter is there
    assert max(one_way) <= 0.015 + 0.0001 * 2000  # bounded


def test_jitter_reorders_when_not_fifo() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.010, jitter=0.005, fifo=False))
    a.add_numbered([i * 0.0001 for i in range(2000)], A4, B4)
    sim.run()
    nums = [number_of(p) for _, p in b.received]
    assert sorted(nums) == list(range(2000))
    assert nums != sorted(nums)


def test_queue_limit_packets_drops_tail() -> None:
    sim, a, b = _sink_pair(LinkParams(rate=1e6, queue_packets=10))
    a.add_numbered([0.0] * 50 + [1.0], A4, B4, size=960)
    sim.run()
    link = next(iter(sim.links.values()))
    nums = [number_of(p) for _, p in b.received]
    assert nums == [*range(10), 50]
    assert link.ab.stats.dropped[DropReason.QUEUE] == 40


def test_queue_limit_bytes() -> None:
    sim, a, b = _sink_pair(LinkParams(rate=1e6, queue_bytes=4500))
    a.add_numbered([0.0] * 10, A4, B4, size=960)
    sim.run()
    assert [number_of(p) for _, p in b.received] == [0, 1, 2, 3]
    assert sim.report()["links"]["a.eth0-b.eth0"]["ab"]["dropped_queue"] == 6


def test_random_loss_statistics() -> None:
    n, p = 20000, 0.1
    sim, a, b = _sink_pair(LinkParams(loss=p))
    a.add_numbered([0.0] * n, A4, B4, size=8)
    sim.run()
    lost = n - len(b.received)
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(lost - n * p) < 5 * sigma
    assert next(iter(sim.links.values())).ab.stats.dropped["loss"] == lost


def test_gilbert_elliott_bursts() -> None:
    n = 30000
    ge = GilbertElliott(p=0.02, r=0.25)
    sim, a, b = _sink_pair(LinkParams(burst_loss=ge))
    a.add_numbered([0.0] * n, A4, B4, size=8)
    sim.run()
    got = {number_of(p) for _, p in b.received}
    lost = [i not in got for i in range(n)]
    rate = sum(lost) / n
    assert ge.mean_loss() == pytest.approx(0.02 / 0.27)
    assert abs(rate - ge.mean_loss()) < 0.02
    bursts = [1 for i in range(n) if lost[i] and (i == 0 or not lost[i - 1])]
    mean_burst = sum(lost) / len(bursts)
    assert 3.0 < mean_burst < 5.0  # geometric with mean 1/r = 4
    # far burstier than independent loss at the same rate (mean run 1/(1-rate) ~ 1.08)
    assert mean_burst > 2 / (1 - rate)


def test_duplication() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.001, duplicate=1.0))
    a.add_numbered([i * 0.01 for i in range(10)], A4, B4)
    sim.run()
    nums = [number_of(p) for _, p in b.received]
    assert nums == [i for i in range(10) for _ in range(2)]
    sim2, a2, b2 = _sink_pair(LinkParams(duplicate=0.25))
    a2.add_numbered([0.0] * 8000, A4, B4, size=8)
    sim2.run()
    extra = len(b2.received) - 8000
    assert abs(extra - 2000) < 5 * math.sqrt(8000 * 0.25 * 0.75)
    assert next(iter(sim2.links.values())).ab.stats.duplicated == extra


def test_reordering() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.01, reorder=0.2, reorder_delay=0.005))
    n = 3000
    a.add_numbered([i * 0.001 for i in range(n)], A4, B4)
    sim.run()
    nums = [number_of(p) for _, p in b.received]
    assert sorted(nums) == list(range(n))
    late = sum(1 for i in range(1, n) if nums[i] < nums[i - 1])
    st = next(iter(sim.links.values())).ab.stats
    assert abs(st.reordered - 0.2 * n) < 5 * math.sqrt(n * 0.16)
    assert late > 0.1 * n  # overtaken packets show up out of order


def _ecn_burst(v6: bool, drop_not_ect: bool) -> tuple[Simulator, Pinger]:
    sim, a, b = _sink_pair(LinkParams(rate=1e6, queue_packets=100, ecn_threshold_packets=3,
                                      aqm_drop_not_ect=drop_not_ect), v6=v6)
    src, dst = (A6, B6) if v6 else (A4, B4)
    plan = [ECN_ECT0] * 10 + [ECN_NOT_ECT] * 5 + [ECN_ECT1] * 5 + [ECN_CE] * 2
    for i, e in enumerate(plan):
        a.add_numbered([0.0], src, dst, size=500, ecn=e, first=i)
    sim.run()
    return sim, b


@pytest.mark.rfc("3168", "5")
@pytest.mark.parametrize("v6", [False, True])
def test_ce_marking_above_threshold(v6: bool) -> None:
    sim, b = _ecn_burst(v6, drop_not_ect=True)
    got = {number_of(p): p for _, p in b.received}
    # packets 0..3 found at most 3 packets ahead: untouched; ECT ones after that are marked
    for i in range(4):
        assert ecn_of(got[i]) == ECN_ECT0
    for i in range(4, 10):
        assert ecn_of(got[i]) == ECN_CE
    for i in range(10, 15):  # Not-ECT above the threshold: dropped instead (RFC 3168 §5)
        assert i not in got
    for i in range(15, 22):
        assert ecn_of(got[i]) == ECN_CE
    for p in got.values():
        assert checksum_ok(p)
        seg = parse_segment(p)
        assert seg.payload[:4] == number_of(p).to_bytes(4, "big")
    st = next(iter(sim.links.values())).ab.stats
    assert st.marked_ce == 11  # 6 ECT(0) + 5 ECT(1); the CE ones were already marked
    assert st.dropped["aqm"] == 5


@pytest.mark.rfc("3168", "5")
def test_not_ect_passes_unmarked_when_aqm_does_not_drop() -> None:
    _sim, b = _ecn_burst(False, drop_not_ect=False)
    got = {number_of(p): p for _, p in b.received}
    assert len(got) == 22
    assert all(ecn_of(got[i]) == ECN_NOT_ECT for i in range(10, 15))


@pytest.mark.rfc("3168", "5")
def test_with_ce_keeps_checksums_and_ip_options() -> None:
    base = make_packet(A4, B4, b"xyz", ecn=ECN_ECT1)
    seg = parse_segment(base)
    assert isinstance(seg.ip, IPv4Header)
    opt_ip = ipv4(seg.ip.src, seg.ip.dst, tos=0x28 | ECN_ECT0, options=b"\x01\x01\x01\x00")
    for pkt in (base, Segment(opt_ip, seg.tcp, b"abc").to_bytes(),
                make_packet(A6, B6, b"v6", ecn=ECN_ECT0)):
        marked = with_ce(pkt)
        assert ecn_of(marked) == ECN_CE and checksum_ok(marked)
        before, after = parse_segment(pkt), parse_segment(marked)
        assert after.tcp == before.tcp and after.payload == before.payload
    marked_ip = parse_segment(with_ce(Segment(opt_ip, seg.tcp, b"").to_bytes())).ip
    assert isinstance(marked_ip, IPv4Header) and marked_ip.dscp == 0x28 >> 2


def test_link_flap_drops_queue_wire_and_offered() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.05))
    times = [0.005 + 0.01 * k for k in range(300)]
    a.add_numbered(times, A4, B4)
    link = next(iter(sim.links.values()))
    sim.flap(link, at=1.0, duration=0.5)
    sim.run()
    got = {number_of(p) for _, p in b.received}
    expect = {k for k, t in enumerate(times) if t + 0.05 < 1.0 or t >= 1.5}
    assert got == expect
    st = link.ab.stats
    assert st.dropped["link_down"] == 300 - len(expect)
    assert st.delivered + st.dropped_total == st.sent == 300
    assert link.up


def test_no_route_and_no_interface() -> None:
    sim, a, b = _sink_pair(LinkParams())
    a.add(0.0, make_packet(A4, "10.9.9.9"))  # nobody there
    a.add(0.0, make_packet("10.1.1.1", B4))  # not our address
    a.add(0.0, b"\x45\x00")  # not even an IP header
    sim.run()
    link = next(iter(sim.links.values()))
    assert link.ab.stats.dropped[DropReason.NO_ROUTE] == 1
    assert sim.hosts["a"].counters["tx_no_interface"] == 1
    assert sim.hosts["a"].counters["tx_malformed"] == 1
    assert not b.received


def test_params_change_mid_run() -> None:
    sim, a, b = _sink_pair(LinkParams(delay=0.01))
    a.add_numbered([0.0, 1.0, 2.0], A4, B4)
    link = next(iter(sim.links.values()))
    sim.configure_at(0.5, link, "ab", delay=0.2)
    sim.schedule(1.5, lambda: link.configure(loss=1.0))
    sim.run()
    assert [t for t, _ in b.received] == pytest.approx([0.01, 1.2], abs=EPS)
    assert link.ab.stats.dropped["loss"] == 1


@pytest.mark.parametrize("bad", [
    {"delay": -1.0}, {"loss": 1.5}, {"rate": -5.0}, {"queue_packets": -1},
    {"jitter": math.inf}, {"reorder": -0.1}, {"burst_loss": 0.5},
])
def test_bad_params_raise(bad: dict[str, object]) -> None:
    with pytest.raises(NetsimError):
        LinkParams(**bad)  # type: ignore[arg-type]
    with pytest.raises(NetsimError):
        LinkParams().replace(nonsense=1)
    with pytest.raises(NetsimError):
        GilbertElliott(p=2.0, r=0.1)


def test_rate_zero_means_infinite() -> None:
    assert LinkParams(rate=0).rate is None


def test_wiring_errors() -> None:
    sim = Simulator()
    ha = sim.add_host("a", Pinger())
    hb = sim.add_host("b", Pinger())
    ia, ib = ha.add_interface("e", A4), hb.add_interface("e", B4)
    sim.add_link(ia, ib)
    with pytest.raises(NetsimError):
        sim.add_link(ia, hb.add_interface("f", "10.0.0.3"))
    with pytest.raises(NetsimError):
        sim.add_host("a", Pinger())
    with pytest.raises(NetsimError):
        ha.add_interface("g", A4)
    with pytest.raises(NetsimError):
        ha.add_interface("h", "not-an-address")
    with pytest.raises(NetsimError):
        sim.schedule(-1.0, lambda: None)
