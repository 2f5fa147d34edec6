"""TCP Fast Open, RFC 7413: cookies (§4.1), cookie request (§4.2.1), data in the SYN
(§4.2.2), fallback on a bad cookie, retransmitted SYNs without data, negative caching."""

from __future__ import annotations

import random

import pytest

from mptcp.tcp.events import Connected, DataReceived
from mptcp.tcp.state import TcpState
from mptcp.tcp.tfo import COOKIE_LEN, TfoClientCache, TfoError, TfoServer, syn_data_limit
from mptcp.wire.options import FastOpen
from mptcp.wire.tcp import ACK, SYN
from tests.tcp.test_conn_harness import Pair, cfg, st

CLIENT = cfg(tfo_client=True)
SERVER = cfg(tfo_server=True)
KEY = bytes(range(16))


def _fo(seg: object) -> bytes | None:
    for o in seg.tcp.options:  # type: ignore[attr-defined]
        if type(o) is FastOpen:
            return o.cookie
    return None


def _pair(cache: TfoClientCache, server: TfoServer, **kw: object) -> Pair:
    return Pair(cfg_a=CLIENT, cfg_b=SERVER, a_kw={"tfo_cache": cache},
                b_kw={"tfo_server": server}, **kw)  # type: ignore[arg-type]


@pytest.mark.rfc("7413", "4.1.2")
def test_server_cookie_properties() -> None:
    srv = TfoServer(KEY)
    ip = bytes([10, 0, 0, 1])
    c = srv.cookie(ip)
    assert len(c) == COOKIE_LEN
    assert srv.valid(ip, c)
    assert not srv.valid(bytes([10, 0, 0, 2]), c)  # bound to the client address
    assert not srv.valid(ip, c[:-1] + bytes([c[-1] ^ 1]))
    assert srv.cookie(ip) == c  # regenerated, not stored
    ip6 = bytes(15) + b"\x01"
    assert srv.valid(ip6, srv.cookie(ip6)) and srv.cookie(ip6) != c
    srv.rotate(bytes(16))
    assert srv.valid(ip, c)  # the previous key still valid
    assert srv.cookie(ip) != c
    srv.rotate(bytes([1] * 16))
    assert not srv.valid(ip, c)  # two rotations later: expired
    with pytest.raises(TfoError):
        TfoServer(b"short")


@pytest.mark.rfc("7413", "4.1.3")
def test_client_cache_and_negative_entries() -> None:
    cache = TfoClientCache(negative_hold=10.0)
    a, b = b"\x0a\0\0\1", b"\x0a\0\0\2"
    assert cache.get(a, b) is None
    cache.put(a, b, b"12345678", 1400)
    assert cache.get(a, b).cookie == b"12345678"  # type: ignore[union-attr]
    cache.put(a, b, None, 1200)  # an MSS alone updates the MSS
    assert cache.get(a, b).mss == 1200  # type: ignore[union-attr]
    cache.negative(a, b, 80, now=5.0)
    assert not cache.allowed(a, b, 80, now=6.0)
    assert cache.allowed(a, b, 443, now=6.0)
    assert cache.allowed(a, b, 80, now=15.1)
    assert syn_data_limit(None, False) == 536 and syn_data_limit(None, True) == 1220
    assert syn_data_limit(9000, False) == 1460


@pytest.mark.rfc("7413", "4.2.1")
def test_cookie_request_then_fast_open() -> None:
    cache = TfoClientCache()
    srv = TfoServer(KEY)
    p = _pair(cache, srv)
    p.handshake()
    syn, synack = p.sent("ab")[0], p.sent("ba")[0]
    assert _fo(syn) == b""  # the cookie request
    cookie = _fo(synack)
    assert cookie == srv.cookie(bytes([10, 0, 0, 1]))
    assert p.a is not None and p.a.mib["TcpExtTCPFastOpenCookieReqd"] == 1
    assert cache.get(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])).cookie == cookie  # type: ignore[union-attr]
    # second connection: data rides in the SYN and is delivered before the handshake ends
    q = _pair(cache, srv, seed=5)
    assert q.a is not None
    q.a.send(b"GET / HTTP/1.1\r\n\r\n")
    q.flush()
    syn2 = q.sent("ab")[0]
    assert syn2.tcp.flags & (SYN | ACK) == SYN
    assert _fo(syn2) == cookie and syn2.payload == b"GET / HTTP/1.1\r\n\r\n"
    q.step()
    assert q.b is not None and st(q.b) is TcpState.SYN_RECEIVED
    assert DataReceived(18) in q.events_b
    assert q.b.read() == b"GET / HTTP/1.1\r\n\r\n"
    q.flush()
    synack2 = q.sent("ba")[0]
    assert synack2.tcp.ack == (syn2.tcp.seq + 1 + 18) & 0xFFFFFFFF  # SYN and data acked
    q.b.send(b"HTTP/1.1 200 OK\r\n\r\n")  # the server may answer before the 3rd ACK
    q.handshake()
    assert Connected(True) in q.events_a and Connected(True) in q.events_b
    q.run(until=q.now + 0.5)
    assert q.a.read() == b"HTTP/1.1 200 OK\r\n\r\n"
    assert q.a.mib["TcpRetransSegs"] == 0
    assert q.b.mib["TcpExtTCPFastOpenPassive"] == 1
    assert q.a.mib["TcpExtTCPFastOpenActive"] == 1


@pytest.mark.rfc("7413", "4.2.2")
def test_bad_cookie_falls_back_to_regular_handshake() -> None:
    cache = TfoClientCache()
    a_ip, b_ip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    cache.put(a_ip, b_ip, b"\xde\xad\xbe\xef\x00\x11\x22\x33", None)
    srv = TfoServer(KEY)
    p = _pair(cache, srv)
    assert p.a is not None
    p.a.send(b"payload-in-syn")
    p.flush()
    assert p.sent("ab")[0].payload == b"payload-in-syn"
    p.handshake()
    assert p.b is not None
    synack = p.sent("ba")[0]
    assert synack.tcp.ack == (p.sent("ab")[0].tcp.seq + 1) & 0xFFFFFFFF  # only the SYN
    assert _fo(synack) == srv.cookie(a_ip)  # a fresh, valid cookie
    assert p.b.mib["TcpExtTCPFastOpenPassiveFail"] == 1
    p.run(until=p.now + 0.5)
    assert p.b.read() == b"payload-in-syn"  # sent again after the handshake, once
    assert Connected(False) in p.events_a
    assert cache.get(a_ip, b_ip).cookie == srv.cookie(a_ip)  # type: ignore[union-attr]
    assert not cache.allowed(a_ip, b_ip, 80, p.now)  # negative response remembered
    assert p.a.mib["TcpExtTCPFastOpenActiveFail"] == 1


@pytest.mark.rfc("7413", "4.2.2")
def test_retransmitted_syn_carries_neither_data_nor_cookie() -> None:
    cache = TfoClientCache()
    cache.put(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), b"12345678", None)
    drops = {"n": 0}

    def drop(d: str, s: object, t: float) -> bool:
        if d == "ab" and drops["n"] == 0:
            drops["n"] = 1
            return True
        return False

    p = _pair(cache, TfoServer(KEY), drop=drop)
    assert p.a is not None
    p.a.send(b"data")
    p.handshake()
    syns = p.sent("ab", SYN)
    assert syns[0].payload == b"data" and _fo(syns[0]) == b"12345678"
    assert syns[1].payload == b"" and _fo(syns[1]) is None
    p.run(until=p.now + 0.5)
    assert p.b is not None and p.b.read() == b"data"


@pytest.mark.rfc("7413", "4.2")
def test_server_without_tfo_ignores_cookie_options() -> None:
    cache = TfoClientCache()
    cache.put(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), b"12345678", None)
    p = Pair(cfg_a=CLIENT, cfg_b=cfg(), a_kw={"tfo_cache": cache})
    assert p.a is not None
    p.a.send(b"x" * 100)
    p.handshake()
    assert _fo(p.sent("ba")[0]) is None
    p.run(until=p.now + 0.5)
    assert p.b is not None and p.b.read() == b"x" * 100
    assert random.Random(0) is not None
