"""The extension interface (hooks.py): options with the remaining space and the engine's drop
order, incoming-segment veto, payload transforms, header bits / IP ECN, events, composition,
and the example extension (experimental option kind 253, ExID 0x4D4C, RFC 6994)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.events import Connected, DataAcked, Event, Reset
from mptcp.tcp.hooks import (
    ECHO_EXID,
    EchoCounterExtension,
    EchoCounterOption,
    HookError,
    OutHeader,
    SegmentKind,
    TcpExtension,
    Verdict,
    overrides,
)
from mptcp.tcp.state import TcpState
from mptcp.wire.ip import ECN_ECT1
from mptcp.wire.options import Experimental, Sack, TcpOption, Timestamps, parse_options
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import AE, RST
from tests.tcp.test_conn_harness import Pair, cfg, forge, next_seq, peer_ack, st


def _echo(seg: Segment) -> EchoCounterOption | None:
    return next((o for o in seg.tcp.options if type(o) is EchoCounterOption), None)


@pytest.mark.rfc("6994", "3")
def test_echo_option_codec_registered() -> None:
    opt = EchoCounterOption(7, 3)
    raw = opt.to_bytes()
    assert raw[:4] == bytes([253, 8]) + ECHO_EXID.to_bytes(2, "big")
    assert parse_options(raw) == (opt,)
    other = Experimental(253, 0x1234, b"ab").to_bytes()
    assert type(parse_options(other)[0]) is Experimental


def test_echo_extension_end_to_end() -> None:
    p = Pair(cfg_a=cfg(extensions=(EchoCounterExtension,)),
             cfg_b=cfg(extensions=(EchoCounterExtension,)))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(20000))
    p.run(until=p.now + 0.5)
    ea = p.a.exts[0]
    eb = p.b.exts[0]
    assert isinstance(ea, EchoCounterExtension) and isinstance(eb, EchoCounterExtension)
    # every segment both ways carried the option, counters increase per segment
    for d in ("ab", "ba"):
        counters = [_echo(s).counter for s in p.sent(d)]  # type: ignore[union-attr]
        assert counters == list(range(1, len(counters) + 1))
    # the peer echoes our own counters back: never a value we did not send, never going back
    for ext in (ea, eb):
        assert set(ext.echoes) <= set(range(ext.counter + 1))
        assert ext.echoes == sorted(ext.echoes) and ext.echoes[-1] > 0
    assert {SegmentKind.SYN, SegmentKind.ACK, SegmentKind.DATA} <= set(ea.seen_kinds)
    assert SegmentKind.SYN_ACK in eb.seen_kinds
    assert Connected(False) in ea.events
    assert any(isinstance(e, DataAcked) for e in ea.events)
    # the engine's own options are still there
    assert all(any(type(o) is Timestamps for o in s.tcp.options) for s in p.sent("ab")[1:])


@pytest.mark.rfc("9293", "3.1")
def test_engine_drops_own_options_for_extension_space() -> None:
    class Big(EchoCounterExtension):
        def write_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                          hdr: OutHeader) -> Sequence[TcpOption]:
            self.seen_space = space
            return (Experimental(253, 0x4D4D, bytes(space - 4)),) if space >= 4 else ()

    p = Pair(cfg_a=cfg(extensions=(lambda: Big(wanted=28),)))
    p.handshake()
    assert p.a is not None and p.b is not None
    syn = p.sent("ab")[0]
    # 20 bytes of MSS/SACK_PERM/TS/WS leave 20 < 28: timestamps left out first (hooks.py)
    assert not any(type(o) is Timestamps for o in syn.tcp.options)
    assert not p.a.ts_ok and p.a.sack_ok and p.a.ws_ok
    assert len(syn.to_bytes()) - 20 - 20 <= 40
    # out-of-order data at a: the SACK blocks are trimmed to make the 28 bytes fit
    p.b.send(bytes(10))
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 3000, ack=peer_ack(p.a),
                         payload=b"q" * 100))
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 6000, ack=peer_ack(p.a),
                         payload=b"r" * 100))
    last = p.sent("ab")[-1]
    sack = next(o for o in last.tcp.options if type(o) is Sack)
    assert len(sack.blocks) == 1  # 12 bytes of SACK + 28 = 40
    assert p.a.mib["TcpExtTCPSACKDroppedForOpt"] >= 1
    hdr_len = len(last.to_bytes()) - 20 - len(last.payload)
    assert hdr_len == 60


def test_extension_writing_too_much_raises() -> None:
    class Greedy(TcpExtension):
        def option_space(self, conn: TcpConnection, kind: SegmentKind) -> int:
            return 4

        def write_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                          hdr: OutHeader) -> Sequence[TcpOption]:
            return (Experimental(253, 1, bytes(space)),)

    c = TcpConnection.connect(("10.0.0.1", 1), ("10.0.0.2", 2), cfg(extensions=(Greedy,)))
    with pytest.raises(HookError):
        c.packets_to_send(0.0)


def test_segment_veto_drop_and_reset() -> None:
    class Veto(TcpExtension):
        def on_segment(self, conn: TcpConnection, seg: Segment, now: float) -> Verdict:
            if seg.payload == b"drop-me":
                return Verdict.DROP
            if seg.payload == b"reset-me":
                return Verdict.RESET
            return Verdict.ACCEPT

    p = Pair(cfg_b=cfg(extensions=(Veto,)))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(b"drop-me")
    p.run(until=p.now + 0.05)
    assert p.b.readable == 0 and p.b.mib["TcpExtTCPExtVeto"] == 1
    p.run(until=p.now + 3)  # retransmitted, dropped again
    assert p.b.readable == 0
    p2 = Pair(cfg_b=cfg(extensions=(Veto,)))
    p2.handshake()
    assert p2.a is not None and p2.b is not None
    p2.a.send(b"reset-me")
    p2.run(until=p2.now + 0.1)
    assert st(p2.b) is TcpState.CLOSED
    assert Reset("extension") in p2.events_b
    assert p2.sent("ba", RST)
    assert st(p2.a) is TcpState.CLOSED


def test_payload_transforms_compose() -> None:
    class Xor(TcpExtension):
        def __init__(self, key: int) -> None:
            self.key = key

        def transform_send(self, conn: TcpConnection, data: bytes) -> bytes:
            return bytes(b ^ self.key for b in data)

        def transform_receive(self, conn: TcpConnection, data: bytes) -> bytes:
            return bytes(b ^ self.key for b in data)

    class Frame(TcpExtension):
        def transform_send(self, conn: TcpConnection, data: bytes) -> bytes:
            return b"[" + data + b"]"

        def transform_receive(self, conn: TcpConnection, data: bytes) -> bytes:
            return data.replace(b"[", b"").replace(b"]", b"")

    exts = (lambda: Xor(0x55), Frame)
    p = Pair(cfg_a=cfg(extensions=exts), cfg_b=cfg(extensions=exts))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(b"secret")
    p.run(until=p.now + 0.1)
    wire = b"".join(s.payload for s in p.sent("ab"))
    assert wire == b"[" + bytes(b ^ 0x55 for b in b"secret") + b"]"
    assert p.b.read() == b"secret"


@pytest.mark.rfc("9768", "3.1")
def test_header_hook_sets_ae_and_ect1() -> None:
    class Marker(TcpExtension):
        handles_ecn = True

        def on_header(self, conn: TcpConnection, hdr: OutHeader) -> None:
            hdr.flags |= AE | RST  # only AE/CWR/ECE may change: RST must be ignored
            hdr.ecn = ECN_ECT1

    p = Pair(cfg_a=cfg(extensions=(Marker,), ecn=True))
    p.handshake()
    assert p.a is not None
    for s in p.sent("ab"):
        assert s.tcp.flags & AE and not s.tcp.flags & RST
        assert s.ip.ecn == ECN_ECT1
    assert not p.a.ecn_ok  # the extension owns ECN: no RFC 3168 negotiation


def test_extensions_called_in_order_and_hot_path_empty() -> None:
    order: list[str] = []

    class One(TcpExtension):
        def on_event(self, conn: TcpConnection, event: Event) -> None:
            order.append("one")

    class Two(TcpExtension):
        def on_event(self, conn: TcpConnection, event: Event) -> None:
            order.append("two")

    c = TcpConnection.connect(("10.0.0.1", 1), ("10.0.0.2", 2), cfg(extensions=(One, Two)))
    c.abort()
    assert order[:2] == ["one", "two"]
    plain = TcpConnection.connect(("10.0.0.1", 1), ("10.0.0.2", 2), cfg())
    assert plain.ext_seg == plain.ext_opts == plain.ext_hdr == plain.ext_evt == ()
    assert overrides(One(), "on_event") and not overrides(One(), "on_segment")
