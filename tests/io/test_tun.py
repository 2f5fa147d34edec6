"""TUN driver against the Linux kernel (Documentation/networking/tuntap.rst, virtio spec
§5.1.6): a kernel TCP client in namespace P talks to a hand-driven TCP endpoint behind a TUN
device in namespace S (RFC 9293 §3.5 handshake, data both ways, checksum offload and TSO/GSO
super-packets)."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from interop.topology import Path, Topology, skip_reason, stack_and_peer
from mptcp.io.driver import Driver
from mptcp.io.netns import in_netns
from mptcp.io.tun import TunDriver
from mptcp.wire.errors import WireError
from mptcp.wire.ip import IPHeader, ipv4, ipv6
from mptcp.wire.options import Mss, TcpOption
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, PSH, SYN, TcpHeader

PORT = 5001
ISS = 1_000_000


def _skip() -> None:
    reason = skip_reason(tun=True, tools=("ip", "nft", "tc", "sysctl"))
    if reason:
        pytest.skip(reason)


@pytest.fixture
def topo() -> Iterator[Topology]:
    _skip()
    with Topology() as t:
        yield t


Received = tuple[Segment, bool, bytes]
_backlog: dict[int, list[Received]] = {}


def wait_for(drv: Driver, pred: Callable[[Segment], bool], timeout: float = 5.0) -> Received:
    """The first received TCP segment matching ``pred``; segments read along the way that do
    not match are dropped, those behind the match are kept for the next call."""
    backlog = _backlog.setdefault(id(drv), [])
    deadline = time.monotonic() + timeout
    while True:
        while backlog:
            item = backlog.pop(0)
            if pred(item[0]):
                return item
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for a segment")
        select.select([drv.fileno()], [], [], left)
        for raw, ok in drv.recv_batch(time.monotonic()):
            try:
                backlog.append((parse_segment(raw), ok, raw))
            except WireError:
                continue  # IPv6 MLD / router solicitations on the fresh link


def ip_header(path: Path, v6: bool) -> IPHeader:
    if v6:
        assert path.stack_addr6 and path.peer_addr6
        return ipv6(socket.inet_pton(socket.AF_INET6, path.stack_addr6),
                    socket.inet_pton(socket.AF_INET6, path.peer_addr6))
    return ipv4(socket.inet_aton(path.stack_addr4), socket.inet_aton(path.peer_addr4))


def peer_client(path: Path) -> socket.socket:
    """A non-blocking kernel TCP socket in P connecting to the stack's address."""
    fam = socket.AF_INET6 if path.ipv6 else socket.AF_INET
    with in_netns(path.peer_ns):
        c = socket.socket(fam, socket.SOCK_STREAM)
    c.setblocking(False)
    assert c.connect_ex((path.stack_addr, PORT)) == 115  # EINPROGRESS
    return c


def recv_exactly(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(out)} of {n} bytes"
        select.select([sock], [], [], left)
        try:
            chunk = sock.recv(n - len(out))
        except BlockingIOError:
            continue
        assert chunk, "EOF"
        out += chunk
    return bytes(out)


def in_csum_errors(ns: str) -> int:
    with in_netns(ns), open("/proc/thread-self/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Tcp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["InCsumErrors"])


@pytest.mark.rfc("9293", "3.5")
@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
def test_handshake_and_data_with_kernel(topo: Topology, offload: bool, v6: bool) -> None:
    path = stack_and_peer(topo, driver="tun", ipv6=v6)
    if offload:
        # S finishes partial checksums in software and segments GSO packets itself before
        # the veth: a wrong checksum seed or virtio header would make P drop the data.
        topo.offloads(path.stack_ns, path.stack_dev, tx_csum=False)
    drv = path.make_driver(offload=offload)
    assert isinstance(drv, TunDriver)
    with drv:
        assert (drv.tso, drv.csum_offload, drv.mtu) == (offload, offload, 1500)
        client = peer_client(path)
        ip = ip_header(path, v6)

        # 1. the kernel's SYN comes out of the TUN
        syn, ok, raw = wait_for(drv, lambda s: bool(s.tcp.flags & SYN) and s.tcp.dport == PORT)
        assert syn.tcp.flags & (SYN | ACK) == SYN
        assert syn.ip.dst == socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET,
                                              path.stack_addr)
        if offload:
            assert ok, "a forwarded kernel packet comes with NEEDS_CSUM or DATA_VALID"
        else:
            assert not ok and checksum_ok(raw)
        peer_port, peer_isn = syn.tcp.sport, syn.tcp.seq

        def segment(seq: int, flags: int, payload: bytes = b"",
                    opts: tuple[TcpOption, ...] = ()) -> bytes:
            hdr = TcpHeader(PORT, peer_port, seq, (peer_isn + 1) & 0xFFFFFFFF, flags, 65535,
                            options=opts)
            return Segment(ip, hdr, payload).to_bytes(partial=offload)

        # 2. our SYN-ACK (partial checksum with offload); 3. the kernel ACKs it
        drv.send_batch(0.0, [(segment(ISS, SYN | ACK, opts=(Mss(1400),)), 0)])
        wait_for(drv, lambda s: s.tcp.flags == ACK and s.tcp.ack == ISS + 1)
        _, writable, _ = select.select([], [client], [], 5)
        assert writable and client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0

        # 4. data to the kernel: one GSO super-packet of 3 segments with offload
        data = os.urandom(3 * 1400)
        if offload:
            drv.send_batch(0.0, [(segment(ISS + 1, ACK | PSH, data), 1400)])
        else:
            drv.send_batch(0.0, [(segment(ISS + 1 + i, ACK, data[i:i + 1400]), 0)
                                 for i in range(0, len(data), 1400)])
        assert recv_exactly(client, len(data)) == data
        wait_for(drv, lambda s: s.tcp.ack == ISS + 1 + len(data))
        assert drv.counters["tx_errors"] == 0 and drv.pending() == 0

        # 5. data from the kernel: with offload it may come as one super-packet
        sent = os.urandom(10_000)
        client.send(sent)
        got = bytearray()
        longest = 0
        while len(got) < len(sent):
            seg, ok, raw = wait_for(drv, lambda s: bool(s.payload))
            assert ok if offload else (not ok and checksum_ok(raw))
            offset = (seg.tcp.seq - peer_isn - 1) & 0xFFFFFFFF
            if offset != len(got):
                assert offset < len(got), "nothing is lost on a clean path"
                continue  # a (tail-loss probe) retransmission: we were slow to ACK
            got += seg.payload
            longest = max(longest, len(raw))
            ack = TcpHeader(PORT, peer_port, ISS + 1 + len(data),
                            (peer_isn + 1 + len(got)) & 0xFFFFFFFF, ACK, 65535)
            drv.send_batch(0.0, [(Segment(ip, ack).to_bytes(partial=offload), 0)])
        assert bytes(got) == sent
        if offload:
            assert longest > drv.mtu, "the kernel handed over a GSO super-packet"
        else:
            assert longest <= drv.mtu

        if offload:  # the sensitivity check: a wrong checksum seed is caught by P
            before = in_csum_errors(path.peer_ns)
            bad = bytearray(segment(ISS + 1 + len(data), ACK | PSH, b"x" * 100))
            tcp_off = 40 if v6 else 20
            bad[tcp_off + 16] ^= 0x55
            drv.send_batch(0.0, [(bytes(bad), 0)])
            deadline = time.monotonic() + 3
            while in_csum_errors(path.peer_ns) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert in_csum_errors(path.peer_ns) == before + 1
        client.close()


def test_close_removes_device(topo: Topology) -> None:
    ns = topo.add_ns("s")
    drv = TunDriver("mlab7", netns=ns, addresses=[("10.0.7.1", 24)], mtu=9000, offload=False)
    assert "mlab7" in topo.ip(ns, "link", "show")
    link = topo.ip(ns, "-d", "link", "show", "mlab7")
    assert "mtu 9000" in link and "UP" in link
    assert "10.0.7.1/24" in topo.ip(ns, "addr", "show", "mlab7")
    drv.close()
    drv.close()  # idempotent
    assert "mlab7" not in topo.ip(ns, "link", "show")
    assert drv.fileno() == -1


def test_txqueuelen_and_routes(topo: Topology) -> None:
    ns = topo.add_ns("s")
    with TunDriver("mlab8", netns=ns, addresses=[("10.0.8.1", 24), ("fd00:8::1", 64)],
                   routes=["10.0.9.0/24", ("10.0.10.0/24", "10.0.8.2")],
                   txqueuelen=12345) as drv:
        assert "qlen 12345" in topo.ip(ns, "link", "show", "mlab8")
        routes = topo.ip(ns, "route", "show")
        assert "10.0.9.0/24 dev mlab8" in routes
        assert "10.0.10.0/24 via 10.0.8.2 dev mlab8" in routes
        assert "fd00:8::1/64" in topo.ip(ns, "addr", "show", "mlab8")
        t0 = time.monotonic()
        assert isinstance(drv.recv_batch(0.0), list)  # never blocks
        assert time.monotonic() - t0 < 0.5


def test_bad_arguments(topo: Topology) -> None:
    ns = topo.add_ns("s")
    from mptcp.io.driver import DriverError
    with pytest.raises(DriverError):
        TunDriver("x" * 16, netns=ns)
    with pytest.raises(DriverError):
        TunDriver("mlab0", netns=ns, mtu=10)
    with pytest.raises(DriverError, match="does not exist"):
        TunDriver("mlab0", netns=ns + "-missing")
    with pytest.raises(DriverError, match="configuring"):
        TunDriver("mlab0", netns=ns, addresses=[("not-an-address", 24)])
    assert "mlab0" not in topo.ip(ns, "link", "show")  # cleaned up after the failure


def test_send_errors_are_counted_not_raised(topo: Topology) -> None:
    ns = topo.add_ns("s")
    with TunDriver("mlab0", netns=ns, offload=True) as drv:
        drv.send_batch(0.0, [(b"\x45", 1000), (b"", 0)])  # malformed: counted drops
        assert drv.counters["tx_errors"] == 2 and drv.counters["tx_packets"] == 0
        assert "empty packet" in (drv.last_error or "")
        assert drv.pending() == 0
    with TunDriver("mlab1", netns=ns, offload=False) as drv:
        pkt = Segment(ipv4(bytes([10, 0, 2, 2]), bytes([10, 0, 2, 1])),
                      TcpHeader(1, 2, 3, 4, ACK, 5), b"x" * 3000).to_bytes()
        drv.send_batch(0.0, [(pkt, 1000)])
        assert drv.counters["tx_errors"] == 1 and "without offload" in (drv.last_error or "")
