"""The run loop: stack timers, idle detection, bounds, scheduling, determinism, tracing to
pcap, and (hypothesis) packet conservation under random link parameters."""

from __future__ import annotations

import io
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interop.netsim import (
    Coalescer,
    GilbertElliott,
    LinkParams,
    Nat,
    NetsimError,
    Simulator,
    Splitter,
    StopReason,
    TraceRecorder,
    pcap_hook,
)
from mptcp.wire.pcap import PcapWriter, read_pcap
from mptcp.wire.segment import checksum_ok, parse_segment
from tests.netsim.endpoints import A4, B4, Echoer, Pinger, Ticker, make_packet, number_of, pair


def test_timer_fires_at_its_deadline() -> None:
    sim = Simulator()
    t = Ticker(0.123)
    sim.add_host("t", t)
    res = sim.run(until=1.0)
    assert res.reason is StopReason.UNTIL and res.now == 1.0 and sim.now == 1.0
    assert t.fired == pytest.approx([0.123 * k for k in range(1, 9)], abs=1e-12)
    assert sim.hosts["t"].counters["timers_fired"] == 8


def test_superseded_timer_is_not_fired() -> None:
    class Moody(Ticker):
        def receive(self, packet: bytes, now: float) -> None:
            self.next = now + 5.0  # a packet pushes the deadline back

    sim = Simulator()
    m, p = Moody(1.0), Pinger()
    pair(sim, p, m)
    p.add(0.5, make_packet(A4, B4, b"x"))
    sim.run(until=5.4)
    assert m.fired == []
    sim.run(until=5.6)
    assert m.fired == [5.5]


def test_idle_detection() -> None:
    sim = Simulator()
    ping, echo = Pinger(), Echoer()
    pair(sim, ping, echo, LinkParams(delay=0.01))
    ping.add_numbered([0.0, 0.1], A4, B4)
    res = sim.run()
    assert res.reason is StopReason.IDLE
    assert res.now == pytest.approx(0.12)
    assert len(ping.received) == 2
    assert res.events < 20 and sim.pending_events() == 0
    # idle with a time bound: the clock jumps to it
    res = sim.run(until=50.0)
    assert res.reason is StopReason.IDLE and res.now == 50.0 and res.events == 0


def test_bounded_by_events_time_and_condition() -> None:
    sim = Simulator(max_time=100.0)
    t = Ticker(0.001)
    sim.add_host("t", t)
    res = sim.run(lambda: False, max_events=500)
    assert res.reason is StopReason.MAX_EVENTS and res.events == 500 and len(t.fired) == 500
    res = sim.run(lambda: False, max_time=2.0)
    assert res.reason is StopReason.MAX_TIME and res.now == 2.0
    assert len(t.fired) == pytest.approx(2000, abs=1)
    res = sim.run(lambda: len(t.fired) >= 2500)
    assert res.reason is StopReason.CONDITION and len(t.fired) == 2500
    assert sim.run(lambda: True).events == 0
    res = sim.run()  # the simulator's own max_time
    assert res.reason is StopReason.MAX_TIME and res.now == 100.0
    with pytest.raises(NetsimError):
        sim.run(until=1.0)  # in the past


def test_schedule_runs_callbacks_in_time_order_and_drains_stacks() -> None:
    sim = Simulator()
    a, b = Pinger(), Pinger()
    pair(sim, a, b, LinkParams(delay=0.5))
    log: list[tuple[str, float]] = []
    sim.schedule(2.0, lambda: log.append(("two", sim.now)))
    sim.schedule(1.0, lambda: log.append(("one", sim.now)))
    # a callback that hands the stack a packet: the simulator drains it right away
    sim.schedule(1.5, lambda: a.outbox.append(make_packet(A4, B4, b"late")))
    sim.run()
    assert log == [("one", 1.0), ("two", 2.0)]
    assert [t for t, _ in b.received] == [2.0]


def _chaotic(seed: int) -> tuple[Simulator, TraceRecorder]:
    sim = Simulator(seed=seed)
    ping, echo = Pinger(), Echoer()
    _, _, link = pair(sim, ping, echo, LinkParams(
        delay=0.01, jitter=0.004, rate=5e6, queue_packets=20, ecn_threshold_packets=5,
        loss=0.05, burst_loss=GilbertElliott(0.05, 0.5), duplicate=0.05, reorder=0.1,
        reorder_delay=0.003))
    link.ab.add_middlebox(Splitter(2))
    link.ab.add_middlebox(Coalescer(0.002, max_payload=3000))
    nat = Nat("10.0.0.2", ports=range(3000, 3100))  # on the same subnet: only ports change
    link.ba.add_middlebox(nat.outbound)
    ping.add_numbered([i * 0.0005 for i in range(400)], A4, B4, size=600, ecn=2)
    rec = TraceRecorder()
    sim.add_trace(rec)
    sim.run()
    return sim, rec


def test_determinism_same_seed_same_trace() -> None:
    s1, r1 = _chaotic(11)
    s2, r2 = _chaotic(11)
    _s3, r3 = _chaotic(12)
    kinds = {r.event for r in r1.records}
    assert kinds >= {"send", "deliver", "ce", "drop:queue", "drop:loss", "drop:burst_loss",
                     "duplicate", "reorder"}
    assert r1.records == r2.records
    assert s1.report() == s2.report()
    assert r1.records != r3.records


def test_pcap_hook_writes_delivered_packets() -> None:
    sim = Simulator()
    ping, echo = Pinger(), Echoer()
    pair(sim, ping, echo, LinkParams(delay=0.25))
    ping.add_numbered([0.0, 1.0], A4, B4)
    buf = io.BytesIO()
    w = PcapWriter(buf)
    sim.add_trace(pcap_hook(w, event="deliver", epoch=1000.0))
    sim.run()
    buf.seek(0)
    pkts = list(read_pcap(buf))
    assert [p.timestamp for p in pkts] == pytest.approx([1000.25, 1000.5, 1001.25, 1001.5])
    assert [p.ip for p in pkts] == [echo.received[0][1], ping.received[0][1],
                                    echo.received[1][1], ping.received[1][1]]


# -- conservation under random parameters (hypothesis) -------------------------------------------

probs = st.sampled_from([0.0, 0.0, 0.01, 0.2, 0.5, 1.0])
limits = st.one_of(st.none(), st.integers(0, 30))
link_params = st.builds(
    LinkParams,
    delay=st.floats(0.0, 0.05),
    jitter=st.floats(0.0, 0.02),
    rate=st.one_of(st.none(), st.floats(1e4, 1e8)),
    queue_packets=limits,
    queue_bytes=st.one_of(st.none(), st.integers(0, 50_000)),
    ecn_threshold_packets=limits,
    ecn_threshold_bytes=st.one_of(st.none(), st.integers(0, 20_000)),
    aqm_drop_not_ect=st.booleans(),
    loss=probs,
    burst_loss=st.one_of(st.none(), st.builds(GilbertElliott, probs, probs, probs, probs)),
    duplicate=probs,
    reorder=probs,
    reorder_delay=st.floats(0.0, 0.05),
    fifo=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    params=link_params,
    back=link_params,
    sends=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(4, 1400),
                             st.sampled_from([0, 1, 2, 3])), max_size=60),
    flaps=st.lists(st.tuples(st.floats(0.0, 1.2), st.floats(0.0, 0.3)), max_size=3),
    changes=st.lists(st.tuples(st.floats(0.0, 1.2), link_params), max_size=2),
    split=st.booleans(),
    stop=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**32),
)
def test_random_links_conserve_packets(
    params: LinkParams, back: LinkParams, sends: list[tuple[float, int, int]],
    flaps: list[tuple[float, float]], changes: list[tuple[float, LinkParams]], split: bool,
    stop: float, seed: int,
) -> None:
    sim = Simulator(seed)
    ping, echo = Pinger(), Echoer()
    _, _, link = pair(sim, ping, echo, ab=params, ba=back)
    if split:
        link.ab.add_middlebox(Splitter(3))
    for i, (t, size, ecn) in enumerate(sorted(sends)):
        ping.add_numbered([t], A4, B4, size=size, ecn=ecn, first=i)
    for at, dur in flaps:
        sim.flap(link, at, dur)
    for at, new in changes:
        sim.schedule(at, partial(setattr, link.ab, "params", new))

    def conserved(final: bool) -> None:
        for d in (link.ab, link.ba):
            s = d.stats
            wire = sim.pending_deliveries(d)
            assert s.in_flight == wire
            assert s.sent + s.duplicated + s.middlebox_out - s.middlebox_in == (
                s.delivered + s.dropped_total + wire)
            if final:
                assert wire == 0 and d.held() == 0
        assert link.ab.stats.delivered == len(echo.received)
        assert link.ba.stats.delivered == len(ping.received)

    res = sim.run(until=stop)
    assert res.reason in (StopReason.UNTIL, StopReason.IDLE)
    conserved(final=False)
    res = sim.run()
    assert res.reason is StopReason.IDLE
    conserved(final=True)
    assert link.ab.stats.sent == len(sends)
    assert link.ba.stats.sent == len(echo.received)
    for _, pkt in echo.received + ping.received:
        assert checksum_ok(pkt)
    if not split:
        nums = [number_of(pkt) for _, pkt in echo.received]
        assert set(nums) <= set(range(len(sends)))
        if params.fifo and params.reorder == 0.0 and not changes:
            assert nums == sorted(nums)  # FIFO: never reordered


@pytest.mark.parametrize("weak", [True, False])
def test_multihomed_client_single_homed_server(weak: bool) -> None:
    sim = Simulator()
    client, server = Pinger(), Echoer()
    hc = sim.add_host("c", client)
    hs = sim.add_host("s", server, weak_host=weak)
    c0, c1 = hc.add_interface("eth0", "10.0.1.1"), hc.add_interface("eth1", "10.0.2.1")
    s0, s1 = hs.add_interface("eth0", "10.0.0.1"), hs.add_interface("eth1")
    hs.add_route("10.0.2.0/24", s1)
    l1 = sim.add_link(c0, s0, LinkParams(delay=0.01))
    l2 = sim.add_link(c1, s1, LinkParams(delay=0.03))
    client.add(0.0, make_packet("10.0.1.1", "10.0.0.1", b"p1"))
    client.add(0.0, make_packet("10.0.2.1", "10.0.0.1", b"p2", sport=1001))
    sim.run()
    assert l1.ab.stats.delivered == 1 and l1.ba.stats.delivered == 1
    if weak:
        assert [parse_segment(p).payload for _, p in client.received] == [b"p1", b"p2"]
        assert [t for t, _ in client.received] == pytest.approx([0.02, 0.06])
        assert l2.ba.stats.delivered == 1  # the reply from 10.0.0.1 took the route
    else:  # strong host model: eth1 does not own 10.0.0.1
        assert l2.ab.stats.dropped["no_route"] == 1 and len(client.received) == 1
    with pytest.raises(NetsimError):
        hs.add_route("not a prefix", s1)
    with pytest.raises(NetsimError):
        hs.add_route("10.9.0.0/16", c0)
