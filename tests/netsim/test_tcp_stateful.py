"""Hypothesis stateful test: two TCP stacks on the simulator, random application calls at both
ends (writes, reads, half-close, close) and random faults (loss bursts, reordering,
duplication, link flaps, splitting and coalescing middleboxes).

Invariant after every step: what each side read is exactly a prefix of what the other side's
application handed to ``send`` -- in order, never more (RFC 9293 §1: reliable, in-order byte
stream).  At the end the faults stop, both applications finish (read everything, half-close,
close after EOF) and the simulator runs with bounded virtual time and events; then either both
streams were delivered completely and both sides closed cleanly, or a failure was reported
that the applications' own calls justify (a close() with unread data or data arriving after
close() resets the connection, RFC 9293 §3.10.4 / RFC 2525 §2.17).  Never a hang.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interop.netsim import CoalesceOptions, Coalescer, LinkParams, Simulator, Splitter
from interop.netsim.link import Link
from interop.netsim.sim import StopReason
from interop.tcp_app import AppHost
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.events import Connected, ConnectionClosed, ConnectionFailed, EofReceived, Reset
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import CAN_SEND, TcpState

A_ADDR, B_ADDR, PORT = "10.0.0.1", "10.0.0.2", 80
BASE = LinkParams(delay=0.005, rate=10e6, queue_packets=64)
END_TIME = 2500.0  # virtual seconds the final phase may take at most (> 15 backed-off RTOs)
END_EVENTS = 2_000_000


class Side:
    """One application end, run by an AppHost: records events, drains at the end."""

    def __init__(self, name: str, listen: bool) -> None:
        self.name = name
        self.listen = listen
        self.host: AppHost | None = None
        self.conn: TcpConnection | None = None
        self.sent = bytearray()
        self.got = bytearray()
        self.connected = False
        self.eof = False
        self.closed_clean = False
        self.failure: str | None = None
        self.close_called = False
        self.aborted = False  # close() with unread data: a RST by design
        self.draining = False
        self.rng = random.Random(name)

    # App protocol
    def attach(self, host: AppHost) -> None:
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
            elif t is ConnectionClosed:
                self.closed_clean = True
            elif (t is Reset or t is ConnectionFailed) and self.failure is None:
                self.failure = f"{t.__name__}: {ev.reason}"  # type: ignore[attr-defined]
        if self.draining and self.usable:
            self.got += c.read()
            if c.at_eof and not self.close_called and c.state is not TcpState.CLOSED:
                self.close()

    # application calls
    @property
    def usable(self) -> bool:
        """The application may still call: no failure, no close() yet.  (Reading goes on in
        CLOSED after a clean close: what arrived stays readable, as on a socket.)"""
        return self.conn is not None and self.failure is None and not self.close_called

    def close(self) -> None:
        c = self.conn
        assert c is not None
        self.aborted = bool(c.readable or c.recvbuf.out_of_order)
        self.close_called = True
        c.close()

    @property
    def finished(self) -> bool:
        return self.closed_clean or self.failure is not None


def _config() -> st.SearchStrategy[TcpConfig]:
    def build(d: dict[str, Any]) -> TcpConfig:
        ws = d.pop("window_scaling")
        recv = d.pop("recv_buffer")
        if not ws:
            recv = min(recv, 65535)
        return TcpConfig(window_scaling=ws, recv_buffer=recv, msl=60.0, **d)

    return st.fixed_dictionaries({
        "sack": st.booleans(), "timestamps": st.booleans(), "window_scaling": st.booleans(),
        "nagle": st.booleans(), "delayed_ack": st.booleans(),
        "cc": st.sampled_from(["reno", "cubic"]), "recovery": st.sampled_from(["rack", "dupack"]),
        "mss": st.sampled_from([536, 1460]),
        "recv_buffer": st.sampled_from([4096, 16384, 65535, 262144]),
        "send_buffer": st.sampled_from([4096, 65536]),
        "rto_min": st.sampled_from([0.2, 1.0]),
    }).map(build)


DIRS = st.sampled_from(["ab", "ba"])
WRITE_SIZES = st.one_of(st.integers(1, 2000), st.integers(2000, 60_000))


class TcpPair(RuleBasedStateMachine):
    """Client ``a`` and server ``b`` on one link of the simulator."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulator | None = None
        self.link: Link | None = None
        self.sides: dict[str, Side] = {}
        self.hosts: dict[str, Any] = {}
        self.stacks: dict[str, AppHost] = {}
        self.steps = 0

    @initialize(cfg_a=_config(), cfg_b=_config(), seed=st.integers(0, 2**16))
    def setup(self, cfg_a: TcpConfig, cfg_b: TcpConfig, seed: int) -> None:
        sim = self.sim = Simulator(seed=seed)
        a, b = Side("a", False), Side("b", True)
        self.sides = {"a": a, "b": b}
        app_a = AppHost(Stack([A_ADDR], random.Random(seed), config=cfg_a), [a])
        app_b = AppHost(Stack([B_ADDR], random.Random(seed + 1), config=cfg_b), [b])
        ha, hb = sim.add_host("a", app_a), sim.add_host("b", app_b)
        self.hosts = {"a": ha, "b": hb}
        self.stacks = {"a": app_a, "b": app_b}
        self.link = sim.add_link(ha.add_interface("eth0", A_ADDR),
                                 hb.add_interface("eth0", B_ADDR), BASE)
        a.conn = self.stacks["a"].stack.connect((B_ADDR, PORT), now=sim.now)
        sim.poke(ha)
        sim.run(until=lambda: a.connected and b.conn is not None, max_time=30.0)
        assert a.connected and b.conn is not None, "handshake on a clean link"

    # ------------------------------------------------------------------ helpers ---------
    def _poke(self, name: str) -> None:
        assert self.sim is not None
        self.sim.poke(self.hosts[name])

    def _side(self, name: str) -> Side:
        return self.sides[name]

    # ------------------------------------------------------------------ application -----
    @rule(name=st.sampled_from(["a", "b"]), n=WRITE_SIZES)
    def write(self, name: str, n: int) -> None:
        s = self._side(name)
        c = s.conn
        if not s.usable or c is None or c.write_shut or c.state not in CAN_SEND:
            return
        data = s.rng.randbytes(n)
        k = c.send(data)
        assert 0 <= k <= n
        s.sent += data[:k]
        self._poke(name)

    @rule(name=st.sampled_from(["a", "b"]), n=WRITE_SIZES, dt=st.floats(0.001, 0.5))
    def write_and_wait(self, name: str, n: int, dt: float) -> None:
        self.write(name, n)
        self.advance(dt)

    @rule(name=st.sampled_from(["a", "b"]), n=st.one_of(st.just(-1), st.integers(1, 50_000)))
    def read(self, name: str, n: int) -> None:
        s = self._side(name)
        if not s.usable or s.conn is None:
            return
        data = s.conn.read(n)
        assert n < 0 or len(data) <= n
        s.got += data
        self._poke(name)

    @precondition(lambda self: self.steps >= 6)  # let data flow first, most of the time
    @rule(name=st.sampled_from(["a", "b"]))
    def shutdown_write(self, name: str) -> None:
        s = self._side(name)
        if s.usable and s.conn is not None and s.conn.state is not TcpState.CLOSED:
            s.conn.shutdown_write()
            self._poke(name)

    @precondition(lambda self: self.steps >= 6)
    @rule(name=st.sampled_from(["a", "b"]))
    def close(self, name: str) -> None:
        s = self._side(name)
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

    @rule(d=st.sampled_from(["ab", "ba", None]), dur=st.floats(0.001, 3.0))
    def flap(self, d: str | None, dur: float) -> None:
        assert self.sim is not None and self.link is not None
        self.sim.flap(self.link, self.sim.now, dur, d)

    @rule(d=DIRS, kind=st.sampled_from(["split", "coalesce"]), x=st.integers(2, 4))
    def middlebox(self, d: str, kind: str, x: int) -> None:
        assert self.sim is not None and self.link is not None
        mb = (Splitter(x) if kind == "split"
              else Coalescer(0.001 * x, options=CoalesceOptions.LAST))
        self.sim.add_middlebox(self.link, d, mb)

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
                if not c.write_shut and c.state is not TcpState.CLOSED:
                    c.shutdown_write()
            self._poke(name)
        a, b = self.sides["a"], self.sides["b"]
        res = sim.run(until=lambda: a.finished and b.finished,
                      max_time=sim.now + END_TIME, max_events=END_EVENTS)
        assert res.reason not in (StopReason.MAX_TIME, StopReason.MAX_EVENTS), (
            f"hang: {res.reason}; a={_desc(a)} b={_desc(b)}")
        self.streams_are_prefixes()
        for me, peer in ((a, b), (b, a)):
            if me.failure is None:
                if not me.closed_clean:
                    # half-open: the peer is gone (its RST lost) and nothing we could still
                    # send would draw another (FIN-WAIT-2 has no timeout in RFC 9293)
                    assert peer.failure is not None and me.conn is not None \
                        and me.conn.state is TcpState.FIN_WAIT_2, (
                            f"{me.name} unfinished without cause: {_desc(me)} / {_desc(peer)}")
                continue
            # the only failures the applications can cause (faults are bounded: no timeouts)
            if me.failure == "Reset: aborted":  # our close() with unread data
                assert me.aborted, f"{me.name} reset itself without close() on unread data"
            elif me.failure == "Reset: data after close":  # data came after our close()
                assert me.close_called and len(peer.sent) > len(me.got), _desc(me)
            else:  # the peer's RST, for one of the two reasons above
                assert me.failure == "Reset: connection reset", f"unjustified {_desc(me)}"
                assert peer.close_called or peer.failure is not None, (
                    f"{me.name} reset by a peer that neither closed nor failed: {_desc(peer)}")
        # (a side may see its peer's RST in CLOSING / LAST-ACK / TIME-WAIT as a plain close,
        # RFC 9293 §3.10.7.4: the failure is reported on the other side then)
        if a.failure is None and b.failure is None:
            assert a.closed_clean and b.closed_clean
            assert a.got == b.sent and b.got == a.sent, "clean close but data missing"


def _desc(s: Side) -> str:
    st_ = s.conn.state.value if s.conn is not None else "-"
    return (f"{s.name}[{st_} sent={len(s.sent)} got={len(s.got)} clean={s.closed_clean} "
            f"failure={s.failure} close={s.close_called} aborted={s.aborted}]")


def _settings() -> settings:
    """The same 100 examples on every run of the default profile (derandomized: CI must not
    depend on which random cases a run happens to draw); under HYPOTHESIS_PROFILE=fuzz
    (``make fuzz``) random exploration with many more examples."""
    current = settings.default
    base = current.max_examples if current is not None else 100
    if base <= 300:
        return settings(max_examples=100, stateful_step_count=40, deadline=None,
                        derandomize=True)
    return settings(max_examples=max(100, base // 100), stateful_step_count=40, deadline=None)


TcpPair.TestCase.settings = _settings()
test_tcp_pair = TcpPair.TestCase
