"""The Linux kernel peer (interop.linux_peer) and the test payload (interop.payload).

Kernel runs need root and ``ip``; each test creates its own namespace(s) (``mlab-<hex>``, lo
up; a veth pair between two for the cross-namespace case) and deletes them afterwards.
Ports come from the server's ``listening`` event (port 0), so xdist workers never collide.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import struct
import subprocess
from collections.abc import Iterator

import pytest

from interop.linux_peer import (
    LinuxPeer,
    Mode,
    PeerResult,
    decode_mptcp_info,
    decode_tcp_info,
)
from interop.payload import BLOCK_SIZE, Hasher, PatternSource, expected_sha256, pattern_block

# ---------------------------------------------------------------------------------------------
# payload (no privileges needed)


def test_pattern_stream_is_the_repeated_block() -> None:
    import random

    block = pattern_block(7)
    assert block == random.Random(7).randbytes(BLOCK_SIZE)
    assert pattern_block(7) is block  # cached
    size = 2 * BLOCK_SIZE + 12345
    src = PatternSource(7, size, chunk=300_000)
    chunks = list(src)
    assert all(isinstance(c, memoryview) for c in chunks)
    assert all(c.obj is chunks[0].obj for c in chunks)  # views of one buffer, no copies
    data = b"".join(chunks)
    assert data == (block * 3)[:size]
    assert src.expected_sha256() == hashlib.sha256(data).hexdigest()
    assert expected_sha256(7, size) == src.expected_sha256()
    w = src.window(BLOCK_SIZE - 10, 100)
    assert bytes(w) == data[BLOCK_SIZE - 10 : BLOCK_SIZE + 90]  # across the block boundary
    assert len(src.window(size - 5)) == 5 and len(src.window(size)) == 0
    with pytest.raises(ValueError):
        PatternSource(1, -1)


def test_hasher_counts_and_optionally_hashes() -> None:
    h = Hasher()
    h.update(b"abc")
    h.update(memoryview(b"def"))
    assert h.count == 6 and h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
    n = Hasher(hash=False)
    n.update(b"abc")
    assert n.count == 3 and n.hexdigest() is None and not n.hashing


def test_decode_mptcp_info_by_returned_length() -> None:
    raw = struct.pack("=6B2xIIQQQ3BxIQQQQB3xIII", 1, 2, 3, 8, 4, 5, 0b10, 0xDEADBEEF, 100, 90,
                      80, 1, 8, 0, 4, 1234, 5000, 6000, 4900, 2, 10, 11, 12)
    assert len(raw) == 96
    info = decode_mptcp_info(raw)
    assert info["subflows"] == 1 and info["subflows_max"] == 8
    assert info["token"] == 0xDEADBEEF and info["write_seq"] == 100
    assert info["retransmits"] == 4 and info["bytes_retrans"] == 1234
    assert info["bytes_sent"] == 5000 and info["bytes_received"] == 6000
    assert info["subflows_total"] == 2 and info["last_ack_recv"] == 12
    assert info["fallback"] is False and info["remote_key_received"] is True
    old = decode_mptcp_info(raw[:43])  # a v5.14 kernel returns 43 bytes
    assert "csum_enabled" in old and "retransmits" not in old and old["length"] == 43
    assert decode_tcp_info(b"\x01" * 8) == {"state": 1, "ca_state": 1}


# ---------------------------------------------------------------------------------------------
# kernel runs


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _new_ns() -> str:
    name = f"mlab-{secrets.token_hex(4)}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace: {e.stderr!r}")
    _ip("-n", name, "link", "set", "lo", "up")
    return name


def _del_ns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@pytest.fixture
def netns() -> Iterator[str]:
    _need_root()
    name = _new_ns()
    try:
        yield name
    finally:
        _del_ns(name)


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth: 10.77.0.1 / fd00:77::1 and 10.77.0.2 / fd00:77::2."""
    _need_root()
    a = _new_ns()
    b = ""
    try:
        b = _new_ns()
        _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, n in ((a, "va", 1), (b, "vb", 2)):
            _ip("-n", ns, "addr", "add", f"10.77.0.{n}/24", "dev", dev)
            _ip("-n", ns, "addr", "add", f"fd00:77::{n}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        yield a, b
    finally:
        _del_ns(a)
        if b:
            _del_ns(b)


def _pair(server_ns: str | None, client_ns: str | None, host: str, *, server_mode: Mode,
          client_mode: Mode, nbytes: int, server_seed: int = 1, client_seed: int = 2,
          mptcp: bool = False, hash: bool = True) -> tuple[PeerResult, PeerResult]:
    """(server result, client result) of one connection."""
    with LinuxPeer.start(server_ns, "server", host=host, port=0, mode=server_mode,
                         nbytes=nbytes, seed=server_seed, timeout=20, mptcp=mptcp,
                         hash=hash) as server:
        port = server.wait_listening(10)
        with LinuxPeer.start(client_ns, "client", host=host, port=port, mode=client_mode,
                             nbytes=nbytes, seed=client_seed, timeout=20, mptcp=mptcp,
                             hash=hash) as client:
            rc = client.result(60)
            rs = server.result(60)
    return rs, rc


def _ok(r: PeerResult) -> None:
    assert r.error is None, (r.error, r.stderr)
    assert r.exit_code == 0, r.stderr


def test_sink_source_10mb_loopback(netns: str) -> None:
    n = 10_000_000
    rs, rc = _pair(netns, netns, "127.0.0.1", server_mode="sink", client_mode="source",
                   nbytes=n, client_seed=42)
    _ok(rs)
    _ok(rc)
    want = PatternSource(42, n).expected_sha256()
    assert rc.bytes_sent == n and rc.sha256_sent == want
    assert rs.bytes_received == n and rs.sha256_received == want
    assert rs.goodput_bps > 0 and rs.cpu_seconds > 0
    assert rc.tcp_info is not None and rc.tcp_info["total_retrans"] >= 0
    assert rc.mptcp is None


def test_duplex_both_directions_at_once(netns: str) -> None:
    n = 4_000_000
    rs, rc = _pair(netns, netns, "::1", server_mode="duplex", client_mode="duplex", nbytes=n,
                   server_seed=5, client_seed=6)
    _ok(rs)
    _ok(rc)
    assert rs.bytes_sent == rc.bytes_received == n
    assert rc.bytes_sent == rs.bytes_received == n
    assert rc.sha256_received == expected_sha256(5, n) == rs.sha256_sent
    assert rs.sha256_received == expected_sha256(6, n) == rc.sha256_sent


def test_echo_returns_the_stream(netns: str) -> None:
    n = 3_000_000
    rs, rc = _pair(netns, netns, "127.0.0.1", server_mode="echo", client_mode="duplex",
                   nbytes=n, client_seed=9)
    _ok(rs)
    _ok(rc)
    assert rc.bytes_received == n and rc.sha256_received == expected_sha256(9, n)
    assert rs.bytes_received == rs.bytes_sent == n


def _mptcp_enabled(ns: str) -> bool:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/mptcp/enabled"],
                         capture_output=True, text=True, timeout=20)
    return out.returncode == 0 and out.stdout.strip() == "1"


@pytest.mark.rfc("8684", "3.1")
def test_mptcp_on_loopback_is_not_a_fallback(netns: str) -> None:
    if not _mptcp_enabled(netns):
        pytest.skip("net.mptcp.enabled is not 1 in the namespace (or MPTCP is not built in)")
    n = 5_000_000
    rs, rc = _pair(netns, netns, "127.0.0.1", server_mode="sink", client_mode="source",
                   nbytes=n, client_seed=3, mptcp=True)
    _ok(rs)
    _ok(rc)
    assert rs.sha256_received == expected_sha256(3, n)
    for r in (rs, rc):
        m = r.mptcp
        assert m is not None
        assert m.get("is_mptcp") is True and m.get("fallback") is False, m
        assert m.get("remote_key_received") is True and m.get("token", 0) != 0, m
    assert rs.mptcp is not None and rc.mptcp is not None
    if "bytes_received" in rs.mptcp:  # v6.5+
        assert rs.mptcp["bytes_received"] == n
        assert rc.mptcp["bytes_sent"] == n


@pytest.mark.rfc("8684", "3.7")
def test_mptcp_client_to_tcp_server_reports_fallback(netns: str) -> None:
    if not _mptcp_enabled(netns):
        pytest.skip("net.mptcp.enabled is not 1 in the namespace (or MPTCP is not built in)")
    with LinuxPeer.start(netns, "server", host="127.0.0.1", port=0, mode="sink",
                         timeout=20) as server:
        port = server.wait_listening(10)
        with LinuxPeer.start(netns, "client", host="127.0.0.1", port=port, mode="source",
                             nbytes=100_000, mptcp=True, timeout=20) as client:
            rc = client.result(30)
            rs = server.result(30)
    _ok(rs)
    _ok(rc)
    assert rs.bytes_received == 100_000
    assert rc.mptcp is not None and rc.mptcp["fallback"] is True, rc.mptcp


def test_refused_connection_is_a_reported_error(netns: str) -> None:
    with LinuxPeer.start(netns, "client", host="127.0.0.1", port=9, mode="source",
                         nbytes=10, timeout=0.3) as client:
        r = client.result(20)
    assert r.error is not None and "connect" in r.error
    assert r.exit_code == 1


def test_veth_between_namespaces_without_hashing(veth_pair: tuple[str, str]) -> None:
    a, b = veth_pair
    n = 200_000_000
    rs, rc = _pair(b, a, "10.77.0.2", server_mode="sink", client_mode="source", nbytes=n,
                   hash=False)
    _ok(rs)
    _ok(rc)
    assert rs.bytes_received == n and rs.sha256_received is None
    assert rs.goodput_bps > 0
    print(f"kernel->kernel over veth: {rs.goodput_bps / 1e9:.1f} Gbit/s (no hashing)")
    rs6, rc6 = _pair(b, a, "fd00:77::2", server_mode="sink", client_mode="source",
                     nbytes=1_000_000, client_seed=77)
    _ok(rs6)
    _ok(rc6)
    assert rs6.sha256_received == expected_sha256(77, 1_000_000)
