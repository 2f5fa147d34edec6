"""MPTCP with several subflows between two of our stacks over the simulator ``interop.netsim``.

- RFC 8684 §3.3.8 (and RFC 6182 §5.3): the packet schedulers -- min-RTT puts app-limited data
  on the faster path, round-robin alternates, redundant sends every chunk on every path and
  so keeps the latency low when one path loses packets; backup subflows carry nothing while
  a regular one works and take over when it dies.
- §3.3.6: failover -- a path cut mid-transfer: the subflow goes stale, its data is reinjected
  on the other one, the transfer completes byte-exact (the stall is measured).
- §3.2 / §3.6: MP_JOIN with a wrong SYN/ACK HMAC, a wrong third-ACK HMAC or an unknown token,
  a join over the subflow limit, a join to an address the peer excluded with flag C (§3.1):
  the subflow is reset with MP_TCPRST (reason read on the wire), the connection carries on.
- §3.4.1 / §3.4.2: ADD_ADDR with a wrong HMAC is ignored, a lost ADD_ADDR is repeated until
  echoed, REMOVE_ADDR and MP_PRIO in both directions; a userspace path manager; IPv6 and a
  mixed IPv4/IPv6 connection.
- A hypothesis property: random loss and link flaps on two paths never lose or corrupt data
  silently.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interop.mptcp_app import (
    CLIENT_ADDR2,
    SERVER_ADDR,
    SERVER_ADDR2,
    SERVER_PORT,
    MptcpApp,
    MptcpAppHost,
    Peer,
    setup_multipath_pair,
)
from interop.netsim import LinkParams, SegmentMiddlebox, Simulator, TraceRecorder
from interop.netsim.link import Link
from interop.netsim.sim import StopReason
from interop.tcp_app import payload_sha256, payload_stream
from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.events import AddressAnnounced
from mptcp.mib import MptcpMib
from mptcp.pm import Endpoint, FullMeshPM, Limits, PathManager, UserspacePM
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpStateError
from mptcp.wire.errors import WireError
from mptcp.wire.mptcp_handshake import MpCapable, MpJoinAck, MpJoinSyn, MpJoinSynAck
from mptcp.wire.mptcp_options import AddAddr, Dss, MpPrio, MpTcpRst, RemoveAddr
from mptcp.wire.options import TcpOption
from mptcp.wire.segment import Segment, parse_segment

SEED = 5  # client data seed; the server's is SEED + 1
LAN = LinkParams(delay=0.01, rate=10e6, queue_packets=100)
DEEP = LinkParams(delay=0.01, rate=10e6)  # no drop-tail: control options are never lost
FAST = LinkParams(delay=0.005, rate=20e6, queue_packets=50)
SLOW = LinkParams(delay=0.04, rate=20e6, queue_packets=50)
BOUND = 200.0
EVENTS = 2_000_000
NO_NAGLE = TcpConfig(nagle=False)

Setup = Callable[[Simulator, "Tracked", "Tracked", list[Link]], None]


# ---------------------------------------------------------------------------- helpers -----
class Tracked(Peer):
    """A :class:`Peer` that records its data-level progress: (time, bytes read) pairs."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.progress: list[tuple[float, int]] = [(0.0, 0)]

    def poll(self, now: float) -> None:
        super().poll(now)
        if self.result.received != self.progress[-1][1]:
            self.progress.append((now, self.result.received))

    def arrival(self, nbytes: int) -> float:
        return next(t for t, b in self.progress if b >= nbytes)

    def stall_after(self, t: float) -> float:
        """Time from ``t`` until the data level moved again after its longest pause that
        began at or after the last progress before ``t``."""
        before = [i for i, (u, _) in enumerate(self.progress) if u <= t]
        pts = self.progress[before[-1]:]
        end = max(itertools.pairwise(pts), key=lambda ab: ab[1][0] - ab[0][0])[1][0]
        return end - t


CLIENT_LIMITS = Limits(subflows=2, add_addr_accepted=2)
SERVER_LIMITS = Limits(subflows=2)


def _client_pm(*, backup: bool = False, limits: Limits = CLIENT_LIMITS,
               addr: str = CLIENT_ADDR2, net: str = "10.0.1.0/24") -> FullMeshPM:
    """Joins what the server announces from ``addr`` (the second path)."""
    return FullMeshPM([Endpoint(addr, 1, backup=backup)], limits, routes=[(net, addr)])


def _server_pm(*, limits: Limits = SERVER_LIMITS, addr: str = SERVER_ADDR2) -> FullMeshPM:
    """Announces ``addr`` (the second path)."""
    return FullMeshPM([Endpoint(addr, 1, signal=True)], limits)


def _pair(size_ab: int, size_ba: int, paths: tuple[LinkParams, ...] = (LAN, LAN), *,
          cpm: PathManager | None = None, spm: PathManager | None = None,
          cm: MptcpConfig | None = None, sm: MptcpConfig | None = None,
          tcp: TcpConfig | None = None, setup: Setup | None = None, record: bool = False,
          client_ifaces: tuple[tuple[str, ...], ...] = (("10.0.0.1",), (CLIENT_ADDR2,)),
          server_ifaces: tuple[tuple[str, ...], ...] = ((SERVER_ADDR,), (SERVER_ADDR2,)),
          extra_apps: tuple[MptcpApp, ...] = (), sim_seed: int = 1,
          ) -> tuple[Tracked, Tracked, list[Link], TraceRecorder]:
    """A two-way transfer to its end; the recorder has the segments sent/delivered/dropped
    (only when ``record``)."""
    sim = Simulator(seed=sim_seed)
    c = Tracked("client", size_ab, seed=SEED, connect=(server_ifaces[0][0], SERVER_PORT),
                keep=True)
    s = Tracked("server", size_ba, seed=SEED + 1, keep=True)
    _, _, links = setup_multipath_pair(
        sim, [c, *extra_apps], [s], client_ifaces=client_ifaces,
        server_ifaces=server_ifaces, paths=paths, client_pm=cpm or _client_pm(),
        server_pm=spm or _server_pm(), client_mptcp=cm, server_mptcp=sm, tcp_config=tcp)
    rec = TraceRecorder(["send", "deliver", "drop:queue", "drop:loss"] if record else [])
    if record:
        sim.add_trace(rec)
    if setup is not None:
        setup(sim, c, s, links)
    res = sim.run(until=lambda: c.result.finished and s.result.finished, max_time=BOUND,
                  max_events=EVENTS)
    assert res.reason is StopReason.CONDITION, f"hang at {res.now}: {c.result} / {s.result}"
    return c, s, links, rec


def _mib(p: Peer) -> MptcpMib:
    assert p.host is not None
    return p.host.stack.mib


def _conn(p: Peer) -> MptcpConnection:
    assert p.conn is not None
    return p.conn


def _assert_exact(c: Peer, s: Peer, size_ab: int, size_ba: int) -> None:
    assert s.result.received == size_ab and c.result.received == size_ba
    assert s.result.received_sha256 == payload_sha256(SEED, size_ab)
    assert c.result.received_sha256 == payload_sha256(SEED + 1, size_ba)
    for p in (c, s):
        assert p.result.failure is None and p.result.closed_clean, p.result


def _mapped(p: Peer) -> list[int]:
    return [int(str(i["bytes_mapped"])) for i in _conn(p).subflows_info()]


def _sf_info(p: Peer, **match: object) -> dict[str, object]:
    return next(i for i in _conn(p).subflows_info()
                if all(i[k] == v for k, v in match.items()))


def _wire(rec: TraceRecorder, link: Link, d: str, event: str = "send"
          ) -> list[tuple[float, Segment]]:
    out = []
    for r in rec.records:
        if r.event == event and r.link == link.name and r.direction == d:
            with contextlib.suppress(WireError):
                out.append((r.time, parse_segment(r.packet)))
    return out


def _tcprst_reasons(rec: TraceRecorder, link: Link, d: str) -> list[int]:
    return [int(o.reason) for _, seg in _wire(rec, link, d) if seg.tcp.flags & 0x04
            for o in seg.tcp.options if type(o) is MpTcpRst]


class Rewrite(SegmentMiddlebox):
    """Rewrites options with ``fn(option) -> option`` (checksums recomputed)."""

    def __init__(self, fn: Callable[[TcpOption], TcpOption]) -> None:
        super().__init__()
        self.fn = fn
        self.hits = 0

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        opts = tuple(self.fn(o) for o in seg.tcp.options)
        if opts == seg.tcp.options:
            return [raw]
        self.hits += 1
        return [seg._replace(tcp=seg.tcp._replace(options=opts)).to_bytes()]


class DropFirst(SegmentMiddlebox):
    """Drops the first segment ``match`` accepts."""

    def __init__(self, match: Callable[[Segment], bool]) -> None:
        super().__init__()
        self.match = match
        self.dropped = 0

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        if not self.dropped and self.match(seg):
            self.dropped += 1
            return []
        return [raw]


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 0x80]) + b[1:]


# ---------------------------------------------------------------------------- schedulers --
class Paced:
    """Client application: once ``need`` subflows are usable, writes message ``i`` (``size``
    bytes) at ``i * interval`` after that, then half-closes and reads to the end.  Records
    when each message was written and, at each write, the subflows' ``bytes_mapped``."""

    def __init__(self, count: int, size: int, interval: float, *, need: int = 2) -> None:
        self.count, self.size, self.interval, self.need = count, size, interval, need
        self.data = b"".join(payload_stream(SEED, count * size))
        self.conn: MptcpConnection | None = None
        self.host: MptcpAppHost | None = None
        self.t0: float | None = None
        self.sent_at: list[float] = []
        self.mapped: list[list[int]] = []
        self.off = self.queued = 0
        self.done = self.closed = False

    @property
    def finished(self) -> bool:
        return self.closed or (self.conn is not None and self.conn.failed is not None)

    def attach(self, host: MptcpAppHost) -> None:
        self.host = host

    def timer(self) -> float | None:
        if self.conn is None:
            return 0.0
        if self.t0 is not None and len(self.sent_at) < self.count:
            return self.t0 + len(self.sent_at) * self.interval
        return None

    def on_timer(self, now: float) -> None:
        if self.conn is None and self.host is not None:
            self.conn = self.host.stack.connect((SERVER_ADDR, SERVER_PORT), now=now)
        self.poll(now)

    def poll(self, now: float) -> None:
        c = self.conn
        if c is None:
            return
        while c.next_event() is not None:
            pass
        if self.t0 is None and sum(1 for sf in c.subs if sf.usable) >= self.need:
            self.t0 = now
        while self.t0 is not None and len(self.sent_at) < self.count \
                and now >= self.t0 + len(self.sent_at) * self.interval:
            self.mapped.append([int(str(i["bytes_mapped"])) for i in c.subflows_info()])
            self.sent_at.append(now)
            self.queued += self.size
        while self.queued and c.send_space > 0:
            n = c.send(self.data[self.off:self.off + self.queued])
            self.off += n
            self.queued -= n
            if not n:
                break
        if len(self.sent_at) == self.count and not self.queued and not self.done:
            self.done = True
            c.shutdown_write()
        while c.readable and c.read():
            pass
        if self.done and c.at_eof and not self.closed:
            self.closed = True
            with contextlib.suppress(TcpStateError):
                c.close()


def _paced(sched: str, count: int, size: int, interval: float, paths: tuple[LinkParams, ...],
           *, sim_seed: int = 1, tcp: TcpConfig | None = None,
           setup: Callable[[Simulator, list[Link]], None] | None = None, exact: bool = True,
           ) -> tuple[Paced, Tracked, TraceRecorder]:
    """Runs :class:`Paced` against a reading :class:`Tracked` server; ``setup`` is called
    once both subflows are up (the recorder has the segments sent from then on)."""
    sim = Simulator(seed=sim_seed)
    app = Paced(count, size, interval)
    srv = Tracked("server", 0, seed=SEED + 1, keep=True)
    m = MptcpConfig(scheduler=sched)
    _, _, links = setup_multipath_pair(
        sim, [app], [srv], paths=paths, seed=sim_seed, client_pm=_client_pm(),
        server_pm=_server_pm(), client_mptcp=m, server_mptcp=m, tcp_config=tcp)
    rec = TraceRecorder(["send"])
    if setup is not None:
        sim.run(until=lambda: app.t0 is not None, max_time=10)
        sim.add_trace(rec)
        setup(sim, links)
    res = sim.run(until=lambda: app.finished and srv.result.finished, max_time=BOUND,
                  max_events=EVENTS)
    assert res.reason is StopReason.CONDITION
    if exact:
        assert srv.data is not None and bytes(srv.data) == app.data  # byte-exact
    return app, srv, rec


def _per_message(app: Paced) -> list[list[int]]:
    """Bytes each subflow took of each message (but the last)."""
    return [[b - a for a, b in zip(x, y, strict=False)]
            for x, y in zip(app.mapped, app.mapped[1:], strict=False)]


@pytest.mark.rfc("8684", "3.3.8")
def test_minrtt_puts_app_limited_data_on_the_faster_path() -> None:
    """8 KB every 20 ms, 5 ms vs 40 ms one-way: min-RTT sends (nearly) everything on the
    fast path, both subflows having room for every message."""
    app, _, _ = _paced("minrtt", 40, 8000, 0.02, (FAST, SLOW))
    fast, slow = _mapped_of(app)
    assert fast >= 0.95 * (fast + slow), (fast, slow)


def _mapped_of(app: Paced) -> list[int]:
    assert app.conn is not None
    return [int(str(i["bytes_mapped"])) for i in app.conn.subflows_info()]


@pytest.mark.rfc("8684", "3.3.8")
def test_roundrobin_alternates() -> None:
    """Same traffic, round-robin: consecutive messages go to different subflows and each
    path carries about half."""
    app, _, _ = _paced("roundrobin", 40, 8000, 0.02, (FAST, SLOW))
    owner = [max(range(len(m)), key=m.__getitem__) for m in _per_message(app) if any(m)]
    switches = sum(1 for a, b in itertools.pairwise(owner) if a != b)
    assert switches >= 0.9 * (len(owner) - 1), owner
    fast, slow = _mapped_of(app)
    assert 0.4 <= fast / (fast + slow) <= 0.6, (fast, slow)


LOSSY_FAST = LinkParams(delay=0.005, rate=20e6, queue_packets=50, loss=0.05)
CLEAN_SLOW = LinkParams(delay=0.03, rate=20e6, queue_packets=50)


class DropNth(SegmentMiddlebox):
    """Drops every ``n``-th new data segment (never a retransmission): losses that fast
    recovery / tail-loss probes repair, without RTOs -- the same losses for every run."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.seen: set[int] = set()

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        if not seg.payload or seg.tcp.seq in self.seen:
            return [raw]
        self.seen.add(seg.tcp.seq)
        return [] if len(self.seen) % self.n == 0 else [raw]


def _latencies(sched: str, *, seed: int = 1, drop_nth: int | None = None
               ) -> tuple[list[float], Paced]:
    """4 KB every 50 ms over a fast path (5 ms; 5 % random loss, or every ``drop_nth``-th
    new segment lost) and a clean slow one (30 ms): per-message delivery latency."""
    mb = DropNth(drop_nth) if drop_nth else None
    app, srv, _ = _paced(
        sched, 60, 4000, 0.05, (FAST if mb else LOSSY_FAST, CLEAN_SLOW), sim_seed=seed,
        tcp=NO_NAGLE, setup=(lambda sim, links: links[0].ab.add_middlebox(mb)) if mb else None)
    return [srv.arrival((i + 1) * 4000) - t for i, t in enumerate(app.sent_at)], app


@pytest.mark.rfc("8684", "3.3.8")
def test_redundant_masks_loss_on_one_path() -> None:
    """Every 10th new segment on the fast path is lost.  Min-RTT keeps the messages there
    and waits for the repairs (several messages take > 40 ms); redundant also sends every
    chunk on the clean 30 ms path, so no message takes longer than that path's delay."""
    (red, app), (mrt, _) = _latencies("redundant", drop_nth=10), _latencies("minrtt", drop_nth=10)
    assert _mapped_of(app) == [240_000, 240_000]  # every byte on both paths
    print(f"redundant: mean {statistics.mean(red) * 1e3:.1f} ms max {max(red) * 1e3:.1f} ms; "
          f"minrtt: mean {statistics.mean(mrt) * 1e3:.1f} ms max {max(mrt) * 1e3:.1f} ms")
    assert max(red) < 0.04, max(red)
    assert sum(x > 0.04 for x in mrt) >= 5 and max(mrt) > max(red)
    assert statistics.mean(red) < 0.85 * statistics.mean(mrt)


@pytest.mark.rfc("8684", "3.3.8")
def test_redundant_never_waits_for_the_lossy_path() -> None:
    """5 % random loss on the fast path: with a loss-free 30 ms path carrying a copy of
    every chunk, no message should take much longer than that path's delay, and redundant
    should beat min-RTT on average."""
    for k in (3, 8):
        (red, _), (mrt, _) = _latencies("redundant", seed=k), _latencies("minrtt", seed=k)
        assert max(red) < 0.15 and statistics.mean(red) < statistics.mean(mrt), k


@pytest.mark.rfc("8684", "3.3.8")
def test_new_subflow_is_given_about_a_congestion_window() -> None:
    sim = Simulator(seed=1)
    c = Peer("client", 2_000_000, seed=SEED, connect=(SERVER_ADDR, SERVER_PORT))
    s = Peer("server", 0, seed=SEED + 1)
    setup_multipath_pair(sim, [c], [s], paths=(LAN, LAN), client_pm=_client_pm(),
                         server_pm=_server_pm())

    def joined() -> bool:
        return c.conn is not None and len(c.conn.subs) > 1 and c.conn.subs[1].usable
    sim.run(until=joined, max_time=10)
    sf = _conn(c).subs[1]
    assert sf.ext.bytes_mapped <= sf.conn.cc.cwnd + 4 * sf.conn.smss, sf.ext.bytes_mapped


# ---------------------------------------------------------------------------- §3.2 / §3.6 --
JOIN_CASES = {
    # case: (link index, direction, option rewrite, who resets, MP_TCPRST reason, MIB of it)
    "synack-hmac": (1, "ba", lambda o: o._replace(sender_hmac=_flip(o.sender_hmac))
                    if type(o) is MpJoinSynAck else o, "client", 1,
                    "MPTcpExtMPJoinSynAckHMacFailure"),
    "ack-hmac": (1, "ab", lambda o: o._replace(sender_hmac=_flip(o.sender_hmac))
                 if type(o) is MpJoinAck else o, "server", 3, "MPTcpExtMPJoinAckHMacFailure"),
    "token": (1, "ab", lambda o: o._replace(receiver_token=o.receiver_token ^ 1)
              if type(o) is MpJoinSyn else o, "server", 1, "MPTcpExtMPJoinNoTokenFound"),
}


@pytest.mark.rfc("8684", "3.2")
@pytest.mark.rfc("8684", "3.6")
@pytest.mark.parametrize("case", list(JOIN_CASES))
def test_corrupted_join_is_reset_and_the_connection_carries_on(case: str) -> None:
    """A wrong SYN/ACK HMAC (A resets with 1, "MPTCP-specific error", and counts
    MPJoinSynAckHMacFailure, like Linux's subflow_finish_connect), a wrong third-ACK HMAC
    (B resets with 3 like Linux's subflow_syn_recv_sock until a 2026 fix, net 7.1-rc3 and
    stable, made it 1), an unknown token (B answers RST + reason 1, like Linux's
    subflow_check_req): the join never carries data, the transfer completes on the first
    subflow byte-exact."""
    li, d, fn, who, reason, counter = JOIN_CASES[case]
    mb = Rewrite(fn)
    c, s, links, rec = _pair(400_000, 200_000, record=True,
                             setup=lambda sim, c, s, links: links[li].direction(d)
                             .add_middlebox(mb))
    _assert_exact(c, s, 400_000, 200_000)
    assert mb.hits == 1
    resetter = c if who == "client" else s
    rst_dir = "ab" if who == "client" else "ba"
    assert _tcprst_reasons(rec, links[1], rst_dir) == [reason]
    assert _mib(resetter)[counter] == 1 and _mib(resetter)["MPTcpExtMPRstTx"] == 1
    assert _mib(c)["MPTcpExtMPJoinEstab"] == 0 and _mib(s)["MPTcpExtMPJoinEstab"] == 0
    assert "SubflowClosed" in c.result.events
    assert _mapped(c)[1:] == [0] and _mapped(s)[0] == 200_000
    assert links[1].ab.stats.bytes_sent < 1000  # nothing but the handshake and the RST


@pytest.mark.rfc("8684", "3.4.1")
def test_add_addr_with_a_wrong_hmac_is_ignored() -> None:
    """The client drops it (counted), does not echo it, opens no subflow; the server keeps
    repeating it (add_addr_timeout) until it gives up."""
    mb = Rewrite(lambda o: o._replace(hmac=_flip(o.hmac))
                 if type(o) is AddAddr and not o.echo and o.hmac else o)
    c, s, links, _ = _pair(1_500_000, 0, sm=MptcpConfig(add_addr_timeout=0.2),
                           setup=lambda sim, c, s, links: links[0].ba.add_middlebox(mb))
    _assert_exact(c, s, 1_500_000, 0)
    tx = _mib(s)["MPTcpExtAddAddrTx"]
    assert tx == mb.hits >= 2
    assert _mib(c)["MPTcpExtAddAddrBadHmac"] == tx  # (Linux ignores it without a counter)
    assert _mib(c)["MPTcpExtAddAddr"] == 0 and _mib(c)["MPTcpExtEchoAddTx"] == 0
    assert _mib(c)["MPTcpExtMPJoinSynTx"] == 0 and "AddressAnnounced" not in c.result.events
    assert len(_conn(c).subs) == 1 and links[1].ab.stats.sent == 0


@pytest.mark.rfc("8684", "3.2")
@pytest.mark.rfc("8684", "3.6")
def test_join_over_the_subflow_limit_is_refused() -> None:
    """Server limit 0 extra subflows: its join is answered with RST + MP_TCPRST 3
    (MPJoinRejected); Linux answers the SYN and refuses at the third ACK, same reason."""
    c, s, links, rec = _pair(400_000, 400_000, spm=_server_pm(limits=Limits(0)), record=True)
    _assert_exact(c, s, 400_000, 400_000)
    reasons = _tcprst_reasons(rec, links[1], "ba")
    assert reasons and set(reasons) == {3}
    assert _mib(s)["MPTcpExtMPJoinRejected"] == _mib(s)["MPTcpExtMPJoinSynRx"] == len(reasons)
    assert _mib(c)["MPTcpExtMPRstRx"] == len(reasons) and len(_conn(s).subs) == 1
    assert _sf_info(c, join=True)["closed"] is True


@pytest.mark.rfc("8684", "3.1")
@pytest.mark.rfc("8684", "3.2")
def test_flag_c_no_join_to_the_initial_address() -> None:
    """Server flag C: set on its SYN/ACK; the client may not create a subflow to the
    initial address but joins the announced one; a join to the initial address anyway (a
    peer ignoring C) is refused with MP_TCPRST 3."""
    raised: list[str] = []

    def act(c: Tracked) -> None:
        mc = _conn(c)
        try:
            mc.create_subflow(("10.0.0.1", 0), (SERVER_ADDR, SERVER_PORT))
        except ValueError as e:
            raised.append(str(e))
        mc.peer_no_join = False  # behave like a peer that ignores flag C
        mc.create_subflow(("10.0.0.1", 0), (SERVER_ADDR, SERVER_PORT))

    c, s, links, rec = _pair(
        800_000, 800_000, (DEEP, DEEP), sm=MptcpConfig(no_join_to_initial=True), record=True,
        setup=lambda sim, c, s, links: sim.schedule(0.3, lambda: act(c)))
    _assert_exact(c, s, 800_000, 800_000)
    synack = next(seg for _, seg in _wire(rec, links[0], "ba") if seg.tcp.flags & 0x02)
    assert any(type(o) is MpCapable and o.flags & 0x20 for o in synack.tcp.options)
    assert raised and "flag C" in raised[0]
    assert _tcprst_reasons(rec, links[0], "ba") == [3]
    assert _mib(s)["MPTcpExtMPJoinRejected"] == 1 and _mib(s)["MPTcpExtMPJoinEstab"] == 1
    assert min(_mapped(c)[:2]) > 0 and _mapped(c)[2] == 0


# ---------------------------------------------------------------------------- §3.3.6 ------
@pytest.mark.rfc("8684", "3.3.6")
@pytest.mark.parametrize("rto_min", [1.0, 0.2], ids=["rto_min-1s", "rto_min-200ms"])
@pytest.mark.parametrize("cut", [0, 1], ids=["cut-path1", "cut-path2"])
def test_failover_when_a_path_dies(cut: int, rto_min: float) -> None:
    """1.5 MB each way over two 10 Mbit/s paths; one path goes down for good at 0.6 s: the
    subflow goes stale after ``stale_after_rtos`` RTOs, its data is reinjected on the other
    path, both transfers complete byte-exact.  The stall (cut -> data-level progress again)
    is bounded by about three RTOs."""
    t_cut = 0.6
    c, s, _, _ = _pair(
        1_500_000, 1_500_000, tcp=TcpConfig(rto_min=rto_min),
        setup=lambda sim, c, s, links: sim.schedule(t_cut, lambda: links[cut].set_up(False)))
    _assert_exact(c, s, 1_500_000, 1_500_000)
    for p in (c, s):
        assert _mib(p)["MPTcpExtSubflowStale"] >= 1 and _mib(p)["MPTcpExtMPTCPRetrans"] >= 1
        assert _sf_info(p, id=cut)["stale"] is True or _sf_info(p, id=cut)["closed"] is True
    stall = max(s.stall_after(t_cut), c.stall_after(t_cut))
    print(f"failover cut path {cut + 1} rto_min {rto_min}: stall {stall:.3f} s, "
          f"done at {max(c.result.closed_at or 0, s.result.closed_at or 0):.3f} s, "
          f"client split {_mapped(c)}, server split {_mapped(s)}")
    # two RTOs until the subflow is stale, then the reinjected hole; the peer's data-level
    # window (DATA_ACK + window, RFC 8684 §3.3.4) holds new data back meanwhile
    assert stall < (3.5 if rto_min == 1.0 else 1.5), stall


@pytest.mark.rfc("8684", "3.3.8")
@pytest.mark.parametrize("cut", [False, True], ids=["regular-works", "regular-dies"])
def test_backup_subflow(cut: bool) -> None:
    """The client's second address is a backup endpoint (MP_JOIN B): neither end puts data
    on it while the regular subflow works; when path 1 dies it carries the rest."""
    before: list[list[int]] = []

    def setup(sim: Simulator, c: Tracked, s: Tracked, links: list[Link]) -> None:
        def die() -> None:
            before.extend([_mapped(c), _mapped(s)])
            links[0].set_up(False)
        if cut:
            sim.schedule(0.5, die)

    c, s, _, _ = _pair(1_000_000, 1_000_000, cpm=_client_pm(backup=True), setup=setup)
    _assert_exact(c, s, 1_000_000, 1_000_000)
    assert _sf_info(c, join=True)["backup"] is True
    assert _sf_info(s, join=True)["peer_backup"] is True and _mib(s)["MPTcpExtMPJoinSynBackupRx"]
    if not cut:
        assert _mapped(c)[1] == 0 and _mapped(s)[1] == 0
        return
    assert before[0][1] == 0 and before[1][1] == 0  # idle while the regular one worked
    for p, b in zip((c, s), before, strict=True):
        assert _mapped(p)[1] >= 1_000_000 - b[0]  # it took over everything not yet sent
        assert _mib(p)["MPTcpExtSubflowStale"] == 1


# ---------------------------------------------------------------------------- §3.4 --------
@pytest.mark.rfc("8684", "3.4.2")
@pytest.mark.parametrize("who", ["client", "server"])
def test_remove_addr(who: str) -> None:
    """At 0.3 s one end withdraws address ID 1: it closes its subflow, sends REMOVE_ADDR,
    the peer closes its side of that subflow; the transfers complete on path 1; the path
    manager does not reopen the removed path."""
    def setup(sim: Simulator, c: Tracked, s: Tracked, links: list[Link]) -> None:
        sim.schedule(0.3, lambda: _conn(c if who == "client" else s).remove_addr(1))

    c, s, links, rec = _pair(1_200_000, 1_200_000, (DEEP, DEEP), setup=setup, record=True)
    _assert_exact(c, s, 1_200_000, 1_200_000)
    actor, peer = (c, s) if who == "client" else (s, c)
    sent = [seg for _, seg in _wire(rec, links[0], "ab" if who == "client" else "ba")
            if any(type(o) is RemoveAddr and o.address_ids == (1,) for o in seg.tcp.options)]
    assert len(sent) == 1 and _mib(actor)["MPTcpExtRmAddrTx"] == 1
    assert _mib(peer)["MPTcpExtRmAddr"] == 1
    assert _mib(actor)["MPTcpExtRmSubflow"] == 1
    assert _sf_info(actor, join=True)["reason"] == "local address 1 removed"
    assert "AddressRemoved" in peer.result.events and _sf_info(peer, join=True)["closed"]
    assert _mib(c)["MPTcpExtMPJoinSynTx"] == 1  # no reconnect
    assert all(m > 0 for m in _mapped(c))


@pytest.mark.rfc("8684", "3.3.8")
@pytest.mark.parametrize("who", ["client", "server"])
def test_mp_prio_backup(who: str) -> None:
    """At 0.3 s one end marks the joined subflow backup (MP_PRIO B=1): the peer reports
    PriorityChanged and neither end maps more data on it."""
    snaps: list[list[list[int]]] = []

    def setup(sim: Simulator, c: Tracked, s: Tracked, links: list[Link]) -> None:
        def act() -> None:
            mc = _conn(c if who == "client" else s)
            mc.set_backup(next(sf for sf in mc.subs if sf.join), True)
        sim.schedule(0.3, act)
        sim.schedule(0.6, lambda: snaps.append([_mapped(c), _mapped(s)]))

    c, s, links, rec = _pair(1_200_000, 1_200_000, (DEEP, DEEP), setup=setup, record=True)
    _assert_exact(c, s, 1_200_000, 1_200_000)
    actor, peer = (c, s) if who == "client" else (s, c)
    prio = [seg for _, seg in _wire(rec, links[1], "ab" if who == "client" else "ba")
            if any(type(o) is MpPrio and o.backup for o in seg.tcp.options)]
    assert len(prio) == 1 and _mib(actor)["MPTcpExtMPPrioTx"] == 1
    assert _mib(peer)["MPTcpExtMPPrioRx"] == 1 and "PriorityChanged" in peer.result.events
    assert _sf_info(peer, join=True)["peer_backup"] is True
    assert _sf_info(actor, join=True)["backup"] is True
    assert [_mapped(c)[1], _mapped(s)[1]] == [snaps[0][0][1], snaps[0][1][1]]


@pytest.mark.rfc("8684", "3.4.1")
def test_lost_add_addr_is_repeated_and_echoed() -> None:
    mb = DropFirst(lambda seg: any(type(o) is AddAddr and not o.echo for o in seg.tcp.options))
    c, s, links, rec = _pair(
        1_000_000, 1_000_000, (DEEP, DEEP), sm=MptcpConfig(add_addr_timeout=0.3), record=True,
        setup=lambda sim, c, s, links: links[0].ba.add_middlebox(mb))
    _assert_exact(c, s, 1_000_000, 1_000_000)
    assert mb.dropped == 1
    assert _mib(s)["MPTcpExtAddAddrTx"] == 2 and _mib(s)["MPTcpExtEchoAdd"] == 1
    assert _mib(c)["MPTcpExtAddAddr"] == 1 and _mib(c)["MPTcpExtEchoAddTx"] == 1
    adds = [t for t, seg in _wire(rec, links[0], "ba")
            if any(type(o) is AddAddr and not o.echo for o in seg.tcp.options)]
    assert len(adds) == 2 and adds[1] - adds[0] == pytest.approx(0.3, abs=0.01)
    joins = [t for t, seg in _wire(rec, links[1], "ab") if seg.tcp.flags & 0x02]
    assert len(joins) == 1 and joins[0] > adds[1]
    assert _mib(c)["MPTcpExtMPJoinEstab"] == 1 and all(m > 0 for m in _mapped(c))


class Daemon:
    """A userspace path manager daemon: joins every announced address from the client's
    second address."""

    def __init__(self, pm: UserspacePM, local: str) -> None:
        self.pm, self.local = pm, local
        self.seen: list[str] = []

    def attach(self, host: MptcpAppHost) -> None:
        pass

    def timer(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        pass

    def poll(self, now: float) -> None:
        while self.pm.events:
            mc, ev = self.pm.events.popleft()
            self.seen.append(type(ev).__name__)
            if isinstance(ev, AddressAnnounced):
                mc.create_subflow((self.local, 0), (ev.address, ev.port or mc.remote[1]))


@pytest.mark.rfc("8684", "3.4")
def test_userspace_pm_creates_the_subflow() -> None:
    pm = UserspacePM()
    daemon = Daemon(pm, CLIENT_ADDR2)
    c, s, links, _ = _pair(1_000_000, 1_000_000, cpm=pm, extra_apps=(daemon,))
    _assert_exact(c, s, 1_000_000, 1_000_000)
    assert daemon.seen[:3] == ["MptcpConnected", "SubflowEstablished", "AddressAnnounced"]
    assert daemon.seen.count("SubflowEstablished") == 2
    assert _mib(c)["MPTcpExtMPJoinSynTx"] == 1 and all(m > 0 for m in _mapped(c))
    assert links[1].ab.stats.bytes_sent > 100_000


@pytest.mark.rfc("8684", "3.4.1")
@pytest.mark.parametrize("family", ["ipv6", "mixed"])
def test_ipv6_and_mixed_families(family: str) -> None:
    """IPv6 on both paths; or an IPv4 connection whose server announces an IPv6 address
    that the client joins from its own IPv6 address (RFC 8684 §3.4.1 allows either family
    in ADD_ADDR)."""
    first = (("fd00::1",), ("fd00::2",)) if family == "ipv6" else (("10.0.0.1",), (SERVER_ADDR,))
    c, s, links, rec = _pair(
        1_000_000, 1_000_000, client_ifaces=(first[0], ("fd00:1::1",)),
        server_ifaces=(first[1], ("fd00:1::2",)), record=True,
        cpm=_client_pm(addr="fd00:1::1", net="fd00:1::/64"), spm=_server_pm(addr="fd00:1::2"))
    _assert_exact(c, s, 1_000_000, 1_000_000)
    add = next(o for _, seg in _wire(rec, links[0], "ba") for o in seg.tcp.options
               if type(o) is AddAddr and not o.echo)
    assert len(add.address) == 16 and str(add.ip) == "fd00:1::2"
    assert str(_sf_info(c, join=True)["local"]).startswith("[fd00:1::1]")
    assert all(m > 100_000 for m in _mapped(c) + _mapped(s))


# ---------------------------------------------------------------------------- property ----
def _expected(seed: int, n: int) -> bytes:
    return b"".join(payload_stream(seed, n))


@pytest.mark.rfc("8684", "3.3.6")
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    sched=st.sampled_from(["minrtt", "roundrobin", "redundant", "activebackup"]),
    sizes=st.tuples(st.sampled_from([100_000, 300_000]), st.sampled_from([0, 100_000])),
    loss=st.tuples(st.sampled_from([0.0, 0.01, 0.03]), st.sampled_from([0.0, 0.01, 0.03])),
    flaps=st.lists(st.tuples(st.integers(0, 1), st.floats(0.0, 0.5), st.sampled_from(
        [0.05, 0.3, 1.5])), max_size=3),
    dead=st.sampled_from([None, 0, 1]),
)
def test_random_cuts_never_lose_data_silently(
        sched: str, sizes: tuple[int, int], loss: tuple[float, float],
        flaps: list[tuple[int, float, float]], dead: int | None) -> None:
    """Once both subflows are up, paths flap and at most one dies for good: what each side
    reads is a prefix of what the other wrote, and it is all of it unless a failure with a
    reason was reported, within bounded virtual time."""
    sim = Simulator(seed=7)
    m = MptcpConfig(scheduler=sched)
    c = Peer("client", sizes[0], seed=SEED, connect=(SERVER_ADDR, SERVER_PORT), keep=True)
    s = Peer("server", sizes[1], seed=SEED + 1, keep=True)
    _, _, links = setup_multipath_pair(
        sim, [c], [s], paths=(LinkParams(delay=0.01, rate=10e6, queue_packets=100,
                                         loss=loss[0]),
                              LinkParams(delay=0.03, rate=5e6, queue_packets=100,
                                         loss=loss[1])),
        client_pm=_client_pm(), server_pm=_server_pm(), client_mptcp=m, server_mptcp=m)
    sim.run(until=lambda: all(p.conn is not None and sum(sf.usable for sf in p.conn.subs) > 1
                              for p in (c, s)) or (c.result.finished and s.result.finished),
            max_time=30)
    t0 = sim.now
    for li, at, dur in flaps:
        sim.flap(links[li], t0 + at, dur)
    if dead is not None:  # after the other path's flaps are over
        last = max([at + dur for li, at, dur in flaps if li != dead] + [0.0])
        sim.schedule(t0 + last + 0.2, lambda: links[dead].set_up(False))
    res = sim.run(until=lambda: c.result.finished and s.result.finished, max_time=BOUND,
                  max_events=EVENTS)
    assert res.reason is StopReason.CONDITION, (res, c.result, s.result)
    assert c.data is not None and s.data is not None
    assert _expected(SEED, sizes[0]).startswith(bytes(s.data))
    assert _expected(SEED + 1, sizes[1]).startswith(bytes(c.data))
    complete = len(s.data) == sizes[0] and len(c.data) == sizes[1]
    for p in (c, s):
        assert not p.result.closed_clean or complete, p.result
    if not complete:
        assert any(p.result.failure for p in (c, s))


# ---------------------------------------------------------------------------- engine bugs --
def _probe_across_runs() -> tuple[Paced, Tracked, TraceRecorder]:
    """Round-robin, 1000-byte messages every 1 ms: each subflow's send buffer is a series
    of 1000-byte DSN->SSN runs.  Path 1 goes down 20 ms after both subflows are up (for
    1 s): its tail-loss probe sends new data from SND.NXT."""
    return _paced("roundrobin", 300, 1000, 0.001, (LAN, LAN), exact=False,
                  setup=lambda sim, links: sim.flap(links[0], sim.now + 0.02, 1.0))


@pytest.mark.rfc("8684", "3.3.1")
def test_every_data_segment_fits_the_mtu_and_carries_its_mapping() -> None:
    _, _, rec = _probe_across_runs()
    bad = []
    for r in rec.records:
        seg = parse_segment(r.packet)
        mapped = any(type(o) is Dss and o.dsn is not None for o in seg.tcp.options)
        if len(r.packet) > 1500 or (seg.payload and not mapped):
            bad.append((round(r.time, 4), r.link, len(r.packet), len(seg.payload), mapped))
    assert not bad, bad


@pytest.mark.rfc("8684", "3.3.6")
def test_transfer_survives_a_probe_across_mapping_runs() -> None:
    app, srv, _ = _probe_across_runs()
    assert srv.result.failure is None and srv.result.received == len(app.data)
