"""Raw-socket driver against the Linux kernel: the stack shares S's veth address with S's
kernel; the kernel peer in P connects to it.  Checks that the packet socket (packet(7),
``PACKET_VNET_HDR``) delivers the peer's segments, that the nftables port set keeps S's own
TCP from resetting them (RFC 9293 §3.10.7.1 would have it send RST to an unknown port), and
that the BPF filter keeps everything else away from the stack."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from interop.topology import Path, Topology, skip_reason, stack_and_peer
from mptcp.io.driver import DriverError
from mptcp.io.netns import in_netns
from mptcp.io.raw import RawDriver, build_filter
from mptcp.wire.errors import WireError
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.options import Mss, TcpOption
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, PSH, RST, SYN, TcpHeader

PORT = 5002
ISS = 7_000_000
Received = tuple[Segment, bool, bytes]


@pytest.fixture
def topo() -> Iterator[Topology]:
    reason = skip_reason(tools=("ip", "nft", "sysctl"))
    if reason:
        pytest.skip(reason)
    with Topology() as t:
        yield t


def drain(drv: RawDriver, timeout: float) -> list[Received]:
    """Everything the driver delivers within ``timeout`` seconds."""
    out: list[Received] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        select.select([drv.fileno()], [], [], left)
        for raw, ok in drv.recv_batch(0.0):
            out.append((parse_segment(raw), ok, raw))
    return out


class Rx:
    """Received segments with a backlog, so nothing read along the way is lost."""

    def __init__(self, drv: RawDriver) -> None:
        self.drv = drv
        self.backlog: list[Received] = []

    def wait(self, pred: Callable[[Segment], bool], timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            for i, item in enumerate(self.backlog):
                if pred(item[0]):
                    del self.backlog[: i + 1]
                    return item
            self.backlog.clear()
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for a segment"
            select.select([self.drv.fileno()], [], [], left)
            for raw, ok in self.drv.recv_batch(0.0):
                try:
                    self.backlog.append((parse_segment(raw), ok, raw))
                except WireError as e:
                    raise AssertionError(f"the filter let a non-TCP packet through: {raw!r}"
                                         ) from e


def tcp_mib(ns: str, field: str) -> int:
    with in_netns(ns), open("/proc/thread-self/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Tcp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))[field])


def tables(topo: Topology, ns: str) -> str:
    return topo.run(ns, ["nft", "list", "tables"]).stdout


def client(path: Path, port: int = PORT) -> socket.socket:
    fam = socket.AF_INET6 if path.ipv6 else socket.AF_INET
    with in_netns(path.peer_ns):
        c = socket.socket(fam, socket.SOCK_STREAM)
    c.setblocking(False)
    assert c.connect_ex((path.stack_addr, port)) == 115  # EINPROGRESS
    return c


def wait_connect(c: socket.socket, timeout: float = 5.0) -> int:
    """SO_ERROR once the connect attempt has finished (0 = connected)."""
    select.select([], [c], [], timeout)
    return c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


@pytest.mark.rfc("9293", "3.10.7.1")
@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_stack_owns_port_kernel_stays_quiet(topo: Topology, v6: bool) -> None:
    path = stack_and_peer(topo, driver="raw", ipv6=v6)
    drv = path.make_driver()
    assert isinstance(drv, RawDriver)
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    with drv:
        assert (drv.tso, drv.csum_offload, drv.mtu) == (False, False, 1500)
        assert drv.table in tables(topo, path.stack_ns)
        drv.bind_port(PORT)
        rsts = tcp_mib(path.stack_ns, "OutRsts")
        rx = Rx(drv)

        c = client(path)
        syn, ok, raw = rx.wait(lambda s: bool(s.tcp.flags & SYN))
        assert (syn.tcp.dport, syn.tcp.flags) == (PORT, SYN)
        assert syn.ip.dst == socket.inet_pton(fam, path.stack_addr)
        assert ok or checksum_ok(raw)
        peer_port, peer_isn = syn.tcp.sport, syn.tcp.seq
        ip = (ipv6 if v6 else ipv4)(socket.inet_pton(fam, path.stack_addr),
                                    socket.inet_pton(fam, path.peer_addr))

        def seg(seq: int, flags: int, payload: bytes = b"", ack_extra: int = 0,
                opts: tuple[TcpOption, ...] = ()) -> bytes:
            hdr = TcpHeader(PORT, peer_port, seq, (peer_isn + 1 + ack_extra) & 0xFFFFFFFF,
                            flags, 65535, options=opts)
            return Segment(ip, hdr, payload).to_bytes()

        drv.send_batch(0.0, [(seg(ISS, SYN | ACK, opts=(Mss(1400),)), 0)])
        rx.wait(lambda s: s.tcp.flags == ACK and s.tcp.ack == ISS + 1)
        assert wait_connect(c) == 0

        data = os.urandom(2800)
        drv.send_batch(0.0, [(seg(ISS + 1, ACK, data[:1400]), 0),
                             (seg(ISS + 1401, ACK | PSH, data[1400:]), 0)])
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(data) and time.monotonic() < deadline:
            select.select([c], [], [], 1)
            with contextlib.suppress(BlockingIOError):
                got += c.recv(65536)
        assert got == data
        assert drv.counters["tx_packets"] == 3 and drv.counters["tx_errors"] == 0

        # the kernel peer's data: a GSO packet over the veth may arrive whole (csum_ok)
        sent = os.urandom(8000)
        c.send(sent)
        recvd = bytearray()
        longest = 0
        while len(recvd) < len(sent):
            s, ok, raw = rx.wait(lambda s: bool(s.payload))
            assert ok or checksum_ok(raw)
            longest = max(longest, len(raw))
            if (s.tcp.seq - peer_isn - 1) & 0xFFFFFFFF == len(recvd):
                recvd += s.payload
                drv.send_batch(0.0, [(seg(ISS + 1 + len(data), ACK, ack_extra=len(recvd)), 0)])
        assert bytes(recvd) == sent
        assert longest > drv.mtu, "P's TSO packet crossed the veth whole (PACKET_VNET_HDR)"

        time.sleep(0.05)
        assert tcp_mib(path.stack_ns, "OutRsts") == rsts, "S's kernel reset our connection"
        ruleset = topo.run(path.stack_ns, ["nft", "list", "table", "inet", drv.table]).stdout
        assert f"{PORT}" in ruleset and "drop" in ruleset

        # without the port in the set, S's kernel answers a new SYN with RST itself
        drv.unbind_port(PORT)
        c2 = client(path)
        assert wait_connect(c2) == 111  # ECONNREFUSED
        assert tcp_mib(path.stack_ns, "OutRsts") > rsts
        # ... and the packet socket's filter no longer hands that port to the stack
        assert [s for s, _, _ in drain(drv, 0.1) if s.tcp.sport == c2.getsockname()[1]] == []
        c.close()
        c2.close()
        drv.unbind_port(PORT)  # unknown port: nothing to do
    assert drv.table not in tables(topo, path.stack_ns)
    drv.close()  # idempotent


def test_filter_keeps_other_traffic_away(topo: Topology) -> None:
    path = stack_and_peer(topo, driver="raw")
    with path.make_driver() as drv:
        assert isinstance(drv, RawDriver)
        drv.bind_port(PORT)
        # a kernel server in S on another port of the same address: the stack never sees it
        with in_netns(path.stack_ns):
            srv = socket.socket()
        srv.bind((path.stack_addr, 6000))
        srv.listen()
        with in_netns(path.peer_ns):
            c = socket.create_connection((path.stack_addr, 6000), timeout=5)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"hello", (path.stack_addr, PORT))  # not TCP
        conn, _ = srv.accept()
        c.sendall(b"x" * 5000)
        assert conn.recv(10)
        assert drain(drv, 0.2) == []
        # our own sends are not looped back to us (PACKET_IGNORE_OUTGOING / pkttype filter)
        pkt = Segment(ipv4(socket.inet_aton(path.stack_addr), socket.inet_aton(path.peer_addr)),
                      TcpHeader(PORT, 40000, 1, 0, RST, 0)).to_bytes()
        drv.send_batch(0.0, [(pkt, 0)])
        assert drv.counters["tx_packets"] == 1
        assert drain(drv, 0.1) == []
        for s in (c, u, conn, srv):
            s.close()


def test_table_removed_when_process_exits_without_close(topo: Topology) -> None:
    path = stack_and_peer(topo, driver="raw")
    code = ("import sys; from mptcp.io.raw import RawDriver; "
            f"d = RawDriver('veth0', ['10.0.1.1'], netns={path.stack_ns!r}); d.bind_port(1); "
            "print(d.table, flush=True); sys.exit(3)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    assert res.returncode == 3, res.stderr
    table = res.stdout.strip()
    assert table.startswith("mlab_")
    assert table not in tables(topo, path.stack_ns)


def test_errors(topo: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = topo.add_ns("s")
    with pytest.raises(DriverError, match="raw sockets"):
        RawDriver("nosuchdev", ["10.0.1.1"], netns=ns)
    assert "mlab_" not in tables(topo, ns)
    with pytest.raises(DriverError, match="bad address"):
        RawDriver("lo", ["10.0.1.300"], netns=ns)
    with pytest.raises(DriverError, match="at least one"):
        RawDriver("lo", [], netns=ns)
    with RawDriver("lo", ["10.0.1.1"], netns=ns) as drv:
        with pytest.raises(DriverError, match="out of range"):
            drv.bind_port(0)
        drv.send_batch(0.0, [(b"", 0), (b"\x60" + bytes(60), 0)])  # empty; IPv6 without a v6 socket
        assert drv.counters["tx_errors"] == 2 and drv.pending() == 0
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DriverError, match="nft"):
        RawDriver("lo", ["10.0.1.1"], netns=ns)


def test_bpf_program_shape() -> None:
    prog = build_filter(["10.0.1.1", "fd00:1::1"], [80, 443])
    assert len(prog) % 8 == 0 and len(prog) // 8 < 64
    many = build_filter(["10.0.1.1"], list(range(1, 201)))
    assert len(many) // 8 > 200
    with pytest.raises(DriverError, match="out of range"):
        build_filter(["10.0.1.1"], list(range(1, 400)))


def test_backpressure_queues_and_flush_drains(topo: Topology) -> None:
    """A slow link (tbf) and a small send buffer: the raw socket says EAGAIN, the driver
    queues instead of dropping, and ``flush`` hands the rest over once there is room."""
    path = stack_and_peer(topo, driver="raw")
    topo.tbf(path.stack_ns, path.stack_dev, 2_000_000, burst=3000, latency=1.0)
    with RawDriver(path.stack_dev, [path.stack_addr], netns=path.stack_ns,
                   bufsize=16384) as drv:
        ip = ipv4(socket.inet_aton(path.stack_addr), socket.inet_aton(path.peer_addr))
        pkts = [(Segment(ip, TcpHeader(PORT, 9, i, 0, ACK, 0), bytes(1400)).to_bytes(), 0)
                for i in range(60)]
        drv.send_batch(0.0, pkts)
        assert drv.pending() > 0 and drv.counters["tx_queued"] > 0
        queued = drv.pending()
        drv.send_batch(0.0, pkts[:1])  # appended behind the queue, order kept
        assert drv.pending() >= queued
        deadline = time.monotonic() + 10
        while drv.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
            drv.flush(0.0)
        assert drv.pending() == 0
        assert drv.counters["tx_packets"] == 61 and drv.counters["tx_errors"] == 0
