"""``mptcp-lab bench engine``: bulk transfer between two in-memory TCP engines, against aioquic.

Both transfers run in one process, in the same run, with the same byte count, and both sides'
CPU is counted: one thread drives sender and receiver, and the figure is the process's CPU
time (``time.process_time``) from the moment the connection is established until the
receiver has every byte -- so a transport pausing for its own timers (aioquic's pacer) is not
charged for the pause, and another load on the machine disturbs the figure less than wall
time.  The engines get the real clock (``time.perf_counter``) as ``now``.

What is measured
----------------
* **ours, wire** (the headline): two :class:`mptcp.tcp.stack.Stack` objects exchange IP packets
  as ``bytes``: every segment is serialized with its IPv4 and TCP checksums
  (``Segment.to_bytes``), verified and parsed back by the receiving Stack (``checksum_ok``,
  ``parse_segment``, 4-tuple demultiplexing, timer heap) exactly as on a real wire.
* **ours, segments**: two :class:`~mptcp.tcp.connection.TcpConnection` objects hand each other
  the parsed ``Segment`` values directly (no serialization, no checksums, no Stack): the cost
  of the engine alone.
* **aioquic**: a client and a server ``QuicConnection`` (Sans-IO) exchange UDP payloads
  (``bytes``: every packet is built, AEAD-encrypted, decrypted and parsed).  The TLS 1.3
  handshake (self-signed P-256 certificate made at run time with ``cryptography``) is done
  before the clock starts, for both transports the timing starts once the connection is
  established.

Delivery discipline, identical for both transports: each loop iteration the sender is polled
once (``packets_to_send`` / ``datagrams_to_send``) and every packet of the burst is handed to
the receiver one at a time, the receiver being polled right after each one (its ACKs go back
to the sender at once) -- a wire without batching, so our receiver ACKs every second
full-sized segment (RFC 9293 §3.8.6.3) and aioquic follows its own ACK policy.  Then the
receiving application consumes what arrived (``read()`` / ``StreamDataReceived``) and hashes it
(SHA-256; both sides' digests must match, the sender's is computed before the clock starts
from the deterministic stream), and the sending application tops its transport up (our send
buffer: back-pressure; aioquic buffers without limit, so it is kept at most one flow-control
window, 1 MiB, ahead of the receiver).

Configurations: our MSS 1460 (1448 payload bytes with timestamps; IPv4, SACK, window scaling,
CUBIC, RACK-TLP: the defaults) and, reported beside it, TSO/GRO-style super-segments
(``TcpConfig.gso_size``: up to 45 x 1448 bytes per segment, MSS-1460 congestion control),
exchanged whole as a TSO sender and a GRO receiver would see them.  aioquic runs with a
1472-byte maximum datagram (the same 1500-byte MTU: the ratios use it) and with its default
1200 bytes.  Buffers: 1 MiB send and receive for us, aioquic's default 1 MiB flow-control
windows.

JSON: ``mss1460_*`` / ``gso_*`` (as bytes through the Stack), ``*_objects_*`` (Segment
objects), ``aioquic_*`` / ``aioquic_1200_*``; the headline ``segments_per_s``,
``mbit_per_s`` and ``ratio`` are MSS 1460's when it reaches twice aioquic, else the
super-segments' (``headline`` says which); every run's numbers are in ``per_run``.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import ssl
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import TcpState

__all__ = ["Transfer", "Pattern", "tcp_transfer", "quic_transfer", "run_engine_bench",
           "GSO_SIZE", "BUFFER"]

BUFFER = 1 << 20
"""Our send and receive buffers (aioquic's default flow-control windows are 1 MiB too)."""
GSO_SIZE = 65483
"""Largest TCP payload of an IPv4 packet with the timestamps option (65535 - 20 - 32)."""
_BLOCK = 1 << 20
_PORT = 5201
Clock = Callable[[], float]


class BenchError(RuntimeError):
    """A transfer did not complete or delivered different bytes."""


@dataclass(frozen=True)
class Transfer:
    """One timed transfer."""

    seconds: float
    payload_bytes: int
    data_packets: int  # sender -> receiver packets (segments / datagrams)
    reverse_packets: int  # receiver -> sender (ACKs, window updates)
    timer_waits: int  # loop iterations that had to wait for a timer

    @property
    def mbit_per_s(self) -> float:
        return self.payload_bytes * 8 / self.seconds / 1e6

    @property
    def packets_per_s(self) -> float:
        return self.data_packets / self.seconds


class Pattern:
    """The deterministic byte stream both transports carry: a seeded 1 MiB block repeated,
    and its SHA-256 digest (computed up front, outside any timing)."""

    def __init__(self, total: int, seed: int = 20261126) -> None:
        if total < 1:
            raise ValueError("total must be >= 1")
        self.total = total
        self.block = random.Random(seed).randbytes(_BLOCK)
        self.view = memoryview(self.block)
        h = hashlib.sha256()
        full, rest = divmod(total, _BLOCK)
        for _ in range(full):
            h.update(self.block)
        h.update(self.view[:rest])
        self.digest = h.digest()

    def chunk(self, offset: int, limit: int) -> memoryview:
        """Stream bytes from ``offset``: at most ``limit``, never across a block boundary."""
        i = offset % _BLOCK
        return self.view[i:i + min(limit, _BLOCK - i, self.total - offset)]


class VirtualClock:
    """10 us more at every reading: deterministic runs (for profilers and callgrind)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1e-5
        return self.t


def _clock(kind: str) -> Clock:
    if kind == "real":
        return time.perf_counter
    if kind != "virtual":
        raise ValueError(f"clock {kind!r}: 'real' or 'virtual'")
    return VirtualClock()


def _wait(clock: Clock, deadline: float | None) -> float:
    """Let time pass until ``deadline`` (rare: nothing to send and nothing in flight)."""
    now = clock()
    if deadline is None or deadline <= now:
        return now
    if isinstance(clock, VirtualClock):
        clock.t = deadline
        return deadline
    time.sleep(deadline - now)
    return clock()


# ----------------------------------------------------------------------------- ours ---------
def _tcp_config(gso: bool) -> TcpConfig:
    cfg = replace(TcpConfig(), send_buffer=BUFFER, recv_buffer=BUFFER)
    return replace(cfg, gso_size=GSO_SIZE) if gso else cfg


def tcp_transfer(pattern: Pattern, *, gso: bool = False, wire: bool = True,
                 clock: str = "real") -> Transfer:
    """One transfer of ``pattern`` between two of our engines (see the module docstring)."""
    cfg = _tcp_config(gso)
    clk = _clock(clock)
    if wire:
        return _tcp_stacks(pattern, cfg, clk)
    return _tcp_segments(pattern, cfg, clk)


def _tcp_stacks(pattern: Pattern, cfg: TcpConfig, clk: Clock) -> Transfer:
    sa = Stack(["10.0.0.1"], random.Random(1), config=cfg)
    sb = Stack(["10.0.0.2"], random.Random(2), config=cfg)
    sb.listen(_PORT)
    ca = sa.connect(("10.0.0.2", _PORT), now=clk())
    cb: TcpConnection | None = None
    for _ in range(100):  # handshake (not timed)
        now = clk()
        for p in sa.packets_to_send(now):
            sb.receive(p, now)
        for p in sb.packets_to_send(now):
            sa.receive(p, now)
        cb = cb or sb.accept(_PORT)
        if cb is not None and ca.state is TcpState.ESTABLISHED:
            break
    if cb is None or ca.state is not TcpState.ESTABLISHED:
        raise BenchError("TCP handshake did not complete")
    return _pump(sa, sb, ca.send, cb.read, pattern, clk, "ours (wire)")


def _tcp_segments(pattern: Pattern, cfg: TcpConfig, clk: Clock) -> Transfer:
    a = TcpConnection.connect(("10.0.0.1", 40000), ("10.0.0.2", _PORT), cfg, random.Random(1),
                              clk())
    b: TcpConnection | None = None
    for _ in range(100):  # handshake (not timed)
        now = clk()
        for s in a.packets_to_send(now):
            if b is None:
                b = TcpConnection.accept_syn(s, cfg, random.Random(2), now)
            else:
                b.receive(s, now)
        if b is not None:
            for s in b.packets_to_send(now):
                a.receive(s, now)
            if a.state is TcpState.ESTABLISHED and b.state is TcpState.ESTABLISHED:
                break
    if b is None or b.state is not TcpState.ESTABLISHED:
        raise BenchError("TCP handshake did not complete")
    return _pump(a, b, a.send, b.read, pattern, clk, "ours (segments)")


def _pump(a: Any, b: Any, send: Callable[[Any], int], read: Callable[[], bytes],
          pattern: Pattern, clk: Clock, who: str) -> Transfer:
    """The timed transfer, the same for Stacks (bytes) and bare connections (Segments): ``a``
    sends, ``b`` receives; each packet of a burst is handed over and ``b`` polled after it."""
    total = pattern.total
    h = hashlib.sha256()
    sent = got = fwd = rev = waits = 0
    update = h.update
    a_out, b_out, a_in, b_in = a.packets_to_send, b.packets_to_send, a.receive, b.receive
    t0 = time.process_time()
    while got < total:
        now = clk()
        while sent < total:
            n = send(pattern.chunk(sent, BUFFER))
            if not n:
                break
            sent += n
        burst = a_out(now)
        for p in burst:
            b_in(p, now)
            for q in b_out(now):
                a_in(q, now)
                rev += 1
        fwd += len(burst)
        data = read()
        if data:
            update(data)
            got += len(data)
            for q in b_out(now):
                a_in(q, now)
                rev += 1
        elif not burst:
            waits += 1
            deadline = min((t for t in (a.get_timer(), b.get_timer()) if t is not None),
                           default=None)
            now = _wait(clk, deadline)
            a.handle_timer(now)
            b.handle_timer(now)
    seconds = time.process_time() - t0
    _check(h.digest(), pattern, who)
    return Transfer(seconds, total, fwd, rev, waits)


def _check(digest: bytes, pattern: Pattern, who: str) -> None:
    if digest != pattern.digest:
        raise BenchError(f"{who}: the receiver's SHA-256 differs from the sender's")


# ----------------------------------------------------------------------------- aioquic ------
def _self_signed() -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.invalid")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def quic_transfer(pattern: Pattern, *, datagram_size: int = 1472,
                  clock: str = "real") -> Transfer:
    """The same transfer over one aioquic stream (see the module docstring)."""
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import HandshakeCompleted, StreamDataReceived

    cert, key = _self_signed()
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=["bench"],
                             max_datagram_size=datagram_size, verify_mode=ssl.CERT_NONE,
                             server_name="bench.invalid")
    scfg = QuicConfiguration(is_client=False, alpn_protocols=["bench"],
                             max_datagram_size=datagram_size)
    scfg.certificate = cert
    scfg.private_key = key
    addr_c, addr_s = ("10.0.0.1", 40000), ("10.0.0.2", 443)
    clk = _clock(clock)
    client = QuicConnection(configuration=ccfg)
    server = QuicConnection(configuration=scfg,
                            original_destination_connection_id=
                            client.original_destination_connection_id)
    client.connect(addr_s, clk())
    ready = [False, False]
    total = pattern.total
    h = hashlib.sha256()
    got = 0

    def drain() -> None:
        nonlocal got
        while (ev := client.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                ready[0] = True
        while (ev := server.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                ready[1] = True
            elif isinstance(ev, StreamDataReceived):
                h.update(ev.data)
                got += len(ev.data)

    for _ in range(100):  # handshake (not timed)
        now = clk()
        for d, _a in client.datagrams_to_send(now):
            server.receive_datagram(d, addr_c, now)
        for d, _a in server.datagrams_to_send(now):
            client.receive_datagram(d, addr_s, now)
        drain()
        if all(ready):
            break
    if not all(ready):
        raise BenchError("QUIC handshake did not complete")
    sid = client.get_next_available_stream_id()
    sent = fwd = rev = waits = 0
    c_out, s_out = client.datagrams_to_send, server.datagrams_to_send
    c_in, s_in = client.receive_datagram, server.receive_datagram
    write = client.send_stream_data
    t0 = time.process_time()
    while got < total:
        now = clk()
        while sent < total and sent - got < BUFFER:  # one flow-control window ahead
            chunk = pattern.chunk(sent, BUFFER - (sent - got))
            sent += len(chunk)
            write(sid, cast(bytes, chunk), end_stream=sent >= total)  # it takes any buffer
        burst = c_out(now)
        for d, _a in burst:
            s_in(d, addr_c, now)
            for q, _b in s_out(now):
                c_in(q, addr_s, now)
                rev += 1
        fwd += len(burst)
        before = got
        drain()
        if got == before and not burst:
            waits += 1
            deadline = min((t for t in (client.get_timer(), server.get_timer())
                            if t is not None), default=None)
            now = _wait(clk, deadline)
            for conn in (client, server):
                t = conn.get_timer()
                if t is not None and t <= now:
                    conn.handle_timer(now)
    seconds = time.process_time() - t0
    _check(h.digest(), pattern, "aioquic")
    return Transfer(seconds, total, fwd, rev, waits)


# ----------------------------------------------------------------------------- driver -------
def _median(values: list[float]) -> float:
    return statistics.median(values)


def run_engine_bench(total: int = 200_000_000, runs: int = 3, *, gso: bool = True,
                     quic_default_size: bool = True, clock: str = "real",
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every configuration ``runs`` times, interleaved; medians and each run's numbers."""
    try:
        import aioquic  # noqa: F401
    except ImportError as exc:
        raise BenchError("aioquic is needed: pip install 'mptcp-lab[bench]'") from exc
    pattern = Pattern(total)
    cases: list[tuple[str, Callable[[], Transfer]]] = [
        ("ours", lambda: tcp_transfer(pattern, wire=True, clock=clock)),
        ("ours_segments", lambda: tcp_transfer(pattern, wire=False, clock=clock)),
        ("aioquic", lambda: quic_transfer(pattern, datagram_size=1472, clock=clock)),
    ]
    if quic_default_size:
        cases.append(("aioquic_1200",
                      lambda: quic_transfer(pattern, datagram_size=1200, clock=clock)))
    if gso:
        cases.append(("ours_gso", lambda: tcp_transfer(pattern, gso=True, wire=True,
                                                        clock=clock)))
        cases.append(("ours_gso_segments", lambda: tcp_transfer(pattern, gso=True, wire=False,
                                                                 clock=clock)))
    per_run: list[dict[str, Transfer]] = []
    for i in range(runs):
        done: dict[str, Transfer] = {}
        for name, fn in cases:
            done[name] = fn()
            if progress is not None:
                t = done[name]
                progress(f"run {i + 1}/{runs} {name:18} {t.mbit_per_s:8.1f} Mbit/s "
                         f"{t.packets_per_s:9.0f} pkt/s ({t.seconds:.2f} s)")
        per_run.append(done)

    def med(name: str, attr: str) -> float:
        return _median([getattr(r[name], attr) for r in per_run])

    def ratio(ours: str, theirs: str) -> float:
        return _median([r[ours].mbit_per_s / r[theirs].mbit_per_s for r in per_run])

    result: dict[str, Any] = {
        "bytes": total,
        "runs": runs,
        "clock": clock,
        "aioquic_packets_per_s": round(med("aioquic", "packets_per_s")),
        "aioquic_mbit_per_s": round(med("aioquic", "mbit_per_s"), 1),
        "mss1460_segments_per_s": round(med("ours", "packets_per_s")),
        "mss1460_mbit_per_s": round(med("ours", "mbit_per_s"), 1),
        "mss1460_ratio": round(ratio("ours", "aioquic"), 2),
        "mss1460_objects_segments_per_s": round(med("ours_segments", "packets_per_s")),
        "mss1460_objects_mbit_per_s": round(med("ours_segments", "mbit_per_s"), 1),
        "mss1460_objects_ratio": round(ratio("ours_segments", "aioquic"), 2),
    }
    if quic_default_size:
        result["aioquic_1200_packets_per_s"] = round(med("aioquic_1200", "packets_per_s"))
        result["aioquic_1200_mbit_per_s"] = round(med("aioquic_1200", "mbit_per_s"), 1)
        result["mss1460_ratio_vs_aioquic_1200"] = round(ratio("ours", "aioquic_1200"), 2)
    if gso:
        result["gso_segments_per_s"] = round(med("ours_gso", "packets_per_s"))
        result["gso_mbit_per_s"] = round(med("ours_gso", "mbit_per_s"), 1)
        result["gso_ratio"] = round(ratio("ours_gso", "aioquic"), 2)
        result["gso_objects_mbit_per_s"] = round(med("ours_gso_segments", "mbit_per_s"), 1)
        result["gso_objects_ratio"] = round(ratio("ours_gso_segments", "aioquic"), 2)
    # The headline: MSS 1460 as bytes when it reaches 2x aioquic, else the super-segments
    # (as bytes too); both are always reported.
    head = "mss1460" if not gso or result["mss1460_ratio"] >= 2 else "gso"
    result["headline"] = head
    result["segments_per_s"] = result[f"{head}_segments_per_s"]
    result["mbit_per_s"] = result[f"{head}_mbit_per_s"]
    result["ratio"] = result[f"{head}_ratio"]
    result["per_run"] = [
        {name: {"seconds": round(t.seconds, 3), "mbit_per_s": round(t.mbit_per_s, 1),
                "packets_per_s": round(t.packets_per_s), "data_packets": t.data_packets,
                "reverse_packets": t.reverse_packets, "timer_waits": t.timer_waits}
         for name, t in r.items()}
        for r in per_run
    ]
    return result
