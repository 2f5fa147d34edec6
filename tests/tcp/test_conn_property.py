"""Property: two engines with random application writes / reads / half-closes over a network
that drops, duplicates and reorders packets deliver both byte streams exactly -- or report a
clean failure (ConnectionFailed / Reset) with what was delivered a prefix of what was sent --
within bounded virtual time and a bounded number of steps (never hang)."""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.events import ConnectionFailed, Reset
from mptcp.tcp.state import TcpState
from tests.tcp.test_conn_harness import Pair

ops = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["write", "read", "wait"]),
              st.integers(1, 6000)),
    min_size=1, max_size=25,
)
configs = st.fixed_dictionaries({
    "sack": st.booleans(),
    "timestamps": st.booleans(),
    "recovery": st.sampled_from(["rack", "dupack"]),
    "nagle": st.booleans(),
    "recv_buffer": st.sampled_from([4000, 20000, 256 * 1024]),
    "send_buffer": st.sampled_from([3000, 64 * 1024]),
    "delayed_ack": st.booleans(),
})


class LossyPair(Pair):
    """Pair whose wire drops, duplicates and delays (reorders) packets at random."""

    def __init__(self, net: random.Random, loss: float, dup: float, reorder: float,
                 **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.net = net
        self.loss, self.dup, self.reorder = loss, dup, reorder

    def _emit(self, direction: str, conn: TcpConnection) -> None:
        for seg in conn.packets_to_send(self.now):
            raw = seg.to_bytes()
            self.log.append((self.now, direction, seg))
            r = self.net.random()
            if r < self.loss:
                continue
            extra = self.net.uniform(0, 0.05) if self.net.random() < self.reorder else 0.0
            heapq.heappush(self.wire, (self.now + self.delay + extra, next(self._tie),
                                       direction, raw))
            if self.net.random() < self.dup:
                heapq.heappush(self.wire, (self.now + self.delay + 0.001, next(self._tie),
                                           direction, raw))


def _failed(events: Sequence[object]) -> bool:
    return any(isinstance(e, ConnectionFailed | Reset) for e in events)


@settings(max_examples=int(os.environ.get("TCP_PROP_EXAMPLES", "150")), deadline=None)
@given(ops=ops, conf=configs, seed=st.integers(0, 2**32 - 1),
       loss=st.sampled_from([0.0, 0.02, 0.1, 0.25]), dup=st.sampled_from([0.0, 0.05]),
       reorder=st.sampled_from([0.0, 0.1]))
def test_streams_delivered_exactly_or_clean_failure(
    ops: list[tuple[str, str, int]], conf: dict[str, object], seed: int, loss: float,
    dup: float, reorder: float,
) -> None:
    cfg = replace(TcpConfig(), max_retries=6, syn_retries=4, rto_max=8.0, msl=0.5,
                  **conf)  # type: ignore[arg-type]
    rng = random.Random(seed)
    p = LossyPair(random.Random(seed ^ 0x5A5A), loss, dup, reorder, cfg_a=cfg, cfg_b=cfg,
                  seed=seed % 1000, delay=0.01)
    p.run(until=60, stop=p.established)
    if not p.established():
        # a clean failure, or a handshake still retrying: never anything else
        assert p.a is not None
        assert p.a.state in (TcpState.CLOSED, TcpState.SYN_SENT, TcpState.SYN_RECEIVED,
                             TcpState.ESTABLISHED)
        return
    assert p.a is not None and p.b is not None
    conns = {"a": p.a, "b": p.b}
    sent = {"a": bytearray(), "b": bytearray()}
    got = {"a": bytearray(), "b": bytearray()}  # got[x]: what x received
    for side, op, n in ops:
        conn = conns[side]
        if op == "write" and not conn.write_shut and conn.state in (
                TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            data = rng.randbytes(n)
            try:
                k = conn.send(data)
            except TcpStateError:
                k = 0
            sent[side] += data[:k]
        elif op == "read":
            got[side] += conn.read(n)
        p.run(until=p.now + (0.05 if op == "wait" else 0.005))
    for side in ("a", "b"):
        if conns[side].state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            conns[side].shutdown_write()
    deadline = p.now + 400
    steps = 0
    while p.now < deadline:
        for side in ("a", "b"):
            got[side] += p.read_all(conns[side])
        done = all(c.state in (TcpState.CLOSED, TcpState.TIME_WAIT) for c in conns.values())
        if done and not p.wire:
            break
        if not p.step():
            break
        steps += 1
        assert steps < 100_000, "no progress bound"
    for side in ("a", "b"):
        got[side] += p.read_all(conns[side])
    other = {"a": "b", "b": "a"}
    failed = _failed(p.events_a) or _failed(p.events_b)
    for side in ("a", "b"):
        received = bytes(got[other[side]])
        assert bytes(sent[side]).startswith(received), "delivered bytes are not a prefix"
        if not failed:
            assert received == bytes(sent[side]), f"stream {side} incomplete"
    if not failed:
        assert p.a.at_eof and p.b.at_eof
        assert p.a.state in (TcpState.CLOSED, TcpState.TIME_WAIT)
        assert p.b.state in (TcpState.CLOSED, TcpState.TIME_WAIT)
