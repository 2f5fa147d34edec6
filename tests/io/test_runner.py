"""The trio StackRunner (mptcp.io.runner) and the in-memory link (mptcp.io.memory).

Reading until EAGAIN (a burst is taken in one loop iteration), timers (SYN and data
retransmission when a driver wrapper drops packets, under trio's MockClock), pokes, port
claims, pending sends, orphan linger, the tracer hook.
"""

from __future__ import annotations

import hashlib
import random
import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from mptcp.io.driver import Driver, RxPacket, TxPacket
from mptcp.io.memory import MemoryDriver, MemoryLink
from mptcp.io.runner import StackRunner
from mptcp.io.stream import TcpStream, open_tcp_stream
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.stack import Stack
from mptcp.wire.segment import Segment, parse_segment
from mptcp.wire.tcp import SYN

A, B = "10.0.0.1", "10.0.0.2"


class Wrapper:
    """A middleware for tests: passes everything to ``inner`` except the sent packets
    ``drop(segment, index)`` selects; ``refuse`` send_batch calls pretend EAGAIN."""

    def __init__(self, inner: MemoryDriver,
                 drop: Callable[[Segment, int], bool] | None = None, refuse: int = 0) -> None:
        self.inner = inner
        self.mtu = inner.mtu
        self.tso = inner.tso
        self.csum_offload = inner.csum_offload
        self.drop = drop
        self.dropped: list[Segment] = []
        self.sent = 0
        self.refuse = refuse
        self.held: list[TxPacket] = []

    def fileno(self) -> int:
        return self.inner.fileno()

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        return self.inner.recv_batch(now, limit)

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        keep = []
        for pkt, gso in packets:
            seg = parse_segment(pkt)
            i = self.sent
            self.sent += 1
            if self.drop is not None and self.drop(seg, i):
                self.dropped.append(seg)
            else:
                keep.append((pkt, gso))
        if self.refuse > 0 or self.held:
            self.refuse -= 1
            self.held.extend(keep)
            return
        self.inner.send_batch(now, keep)

    def pending(self) -> int:
        return len(self.held) + self.inner.pending()

    def flush(self, now: float) -> None:
        held, self.held = self.held, []
        self.inner.send_batch(now, held)
        self.inner.flush(now)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def poll(self, now: float) -> None:
        self.inner.poll(now)

    def bind_port(self, port: int) -> None:
        self.inner.bind_port(port)

    def unbind_port(self, port: int) -> None:
        self.inner.unbind_port(port)

    def close(self) -> None:
        self.inner.close()


def _stacks(config: TcpConfig | None = None) -> tuple[Stack, Stack]:
    return (Stack([A], random.Random(1), config=config),
            Stack([B], random.Random(2), config=config))


async def _transfer(ra: StackRunner, rb: StackRunner, data: bytes, port: int = 5001,
                    config: TcpConfig | None = None) -> bytes:
    """Send ``data`` from A to B over a new connection; what B read."""
    lh = rb.listen(port, config)
    c = await open_tcp_stream(B, port, stack=ra, config=config)
    s = TcpStream(await lh.accept())
    rb.unlisten(lh)
    got = bytearray()
    async with trio.open_nursery() as n:
        async def send() -> None:
            await c.send_all(data)
            await c.aclose()
        n.start_soon(send)
        while chunk := await s.receive_some():
            got.extend(chunk)
    await s.aclose()
    return bytes(got)


def test_driver_satisfies_protocol() -> None:
    da, db = MemoryLink.pair()
    try:
        assert isinstance(da, Driver) and isinstance(Wrapper(db), Driver)
        assert (da.mtu, da.tso, da.csum_offload) == (1500, False, False)
        assert da.fileno() >= 0 and da.get_timer() is None
    finally:
        da.close()
        db.close()


def test_memory_driver_queues_on_eagain_and_drops_oversize() -> None:
    da, db = MemoryLink.pair(mtu=1500)
    try:
        da.send_batch(0.0, [(bytes(1501), 0)])
        assert da.stats["oversize_drops"] == 1 and db.recv_batch(0.0) == []
        pkt = bytes(1500)
        n = 0
        while not da.pending():  # the peer does not read: the socket buffer fills
            da.send_batch(0.0, [(pkt, 0)] * 256)
            n += 256
            assert n < 200_000
        queued = da.pending()
        got = 0
        while da.pending():
            while batch := db.recv_batch(0.0, 64):
                got += len(batch)
            da.flush(0.0)
        while batch := db.recv_batch(0.0, 64):
            got += len(batch)
        assert got == n and queued > 0  # nothing lost
        assert da.stats["tx_packets"] == n == db.stats["rx_packets"]
        db.close()  # the link goes down: counted drops, no exception
        da.send_batch(0.0, [(pkt, 0)])
        assert da.stats["drops"] >= 2
    finally:
        da.close()
        db.close()


def test_burst_is_read_in_one_iteration() -> None:
    """DESIGN.md "I/O": read until EAGAIN before waiting -- N SYNs that arrive together are
    received, answered (RST, no listener) and sent in one loop iteration."""
    n = 200

    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, sb = _stacks()
        try:
            async with StackRunner(sa, da) as ra:
                await trio.testing.wait_all_tasks_blocked()
                before = ra.stats.as_dict()
                conns = [sb.connect((A, 1000 + i), now=0.0) for i in range(n)]
                db.send_batch(0.0, [(p, 0) for p in sb.packets_to_send(0.0)])
                await trio.testing.wait_all_tasks_blocked()
                after = ra.stats.as_dict()
                assert after["iterations"] - before["iterations"] == 1
                assert after["packets_in"] - before["packets_in"] == n
                assert after["packets_out"] - before["packets_out"] == n
                assert sa.mib["TcpNoPortRsts"] == n
                rsts = []
                while batch := db.recv_batch(0.0):
                    rsts += batch
                for pkt, _ in rsts:
                    sb.receive(pkt, 0.0)
                assert all(c.state.value == "CLOSED" for c in conns)
        finally:
            da.close()
            db.close()
    trio.run(main)


@pytest.mark.rfc("6298", "5")
def test_syn_retransmitted_by_timer_when_dropped() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        wa = Wrapper(da, drop=lambda seg, i: i == 0)  # the first SYN
        sa, sb = _stacks()
        try:
            async with StackRunner(sa, wa) as ra, StackRunner(sb, db) as rb:
                t0 = trio.current_time()
                got = await _transfer(ra, rb, b"hello")
                assert got == b"hello"
                assert wa.dropped[0].tcp.flags & SYN
                assert sa.mib["TcpExtTCPSynRetrans"] == 1
                assert trio.current_time() - t0 >= 1.0  # RFC 6298 §2.1 initial RTO
                assert ra.stats.timer_fires >= 1
        finally:
            da.close()
            db.close()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.rfc("6298", "5")
def test_data_retransmitted_when_dropped() -> None:
    data = random.Random(7).randbytes(300_000)
    lost: set[int] = set()

    def drop(seg: Segment, i: int) -> bool:
        # the first transmission of every 40th data segment (SACK recovery) and of the
        # short last one (a tail loss: only a timer -- TLP or RTO -- can repair it)
        start = seg.tcp.seq
        n = len(seg.payload)
        if n and start not in lost and (i % 40 == 7 or n < 1000):
            lost.add(start)
            return True
        return False

    async def main() -> None:
        da, db = MemoryLink.pair()
        wa = Wrapper(da, drop=drop)
        sa, sb = _stacks()
        try:
            async with StackRunner(sa, wa) as ra, StackRunner(sb, db) as rb:
                got = await _transfer(ra, rb, data)
                assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
                assert wa.dropped and sa.mib["TcpRetransSegs"] >= len(wa.dropped)
                assert ra.stats.timer_fires > 0
                assert any(len(seg.payload) < 1000 for seg in wa.dropped)
                assert sa.mib["TcpExtTCPLossProbes"] + sa.mib["TcpExtTCPTimeouts"] > 0
        finally:
            da.close()
            db.close()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_poke_wakes_the_loop() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, _ = _stacks()
        try:
            async with StackRunner(sa, da) as ra:
                await trio.testing.wait_all_tasks_blocked()
                it = ra.stats.iterations
                sa.connect((B, 80), now=ra.now())  # behind the runner's back: no poke
                await trio.testing.wait_all_tasks_blocked()
                assert ra.stats.iterations == it and db.recv_batch(0.0) == []
                ra.poke()
                await trio.testing.wait_all_tasks_blocked()
                assert ra.stats.iterations == it + 1 and ra.stats.pokes == 1
                (syn, _), = db.recv_batch(0.0)
                assert parse_segment(syn).tcp.flags & SYN
        finally:
            da.close()
            db.close()
    trio.run(main)


def test_port_claims_follow_listeners_and_connections() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        cfg = TcpConfig(msl=0.5)
        sa, sb = _stacks(cfg)
        try:
            async with StackRunner(sa, da) as ra, StackRunner(sb, db) as rb:
                lh = rb.listen(5001)
                assert db.ports == {5001}
                c = await open_tcp_stream(B, 5001, stack=ra)
                lport = c.local[1]
                assert da.ports == {lport}
                s = TcpStream(await lh.accept())
                assert rb.claimed_ports() == {5001: 2}  # the listener and the connection
                lh.close()
                assert rb.claimed_ports() == {5001: 1} and db.ports == {5001}
                await c.aclose()
                assert await s.receive_some() == b""
                await s.aclose()
                await trio.testing.wait_all_tasks_blocked()
                assert db.ports == set()  # LAST-ACK -> CLOSED
                assert da.ports == {lport}  # TIME-WAIT keeps the port
                await trio.sleep(2 * cfg.msl)
                await trio.testing.wait_all_tasks_blocked()
                assert da.ports == set() and not ra.handles
        finally:
            da.close()
            db.close()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_pending_sends_wait_for_writability() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        wa = Wrapper(da, refuse=5)  # five send_batch calls "refused" by the kernel
        sa, sb = _stacks()
        try:
            async with StackRunner(sa, wa) as ra, StackRunner(sb, db) as rb:
                data = random.Random(3).randbytes(100_000)
                assert await _transfer(ra, rb, data) == data
                assert ra.stats.write_waits >= 1 and wa.pending() == 0
        finally:
            da.close()
            db.close()
    trio.run(main)


async def _orphan_scenario(peer_checks: bool) -> None:
    da, db = MemoryLink.pair()
    cfg = TcpConfig(send_buffer=8192, recv_buffer=8192)
    sa, sb = _stacks(cfg)
    try:
        async with StackRunner(sa, da, linger=5.0) as ra, StackRunner(sb, db) as rb:
            lh = rb.listen(5001)
            c = await open_tcp_stream(B, 5001, stack=ra)
            s = TcpStream(await lh.accept())
            with trio.move_on_after(1.0):
                await c.send_all(bytes(100_000))  # s never reads: zero window
            await c.aclose()  # the FIN cannot go before the queued data
            conn = c.connection
            await trio.sleep(4.9)
            assert conn.state.value == "FIN-WAIT-1" and s.handle.failure is None
            await trio.sleep(0.2)
            assert conn.state.value == "CLOSED"
            assert ra.stats.orphans_aborted == 1 and not ra.handles
            assert sa.mib["TcpExtTCPAbortOnClose"] == 1 and sa.mib["TcpOutRsts"] == 1
            if peer_checks:
                assert s.handle.failure == "connection reset"
                with pytest.raises(trio.BrokenResourceError, match="reset"):
                    while await s.receive_some():  # the data that came, then the RST
                        pass
    finally:
        da.close()
        db.close()


@pytest.mark.rfc("9293", "3.10.5")
def test_orphan_that_cannot_finish_is_aborted_after_linger() -> None:
    trio.run(_orphan_scenario, False, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.rfc("5961", "3.2")
def test_orphan_abort_rst_reaches_a_zero_window_peer() -> None:
    trio.run(_orphan_scenario, True, clock=trio.testing.MockClock(autojump_threshold=0))


def test_tracer_gets_connection_events() -> None:
    class Log:
        def __init__(self) -> None:
            self.events: list[tuple[float, str, dict[str, Any]]] = []

        def event(self, now: float, name: str, **fields: Any) -> None:
            self.events.append((now, name, fields))

    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, sb = _stacks()
        log = Log()
        try:
            async with StackRunner(sa, da, tracer=log) as ra, StackRunner(sb, db) as rb:
                assert await _transfer(ra, rb, b"abc") == b"abc"
                await trio.testing.wait_all_tasks_blocked()
        finally:
            da.close()
            db.close()
        names = [n for _, n, _ in log.events]
        assert "Connected" in names and "StateChanged" in names
        assert any(f.get("new") == "ESTABLISHED" for _, _, f in log.events)
        assert all(f["conn"].startswith("10.0.0.1:") for _, _, f in log.events)
    trio.run(main)


def test_custom_clock_offsets_timers() -> None:
    """A clock other than trio's: deadlines are converted to trio time for the wait."""
    async def main() -> None:
        da, db = MemoryLink.pair()
        wa = Wrapper(da, drop=lambda seg, i: i == 0)
        sa, sb = _stacks()
        try:
            def clock() -> float:
                return trio.current_time() + 1000.0
            async with StackRunner(sa, wa, clock=clock) as ra, StackRunner(sb, db) as rb:
                assert await _transfer(ra, rb, b"x") == b"x"
                assert sa.mib["TcpExtTCPSynRetrans"] == 1
        finally:
            da.close()
            db.close()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_runner_cannot_run_twice() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, _ = _stacks()
        try:
            async with StackRunner(sa, da) as ra:
                with pytest.raises(RuntimeError):
                    await ra.run()
        finally:
            da.close()
            db.close()
    trio.run(main)


def test_socketpair_is_nonblocking_datagram() -> None:
    da, db = MemoryLink.pair()
    try:
        sock = socket.socket(fileno=socket.dup(da.fileno()))
        try:
            assert sock.type == socket.SOCK_DGRAM and sock.family == socket.AF_UNIX
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 212992
        finally:
            sock.close()
        assert da.recv_batch(0.0) == []  # EAGAIN, not a block
    finally:
        da.close()
        db.close()


def test_exceptions_come_out_unwrapped() -> None:
    class Broken(Wrapper):
        def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
            raise OSError("device gone")

    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, sb = _stacks()
        try:
            with pytest.raises(ValueError, match="body"):  # not an ExceptionGroup
                async with StackRunner(sa, da):
                    raise ValueError("body")
            with pytest.raises(OSError, match="device gone"):  # the loop's own failure
                async with StackRunner(sb, Broken(db)) as rb:
                    lh = rb.listen(5001)
                    da.send_batch(0.0, [(b"\x45", 0)])  # makes db readable
                    await lh.accept()
        finally:
            da.close()
            db.close()
    trio.run(main)


def test_stop_wakes_accept_and_connect() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        sa, _ = _stacks()
        try:
            runner = StackRunner(sa, da)
            async with trio.open_nursery() as n:
                await n.start(runner.run)
                lh = runner.listen(5001)

                async def accept() -> None:
                    with pytest.raises(trio.BrokenResourceError, match="runner stopped"):
                        await lh.accept()

                async def connect() -> None:
                    with pytest.raises(ConnectionAbortedError):
                        await open_tcp_stream(B, 80, stack=runner)

                n.start_soon(accept)
                n.start_soon(connect)
                await trio.testing.wait_all_tasks_blocked()
                runner.stop()
        finally:
            da.close()
            db.close()
    trio.run(main)
