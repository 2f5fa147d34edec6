"""Our MPTCP v1 against the Linux kernel's, in network namespaces (root): the kernel must see a
real MPTCP connection (its ``MPTCP_INFO``: not fallen back, our key received), and data must
arrive byte-exact both ways (RFC 8684 §3.1, §3.3).

Topology and endpoints as in ``test_kernel_tcp.py`` (TUN with offloads; our side is the
``mptcp-lab`` CLI with ``--mptcp``; the kernel side is ``interop.linux_peer --mptcp``).  Every
transfer is duplex, 100 MB each way.  DSS checksums (RFC 8684 §3.3.1) are exercised when we ask
(flag A in our MP_CAPABLE) and when the kernel asks (``net.mptcp.checksum_enabled=1`` in the
peer's namespace): the kernel verifies ours, so a wrong checksum would make it fall back or
reset.  Fallback (§3.7): a kernel plain-TCP server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from interop.linux_peer import PeerResult
from interop.topology import Path, Topology, skip_reason, stack_and_peer
from tests.interop.test_kernel_tcp import _duplex

MB100 = 100_000_000


@pytest.fixture
def topo() -> Iterator[Topology]:
    reason = skip_reason(tun=True, tools=("ip", "nft"))
    if reason:
        pytest.skip(reason)
    with Topology() as t:
        yield t


def _mptcp_path(topo: Topology, kernel_checksums: bool) -> Path:
    path = stack_and_peer(topo, driver="tun")
    topo.sysctl(path.peer_ns, "net.mptcp.enabled", 1)
    topo.sysctl(path.peer_ns, "net.mptcp.checksum_enabled", int(kernel_checksums))
    return path


def _assert_real_mptcp(kernel: PeerResult, done: dict[str, Any], checksums: bool) -> None:
    info = kernel.mptcp
    assert info is not None, "the kernel endpoint reported no MPTCP_INFO"
    assert info["is_mptcp"] and not info["fallback"], info
    assert info["remote_key_received"], info
    assert info["bytes_received"] == MB100 or info["bytes_received"] == 0  # older kernels
    assert info["csum_enabled"] == int(checksums), info
    ours = done["mptcp"]
    assert ours is not None and ours["mptcp"] and ours["fallback"] is None, ours
    assert ours["checksums"] == checksums, ours
    assert done["mib"].get("MPTcpExtDataFinTx", 0) >= 1
    assert done["mib"].get("MPTcpExtDataFinRx", 0) >= 1


@pytest.mark.rfc("8684", "3.1")
@pytest.mark.parametrize("checksums", ["off", "ours", "kernel"])
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_mptcp_100mb_each_way_with_linux(topo: Topology, ours_role: str, checksums: str
                                         ) -> None:
    path = _mptcp_path(topo, kernel_checksums=checksums == "kernel")
    extra = ("--mptcp",) + (("--checksums",) if checksums == "ours" else ())
    _, kernel, done = _duplex(path, ours_role=ours_role, nbytes=MB100, timeout=120,
                              extra=extra, kernel_mptcp=True)
    _assert_real_mptcp(kernel, done, checksums != "off")


@pytest.mark.rfc("8684", "3.3")
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_mptcp_100mb_each_way_with_1pct_loss(topo: Topology, ours_role: str) -> None:
    path = _mptcp_path(topo, kernel_checksums=False)
    for ns, dev in ((path.stack_ns, path.stack_dev), (path.peer_ns, path.peer_dev)):
        topo.offloads(ns, dev, tso=False, gso=False)  # one drop = one wire packet
        topo.nft_loss(ns, dev, 1.0)
    _, kernel, done = _duplex(path, ours_role=ours_role, nbytes=MB100, timeout=240,
                              extra=("--mptcp", "--gso-size", "0"), kernel_mptcp=True)
    _assert_real_mptcp(kernel, done, False)
    assert done["mib"].get("TcpRetransSegs", 0) > 0


@pytest.mark.rfc("8684", "3.7")
def test_fallback_to_a_plain_tcp_linux_server(topo: Topology) -> None:
    path = _mptcp_path(topo, kernel_checksums=False)
    _, kernel, done = _duplex(path, ours_role="client", nbytes=10_000_000, timeout=60,
                              extra=("--mptcp",), kernel_mptcp=False)
    assert kernel.mptcp is None
    ours = done["mptcp"]
    assert ours is not None and not ours["mptcp"] and "SYN/ACK" in ours["fallback"], ours
    assert done["mib"].get("MPTcpExtMPCapableFallbackSYNACK") == 1


@pytest.mark.rfc("8684", "3.7")
def test_linux_plain_tcp_client_to_our_mptcp_server(topo: Topology) -> None:
    path = _mptcp_path(topo, kernel_checksums=False)
    _, _, done = _duplex(path, ours_role="server", nbytes=10_000_000, timeout=60,
                              extra=("--mptcp",), kernel_mptcp=False)
    ours = done["mptcp"]
    assert ours is not None and not ours["mptcp"] and "SYN without" in ours["fallback"], ours


def _netstat(ns: str) -> dict[str, int]:
    import subprocess

    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split()[1:] for line in out.splitlines() if line.startswith("MPTcpExt:")]
    return dict(zip(rows[0], (int(x) for x in rows[1]), strict=True))


@pytest.mark.rfc("8684", "3.5")
def test_fastclose_and_tcprst_to_linux(topo: Topology) -> None:
    """We abort (RFC 8684 §3.5 option R: RST + MP_FASTCLOSE + MP_TCPRST): the kernel counts
    the fast close and the reset reason, and its socket sees the connection reset."""
    from interop.linux_peer import LinuxPeer
    from interop.our_peer import start_on_path

    path = _mptcp_path(topo, kernel_checksums=False)
    before = _netstat(path.peer_ns)
    with LinuxPeer.start(path.peer_ns, "server", host=path.peer_addr, port=5301, mode="sink",
                         mptcp=True, timeout=30) as k:
        k.wait_listening()
        with start_on_path(path, "client", port=5301, mode="source", nbytes=10_000_000,
                           extra=("--mptcp", "--abort-after", "2000000")) as o:
            ours = o.result(60)
            done = o.done_event or {}
        kernel = k.result(60)
    after = _netstat(path.peer_ns)
    assert ours.error is not None and "aborted" in ours.error
    assert done["mib"].get("MPTcpExtMPFastcloseTx") == 1
    assert after["MPFastcloseRx"] - before["MPFastcloseRx"] >= 1, after
    assert after["MPRstRx"] - before["MPRstRx"] >= 1, after
    assert kernel.error is not None and "Reset" in kernel.error
    assert 0 < kernel.bytes_received <= 2_000_000


@pytest.mark.rfc("8684", "3.5")
def test_fastclose_from_linux(topo: Topology) -> None:
    """The kernel closes with unread data (Linux ``__mptcp_close``: MP_FASTCLOSE): our
    connection ends with the fast-close reason and counts it."""
    from interop.linux_peer import LinuxPeer
    from interop.our_peer import start_on_path

    path = _mptcp_path(topo, kernel_checksums=False)
    before = _netstat(path.peer_ns)
    with LinuxPeer.start(path.peer_ns, "server", host=path.peer_addr, port=5302, mode="sink",
                         mptcp=True, timeout=30, abort_after=1_000_000) as k:
        k.wait_listening()
        with start_on_path(path, "client", port=5302, mode="source", nbytes=50_000_000,
                           extra=("--mptcp",)) as o:
            ours = o.result(60)
            done = o.done_event or {}
        k.result(60)
    after = _netstat(path.peer_ns)
    assert after["MPFastcloseTx"] - before["MPFastcloseTx"] >= 1, after
    assert ours.error is not None and "fastclose" in ours.error, ours.error
    assert done["mib"].get("MPTcpExtMPFastcloseRx") == 1
    assert done["mib"].get("MPTcpExtMPRstRx") == 1  # the kernel's RST carries MP_TCPRST too


def _corrupt_one_packet(topo: Topology, path: Path, port: int, nth: int) -> None:
    """A payload-rewriting middlebox in front of the kernel: byte 200 of the transport
    segment (inside the payload) of the ``nth`` large packet to ``port`` becomes 0x42
    (nftables recomputes the TCP checksum, so only the DSS checksum can tell)."""
    match = "limit rate 1/minute burst 1 packets" if nth == 1 else \
        f"numgen inc mod 1000000 == {nth}"
    topo.nft(path.peer_ns, f"""table netdev mlab_rw {{
  chain ingress {{ type filter hook ingress device "{path.peer_dev}" priority 0; policy accept;
    tcp dport {port} meta length > 1000 {match} @th,1600,8 set 0x42 counter
  }}
}}
""")


@pytest.mark.rfc("8684", "3.7")
@pytest.mark.parametrize("nth", [1, 300])
def test_checksum_failure_with_linux(topo: Topology, nth: int) -> None:
    """DSS checksums on (the kernel asks), a middlebox rewrites one payload byte.  On the
    first data the kernel falls back silently (counts DataCsumErr + DssFallback): our data
    is then acknowledged without DATA_ACK and we fall back too.  Later, the kernel sends
    MP_FAIL: we answer with MP_FAIL and an infinite mapping (RFC 8684 §3.7), both sides
    continue as TCP.  Either way every byte arrives (the rewritten one as rewritten)."""
    from interop.linux_peer import LinuxPeer
    from interop.our_peer import start_on_path

    path = _mptcp_path(topo, kernel_checksums=True)
    port = 5303 + nth
    _corrupt_one_packet(topo, path, port, nth)
    before = _netstat(path.peer_ns)
    with LinuxPeer.start(path.peer_ns, "server", host=path.peer_addr, port=port, mode="sink",
                         mptcp=True, timeout=30) as k:
        k.wait_listening()
        with start_on_path(path, "client", port=port, mode="source", nbytes=20_000_000,
                           extra=("--mptcp",)) as o:
            ours = o.result(90)
            done = o.done_event or {}
        kernel = k.result(60)
    after = _netstat(path.peer_ns)
    delta = {key: after[key] - before[key] for key in after}
    assert ours.error is None and kernel.error is None, (ours.error, kernel.error)
    assert kernel.bytes_received == 20_000_000
    assert delta["DataCsumErr"] == 1, delta
    mib = done["mib"]
    assert done["mptcp"]["fallback"] is not None
    if nth == 1:
        assert mib.get("MPTcpExtFallbackNoDss") == 1, mib
    else:
        assert delta["MPFailTx"] >= 1 and delta["InfiniteMapRx"] == 1, delta
        assert mib.get("MPTcpExtMPFailRx", 0) >= 1 and mib.get("MPTcpExtInfiniteMapTx") == 1


def _strip(topo: Topology, path: Path, rule_match: str) -> None:
    """An nftables middlebox in the kernel peer's namespace overwriting MPTCP options with
    NOPs (``reset tcp option mptcp``) on the packets ``rule_match`` selects, both ways."""
    topo.nft(path.peer_ns, f"""table inet mlab_strip {{
  chain out {{ type filter hook output priority 0; policy accept;
    {rule_match} reset tcp option mptcp counter
  }}
  chain inp {{ type filter hook input priority -400; policy accept;
    {rule_match} reset tcp option mptcp counter
  }}
}}
""")


@pytest.mark.rfc("8684", "3.7")
@pytest.mark.parametrize("where", ["synack", "after-handshake"])
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_fallback_when_a_middlebox_strips_mptcp(topo: Topology, where: str, ours_role: str
                                               ) -> None:
    """MP_CAPABLE stripped from the SYN/ACK, or every MPTCP option stripped once the
    handshake is over: both ends fall back to TCP and the data still arrives exactly."""
    path = _mptcp_path(topo, kernel_checksums=False)
    match = "tcp flags & (syn|ack) == syn|ack" if where == "synack" else "tcp flags & syn == 0"
    _strip(topo, path, match)
    _, kernel, done = _duplex(path, ours_role=ours_role, nbytes=10_000_000, timeout=60,
                              extra=("--mptcp",), kernel_mptcp=True)
    ours = done["mptcp"]
    assert ours is not None and not ours["mptcp"] and ours["fallback"], ours
    assert kernel.mptcp is not None and kernel.mptcp["fallback"], kernel.mptcp
    assert done["mib"].get("MPTcpExtFallback", 0) + done["mib"].get(
        "MPTcpExtMPCapableFallbackSYNACK", 0) >= 1
