"""``mptcp-lab connect HOST PORT`` and ``mptcp-lab serve PORT``: netcat/iperf-like endpoints of
our userspace TCP over a real driver (TUN or raw sockets), for experiments against the Linux
kernel (``ip netns exec NS mptcp-lab ...``).

Both ends speak the payload of :mod:`interop.payload` (a seeded 1 MiB block repeated), like the
kernel peer :mod:`interop.linux_peer`, so either side can check the other's SHA-256 without
exchanging data.  Modes: ``source`` (send ``--bytes`` / ``--file`` / for ``--duration``, then
FIN, then read to EOF), ``sink`` (read to EOF, then close), ``duplex`` (both at once), ``echo``
(send back what arrives).  ``--json`` prints JSON lines (``listening``, ``connected``,
``progress`` each second or ``--progress-interval``, ``done``: the same fields as the kernel
peer's, plus the stack's MIB counters and connection info; with ``--mptcp`` also the
per-subflow counters ``subflows``, the ``mptcp_events`` and ``mptcp_event`` / ``action``
lines); without it a progress line per second goes to stderr and a summary to stdout.

Multipath MPTCP (RFC 8684 §3.2-§3.4): path-manager endpoints, limits and routes, the
scheduler, flag C and scripted ADD_ADDR / REMOVE_ADDR / MP_PRIO / MP_JOIN actions
(:mod:`interop.lab_multipath`); the stack owns every address they use.

Drivers: ``--driver tun`` creates a TUN device (``--ifname``) with the kernel-side address
``--tun-addr A/LEN`` (the stack uses ``--local``, another address of that subnet), plus
``--route`` entries; virtio-net offloads (checksum, TSO) unless ``--no-offload``.
``--driver raw`` uses ``--local``, an address the kernel has on ``--ifname``, with raw sockets
and an nftables rule keeping the kernel's TCP away from our ports.  Middlewares: ``--pcap FILE``
(every packet in and out), ``--trace FILE`` (JSON-lines), ``--delay/--loss/--rate``
(userspace impairment, both directions: this kernel has no netem).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import json
import random
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import trio

from interop.lab_multipath import (
    EventLog,
    add_multipath_args,
    build_pm,
    datalevel_state,
    owned_addresses,
    run_actions,
    subflow_bytes,
)
from interop.payload import Hasher, PatternSource, expected_sha256
from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.io.driver import Driver, DriverError
from mptcp.io.runner import StackRunner
from mptcp.io.stream import TcpStream, open_tcp_stream, serve_tcp
from mptcp.stack import MptcpStack
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import TcpState

__all__ = ["add_lab_parsers", "build_driver", "stack_config", "run_endpoint"]

_UNLIMITED = 1 << 62
_RECV_MAX = 1 << 20


def _size(text: str) -> int:
    """``100M``, ``1G``, ``512k`` or plain bytes (powers of 1000, like iperf's lower case)."""
    t = text.strip().lower()
    mult = {"k": 10**3, "m": 10**6, "g": 10**9}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    try:
        n = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"negative size {text!r}")
    return n


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return v


def _prefix(text: str) -> tuple[str, int]:
    addr, _, plen = text.partition("/")
    return addr, int(plen or (24 if ":" not in addr else 64))


def build_driver(args: argparse.Namespace) -> Driver:
    """The driver (and middlewares) ``args`` ask for."""
    driver: Driver
    if args.driver == "tun":
        from mptcp.io.tun import TunDriver

        if not args.tun_addr:
            raise DriverError("--driver tun needs --tun-addr (the kernel side, e.g. 10.0.2.1/24)")
        driver = TunDriver(args.ifname or "mlab0", addresses=[_prefix(a) for a in args.tun_addr],
                           routes=list(args.route), mtu=args.mtu, offload=not args.no_offload)
    else:
        from mptcp.io.raw import RawDriver

        if not args.ifname:
            raise DriverError("--driver raw needs --ifname (the interface that has --local)")
        driver = RawDriver(args.ifname, [a for a in args.local])
    if args.delay or args.loss or args.rate:
        from mptcp.io.middleware import ImpairMiddleware, ImpairParams

        p = ImpairParams(delay=args.delay / 1000.0, loss=args.loss / 100.0,
                         rate_bps=args.rate * 1e6)
        driver = ImpairMiddleware(driver, rng=random.Random(args.seed), tx=p, rx=p)
    if args.trace:
        from mptcp.io.middleware import TraceMiddleware

        driver = TraceMiddleware(driver, open(args.trace, "w"))  # noqa: SIM115 (closed with it)
    if args.pcap:
        from mptcp.io.middleware import PcapMiddleware

        driver = PcapMiddleware(driver, args.pcap)
    return driver


def stack_config(args: argparse.Namespace, driver: Driver) -> TcpConfig:
    """TCP parameters for a fast local experiment: big buffers (window scaling), TSO-sized
    super-segments when the driver offloads, Linux's 200 ms minimum RTO unless told."""
    return TcpConfig(
        gso_size=args.gso_size if driver.tso and args.gso_size else None,
        send_buffer=args.buffer, recv_buffer=args.buffer, cc=args.cc,
        rto_min=args.rto_min, rto_initial=max(args.rto_min, 1.0),
    )


class _Meter:
    """Byte counters and the periodic progress report (``--progress-interval``, default 1 s).

    The JSON ``progress`` event has the fields of :mod:`interop.linux_peer`'s (``t``:
    CLOCK_MONOTONIC, comparable across processes and namespaces; ``bytes_in``: bytes read in
    order; ``bytes_out``: bytes the peer acknowledged -- at the data level for MPTCP;
    ``subflows``: how many, None for TCP) plus ``elapsed``, ``bytes_sent`` (written),
    ``bytes_received``, ``bps`` and, for MPTCP, ``subflow_bytes`` (per-subflow counters)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], json_mode: bool,
                 out: TextIO) -> None:
        self.sent = 0
        self.received = 0
        self.t0 = time.monotonic()
        self._last = (self.t0, 0)
        self._emit = emit
        self._json = json_mode
        self._out = out
        self.conn: Any = None

    def _acked(self) -> int:
        conn = self.conn
        if conn is None:
            return 0
        sendbuf = getattr(conn, "sendbuf", None)
        stats = getattr(sendbuf, "stats", None)
        if isinstance(stats, dict):  # MPTCP: bytes freed by DATA_ACKs
            return int(stats.get("acked", 0))
        unacked = max(0, conn.sendbuf.end - conn.snd_una) if sendbuf is not None else 0
        return max(0, self.sent - unacked)

    def tick(self) -> None:
        now = time.monotonic()
        t, moved = self._last
        total = self.sent + self.received
        rate = (total - moved) * 8 / max(now - t, 1e-9)
        self._last = (now, total)
        if self._json:
            subs = subflow_bytes(self.conn) if self.conn is not None else None
            ev: dict[str, Any] = {
                "event": "progress", "t": now, "elapsed": round(now - self.t0, 3),
                "bytes_in": self.received, "bytes_out": self._acked(),
                "bytes_sent": self.sent, "bytes_received": self.received, "bps": rate,
                "subflows": None if subs is None else sum(1 for sf in subs if not sf["closed"])}
            if subs is not None:
                ev["subflow_bytes"] = subs
                ev["datalevel"] = datalevel_state(self.conn)
            self._emit(ev)
        else:
            print(f"[{now - self.t0:6.1f} s] sent {self.sent / 1e6:10.1f} MB  received "
                  f"{self.received / 1e6:10.1f} MB  {rate / 1e6:9.1f} Mbit/s",
                  file=self._out, flush=True)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await trio.sleep(interval)
            self.tick()


class _FileSource:
    """A file's bytes, read sequentially (``window`` at the current position only), hashed on
    the way (the ``sha256_sent`` of a file transfer)."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 (closed at EOF / by close)
        self.size = _UNLIMITED
        self.hasher = Hasher(True)

    def window(self, pos: int, length: int) -> bytes:
        data = self._f.read(length)
        if not data:
            self.size = pos
            self._f.close()
        self.hasher.update(data)
        return data

    def close(self) -> None:
        self._f.close()


class Aborted(Exception):
    """``--abort-after``: the endpoint aborted on purpose (RST; MP_FASTCLOSE with MPTCP)."""


async def _send_source(stream: TcpStream, src: PatternSource | _FileSource,
                       deadline: float | None, meter: _Meter, chunk: int,
                       abort_after: int = 0) -> None:
    pos = 0
    while pos < src.size and (deadline is None or time.monotonic() < deadline):
        if abort_after:
            chunk = min(chunk, abort_after - pos)
        view = src.window(pos, chunk)
        if not view:
            break
        await stream.send_all(view)
        pos += len(view)
        meter.sent = pos
        if abort_after and pos >= abort_after:
            stream.abort()
            raise Aborted(f"aborted after {pos} bytes")
    await stream.send_eof()


async def _recv_all(stream: TcpStream, hasher: Hasher, meter: _Meter,
                    echo: bool = False) -> None:
    while True:
        data = await stream.receive_some(_RECV_MAX)
        if not data:
            return
        hasher.update(data)
        meter.received = hasher.count
        if echo:
            await stream.send_all(data)
            meter.sent = hasher.count


_DONE_STATES = (TcpState.FIN_WAIT_2, TcpState.TIME_WAIT, TcpState.CLOSED)


async def _linger(stream: TcpStream) -> None:
    """Wait until the peer has acknowledged everything, our FIN included (the process, and
    with it the TUN device or raw sockets, may end right after)."""
    conn = stream.connection
    while conn.state not in _DONE_STATES:
        await trio.sleep(0.005)


async def run_endpoint(stream: TcpStream, args: argparse.Namespace, meter: _Meter
                       ) -> dict[str, Any]:
    """One connection in ``args.mode``; the ``done`` fields (errors go to ``error``)."""
    rx = Hasher(not args.no_hash)
    src: PatternSource | _FileSource | None = None
    if args.mode in ("source", "duplex"):
        if args.file:
            src = _FileSource(args.file)
        else:
            size = args.bytes if args.bytes or args.duration is None else _UNLIMITED
            src = PatternSource(args.seed, size)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    error: str | None = None
    t0 = time.monotonic()
    c0 = time.process_time()
    try:
        if args.mode == "sink":
            await _recv_all(stream, rx, meter)
        elif args.mode == "echo":
            await _recv_all(stream, rx, meter, echo=True)
            await stream.send_eof()
        elif args.mode == "source":
            assert src is not None
            await _send_source(stream, src, deadline, meter, args.chunk, args.abort_after)
            await _recv_all(stream, rx, meter)
        else:
            assert src is not None
            async with trio.open_nursery() as n:
                n.start_soon(_send_source, stream, src, deadline, meter, args.chunk)
                await _recv_all(stream, rx, meter)
        with trio.move_on_after(args.timeout):
            await stream.aclose()
            await _linger(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, Aborted) as e:
        error = f"{type(e).__name__}: {e}"
        stream.abort()
        await trio.sleep(0.05)  # let the RST (with MP_FASTCLOSE) leave before we exit
    finally:
        if isinstance(src, _FileSource):
            src.close()
    seconds = time.monotonic() - t0
    cpu = time.process_time() - c0
    sent = meter.sent
    moved = sent + rx.count
    sha_sent: str | None = None
    if isinstance(src, _FileSource):
        sha_sent = src.hasher.hexdigest()
    elif not args.no_hash:
        sha_sent = rx.hexdigest() if args.mode == "echo" else expected_sha256(args.seed, sent)
    conn: Any = stream.connection
    done: dict[str, Any] = {
        "event": "done", "mode": args.mode, "bytes_sent": sent, "sha256_sent": sha_sent,
        "bytes_received": rx.count, "sha256_received": rx.hexdigest(), "seconds": seconds,
        "goodput_bps": moved * 8 / seconds if seconds > 0 else 0.0, "cpu_seconds": cpu,
        "error": error, "mptcp": None,
        "tcp": {k: v for k, v in conn.info().items() if isinstance(v, (int, float, str))},
        "mib": {k: v for k, v in conn.mib.items() if v},
    }
    if isinstance(conn, MptcpConnection):
        info = conn.info()
        done["mptcp"] = {k: v for k, v in info.items() if k != "subflow"}
        sub = info.get("subflow")
        if isinstance(sub, dict):
            done["tcp"] = {k: v for k, v in sub.items() if isinstance(v, (int, float, str))}
        done["mib"].update({k: v for k, v in conn.stack.tcp.mib.items() if v})
        done["subflows"] = conn.subflows_info()
        done["remote_addrs"] = {str(i): [str(ipaddress.ip_address(a)), p]
                                for i, (a, p) in conn.remote_addrs.items()}
    return done


def _emitter(json_mode: bool) -> Callable[[dict[str, Any]], None]:
    def emit(ev: dict[str, Any]) -> None:
        if json_mode:
            print(json.dumps(ev), flush=True)
    return emit


def _summary(done: dict[str, Any]) -> None:
    print(f"sent {done['bytes_sent']:,} B sha256 {done['sha256_sent']}")
    print(f"received {done['bytes_received']:,} B sha256 {done['sha256_received']}")
    print(f"{done['seconds']:.2f} s, goodput {done['goodput_bps'] / 1e6:.1f} Mbit/s, "
          f"CPU {done['cpu_seconds']:.2f} s, retransmitted segments "
          f"{done['mib'].get('TcpRetransSegs', 0)}")
    if done["error"]:
        print(f"error: {done['error']}")


def _find_tracer(driver: Driver) -> Any:
    """The TraceMiddleware in the driver chain (``--trace``), which also logs the runner's
    connection events, or None."""
    from mptcp.io.middleware import Middleware, TraceMiddleware

    d: Any = driver
    while isinstance(d, Middleware):
        if isinstance(d, TraceMiddleware):
            return d
        d = d.inner
    return None


def _multipath_error(args: argparse.Namespace) -> str | None:
    """Why the multipath options cannot apply (they need ``--mptcp``), or None."""
    used = [name for name, on in (
        ("--endpoint", args.endpoint), ("--limits", args.limits), ("--pm-route", args.pm_route),
        ("--at", args.at), ("--no-join-initial", args.no_join_initial),
        ("--scheduler", args.scheduler != "minrtt")) if on]
    if used and not args.mptcp:
        return f"{', '.join(used)}: only with --mptcp"
    return None


async def _with_stack(args: argparse.Namespace,
                      body: Callable[[StackRunner, _Meter, EventLog], Any]) -> int:
    emit = _emitter(args.json)
    problem = _multipath_error(args)
    pm = None
    if problem is None and args.mptcp:
        try:
            pm = build_pm(args)
        except ValueError as e:
            problem = f"path manager: {e}"
    if problem is not None:
        emit({"event": "done", "error": problem})
        print(f"mptcp-lab: {problem}", file=sys.stderr)
        return 2
    try:
        driver = build_driver(args)
    except (DriverError, OSError, ImportError) as e:
        emit({"event": "done", "error": f"driver: {e}"})
        print(f"mptcp-lab: cannot set up the driver: {e}", file=sys.stderr)
        return 2
    try:
        rng = random.Random(args.seed if args.deterministic else secrets.randbits(64))
        stack: Any
        if args.mptcp:
            stack = MptcpStack(owned_addresses(args), rng, config=stack_config(args, driver),
                               mptcp=MptcpConfig(checksums=args.checksums,
                                                 send_buffer=args.buffer,
                                                 recv_buffer=args.buffer,
                                                 scheduler=args.scheduler,
                                                 no_join_to_initial=args.no_join_initial),
                               csum_offload=driver.csum_offload, pm=pm)
        else:
            stack = Stack(args.local, rng, config=stack_config(args, driver),
                          csum_offload=driver.csum_offload)
        meter = _Meter(emit, args.json, sys.stderr)
        log = EventLog(_find_tracer(driver), emit if args.json else lambda ev: None)
        async with StackRunner(stack, driver, tracer=log) as runner:
            status: int = await body(runner, meter, log)
        return status
    finally:
        driver.close()


def _progress_on(args: argparse.Namespace) -> bool:
    return args.progress_interval is not None or not args.quiet


async def _per_connection(stream: TcpStream, runner: StackRunner, args: argparse.Namespace,
                          meter: _Meter, log: EventLog) -> dict[str, Any]:
    """One connection with its progress reports and scripted actions; the ``done`` event."""
    meter.conn = stream.connection
    async with trio.open_nursery() as n:
        if _progress_on(args):
            n.start_soon(meter.run, args.progress_interval or 1.0)
        if args.at:
            n.start_soon(run_actions, stream.connection, runner.poke, list(args.at),
                         _emitter(args.json), args.timeout)
        done = await run_endpoint(stream, args, meter)
        n.cancel_scope.cancel()
    if _progress_on(args):
        meter.tick()  # the final counts
    if args.mptcp:
        done["mptcp_events"] = log.of(stream.handle.name())
    return done


async def _connect(args: argparse.Namespace) -> int:
    async def body(runner: StackRunner, meter: _Meter, log: EventLog) -> int:
        emit = _emitter(args.json)
        try:
            with trio.fail_after(args.timeout):
                stream = await open_tcp_stream(args.host, args.port, stack=runner,
                                               local=(args.local[0], 0))
        except (OSError, trio.TooSlowError) as e:
            emit({"event": "done", "error": f"connect: {type(e).__name__}: {e}"})
            print(f"mptcp-lab: connect failed: {e}", file=sys.stderr)
            return 1
        emit({"event": "connected", "local": list(stream.local), "remote": list(stream.remote)})
        done = await _per_connection(stream, runner, args, meter, log)
        done["role"] = "client"
        done["runner"] = runner.stats.as_dict()
        emit(done)
        if not args.json:
            _summary(done)
        return 0 if done["error"] is None else 1
    return await _with_stack(args, body)


async def _serve(args: argparse.Namespace) -> int:
    async def body(runner: StackRunner, meter: _Meter, log: EventLog) -> int:
        emit = _emitter(args.json)
        results: list[dict[str, Any]] = []
        finished = trio.Event()

        async def handler(stream: TcpStream) -> None:
            emit({"event": "connected", "local": list(stream.local),
                  "remote": list(stream.remote)})
            m = _Meter(emit, args.json, sys.stderr)
            done = await _per_connection(stream, runner, args, m, log)
            done["role"] = "server"
            done["runner"] = runner.stats.as_dict()
            emit(done)
            if not args.json:
                _summary(done)
            results.append(done)
            if args.count and len(results) >= args.count:
                finished.set()

        async with trio.open_nursery() as n:
            lh = await n.start(functools.partial(serve_tcp, handler, args.port, stack=runner))
            emit({"event": "listening", "port": lh.port})
            if not args.json:
                print(f"listening on port {lh.port}", file=sys.stderr, flush=True)
            await finished.wait()
            n.cancel_scope.cancel()
        return 0 if all(r["error"] is None for r in results) else 1

    return await _with_stack(args, body)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--driver", choices=("tun", "raw"), default="tun")
    p.add_argument("--local", action="append", required=True, metavar="ADDR",
                   help="the stack's own address (repeatable)")
    p.add_argument("--ifname", help="TUN device to create / interface for raw sockets")
    p.add_argument("--tun-addr", action="append", default=[], metavar="A/LEN",
                   help="kernel-side address of the TUN device (repeatable)")
    p.add_argument("--route", action="append", default=[], metavar="DST/LEN",
                   help="extra kernel route through the TUN device")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--no-offload", action="store_true", help="TUN without checksum/TSO offload")
    p.add_argument("--gso-size", type=int, default=65000,
                   help="super-segment size with TSO (0: one MSS per packet)")
    p.add_argument("--buffer", type=_size, default=8 << 20, help="send/receive buffer bytes")
    p.add_argument("--cc", default="cubic", choices=("cubic", "reno"))
    p.add_argument("--rto-min", type=float, default=0.2, help="minimum RTO, seconds")
    p.add_argument("--mode", choices=("source", "sink", "duplex", "echo"))
    p.add_argument("--bytes", type=_size, default=0, help="bytes to send (source, duplex)")
    p.add_argument("--duration", type=float, default=None, help="send for this many seconds")
    p.add_argument("--file", help="send this file's bytes instead of the pattern")
    p.add_argument("--seed", type=int, default=0, help="payload pattern seed")
    p.add_argument("--deterministic", action="store_true",
                   help="seed the stack's randomness (ISN, ports) from --seed")
    p.add_argument("--chunk", type=_size, default=1 << 20, help="bytes per send_all call")
    p.add_argument("--no-hash", action="store_true", help="count bytes only (benchmarks)")
    p.add_argument("--timeout", type=float, default=30.0, help="connect / close timeout")
    p.add_argument("--pcap", help="write every packet in and out to this pcap")
    p.add_argument("--trace", help="write JSON-lines packet/event trace here")
    p.add_argument("--delay", type=float, default=0.0, help="userspace delay, ms, each way")
    p.add_argument("--loss", type=float, default=0.0, help="userspace loss, percent, each way")
    p.add_argument("--rate", type=float, default=0.0, help="userspace rate limit, Mbit/s")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines (unless --progress-interval is given)")
    p.add_argument("--progress-interval", type=_positive, metavar="S",
                   help="a progress report every S seconds (default 1)")
    p.add_argument("--mptcp", action="store_true", help="speak MPTCP v1 (RFC 8684)")
    p.add_argument("--abort-after", type=_size, default=0,
                   help="source: abort after sending this many bytes (RST; MP_FASTCLOSE "
                        "with --mptcp)")
    p.add_argument("--checksums", action="store_true",
                   help="with --mptcp: request DSS checksums (MP_CAPABLE flag A)")
    add_multipath_args(p)


def _run(fn: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        if args.mode is None:
            args.mode = args.mode_default
        with contextlib.suppress(KeyboardInterrupt):
            status: int = trio.run(fn, args)
            return status
        return 130
    return handler


def add_lab_parsers(sub: Any) -> None:
    """Register ``connect`` and ``serve`` on the ``mptcp-lab`` parser."""
    c = sub.add_parser("connect", help="connect to HOST PORT with our userspace TCP and "
                                       "send/receive (iperf-like)")
    c.add_argument("host")
    c.add_argument("port", type=int)
    _common(c)
    c.set_defaults(handler=_run(_connect), count=1)
    s = sub.add_parser("serve", help="serve PORT with our userspace TCP (iperf-like)")
    s.add_argument("port", type=int)
    s.add_argument("--count", type=int, default=0,
                   help="exit after this many connections (0: serve forever)")
    _common(s)
    s.set_defaults(handler=_run(_serve))
    c.set_defaults(mode_default="source")
    s.set_defaults(mode_default="sink")
