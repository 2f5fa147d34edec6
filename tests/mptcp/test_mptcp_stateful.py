"""Hypothesis stateful test: two MPTCP stacks on the simulator, random application calls at
both ends (writes, reads, half-close, close) and random faults (loss bursts, reordering,
duplication, delay changes, link flaps, TSO-like splitting).

Invariant after every step: what each side read is exactly a prefix of what the other side's
application handed to ``send`` -- the data-level byte stream of RFC 8684 §3.3 is reliable and
in order.  At the end the faults stop, both applications finish (read everything, half-close
with a DATA_FIN, close after the peer's DATA_FIN, §3.3.3) and the simulator runs with bounded
virtual time and events; then either both streams were delivered completely and both sides
closed cleanly, or a failure with a reason was reported that the applications' own calls
justify (a close() with unread data, or with the peer still sending, may reset the
connection).  A clean close is never reported with data missing.  Never a hang.
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interop.mptcp_app import MptcpAppHost
from interop.netsim import LinkParams, Simulator, SplitOptions, Splitter
from interop.netsim.host import Host
from interop.netsim.link import Link
from interop.netsim.sim import StopReason
from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.events import FallbackToTcp
from mptcp.stack import MptcpStack
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpStateError
from mptcp.tcp.events import Connected, ConnectionClosed, ConnectionFailed, EofReceived, Reset
from mptcp.tcp.state import TcpState

A_ADDR, B_ADDR, PORT = "10.0.0.1", "10.0.0.2", 80
BASE = LinkParams(delay=0.005, rate=10e6, queue_packets=64)
END_TIME = 2500.0  # virtual seconds the final phase may take at most (> 15 backed-off RTOs)
END_EVENTS = 2_000_000


class Side:
    """One application end, run by an MptcpAppHost: records events, drains at the end."""

    def __init__(self, name: str, listen: bool) -> None:
        self.name = name
        self.listen = listen
        self.host: MptcpAppHost | None = None
        self.conn: MptcpConnection | None = None
        self.sent = bytearray()
        self.got = bytearray()
        self.connected = False
        self.eof = False
        self.fallback: str | None = None
        self.closed_clean = False
        self.failure: str | None = None
        self.close_called = False
        self.aborted = False  # close() with unread data: a reset by design
        self.draining = False
        self.rng = random.Random(name)

    # MptcpApp protocol
    def attach(self, host: MptcpAppHost) -> None:
        self.host = host
        if self.listen:
            host.stack.listen(PORT)

    def timer(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        pass

    def poll(self, now: float) -> None:
        if self.conn is None and self.listen and self.host is not None:
            self.conn = self.host.stack.accept(PORT)
        c = self.conn
        if c is None:
            return
        while (ev := c.next_event()) is not None:
            t = type(ev)
            if t is Connected:
                self.connected = True
            elif t is EofReceived:
                self.eof = True
            elif t is FallbackToTcp:
                self.fallback = ev.reason  # type: ignore[attr-defined]
            elif t is ConnectionClosed:
                self.closed_clean = True
            elif (t is Reset or t is ConnectionFailed) and self.failure is None:
                self.failure = f"{t.__name__}: {ev.reason}"  # type: ignore[attr-defined]
        if self.draining and self.usable:
            self.got += c.read()
            if c.at_eof and not self.close_called and c.state is not TcpState.CLOSED:
                self.close()

    @property
    def usable(self) -> bool:
        """The application may still call: no failure, no close() yet."""
        return self.conn is not None and self.failure is None and not self.close_called

    def close(self) -> None:
        c = self.conn
        assert c is not None
        self.aborted = bool(c.readable)  # MptcpConnection.close() resets with unread data
        self.close_called = True
        c.close()

    @property
    def finished(self) -> bool:
        return self.closed_clean or self.failure is not None


def _tcp_config() -> st.SearchStrategy[TcpConfig]:
    return st.builds(
        lambda sack, ts, mss, cc, rec, rto: TcpConfig(
            sack=sack, timestamps=ts, mss=mss, cc=cc, recovery=rec, rto_min=rto, msl=60.0,
            send_buffer=1 << 18, recv_buffer=1 << 18),
        st.booleans(), st.booleans(), st.sampled_from([536, 1460]),
        st.sampled_from(["reno", "cubic"]), st.sampled_from(["rack", "dupack"]),
        st.sampled_from([0.2, 1.0]))


def _mptcp_config() -> st.SearchStrategy[MptcpConfig]:
    return st.builds(
        lambda csum, rb, sb: MptcpConfig(checksums=csum, recv_buffer=rb, send_buffer=sb),
        st.booleans(), st.sampled_from([16384, 65536, 1 << 20]),
        st.sampled_from([16384, 65536, 1 << 20]))


DIRS = st.sampled_from(["ab", "ba"])
NAMES = st.sampled_from(["a", "b"])
WRITE_SIZES = st.one_of(st.integers(1, 2000), st.integers(2000, 60_000))


class MptcpPair(RuleBasedStateMachine):
    """Client ``a`` and server ``b`` (both MptcpStack) on one link of the simulator."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulator | None = None
        self.link: Link | None = None
        self.sides: dict[str, Side] = {}
        self.hosts: dict[str, Host] = {}
        self.steps = 0

    @initialize(tcp_a=_tcp_config(), tcp_b=_tcp_config(), mp_a=_mptcp_config(),
                mp_b=_mptcp_config(), seed=st.integers(0, 2**16))
    def setup(self, tcp_a: TcpConfig, tcp_b: TcpConfig, mp_a: MptcpConfig, mp_b: MptcpConfig,
              seed: int) -> None:
        sim = self.sim = Simulator(seed=seed)
        a, b = Side("a", False), Side("b", True)
        self.sides = {"a": a, "b": b}
        app_a = MptcpAppHost(MptcpStack([A_ADDR], random.Random(seed), config=tcp_a,
                                        mptcp=mp_a), [a])
        app_b = MptcpAppHost(MptcpStack([B_ADDR], random.Random(seed + 1), config=tcp_b,
                                        mptcp=mp_b), [b])
        ha, hb = sim.add_host("a", app_a), sim.add_host("b", app_b)
        self.hosts = {"a": ha, "b": hb}
        self.link = sim.add_link(ha.add_interface("eth0", A_ADDR),
                                 hb.add_interface("eth0", B_ADDR), BASE)
        a.conn = app_a.stack.connect((B_ADDR, PORT), now=sim.now)
        sim.poke(ha)
        sim.run(until=lambda: a.connected and b.conn is not None, max_time=30.0)
        assert a.connected and b.conn is not None, "handshake on a clean link"
        assert a.fallback is None, f"fallback on a clean link: {a.fallback}"

    def _poke(self, name: str) -> None:
        assert self.sim is not None
        self.sim.poke(self.hosts[name])

    # ------------------------------------------------------------------ application -----
    @rule(name=NAMES, n=WRITE_SIZES)
    def write(self, name: str, n: int) -> None:
        s = self.sides[name]
        c = s.conn
        if not s.usable or c is None or c.write_shut:
            return
        data = s.rng.randbytes(n)
        try:
            k = c.send(data)
        except TcpStateError:  # the connection failed under us: reported as an event
            return
        assert 0 <= k <= n
        s.sent += data[:k]
        self._poke(name)

    @rule(name=NAMES, n=WRITE_SIZES, dt=st.floats(0.001, 0.5))
    def write_and_wait(self, name: str, n: int, dt: float) -> None:
        self.write(name, n)
        self.advance(dt)

    @rule(name=NAMES, n=st.one_of(st.just(-1), st.integers(1, 50_000)))
    def read(self, name: str, n: int) -> None:
        s = self.sides[name]
        if not s.usable or s.conn is None:
            return
        data = s.conn.read(n)
        assert n < 0 or len(data) <= n
        s.got += data
        self._poke(name)

    @precondition(lambda self: self.steps >= 6)  # let data flow first, most of the time
    @rule(name=NAMES)
    def shutdown_write(self, name: str) -> None:
        s = self.sides[name]
        if s.usable and s.conn is not None and s.conn.state is not TcpState.CLOSED:
            s.conn.shutdown_write()
            self._poke(name)

    @precondition(lambda self: self.steps >= 6)
    @rule(name=NAMES)
    def close(self, name: str) -> None:
        s = self.sides[name]
        if s.usable and s.conn is not None and s.conn.state is not TcpState.CLOSED:
            s.close()
            self._poke(name)

    @rule(dt=st.floats(0.001, 2.0))
    def advance(self, dt: float) -> None:
        assert self.sim is not None
        res = self.sim.run(until=self.sim.now + dt, max_events=300_000)
        assert res.reason is not StopReason.MAX_EVENTS, "livelock: too many events"

    # ------------------------------------------------------------------ faults ----------
    @rule(d=DIRS, p=st.floats(0.05, 0.6), dur=st.floats(0.01, 2.0))
    def loss_burst(self, d: str, p: float, dur: float) -> None:
        assert self.sim is not None and self.link is not None
        self.link.direction(d).configure(loss=p)
        self.sim.configure_at(self.sim.now + dur, self.link, d, loss=0.0)

    @rule(d=DIRS, p=st.floats(0.0, 0.3), delay=st.floats(0.001, 0.05))
    def reorder(self, d: str, p: float, delay: float) -> None:
        assert self.link is not None
        self.link.direction(d).configure(reorder=p, reorder_delay=delay)

    @rule(d=DIRS, p=st.floats(0.0, 0.2))
    def duplicate(self, d: str, p: float) -> None:
        assert self.link is not None
        self.link.direction(d).configure(duplicate=p)

    @rule(d=DIRS, delay=st.floats(0.0005, 0.2), jitter=st.floats(0.0, 0.01))
    def delay_change(self, d: str, delay: float, jitter: float) -> None:
        assert self.link is not None
        self.link.direction(d).configure(delay=delay, jitter=jitter)

    @rule(d=st.sampled_from(["ab", "ba", None]), dur=st.floats(0.001, 3.0))
    def flap(self, d: str | None, dur: float) -> None:
        assert self.sim is not None and self.link is not None
        self.sim.flap(self.link, self.sim.now, dur, d)

    @rule(d=DIRS, x=st.one_of(st.none(), st.integers(2, 4)))
    def split(self, d: str, x: int | None) -> None:
        """TSO-like resegmentation copying the options to every piece (RFC 8684 §6), at most
        one splitter per direction (chains cut down to 1-byte segments); None removes it."""
        assert self.link is not None
        direction = self.link.direction(d)
        for mb in list(direction.middleboxes):
            direction.remove_middlebox(mb)
        if x is not None:
            direction.add_middlebox(Splitter(x, options=SplitOptions.ALL))

    @rule()
    def heal(self) -> None:
        assert self.link is not None
        for d in (self.link.ab, self.link.ba):
            d.params = BASE

    # ------------------------------------------------------------------ invariants ------
    @invariant()
    def streams_are_prefixes(self) -> None:
        self.steps += 1
        if not self.sides:
            return
        for me, peer in (("a", "b"), ("b", "a")):
            got = self.sides[me].got
            sent = self.sides[peer].sent
            assert len(got) <= len(sent), f"{me} read more than {peer} sent"
            assert got == sent[:len(got)], f"{me} read bytes {peer} did not send (in order)"

    def teardown(self) -> None:
        sim, link = self.sim, self.link
        if sim is None or link is None:
            return
        # the faults stop ...
        for d in (link.ab, link.ba):
            d.params = BASE
            d.set_up(True)
        # ... and both applications finish: read all, half-close, close at EOF
        for name, s in self.sides.items():
            s.draining = True
            c = s.conn
            if s.usable and c is not None:
                s.got += c.read()
                if not c.write_shut:
                    c.shutdown_write()
            self._poke(name)
        a, b = self.sides["a"], self.sides["b"]
        res = sim.run(until=lambda: a.finished and b.finished,
                      max_time=sim.now + END_TIME, max_events=END_EVENTS)
        assert res.reason not in (StopReason.MAX_TIME, StopReason.MAX_EVENTS), (
            f"hang: {res.reason}; a={_desc(a)} b={_desc(b)}")
        self.streams_are_prefixes()
        for me, peer in ((a, b), (b, a)):
            if me.failure is None and not me.closed_clean:
                # half-open: the peer is gone (its RST with MP_FASTCLOSE lost, RFC 8684 §3.5
                # "Option R") and nothing we could still send would draw another; without
                # a close() of ours nothing times out (as in TCP's FIN-WAIT-2, RFC 9293)
                c = me.conn
                assert peer.failure is not None and c is not None and not me.close_called \
                    and c.state is TcpState.FIN_WAIT_2, (
                        f"{me.name} unfinished without cause: {_desc(me)} / {_desc(peer)}")
                continue
            if me.failure is None:
                # a clean close means the data-level close completed both ways (§3.3.3):
                # everything we wrote reached the peer's stack, and we got all the peer wrote
                # (unless we stopped reading with close(), or the peer's app did)
                assert peer.close_called or bytes(peer.got) == bytes(me.sent), (
                    f"{me.name} closed cleanly but its data is missing: {_desc(me)} / "
                    f"{_desc(peer)}")
                assert me.close_called or bytes(me.got) == bytes(peer.sent), (
                    f"{me.name} closed cleanly but did not get all data: {_desc(me)} / "
                    f"{_desc(peer)}")
                continue
            reason = me.failure.split(": ", 1)[1] if ": " in me.failure else ""
            assert reason, f"{me.name} failed without a reason: {me.failure}"
            # the only failures the applications can cause (faults are bounded, so no
            # timeouts): a close() with unread data resets the connection, and so may data
            # still arriving after a close() (RFC 9293 §3.10.4 / RFC 2525 §2.17 for TCP)
            assert _caused_failure(me, peer) or _caused_failure(peer, me), (
                f"{me.name} failed without cause: {_desc(me)} / peer {_desc(peer)}")


def _caused_failure(s: Side, peer: Side) -> bool:
    """``s``'s application made the connection fail: close() with unread data, or close()
    while the peer was still sending."""
    return s.aborted or (s.close_called and len(peer.sent) > len(s.got))


def _desc(s: Side) -> str:
    c = s.conn
    st_ = c.state.value if c is not None else "-"
    extra = ""
    if c is not None:
        info = c.info()
        extra = (f" snd_una={info['snd_una']} snd_nxt={info['snd_nxt']} "
                 f"rcv_nxt={info['rcv_nxt']} fallback={info['fallback']}")
    return (f"{s.name}[{st_} sent={len(s.sent)} got={len(s.got)} clean={s.closed_clean} "
            f"failure={s.failure} close={s.close_called} aborted={s.aborted}{extra}]")


def _settings() -> settings:
    """A few seconds and a fixed example sequence (derandomized: the same examples on every
    run) in the default profile; many random examples under HYPOTHESIS_PROFILE=fuzz."""
    current = settings.default
    base = current.max_examples if current is not None else 100
    if base <= 300:
        return settings(max_examples=100, stateful_step_count=30, deadline=None,
                        derandomize=True)
    return settings(max_examples=max(30, base // 100), stateful_step_count=50, deadline=None)


MptcpPair.TestCase.settings = _settings()
test_mptcp_pair = MptcpPair.TestCase
