"""Driver middlewares (mptcp.io.middleware) over an in-memory fake driver.

Pcap: records read back by tshark with checksum validation on (RFC 9293 §3.1, RFC 791 §3.1),
offload-partial checksums completed.  Impairment: deterministic from a seed -- exact delays,
rate spacing, drop-tail queue, loss within a binomial bound, duplication, reordering, CE
marking (RFC 3168 §5).  Trace: one JSON object per packet and per event.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import random
import shutil
import socket
import subprocess
from collections import deque
from pathlib import Path

import pytest

from mptcp.io.driver import Driver, RxPacket, TxPacket
from mptcp.io.middleware import (
    ImpairError,
    ImpairMiddleware,
    ImpairParams,
    PcapMiddleware,
    TraceMiddleware,
    complete_tcp_checksum,
    mark_ce,
)
from mptcp.wire.ip import ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT, ipv4, ipv6
from mptcp.wire.pcap import read_pcap
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, PSH, SYN, TcpHeader


class FakeDriver:
    """List-backed driver: ``rx`` feeds recv_batch, ``sent`` records send_batch."""

    def __init__(self, mtu: int = 1500, tso: bool = False, csum_offload: bool = False) -> None:
        self.mtu = mtu
        self.tso = tso
        self.csum_offload = csum_offload
        self._a, self._b = socket.socketpair()
        self.rx: deque[RxPacket] = deque()
        self.sent: list[tuple[float, bytes, int]] = []
        self.timer: float | None = None
        self.polled: list[float] = []
        self.flushed: list[float] = []
        self.ports: set[int] = set()
        self.closed = False

    def fileno(self) -> int:
        return self._a.fileno()

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        n = min(limit, len(self.rx))
        return [self.rx.popleft() for _ in range(n)]

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        self.sent.extend((now, p, g) for p, g in packets)

    def pending(self) -> int:
        return 7

    def flush(self, now: float) -> None:
        self.flushed.append(now)

    def get_timer(self) -> float | None:
        return self.timer

    def poll(self, now: float) -> None:
        self.polled.append(now)

    def bind_port(self, port: int) -> None:
        self.ports.add(port)

    def unbind_port(self, port: int) -> None:
        self.ports.discard(port)

    def close(self) -> None:
        self.closed = True
        self._a.close()
        self._b.close()


A4, B4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
A6, B6 = bytes.fromhex("fd000000000000000000000000000001"), bytes.fromhex(
    "fd000000000000000000000000000002")


def seg4(payload: bytes = b"", *, seq: int = 1, tos: int = 0, flags: int = ACK | PSH) -> Segment:
    return Segment(ipv4(A4, B4, tos=tos), TcpHeader(40000, 5201, seq, 7, flags, 512), payload)


def seg6(payload: bytes = b"", *, seq: int = 1, tc: int = 0) -> Segment:
    return Segment(ipv6(A6, B6, traffic_class=tc), TcpHeader(40000, 5201, seq, 7, ACK, 512),
                   payload)


def numbered(i: int, size: int = 100) -> bytes:
    """A full-checksum IPv4 packet whose sequence number is ``i``."""
    return seg4(bytes(size), seq=i).to_bytes()


def seqs(packets: list[bytes]) -> list[int]:
    return [parse_segment(p).tcp.seq for p in packets]


# ---------------------------------------------------------------------------------------------
# forwarding


def test_all_middlewares_are_drivers_and_forward() -> None:
    fake = FakeDriver(mtu=9000, tso=True, csum_offload=True)
    pcap_out = io.BytesIO()
    stack = TraceMiddleware(
        PcapMiddleware(ImpairMiddleware(fake, rng=random.Random(1)), pcap_out),
        io.StringIO())
    assert isinstance(stack, Driver)
    assert (stack.mtu, stack.tso, stack.csum_offload) == (9000, True, True)
    assert stack.fileno() == fake.fileno()
    assert stack.pending() == 7
    stack.bind_port(5201)
    assert fake.ports == {5201}
    stack.unbind_port(5201)
    assert fake.ports == set()
    fake.timer = 3.5
    assert stack.get_timer() == 3.5
    stack.poll(4.0)
    stack.flush(4.5)
    assert fake.polled == [4.0] and fake.flushed == [4.5]
    stack.mtu = 1500
    assert fake.mtu == 1500
    pkt = numbered(1)
    stack.send_batch(5.0, [(pkt, 0)])
    assert fake.sent == [(5.0, pkt, 0)]
    fake.rx.append((pkt, True))
    assert stack.recv_batch(5.0) == [(pkt, True)]
    stack.close()
    assert fake.closed


# ---------------------------------------------------------------------------------------------
# pcap


def _tshark_rows(path: Path) -> list[list[str]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    proc = subprocess.run(
        [tshark, "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o",
         "ip.check_checksum:TRUE", "-o", "tcp.analyze_sequence_numbers:FALSE",
         "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "ip.version",
         "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "_ws.expert.severity",
         "-e", "_ws.expert.message", "-e", "_ws.malformed"],
        capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in proc.stdout.splitlines() if line]


@pytest.mark.tshark
@pytest.mark.rfc("9293", "3.1")
def test_pcap_completes_offloaded_checksums_for_tshark(tmp_path: Path) -> None:
    fake = FakeDriver(mtu=1500, tso=True, csum_offload=True)
    path = tmp_path / "cap.pcap"
    mw = PcapMiddleware(fake, path)
    big = bytes(range(256)) * 16  # 4096 bytes: a TSO super-packet
    out: list[TxPacket] = [
        (seg4(b"hello").to_bytes(partial=True), 0),
        (seg6(b"odd length!").to_bytes(partial=True), 0),
        (seg4(big, seq=100).to_bytes(partial=True), 1448),
        (seg6(big, seq=100).to_bytes(partial=True), 1428),
        (seg4(flags=SYN).to_bytes(partial=True), 0),
        (seg4(b"full checksum already").to_bytes(), 0),  # a driver may be given either
    ]
    mw.send_batch(1.0, out)
    # the inner driver gets the packets untouched (the kernel completes them)
    assert [(p, g) for _, p, g in fake.sent] == out
    fake.rx.extend([
        (seg4(b"gro" * 1000, seq=9).to_bytes(partial=True), True),  # NEEDS_CSUM super-packet
        (seg6(b"x").to_bytes(partial=True), True),
        (seg4(b"data valid").to_bytes(), True),
        (seg6(b"plain").to_bytes(), False),
    ])
    got = mw.recv_batch(2.0)
    assert len(got) == 4
    assert mw.packets_out == 6 and mw.packets_in == 4
    mw.close()
    assert fake.closed
    recs = list(read_pcap(path))
    assert len(recs) == 10
    for r in recs:
        assert r.ip is not None and checksum_ok(r.ip)
    assert len(recs[2].ip or b"") == 40 + 4096  # the super-packet stays one record
    rows = _tshark_rows(path)
    assert len(rows) == 10
    for row in rows:
        _num, version, ip_status, tcp_status, severity, message, malformed = row
        assert tcp_status == "1", row  # 1 = Good
        if version == "4":
            assert ip_status == "1", row
        assert "checksum" not in message.lower() and not malformed, row
        assert severity == "" or int(severity.split(",")[0]) < 0x00800000, row


@pytest.mark.tshark
def test_pcap_keeps_bad_checksums_the_kernel_did_not_vouch_for(tmp_path: Path) -> None:
    """Negative control for the oracle: a packet without csum_ok is recorded as it came."""
    fake = FakeDriver()
    path = tmp_path / "bad.pcap"
    bad = bytearray(seg4(b"corrupted").to_bytes())
    bad[-1] ^= 0x40
    fake.rx.append((bytes(bad), False))
    with_partial_no_offload = seg4(b"p").to_bytes(partial=True)
    mw = PcapMiddleware(fake, path)
    mw.recv_batch(0.0)
    mw.send_batch(0.0, [(with_partial_no_offload, 0)])  # csum_offload off: recorded as is
    mw.close()
    rows = _tshark_rows(path)
    assert [r[3] for r in rows] == ["0", "0"]  # 0 = Bad


def test_pcap_timestamps_are_the_wall_clock(tmp_path: Path) -> None:
    fake = FakeDriver()
    path = tmp_path / "ts.pcap"
    ticks = iter([1_700_000_000_123_456_789, 1_700_000_001_000_000_001])
    mw = PcapMiddleware(fake, path, clock=lambda: next(ticks))
    mw.send_batch(0.5, [(numbered(1), 0), (numbered(2), 0)])
    fake.rx.append((numbered(3), False))
    mw.recv_batch(0.6)
    mw.close()
    recs = list(read_pcap(path))
    assert [round(r.timestamp, 6) for r in recs] == [1700000000.123457] * 2 + [1700000001.0]
    assert [r.ip for r in recs] == [numbered(1), numbered(2), numbered(3)]


def test_complete_tcp_checksum_rules() -> None:
    full = seg4(b"abc").to_bytes()
    assert complete_tcp_checksum(full) is full
    assert complete_tcp_checksum(seg4(b"abc").to_bytes(partial=True)) == full
    udp = bytearray(full)
    udp[9] = 17
    assert complete_tcp_checksum(bytes(udp)) == bytes(udp)
    assert complete_tcp_checksum(b"\x45\x00") == b"\x45\x00"


# ---------------------------------------------------------------------------------------------
# impairment


def _drain_tx(mw: ImpairMiddleware, fake: FakeDriver, until: float = 1e9) -> None:
    """Poll at every timer until nothing is left."""
    while (t := mw.get_timer()) is not None and t <= until:
        mw.poll(t)


def test_impair_params_are_validated() -> None:
    with pytest.raises(ImpairError):
        ImpairParams(loss=1.5)
    with pytest.raises(ImpairError):
        ImpairParams(delay=-1.0)
    with pytest.raises(ImpairError):
        ImpairParams(rate_bps=math.inf)
    with pytest.raises(ImpairError):
        ImpairParams(queue_limit=-1)
    assert not ImpairParams().active and ImpairParams(ce_mark=0.1).active


def test_delay_adds_exactly_in_both_directions() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(1), tx=ImpairParams(delay=0.05),
                          rx=ImpairParams(delay=0.02))
    mw.send_batch(1.0, [(numbered(1), 0), (numbered(2), 0)])
    assert fake.sent == []
    assert mw.get_timer() == pytest.approx(1.05)
    mw.poll(1.0499)
    assert fake.sent == []
    mw.poll(1.05)
    assert [(t, p) for t, p, _ in fake.sent] == [(1.05, numbered(1)), (1.05, numbered(2))]
    fake.rx.extend([(numbered(3), True), (numbered(4), False)])
    assert mw.recv_batch(2.0) == []
    assert fake.rx == deque()  # pulled into the delay line at arrival time
    assert mw.get_timer() == pytest.approx(2.02)
    mw.poll(2.02)
    ready_at = mw.get_timer()
    assert ready_at is not None and ready_at <= 2.02  # released packets wait to be read
    assert mw.recv_batch(2.02, limit=1) == [(numbered(3), True)]
    assert mw.recv_batch(2.02) == [(numbered(4), False)]
    assert mw.get_timer() is None
    c = mw.counters()
    assert c["tx_delayed"] == 2 and c["rx_delayed"] == 2 and c["rx_released"] == 2


def test_rate_spaces_packets_and_counts_super_packets_whole() -> None:
    fake = FakeDriver(tso=True)
    rate = 8_000_000.0  # 1 byte per microsecond
    mw = ImpairMiddleware(fake, rng=random.Random(1), tx=ImpairParams(rate_bps=rate,
                                                                     delay=0.01))
    pkts = [numbered(i, 960) for i in range(3)]  # 1000 bytes each
    mw.send_batch(0.0, [(p, 0) for p in pkts])
    # a super-packet: 2 x 1448 payload + 40 header bytes, cut into 2 segments -> +40 bytes
    sp = seg4(bytes(2896), seq=99).to_bytes()
    mw.send_batch(0.0, [(sp, 1448)])
    _drain_tx(mw, fake)
    times = [t for t, _, _ in fake.sent]
    assert times == pytest.approx([0.011, 0.012, 0.013, 0.013 + (2936 + 40) / 1e6])
    assert seqs([p for _, p, _ in fake.sent]) == [0, 1, 2, 99]


def test_rate_queue_is_drop_tail() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(1),
                          tx=ImpairParams(rate_bps=800_000.0, queue_limit=5))
    mw.send_batch(0.0, [(numbered(i, 960), 0) for i in range(10)])
    assert mw.tx_counters.queue_drops == 5
    _drain_tx(mw, fake, until=0.0101)  # 1000 bytes at 100 kB/s = 10 ms each
    assert [t for t, _, _ in fake.sent] == [0.01]
    mw.send_batch(0.0101, [(numbered(10, 960), 0)])  # one left the queue: room for one
    mw.send_batch(0.0101, [(numbered(11, 960), 0)])
    assert mw.tx_counters.queue_drops == 6
    _drain_tx(mw, fake)
    assert seqs([p for _, p, _ in fake.sent]) == [0, 1, 2, 3, 4, 10]
    assert [t for t, _, _ in fake.sent] == pytest.approx([0.01 * i for i in range(1, 7)])


def test_loss_fraction_within_binomial_bound() -> None:
    fake = FakeDriver()
    n, p = 10_000, 0.1
    mw = ImpairMiddleware(fake, rng=random.Random(20240601), tx=ImpairParams(loss=p))
    pkt = numbered(1)
    for i in range(n):
        mw.send_batch(i * 1e-4, [(pkt, 0)])
    lost = mw.tx_counters.lost
    assert lost + len(fake.sent) == n
    sd = math.sqrt(n * p * (1 - p))
    assert abs(lost - n * p) < 5 * sd  # 5 sigma: 1000 +- 150


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[int]:
        fake = FakeDriver()
        mw = ImpairMiddleware(fake, rng=random.Random(seed), tx=ImpairParams(
            loss=0.2, duplicate=0.2, reorder=0.2, delay=0.001, jitter=0.002))
        for i in range(300):
            mw.send_batch(i * 1e-3, [(numbered(i), 0)])
        _drain_tx(mw, fake)
        return seqs([p for _, p, _ in fake.sent])

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_duplicate() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(3), tx=ImpairParams(duplicate=1.0))
    mw.send_batch(0.0, [(numbered(1), 0), (numbered(2), 0)])
    assert seqs([p for _, p, _ in fake.sent]) == [1, 1, 2, 2]
    fake2 = FakeDriver()
    mw2 = ImpairMiddleware(fake2, rng=random.Random(3), rx=ImpairParams(duplicate=0.25))
    fake2.rx.extend((numbered(i), True) for i in range(4000))
    got = []
    while batch := mw2.recv_batch(0.0):
        got += batch
    dups = mw2.rx_counters.duplicated
    assert len(got) == 4000 + dups
    assert abs(dups - 1000) < 5 * math.sqrt(4000 * 0.25 * 0.75)


def test_reorder_swaps_with_the_next_packet_or_times_out() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(1),
                          tx=ImpairParams(reorder=1.0, reorder_hold=0.5))
    for i in range(6):
        mw.send_batch(float(i), [(numbered(i), 0)])
    assert seqs([p for _, p, _ in fake.sent]) == [1, 0, 3, 2, 5, 4]
    assert mw.tx_counters.reordered == 3
    mw.send_batch(10.0, [(numbered(6), 0)])  # held; nothing follows
    assert mw.get_timer() == pytest.approx(10.5)
    mw.poll(10.4)
    assert len(fake.sent) == 6
    mw.poll(10.5)
    assert seqs([p for _, p, _ in fake.sent])[-1] == 6 and fake.sent[-1][0] == 10.5


def test_reorder_fraction_and_jitter_keeps_order_otherwise() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(11),
                          tx=ImpairParams(delay=0.01, jitter=0.005, reorder=0.05))
    sent_at = {}
    for i in range(4000):
        sent_at[i] = i * 1e-3
        mw.send_batch(i * 1e-3, [(numbered(i), 0)])
        _drain_tx(mw, fake, until=i * 1e-3)
    _drain_tx(mw, fake)
    order = seqs([p for _, p, _ in fake.sent])
    assert sorted(order) == list(range(4000))
    inversions = sum(1 for a, b in itertools.pairwise(order) if a > b)
    assert inversions == mw.tx_counters.reordered
    assert abs(inversions - 4000 * 0.05 * 0.95) < 5 * math.sqrt(4000 * 0.05)
    for t, p, _ in fake.sent:
        i = parse_segment(p).tcp.seq
        assert t >= sent_at[i] + 0.01 - 1e-12


@pytest.mark.rfc("3168", "5")
def test_ce_marking_rewrites_ecn_and_keeps_checksums_valid() -> None:
    fake = FakeDriver(csum_offload=True)
    mw = ImpairMiddleware(fake, rng=random.Random(1), tx=ImpairParams(ce_mark=1.0),
                          rx=ImpairParams(ce_mark=1.0))
    ect0 = seg4(b"data", tos=0xB8 | ECN_ECT0).to_bytes()  # DSCP EF kept
    ect1_v6 = seg6(b"data", tc=ECN_ECT1).to_bytes()
    not_ect = seg4(b"data", tos=ECN_NOT_ECT).to_bytes()
    partial = seg4(b"offloaded", tos=ECN_ECT1).to_bytes(partial=True)
    mw.send_batch(0.0, [(ect0, 0), (ect1_v6, 0), (not_ect, 0), (partial, 0)])
    out = [p for _, p, _ in fake.sent]
    a, b, _, d = (parse_segment(p) for p in out)
    assert a.ip.ecn == ECN_CE and out[0][1] >> 2 == 0xB8 >> 2 and checksum_ok(out[0])
    assert b.ip.ecn == ECN_CE and checksum_ok(out[1])
    assert out[2] == not_ect
    # offload: only the IP header (ECN bits, header checksum) changed; TCP partial kept
    diff = [i for i, (x, y) in enumerate(zip(partial, out[3], strict=True)) if x != y]
    assert set(diff) <= {1, 10, 11} and 1 in diff
    assert d.ip.ecn == ECN_CE and checksum_ok(complete_tcp_checksum(out[3]))
    assert mw.tx_counters.ce_marked == 3
    fake.rx.append((ect0, True))
    (pkt, ok), = mw.recv_batch(0.0)
    assert ok and parse_segment(pkt).ip.ecn == ECN_CE and checksum_ok(pkt)
    assert mark_ce(pkt) is None  # already CE


def test_passthrough_counts_and_keeps_objects() -> None:
    fake = FakeDriver()
    mw = ImpairMiddleware(fake, rng=random.Random(1))
    pkts = [(numbered(i), 0) for i in range(3)]
    mw.send_batch(0.0, pkts)
    assert [p for _, p, _ in fake.sent] == [p for p, _ in pkts]
    assert mw.tx_counters.packets == 3 and mw.tx_counters.bytes == 3 * 140
    assert mw.in_flight() == 0 and mw.get_timer() is None


# ---------------------------------------------------------------------------------------------
# trace


def test_trace_writes_one_json_object_per_packet_and_event() -> None:
    fake = FakeDriver()
    out = io.StringIO()
    mw = TraceMiddleware(fake, out)
    mw.send_batch(1.5, [(seg4(b"abc", seq=42).to_bytes(), 0),
                        (seg6(bytes(3000)).to_bytes(partial=True), 1428)])
    fake.rx.append((seg4(flags=SYN | ACK).to_bytes(), True))
    mw.recv_batch(2.5)
    mw.event(3.0, "connected", conn=1, cwnd=10)
    fake.rx.append((b"\x45\x00\x00", False))
    mw.recv_batch(3.5)
    mw.close()
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(recs) == 5
    r0 = recs[0]
    assert r0 == {"t": 1.5, "dir": "out", "len": 43, "src": "10.0.0.1", "dst": "10.0.0.2",
                  "ecn": 0, "sport": 40000, "dport": 5201, "flags": "ACK|PSH", "seq": 42,
                  "ack": 7, "win": 512, "payload_len": 3, "gso_size": 0}
    assert recs[1]["src"] == "fd00::1" and recs[1]["payload_len"] == 3000
    assert recs[1]["gso_size"] == 1428
    assert recs[2]["dir"] == "in" and recs[2]["flags"] == "ACK|SYN" and recs[2]["csum_ok"]
    assert recs[3] == {"t": 3.0, "event": "connected", "conn": 1, "cwnd": 10}
    assert recs[4]["malformed"] is True
    assert mw.lines == 5
