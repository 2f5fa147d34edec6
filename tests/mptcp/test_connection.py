"""The Sans-IO MPTCP connection between two of our stacks, in memory: the MP_CAPABLE v1
handshake (RFC 8684 §3.1), data transfer through DSS mappings and DATA_ACKs (§3.3), the
DATA_FIN close (§3.3.3), checksums when either side asks (§3.1), fallback to TCP when the peer
or a middlebox drops MP_CAPABLE (§3.7)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.events import FallbackToTcp, MptcpConnected
from mptcp.stack import MptcpStack
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.events import ConnectionClosed, EofReceived
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_handshake import MpCapable
from mptcp.wire.mptcp_options import Dss
from mptcp.wire.segment import Segment, parse_segment

CA, SA = "10.0.0.1", "10.0.0.2"
Filter = Callable[[bytes], bytes | None]


def _stacks(client_cfg: MptcpConfig | None = None, server_cfg: MptcpConfig | None = None
            ) -> tuple[MptcpStack, MptcpStack]:
    tcp = TcpConfig(send_buffer=1 << 20, recv_buffer=1 << 20)
    return (MptcpStack([CA], random.Random(1), config=tcp, mptcp=client_cfg),
            MptcpStack([SA], random.Random(2), config=tcp, mptcp=server_cfg))


def _run(a: MptcpStack | Stack, b: MptcpStack | Stack, until: Callable[[], bool], *,
         ab: Filter | None = None, ba: Filter | None = None, app: Callable[[float], None]
         | None = None, limit: float = 30.0) -> list[tuple[str, Segment]]:
    """Exchange packets (1 ms per hop) until ``until()``; returns the segment log."""
    now = 0.0
    log: list[tuple[str, Segment]] = []
    while now < limit:
        if app is not None:
            app(now)
        if until():
            return log
        moved = False
        for src, dst, name, flt in ((a, b, "ab", ab), (b, a, "ba", ba)):
            for pkt in src.packets_to_send(now):
                moved = True
                if flt is not None:
                    pkt2 = flt(pkt)
                    if pkt2 is None:
                        continue
                    pkt = pkt2
                log.append((name, parse_segment(pkt)))
                dst.receive(pkt, now)
        now += 0.001
        for s in (a, b):
            t = s.get_timer()
            if t is not None and t <= now:
                s.handle_timer(now)
        if not moved:
            nxt = [t for t in (a.get_timer(), b.get_timer()) if t is not None]
            if nxt:
                now = max(now, min(nxt))
    raise AssertionError("did not finish")


def _transfer(a: MptcpStack, b: MptcpStack, data_ab: bytes, data_ba: bytes = b"", **kw: object
              ) -> tuple[MptcpConnection, MptcpConnection, bytes, bytes, list[tuple[str, Segment]]]:
    b.listen(80)
    c = a.connect((SA, 80))
    box: dict[str, MptcpConnection] = {}
    got_ab = bytearray()
    got_ba = bytearray()
    sent = {"ab": 0, "ba": 0}
    closed = {"a": False, "b": False}

    def app(now: float) -> None:
        if "s" not in box:
            s = b.accept(80)
            if s is not None:
                box["s"] = s
        for name, conn, data in (("ab", c, data_ab), ("ba", box.get("s"), data_ba)):
            if conn is None or conn.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
                continue
            if sent[name] < len(data):
                sent[name] += conn.send(data[sent[name]:sent[name] + 200_000])
            elif not conn.write_shut:
                conn.shutdown_write()
        got_ba.extend(c.read())
        if "s" in box:
            got_ab.extend(box["s"].read())
        closed["a"] = c.state in (TcpState.CLOSED, TcpState.TIME_WAIT)
        closed["b"] = "s" in box and box["s"].state in (TcpState.CLOSED, TcpState.TIME_WAIT)

    log = _run(a, b, lambda: closed["a"] and closed["b"], app=app, **kw)  # type: ignore[arg-type]
    for st in (a, b):
        st.packets_to_send(100.0)  # one more pump: the close events
    return c, box["s"], bytes(got_ab), bytes(got_ba), log


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_handshake_and_transfer_both_ways() -> None:
    a, b = _stacks()
    data_ab = random.Random(3).randbytes(3_000_000)
    data_ba = random.Random(4).randbytes(1_000_000)
    c, s, got_ab, got_ba, log = _transfer(a, b, data_ab, data_ba)
    assert got_ab == data_ab and got_ba == data_ba
    assert c.fallback is None and s.fallback is None
    assert c.remote_key == s.local_key and s.remote_key == c.local_key
    mpcs = [(d, o) for d, seg in log for o in seg.tcp.options if type(o) is MpCapable]
    assert [len(o.to_bytes()) for _, o in mpcs[:3]] == [4, 12, 20]  # SYN, SYN/ACK, 3rd ACK
    dss = [o for _, seg in log for o in seg.tcp.options if type(o) is Dss]
    assert any(o.data_fin for o in dss)
    for ev_conn in (c, s):
        kinds = [type(e) for e in ev_conn.events]
        assert MptcpConnected in kinds and EofReceived in kinds and ConnectionClosed in kinds
    assert a.mib["MPTcpExtDataFinTx"] == 1 and b.mib["MPTcpExtDataFinRx"] == 1


@pytest.mark.rfc("8684", "3.3.1")
def test_checksums_when_the_server_asks() -> None:
    a, b = _stacks(server_cfg=MptcpConfig(checksums=True))
    data = random.Random(5).randbytes(500_000)
    c, s, got, _, log = _transfer(a, b, data)
    assert got == data and c.checksums and s.checksums
    assert any(o.checksum is not None for _, seg in log for o in seg.tcp.options
               if type(o) is Dss and o.dsn is not None)


@pytest.mark.rfc("8684", "3.7")
def test_fallback_when_the_server_is_plain_tcp() -> None:
    a = MptcpStack([CA], random.Random(1))
    b = Stack([SA], random.Random(2))
    b.listen(80)
    c = a.connect((SA, 80))
    data = random.Random(6).randbytes(300_000)
    got = bytearray()
    box: dict[str, object] = {}

    def app(now: float) -> None:
        if c.state is TcpState.ESTABLISHED and not c.write_shut:
            n = c.send(data[box.get("n", 0):])  # type: ignore[misc]
            box["n"] = box.get("n", 0) + n  # type: ignore[operator]
            if box["n"] == len(data):
                c.shutdown_write()
        s = box.get("s") or b.accept(80)
        if s is not None:
            box["s"] = s
            got.extend(s.read())  # type: ignore[union-attr]

    _run(a, b, lambda: len(got) == len(data), app=app)
    assert bytes(got) == data
    assert c.fallback is not None and "SYN/ACK" in c.fallback
    assert any(type(e) is FallbackToTcp for e in c.events)
    assert a.mib["MPTcpExtMPCapableFallbackSYNACK"] == 1


@pytest.mark.rfc("8684", "3.5")
def test_fastclose_option_r_and_tcprst() -> None:
    """abort() at the connection level: a RST with MP_FASTCLOSE (the peer's key) and
    MP_TCPRST; the peer closes at once and reports why."""
    from mptcp.events import FastCloseReceived, FastCloseSent, MptcpReset
    from mptcp.tcp.events import Reset
    from mptcp.wire.mptcp_options import MpFastClose, MpTcpRst

    a, b = _stacks()
    b.listen(80)
    c = a.connect((SA, 80))
    box: dict[str, MptcpConnection] = {}

    def app(now: float) -> None:
        s = box.get("s") or b.accept(80)
        if s is not None:
            box["s"] = s
        if c.state is TcpState.ESTABLISHED and "s" in box and not box.get("sent"):
            c.send(b"x" * 50_000)
            box["sent"] = c  # type: ignore[assignment]

    _run(a, b, lambda: "s" in box and box["s"].readable >= 50_000, app=app)
    c.abort()
    log = _run(a, b, lambda: box["s"].state is TcpState.CLOSED)
    rst = [seg for d, seg in log if d == "ab" and seg.tcp.flags & 0x04]
    assert rst, "no RST"
    opts = rst[0].tcp.options
    fc = [o for o in opts if type(o) is MpFastClose]
    assert fc and fc[0].receiver_key == box["s"].local_key
    assert any(type(o) is MpTcpRst for o in opts)
    assert any(type(e) is FastCloseSent for e in c.events)
    s_events = list(box["s"].events)
    assert any(type(e) is FastCloseReceived for e in s_events)
    assert any(type(e) is Reset for e in s_events)
    assert any(type(e) is MptcpReset and e.tcprst == 0 for e in s_events)
    assert a.mib["MPTcpExtMPFastcloseTx"] == 1 and b.mib["MPTcpExtMPFastcloseRx"] == 1
    assert b.mib["MPTcpExtMPRstRx"] == 1


@pytest.mark.rfc("8684", "3.5")
def test_fastclose_with_a_wrong_key_is_ignored() -> None:
    from mptcp.wire.mptcp_options import MpFastClose

    a, b = _stacks()
    b.listen(80)
    c = a.connect((SA, 80))
    box: dict[str, MptcpConnection] = {}

    def app(now: float) -> None:
        s = box.get("s") or b.accept(80)
        if s is not None:
            box["s"] = s

    _run(a, b, lambda: "s" in box and c.fully_established, app=app)
    s = box["s"]
    assert not s.on_fastclose(s.local_key ^ 1, on_rst=True)
    assert b.mib["MPTcpExtFastcloseIgnoredBadKey"] == 1 and s.failed is None
    _ = MpFastClose


@pytest.mark.rfc("8684", "3.7")
def test_syn_blackhole_fallback_and_memory() -> None:
    """A middlebox drops SYNs carrying MP_CAPABLE: after two retransmissions the client
    retries without it (plain TCP, like Linux), and remembers the destination."""
    a, b = _stacks()
    b.listen(80)

    def drop_mpc_syn(pkt: bytes) -> bytes | None:
        seg = parse_segment(pkt)
        if seg.tcp.flags & 0x12 == 0x02 and any(type(o) is MpCapable for o in seg.tcp.options):
            return None
        return pkt

    c = a.connect((SA, 80))
    _run(a, b, lambda: c.state is TcpState.ESTABLISHED, ab=drop_mpc_syn)
    assert c.fallback is not None and "blackhole" in c.fallback
    assert c.sub is not None and c.sub.syn_retransmits == 3
    assert a.mib["MPTcpExtMPCapableSYNTXDrop"] == 1 and a.mib["MPTcpExtBlackhole"] == 1
    c2 = a.connect((SA, 80))
    log = _run(a, b, lambda: c2.state is TcpState.ESTABLISHED, ab=drop_mpc_syn)
    assert c2.fallback is not None and "remembered" in c2.fallback
    assert not any(type(o) is MpCapable for _, seg in log for o in seg.tcp.options)
    assert a.mib["MPTcpExtMPCapableSYNTXDisabled"] == 1


@pytest.mark.rfc("8684", "3.7")
def test_checksum_failure_mp_fail_infinite_mapping() -> None:
    """One subflow, checksums on, a middlebox changes one payload byte: the receiver's DSS
    checksum fails, it sends MP_FAIL; the sender answers with an infinite mapping (and its own
    MP_FAIL); both fall back to TCP and the stream goes on as the path delivers it -- the
    application sees exactly the bytes sent with the middlebox's change, nothing lost or
    duplicated (RFC 8684 §3.7)."""
    from mptcp.events import ChecksumError, MpFailReceived, MpFailSent
    from mptcp.wire.mptcp_options import MpFail

    a, b = _stacks(client_cfg=MptcpConfig(checksums=True))
    data = random.Random(8).randbytes(600_000)
    state = {"done": False, "at": -1}

    def rewrite(pkt: bytes) -> bytes | None:
        seg = parse_segment(pkt)
        if state["done"] or len(seg.payload) < 100:
            return pkt
        rel = (seg.tcp.seq - c.sub.iss) & 0xFFFFFFFF  # type: ignore[union-attr]
        if rel < 200_000:
            return pkt
        state["done"] = True
        state["at"] = rel - 1 + 50
        p = bytearray(seg.payload)
        p[50] ^= 0xFF
        return seg._replace(payload=bytes(p)).to_bytes()

    b.listen(80)
    c = a.connect((SA, 80))
    got = bytearray()
    box: dict[str, object] = {"n": 0}

    def app(now: float) -> None:
        if c.state is TcpState.ESTABLISHED and not c.write_shut:
            box["n"] = int(box["n"]) + c.send(data[int(box["n"]):])  # type: ignore[call-overload]
            if box["n"] == len(data):
                c.shutdown_write()
        s = box.get("s") or b.accept(80)
        if s is not None:
            box["s"] = s
            got.extend(s.read())  # type: ignore[union-attr]

    log = _run(a, b, lambda: len(got) >= len(data), ab=rewrite, app=app)
    s = box["s"]
    assert isinstance(s, MptcpConnection)
    expected = bytearray(data)
    expected[state["at"]] ^= 0xFF
    assert bytes(got) == bytes(expected)
    assert s.fallback is not None and c.fallback is not None
    assert any(type(e) is ChecksumError for e in s.events)
    assert any(type(e) is MpFailSent for e in s.events)
    assert any(type(e) is MpFailReceived for e in c.events)
    assert b.mib["MPTcpExtDataCsumErr"] == 1 and b.mib["MPTcpExtMPFailTx"] >= 1
    assert a.mib["MPTcpExtMPFailRx"] >= 1 and a.mib["MPTcpExtInfiniteMapTx"] == 1
    assert b.mib["MPTcpExtInfiniteMapRx"] == 1
    assert any(type(o) is MpFail for d, seg in log if d == "ba" for o in seg.tcp.options)
