"""TCP bulk transfers on the simulator through ``interop.tcp_app``, the TCP demo, and
regressions for engine bugs the netsim fuzzer found."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interop.cli import main
from interop.netsim import LinkParams, Simulator
from interop.tcp_app import (
    CHUNK,
    payload_prefix_sha256,
    payload_sha256,
    payload_stream,
    setup_transfer,
)
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.state import TcpState
from mptcp.wire.options import Timestamps
from mptcp.wire.segment import Segment, parse_segment


def _expected(seed: int, size: int) -> bytes:
    """The sender's data, rebuilt here without interop.tcp_app's generator."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(min(CHUNK, size - len(out)))
    return bytes(out)


def test_payload_stream_is_seeded_and_sized() -> None:
    data = b"".join(payload_stream(7, 200_000))
    assert data == _expected(7, 200_000)
    assert payload_sha256(7, 200_000) == hashlib.sha256(data).hexdigest()
    assert b"".join(payload_stream(8, 1000)) != data[:1000]


@given(st.integers(0, 150_000), st.integers(0, 150_000))
def test_prefix_hash(size: int, n: int) -> None:
    n = min(n, size)
    assert payload_prefix_sha256(3, size, n) == \
        hashlib.sha256(_expected(3, size)[:n]).hexdigest()


@pytest.mark.rfc("9293", "3.10.4")
def test_bulk_transfer_with_loss_and_reordering() -> None:
    sim = Simulator(seed=5)
    params = LinkParams(delay=0.01, rate=20e6, queue_packets=60, loss=0.02, reorder=0.02,
                        reorder_delay=0.005, duplicate=0.01)
    tr, link = setup_transfer(sim, 600_000, params, seed=11, keep=True)
    res = sim.run(until=lambda: tr.finished, max_time=600)
    snd, snk = tr.results()
    assert res.reason == "condition"
    assert tr.sink.data is not None and bytes(tr.sink.data) == _expected(11, 600_000)
    assert snd.sha256 == snk.sha256 == hashlib.sha256(_expected(11, 600_000)).hexdigest()
    assert snd.closed_clean and snk.closed_clean and snd.failure is None
    assert snd.connected_at is not None and snk.eof_at is not None
    assert snd.started_at == 0.0 < snd.connected_at < snk.eof_at <= snk.closed_at  # type: ignore[operator]
    assert link.ab.stats.dropped_total > 0  # the loss really happened...
    conn = tr.sender.conn
    assert conn is not None and conn.mib["TcpRetransSegs"] > 0  # ...and was repaired


def test_empty_transfer_connects_then_closes() -> None:
    """A 0-byte sender must not CLOSE in SYN-SENT (that deletes the TCB, RFC 9293 §3.10.4)."""
    sim = Simulator(seed=1)
    tr, _ = setup_transfer(sim, 0, LinkParams(delay=0.005), seed=1)
    sim.run(until=lambda: tr.finished, max_time=60)
    snd, snk = tr.results()
    assert snd.connected_at is not None
    assert snd.closed_clean and snk.closed_clean and snk.bytes == 0
    assert snk.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.rfc("9293", "3.8.6.1")
def test_slow_reader_closes_the_window_and_the_sender_probes() -> None:
    sim = Simulator(seed=2)
    small = TcpConfig(recv_buffer=8192)
    tr, _ = setup_transfer(sim, 100_000, LinkParams(delay=0.01, rate=10e6), seed=4,
                           server_config=small, keep=True)
    tr.sink.pauses = [(0.05, 3.05)]
    sim.run(until=lambda: tr.finished, max_time=600)
    snd, snk = tr.results()
    assert snd.closed_clean and snk.closed_clean
    assert tr.sink.data is not None and bytes(tr.sink.data) == _expected(4, 100_000)
    conn = tr.sender.conn
    assert conn is not None and conn.mib["TcpExtTCPWinProbe"] > 0
    assert snk.eof_at is not None and snk.eof_at > 3.05


@pytest.mark.rfc("9293", "3.8.3")
def test_outage_longer_than_user_timeout_is_reported() -> None:
    sim = Simulator(seed=3)
    cfg = TcpConfig(user_timeout=2.0)
    tr, link = setup_transfer(sim, 2_000_000, LinkParams(delay=0.01, rate=5e6), seed=6,
                              client_config=cfg)
    sim.flap(link, at=0.5, duration=20.0)
    res = sim.run(until=lambda: tr.finished, max_time=600)
    snd, snk = tr.results()
    assert snd.failure == "ConnectionFailed: user timeout"
    assert snd.failed_at is not None and 2.5 <= snd.failed_at <= 20.5
    assert snd.failed_state == TcpState.ESTABLISHED.value
    # the sink is left half-open with a prefix of the data
    assert res.reason == "idle" and not snk.finished
    assert 0 < snk.bytes < 2_000_000
    assert snk.sha256 == payload_prefix_sha256(6, 2_000_000, snk.bytes)


def test_tcp_demo_exits_0_and_hashes_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--size", "300000", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    sent = [ln.split()[-1] for ln in out.splitlines() if ln.strip().startswith("sha256")]
    got = [ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("received ")
           and "equal" in ln]
    want = hashlib.sha256(_expected(2, 300_000)).hexdigest()
    assert sent == [want] and got == [want]
    assert "both sides closed cleanly" in out and "transfer verified" in out


def test_tcp_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["demo", "--size", "50000", "--loss", "0", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["ok"] and r["received_bytes"] == 50_000
    assert r["retransmissions"]["total"] == 0
    assert r["rtt"]["min_rtt_ms"] >= 20.0  # never below the path's round-trip time
    assert r["goodput_mbit"] <= 50.0


# --------------------------------------------------------------------------- regressions ---

def _pump(src: TcpConnection, dst: TcpConnection, now: float,
          drop: bool = False) -> list[Segment]:
    segs = [parse_segment(s.to_bytes()) for s in src.packets_to_send(now)]
    if not drop:
        for s in segs:
            dst.receive(s, now)
    return segs


def _tsopt(seg: Segment) -> Timestamps:
    ts = next(o for o in seg.tcp.options if type(o) is Timestamps)
    assert isinstance(ts, Timestamps)
    return ts


@pytest.mark.rfc("7323", "4.3")
def test_retransmission_after_lost_ack_refreshes_ts_recent() -> None:
    """Regression (netsim fuzz, seed 1 schedules 237/295): an old duplicate -- the RTO
    retransmission of a segment whose ACK was lost -- must update TS.Recent (RFC 7323 §4.3
    rule (2) before the acceptability test, Appendix D; Appendix H (f)(1)), so that the ACK it
    draws echoes the retransmission's TSval.  Echoing the stale TSval made the sender take
    an RTT sample inflated by the whole RTO, which fed back into ever larger RTOs."""
    cfg = TcpConfig(delayed_ack=False)
    rng = random.Random(1)
    a = TcpConnection.connect(("10.0.0.1", 40000), ("10.0.0.2", 80), cfg, rng, 0.0)
    syn = [parse_segment(s.to_bytes()) for s in a.packets_to_send(0.0)]
    b = TcpConnection.accept_syn(syn[0], cfg, random.Random(2), 0.01)
    _pump(b, a, 0.02)  # SYN-ACK
    _pump(a, b, 0.02)  # ACK
    assert a.state is b.state is TcpState.ESTABLISHED
    a.send(b"x" * 1000)
    first = _pump(a, b, 0.1)
    assert len(first) == 1 and first[0].payload
    _pump(b, a, 0.11, drop=True)  # the ACK is lost
    deadline = a.get_timer()
    assert deadline is not None
    a.handle_timer(deadline)  # RTO: the segment again, with a fresh TSval
    again = _pump(a, b, deadline)
    assert again and again[0].payload == first[0].payload
    assert _tsopt(again[0]).tsval != _tsopt(first[0]).tsval
    ack = _pump(b, a, deadline + 0.01)
    assert ack and _tsopt(ack[-1]).tsecr == _tsopt(again[0]).tsval
    assert a.snd_una == 1001
    # the sample is the real RTT (10 ms), not RTO + RTT
    assert a.rtt.latest_rtt is not None and a.rtt.latest_rtt < 0.05


def test_duplicate_below_window_still_obeys_paws() -> None:
    """The earlier TS.Recent update must not let an old TSval in: PAWS (RFC 7323 §5.3 R1)
    still drops a segment whose TSval is older than TS.Recent."""
    cfg = replace(TcpConfig(), delayed_ack=False)
    a = TcpConnection.connect(("10.0.0.1", 40001), ("10.0.0.2", 80), cfg, random.Random(3))
    syn = [parse_segment(s.to_bytes()) for s in a.packets_to_send(0.0)]
    b = TcpConnection.accept_syn(syn[0], cfg, random.Random(4), 0.0)
    _pump(b, a, 0.01)
    _pump(a, b, 0.01)
    a.send(b"y" * 500)
    old = _pump(a, b, 0.5)
    _pump(b, a, 0.51)
    a.send(b"z" * 500)
    _pump(a, b, 1.5)
    recent = b.ts_recent
    b.receive(old[0], 2.0)  # replayed: older TSval, below the window
    assert b.ts_recent == recent
    assert b.mib["TcpExtPAWSEstab"] == 1


@pytest.mark.rfc("2883", "4")
def test_no_dsack_counted_without_sack() -> None:
    """Regression (netsim fuzz, seed 2 schedule 1639): the receive buffer kept the configured
    D-SACK setting when SACK was not negotiated, so ``TcpExtTCPDSACK*Sent`` counted D-SACK
    blocks that were never sent (RFC 2883 §4: D-SACK only within SACK)."""
    sim = Simulator(seed=8)
    params = LinkParams(delay=0.01, rate=10e6, queue_packets=40, loss=0.03, duplicate=0.05,
                        reorder=0.05, reorder_delay=0.01)
    tr, _ = setup_transfer(sim, 300_000, params, seed=3,
                           client_config=TcpConfig(sack=False),
                           server_config=TcpConfig(dsack=True))
    sim.run(until=lambda: tr.finished, max_time=600)
    snd, snk = tr.results()
    assert snd.closed_clean and snk.closed_clean
    sink = tr.sink.conn
    assert sink is not None and not sink.sack_ok
    assert sink.mib["TcpExtTCPOFOQueue"] > 0  # out-of-order data did arrive...
    assert sink.mib["TcpExtTCPDSACKOldSent"] == sink.mib["TcpExtTCPDSACKOfoSent"] == 0
    # ... and with SACK on both sides the same path does produce D-SACKs
    sim2 = Simulator(seed=8)
    tr2, _ = setup_transfer(sim2, 300_000, params, seed=3)
    sim2.run(until=lambda: tr2.finished, max_time=600)
    sink2 = tr2.sink.conn
    assert sink2 is not None and sink2.sack_ok
    assert sink2.mib["TcpExtTCPDSACKOldSent"] + sink2.mib["TcpExtTCPDSACKOfoSent"] > 0


@pytest.mark.rfc("8985", "9.3")
@pytest.mark.parametrize("gso", [None, 65000])
def test_overshoot_into_a_droptail_bottleneck_does_not_spiral(gso: int | None) -> None:
    """Regression (found by the 10 Mbit/s tbf interop test): slow start overshoots a 10 Mbit/s
    bottleneck with a 75 KB drop-tail queue.  Before the fix the window stayed above what the
    path holds for the whole recovery (the reduction was computed from SND.NXT - SND.UNA,
    which counts SACKed and lost data, and a lost retransmission caused no further response),
    so the queue stayed full and retransmissions were dropped again and again: 44 000
    retransmissions for 7 000 segments.  RFC 8985 §9.3: without PRR a lost retransmission
    MUST trigger another congestion response.  With TSO-sized super-segments cut before
    the queue (as tbf does) too."""
    from interop.netsim.reshape import Splitter

    sim = Simulator(seed=1)
    big = replace(TcpConfig(), send_buffer=8 << 20, recv_buffer=8 << 20)
    cfg = replace(big, rto_min=0.2, gso_size=gso)
    tr, link = setup_transfer(sim, 10_000_000, LinkParams(delay=0.0005, rate=10e6,
                                                          queue_bytes=75_000),
                              client_config=cfg, server_config=big)
    sim.add_middlebox(link, "ab", Splitter(size=1448))
    sim.run(max_time=60)
    assert tr.sink.result.bytes == 10_000_000 and tr.sink.result.closed_clean
    mib = sim.hosts["client"].stack.stack.mib  # type: ignore[attr-defined]
    assert 0 < mib["TcpRetransSegs"] < 400  # ~7 000 segments sent; losses happen, no spiral
    assert mib["TcpExtTCPLostRetransmit"] < 50
    # the bottleneck, not the stack, sets the pace: >= 9 Mbit/s of 10
    assert 10_000_000 * 8 / tr.sink.result.eof_at > 9e6  # type: ignore[operator]
