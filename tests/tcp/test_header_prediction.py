"""Header prediction (input.header_prediction) and the other fast paths must not change
behaviour: every scenario runs twice, with ``header_prediction`` on and off, and everything
observable -- each segment on the wire and when, the events, the MIB counters, the final
connection state -- must be identical."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mptcp.tcp.config import TcpConfig
from mptcp.tcp.state import TcpState
from mptcp.wire.segment import Segment
from tests.tcp.test_conn_harness import Filter, Pair

DATA_A = random.Random(21).randbytes(150_000)
DATA_B = random.Random(22).randbytes(90_000)


def _observe(p: Pair) -> dict[str, Any]:
    assert p.a is not None and p.b is not None
    return {
        "wire": [(t, d, s.to_bytes()) for t, d, s in p.log],
        "events": (p.events_a, p.events_b),
        "mib": (dict(p.a.mib), dict(p.b.mib)),
        "info": (p.a.info(), p.b.info()),
        "cc": (p.a.cc.info(), p.b.cc.info()),
        "timers": (p.a.get_timer(), p.b.get_timer()),
    }


def _scenario(cfg: TcpConfig, *, loss: tuple[int, float] | None = None, both: bool = False,
              close: bool = False, delay: float = 0.01, chunks: int = 1) -> dict[str, Any]:
    drop = _random_loss(*loss) if loss is not None else None
    p = Pair(cfg, cfg, drop=drop, delay=delay)
    p.handshake()
    assert p.a is not None and p.b is not None
    if both:  # both directions at once: data segments carry ACKs of new data
        a, b = p.a, p.b
        pos_a = pos_b = 0
        got_a = bytearray()
        got_b = bytearray()
        while p.now < 300 and (len(got_b) < len(DATA_A) or len(got_a) < len(DATA_B)):
            pos_a += a.send(DATA_A[pos_a:pos_a + 20_000])
            pos_b += b.send(DATA_B[pos_b:pos_b + 20_000])
            got_b += p.read_all(b)
            got_a += p.read_all(a)
            if not p.step():
                break
        assert bytes(got_b) == DATA_A and bytes(got_a) == DATA_B
    else:
        step = len(DATA_A) // chunks
        for k in range(chunks):  # pauses between chunks: idle ACKs, TLP, restarts
            part = DATA_A[k * step:(k + 1) * step if k < chunks - 1 else None]
            assert p.transfer(p.a, p.b, part, until=200) == part
            p.advance(0.5)
    if close:
        p.a.close()
        p.b.close()
        p.run(until=p.now + 10)
        assert p.a.state in (TcpState.TIME_WAIT, TcpState.CLOSED)
    return _observe(p)


def _both_ways(cfg: TcpConfig, **kw: Any) -> None:
    fast = _scenario(replace(cfg, header_prediction=True), **kw)
    slow = _scenario(replace(cfg, header_prediction=False), **kw)
    for key in fast:
        assert fast[key] == slow[key], key


def _random_loss(seed: int, rate: float) -> Filter:
    rng = random.Random(seed)

    def f(d: str, s: Segment, t: float) -> bool:
        return rng.random() < rate

    return f


CONFIGS = {
    "default": TcpConfig(),
    "no-ts": TcpConfig(timestamps=False),
    "no-sack": TcpConfig(sack=False),
    "dupack": TcpConfig(recovery="dupack"),
    "no-delack": TcpConfig(delayed_ack=False),
    "ecn": TcpConfig(ecn=True),
    "small-rcvbuf": TcpConfig(recv_buffer=8000, send_buffer=30_000),
    "gso": TcpConfig(gso_size=20_000),
    "reno": TcpConfig(cc="reno", mss=536),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_behaviour_bulk(name: str) -> None:
    _both_ways(CONFIGS[name], close=True)


@pytest.mark.parametrize("name", ["default", "no-ts", "no-sack", "dupack", "gso"])
def test_same_behaviour_both_directions(name: str) -> None:
    _both_ways(CONFIGS[name], both=True, close=True)


def test_same_behaviour_with_pauses() -> None:
    _both_ways(TcpConfig(), chunks=4)


@pytest.mark.parametrize("name", ["default", "no-ts", "no-sack", "dupack"])
def test_same_behaviour_under_loss(name: str) -> None:
    _both_ways(CONFIGS[name], loss=(5, 0.03), close=True)
    _both_ways(CONFIGS[name], loss=(6, 0.08), both=True)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.0, 0.01, 0.05, 0.15]),
       name=st.sampled_from(sorted(CONFIGS)), both=st.booleans())
def test_same_behaviour_random(seed: int, rate: float, name: str, both: bool) -> None:
    _both_ways(CONFIGS[name], loss=(seed, rate), both=both)


def test_fast_path_is_taken() -> None:
    """The switch matters: with it on, most segments of a bulk transfer skip the general
    path."""
    from mptcp.tcp import input as tcp_input

    calls = {"n": 0}
    real = tcp_input.segment_arrives

    def counting(*args: Any) -> None:
        calls["n"] += 1
        real(*args)

    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    tcp_input.segment_arrives = counting  # type: ignore[assignment]
    try:
        assert p.transfer(p.a, p.b, DATA_A) == DATA_A
    finally:
        tcp_input.segment_arrives = real
    segments = sum(1 for _, d, _s in p.log if d == "ab") + sum(1 for _, d, _s in p.log
                                                              if d == "ba")
    assert calls["n"] < segments // 10
