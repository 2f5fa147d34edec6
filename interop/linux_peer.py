"""A Linux kernel TCP / MPTCP endpoint for interop tests and benchmark baselines.

Run as ``python -m interop.linux_peer server|client --host H --port P --mode
sink|source|echo|duplex --bytes N --seed S [--mptcp] [--no-hash] [--duration SEC]
[--timeout SEC]``.  It opens ``socket(AF_INET/AF_INET6, SOCK_STREAM, IPPROTO_TCP or
IPPROTO_MPTCP)`` (MPTCP socket API: kernel Documentation/networking/mptcp.rst, RFC 8684 §3),
serves or makes ONE connection and prints JSON lines on stdout:

- ``{"event": "listening", "host", "port", "pid", "mptcp"}`` (server, as soon as it listens);
- ``{"event": "connected", "local", "remote"}``;
- ``{"event": "done", "bytes_sent", "sha256_sent", "bytes_received", "sha256_received",
  "seconds", "goodput_bps", "cpu_seconds", "error", "mptcp", "tcp_info", ...}``.

Modes: ``sink`` reads until EOF; ``source`` sends ``--bytes`` of the :mod:`interop.payload`
stream (or for ``--duration`` seconds), shuts its write side down (RFC 9293 §3.6 FIN) and reads
until EOF; ``echo`` sends back what arrives; ``duplex`` sends and receives at the same time.

``mptcp`` reports ``getsockopt(SOL_MPTCP, MPTCP_INFO)`` (``struct mptcp_info``,
include/uapi/linux/mptcp.h; fields decoded up to the length the kernel returns) and
``getsockopt(SOL_TCP, TCP_IS_MPTCP)``, taken before close; ``tcp_info`` a few fields of
``struct tcp_info`` (include/uapi/linux/tcp.h), among them the total retransmissions.

Subflows (RFC 8684 §3.2): an MPTCP ``done`` also has ``subflows`` (:func:`mptcp_full_info`,
sampled before close), ``subflows_max`` and ``subflows_seen`` (most at once / last sample of each,
from a sampler thread, ``--sample-interval``).  ``--progress-interval SEC`` adds ``{"event":
"progress", "t" (CLOCK_MONOTONIC), "bytes_in", "bytes_out", "subflows"}`` events (in-order bytes
received / bytes acked, at the MPTCP data level with ``--mptcp``) to time stalls
(:func:`interop.topology.progress_stall`).  An MPTCP server keeps listening until it is done:
MP_JOINs to its port need the listener (listen on the wildcard address for joins to the host's
other addresses, or let the path manager signal them with a port).

Speed: the sink ``recv_into``-s a preallocated buffer, the source ``send``-s 1 MiB
``memoryview`` windows of the pattern; with ``--no-hash`` nothing touches the bytes in Python.
Idle timeouts use ``SO_RCVTIMEO``/``SO_SNDTIMEO`` so the sockets stay plain blocking ones.

:class:`LinuxPeer` starts the endpoint as a subprocess, optionally inside a network namespace
(``ip netns exec``), and collects its events.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from interop.payload import Hasher, PatternSource, expected_sha256

__all__ = [
    "IPPROTO_MPTCP", "SOL_MPTCP", "MPTCP_INFO", "TCP_IS_MPTCP",
    "MODES", "PeerError", "PeerResult", "LinuxPeer",
    "decode_mptcp_info", "decode_tcp_info", "run_endpoint", "main",
    "MPTCP_FULL_INFO", "mptcp_full_info",
]

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_FULL_INFO = 4
SOL_TCP = 6
TCP_INFO = 11
TCP_IS_MPTCP = 43
MPTCP_INFO_FLAG_FALLBACK = 1
MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED = 2

MODES = ("sink", "source", "echo", "duplex")
Role = Literal["server", "client"]
Mode = Literal["sink", "source", "echo", "duplex"]

_RECV_BUF = 4 << 20
_UNLIMITED = 1 << 62
_REPO_ROOT = Path(__file__).resolve().parents[1]


class PeerError(Exception):
    """The kernel peer could not be started, failed, or did not finish in time."""


# ---------------------------------------------------------------------------------------------
# socket option decoding

# struct mptcp_info (include/uapi/linux/mptcp.h), natural alignment; fields grouped by the
# kernel release that added them.  (name, struct format, offset)
_MPTCP_INFO_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("subflows", "B", 0), ("add_addr_signal", "B", 1), ("add_addr_accepted", "B", 2),
    ("subflows_max", "B", 3), ("add_addr_signal_max", "B", 4),
    ("add_addr_accepted_max", "B", 5), ("flags", "I", 8), ("token", "I", 12),
    ("write_seq", "Q", 16), ("snd_una", "Q", 24), ("rcv_nxt", "Q", 32),       # v5.9
    ("local_addr_used", "B", 40), ("local_addr_max", "B", 41),                 # v5.12
    ("csum_enabled", "B", 42),                                                 # v5.14
    ("retransmits", "I", 44), ("bytes_retrans", "Q", 48), ("bytes_sent", "Q", 56),
    ("bytes_received", "Q", 64), ("bytes_acked", "Q", 72),                     # v6.5
    ("subflows_total", "B", 80),                                               # v6.8
    ("last_data_sent", "I", 84), ("last_data_recv", "I", 88),
    ("last_ack_recv", "I", 92),                                                # v6.10
)

# struct tcp_info (include/uapi/linux/tcp.h): the fields worth a benchmark report.
_TCP_INFO_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("state", "B", 0), ("ca_state", "B", 1), ("snd_mss", "I", 16), ("rcv_mss", "I", 20),
    ("lost", "I", 32), ("retrans", "I", 36), ("pmtu", "I", 60), ("rtt_us", "I", 68),
    ("rttvar_us", "I", 72), ("snd_ssthresh", "I", 76), ("snd_cwnd", "I", 80),
    ("reordering", "I", 88), ("total_retrans", "I", 100), ("bytes_acked", "Q", 120),
    ("bytes_received", "Q", 128), ("segs_out", "I", 136), ("segs_in", "I", 140),
    ("delivered_ce", "I", 196), ("bytes_sent", "Q", 200), ("bytes_retrans", "Q", 208),
)


def _decode_fields(raw: bytes, fields: tuple[tuple[str, str, int], ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, fmt, off in fields:
        size = struct.calcsize(fmt)
        if off + size <= len(raw):
            out[name] = struct.unpack_from("=" + fmt, raw, off)[0]
    return out


def decode_mptcp_info(raw: bytes) -> dict[str, Any]:
    """Fields of ``struct mptcp_info`` present in ``raw`` (the kernel returns as many bytes as
    it knows, older kernels fewer), plus the decoded flag bits."""
    info: dict[str, Any] = dict(_decode_fields(raw, _MPTCP_INFO_FIELDS))
    info["length"] = len(raw)
    flags = info.get("flags")
    if flags is not None:
        info["fallback"] = bool(flags & MPTCP_INFO_FLAG_FALLBACK)
        info["remote_key_received"] = bool(flags & MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED)
    return info


def decode_tcp_info(raw: bytes) -> dict[str, int]:
    """A few fields of ``struct tcp_info`` (those present in ``raw``)."""
    return _decode_fields(raw, _TCP_INFO_FIELDS)


def _mptcp_report(sock: socket.socket) -> dict[str, Any]:
    """MPTCP_INFO and TCP_IS_MPTCP of a connected socket: ``is_mptcp`` False = fallback to
    TCP (RFC 8684 §3.7); on a fallen-back socket MPTCP_INFO fails and ``info_error`` says so."""
    rep: dict[str, Any] = {}
    try:
        rep["is_mptcp"] = bool(sock.getsockopt(SOL_TCP, TCP_IS_MPTCP))
    except OSError as e:
        rep["is_mptcp_error"] = str(e)
    try:
        rep.update(decode_mptcp_info(sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 256)))
    except OSError as e:
        rep["info_error"] = str(e)
        rep.setdefault("fallback", True)
    if rep.get("is_mptcp") is False:
        rep["fallback"] = True
    return rep


# struct mptcp_full_info (include/uapi/linux/mptcp.h): six u32 sizes/counts, the user pointers
# to the subflow_info and tcp_info arrays, then struct mptcp_info at offset 40.
_FULL_INFO_HDR = struct.Struct("=6IQQ")
_SFINFO_SIZE = 264  # struct mptcp_subflow_info: u32 id, pad, two 128-byte sockaddr_storage
_TCPINFO_USER = 256  # the kernel clamps to its sizeof(struct tcp_info)
_TCP_STATES = ("", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
               "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING")
_libc: Any = None


def _sockaddr(raw: bytes) -> str:
    """``struct sockaddr_in`` / ``sockaddr_in6`` (in a sockaddr_storage) as ``ip:port``."""
    fam, port = struct.unpack_from("=H", raw)[0], struct.unpack_from("!H", raw, 2)[0]
    if fam == socket.AF_INET6:
        return f"[{socket.inet_ntop(fam, raw[8:24])}]:{port}"
    return f"{socket.inet_ntop(fam, raw[4:8])}:{port}" if fam == socket.AF_INET else ""


def mptcp_full_info(sock: socket.socket, max_subflows: int = 8
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``getsockopt(SOL_MPTCP, MPTCP_FULL_INFO)`` (one socket lock): the decoded ``struct
    mptcp_info`` and per subflow ``id``, ``local`` / ``remote`` (``"ip:port"``, ``"[v6]:port"``),
    ``state_name`` and the :func:`decode_tcp_info` fields (``bytes_acked``, ``bytes_received``,
    ``bytes_sent``...).  OSError if the socket is not (or no longer) MPTCP."""
    global _libc
    _libc = _libc or ctypes.CDLL(None, use_errno=True)
    while True:
        sfinfo = ctypes.create_string_buffer(max_subflows * _SFINFO_SIZE)
        tcpinfo = ctypes.create_string_buffer(max_subflows * _TCPINFO_USER)
        head = _FULL_INFO_HDR.pack(0, _TCPINFO_USER, 0, _SFINFO_SIZE, 0, max_subflows,
                                   ctypes.addressof(sfinfo), ctypes.addressof(tcpinfo))
        buf = ctypes.create_string_buffer(head + bytes(256), len(head) + 256)
        optlen = ctypes.c_uint32(len(buf))
        if _libc.getsockopt(sock.fileno(), SOL_MPTCP, MPTCP_FULL_INFO, buf, ctypes.byref(optlen)):
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        _, tcp_sz, _, sf_sz, count, _, _, _ = _FULL_INFO_HDR.unpack_from(buf.raw)
        if count <= max_subflows:
            break
        max_subflows = count + 4  # more subflows than room: again
    info = decode_mptcp_info(buf.raw[_FULL_INFO_HDR.size:optlen.value])
    subflows: list[dict[str, Any]] = []
    for i in range(count):
        sf = sfinfo.raw[i * sf_sz:(i + 1) * sf_sz]
        entry: dict[str, Any] = {"id": struct.unpack_from("=I", sf)[0], "local": _sockaddr(
            sf[8:136]), "remote": _sockaddr(sf[136:264]),
            **decode_tcp_info(tcpinfo.raw[i * tcp_sz:(i + 1) * tcp_sz])}
        state = entry.get("state", 0)
        entry["state_name"] = _TCP_STATES[state] if state < len(_TCP_STATES) else str(state)
        subflows.append(entry)
    return info, subflows


class _Sampler:
    """A thread sampling a connected socket every ``interval`` s: progress events (if asked)
    and, for MPTCP, the subflows (the most at once, the last sample of each)."""

    def __init__(self, sock: socket.socket, mptcp: bool, interval: float, progress: bool) -> None:
        self.sock, self.mptcp, self.interval, self.progress = sock, mptcp, interval, progress
        self.max_subflows, self.error, self._stop = 0, "", threading.Event()
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}
        self.thread = threading.Thread(target=self._run, name="peer-sampler", daemon=True)

    def sample(self, final: bool = False) -> list[dict[str, Any]] | None:
        """One sample (and progress event if asked): the subflows (None: not MPTCP now)."""
        subs: list[dict[str, Any]] | None = None
        counters: dict[str, Any] = {}
        try:
            if self.mptcp:
                counters, subs = mptcp_full_info(self.sock)
                self.max_subflows = max(self.max_subflows, len(subs))
                for sf in subs:
                    self.seen[(sf["local"], sf["remote"])] = sf
            elif self.progress:
                counters = decode_tcp_info(self.sock.getsockopt(SOL_TCP, TCP_INFO, 256))
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"
            if self.progress and not final:  # (a closed fallback subflow reports zeros)
                with contextlib.suppress(OSError):  # a fallen-back MPTCP socket: TCP level
                    counters = decode_tcp_info(self.sock.getsockopt(SOL_TCP, TCP_INFO, 256))
        if self.progress and counters:
            _emit({"event": "progress", "t": time.monotonic(),
                   "bytes_in": counters.get("bytes_received", 0),
                   "bytes_out": counters.get("bytes_acked", 0),
                   "subflows": len(subs) if subs is not None else None})
        return subs

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join()


def _tcp_report(sock: socket.socket) -> dict[str, int] | None:
    try:
        return decode_tcp_info(sock.getsockopt(SOL_TCP, TCP_INFO, 256))
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# the endpoint (runs in the subprocess)


_EMIT_LOCK = threading.Lock()
_LISTENERS: list[socket.socket] = []


def _emit(obj: dict[str, Any]) -> None:
    with _EMIT_LOCK:  # the sampler thread emits too
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _set_idle_timeout(sock: socket.socket, seconds: float) -> None:
    """Kernel-side send/receive timeouts: a blocking socket whose calls fail with EAGAIN
    after ``seconds`` without progress (no per-call poll as with ``settimeout``)."""
    sec = int(seconds)
    tv = struct.pack("@ll", sec, int((seconds - sec) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def _open_connection(args: argparse.Namespace) -> socket.socket:
    proto = IPPROTO_MPTCP if args.mptcp else socket.IPPROTO_TCP
    fam = _family(args.host)
    deadline = time.monotonic() + args.timeout
    if args.role == "server":
        ls = socket.socket(fam, socket.SOCK_STREAM, proto)
        try:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((args.host, args.port))
            ls.listen(1)
            _LISTENERS.append(ls)
            _emit({"event": "listening", "host": args.host, "port": ls.getsockname()[1],
                   "pid": os.getpid(), "mptcp": bool(args.mptcp)})
            ls.settimeout(args.timeout)
            try:
                conn, _ = ls.accept()
            except TimeoutError:
                raise PeerError(f"no connection within {args.timeout} s") from None
        finally:  # with MPTCP, MP_JOINs to this port need the listener (RFC 8684 §3.2)
            if not args.mptcp:
                ls.close()
    else:
        while True:
            conn = socket.socket(fam, socket.SOCK_STREAM, proto)
            conn.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                conn.connect((args.host, args.port))
                break
            except (ConnectionRefusedError, TimeoutError) as e:
                conn.close()
                if time.monotonic() >= deadline:
                    raise PeerError(f"connect to {args.host}:{args.port}: {e}") from None
                time.sleep(0.05)
            except BaseException:
                conn.close()
                raise
    conn.settimeout(None)
    _set_idle_timeout(conn, args.timeout)
    return conn


def _recv_all(sock: socket.socket, hasher: Hasher, echo: bool = False) -> None:
    """Read until EOF into one preallocated buffer; ``echo`` sends every chunk back."""
    buf = bytearray(_RECV_BUF)
    view = memoryview(buf)
    recv_into = sock.recv_into
    if echo:
        sendall = sock.sendall
        while n := recv_into(buf):
            chunk = view[:n]
            hasher.update(chunk)
            sendall(chunk)
        return
    if not hasher.hashing:
        count = 0
        while n := recv_into(buf):
            count += n
        hasher.count += count
        return
    update = hasher.update
    while n := recv_into(buf):
        update(view[:n])


def _recv_then_abort(sock: socket.socket, hasher: Hasher, limit: int) -> None:
    """Read ``limit`` bytes, stop reading, let more arrive, then close with data unread: the
    kernel answers with a RST (TCP) or MP_FASTCLOSE (MPTCP, Linux ``__mptcp_close``)."""
    buf = bytearray(_RECV_BUF)
    view = memoryview(buf)
    while hasher.count < limit:
        n = sock.recv_into(buf, min(len(buf), limit - hasher.count))
        if not n:
            return
        hasher.update(view[:n])
    time.sleep(0.3)


def _send_pattern(sock: socket.socket, src: PatternSource, deadline: float | None) -> int:
    """Send ``src`` (until ``deadline`` if given); returns the bytes sent."""
    pos = 0
    size = src.size
    send = sock.send
    window = src.window
    if deadline is None:
        while pos < size:
            pos += send(window(pos))
    else:
        clock = time.monotonic
        while pos < size and clock() < deadline:
            pos += send(window(pos))
    return pos


def run_endpoint(args: argparse.Namespace) -> dict[str, Any]:
    """Run one connection as ``args`` say; returns the ``done`` event (never raises for
    network errors: they go to its ``error``)."""
    hash_on = not args.no_hash
    rx = Hasher(hash_on)
    sent = 0
    sent_box = [0]
    error: str | None = None
    mptcp_rep: dict[str, Any] | None = None
    tcp_rep: dict[str, int] | None = None
    seconds = 0.0
    cpu = 0.0
    sub_rep: dict[str, Any] = {}
    try:
        sock = _open_connection(args)
    except (OSError, PeerError) as e:
        error = f"{type(e).__name__}: {e}"
        sock = None
    if sock is not None:
        with sock:
            connected: dict[str, Any] = {
                "event": "connected", "local": list(sock.getsockname()[:2]),
                "remote": list(sock.getpeername()[:2])}
            if args.mptcp:
                connected["mptcp"] = _mptcp_report(sock)
            _emit(connected)
            progress = args.progress_interval is not None
            sampler = _Sampler(sock, args.mptcp, args.progress_interval or args.sample_interval,
                               progress)
            if progress or (args.mptcp and args.sample_interval > 0):
                sampler.thread.start()
            size = args.bytes if args.duration is None or args.bytes else _UNLIMITED
            src = PatternSource(args.seed, size)
            t0 = time.monotonic()
            c0 = time.process_time()
            deadline = None if args.duration is None else t0 + args.duration
            try:
                if args.mode == "sink" and args.abort_after:
                    _recv_then_abort(sock, rx, args.abort_after)
                    error = "aborted: closed with unread data"
                elif args.mode == "sink":
                    _recv_all(sock, rx)
                elif args.mode == "echo":
                    _recv_all(sock, rx, echo=True)
                    sent = rx.count
                    sock.shutdown(socket.SHUT_WR)
                elif args.mode == "source":
                    sent = _send_pattern(sock, src, deadline)
                    sock.shutdown(socket.SHUT_WR)
                    _recv_all(sock, rx)
                else:  # duplex: a sender thread while this one receives
                    errors: list[BaseException] = []

                    def _sender() -> None:
                        try:
                            sent_box[0] = _send_pattern(sock, src, deadline)
                            sock.shutdown(socket.SHUT_WR)
                        except BaseException as e:  # reported by the main thread
                            errors.append(e)

                    th = threading.Thread(target=_sender, name="peer-sender", daemon=True)
                    th.start()
                    try:
                        _recv_all(sock, rx)
                    finally:
                        th.join()
                    sent = sent_box[0]
                    if errors:
                        raise errors[0]
            except BlockingIOError:
                error = f"TimeoutError: no progress for {args.timeout} s"
            except OSError as e:
                error = f"{type(e).__name__}: {e}"
            finally:
                sampler.stop()
            seconds = time.monotonic() - t0
            cpu = time.process_time() - c0
            if args.mptcp:
                mptcp_rep = _mptcp_report(sock)
                subs = sampler.sample(final=True)
                sub_rep = {"subflows": subs, "subflows_max": sampler.max_subflows,
                           "subflows_seen": list(sampler.seen.values()),
                           "subflows_error": None if subs is not None else sampler.error or None}
            tcp_rep = _tcp_report(sock)
    for ls in _LISTENERS:
        ls.close()
    moved = max(sent, rx.count) if args.mode != "duplex" else sent + rx.count
    sha_sent: str | None = None
    if hash_on:
        sha_sent = rx.hexdigest() if args.mode == "echo" else expected_sha256(args.seed, sent)
    return {
        "event": "done", "role": args.role, "mode": args.mode,
        "bytes_sent": sent, "sha256_sent": sha_sent,
        "bytes_received": rx.count, "sha256_received": rx.hexdigest(),
        "seconds": seconds, "goodput_bps": moved * 8 / seconds if seconds > 0 else 0.0,
        "cpu_seconds": cpu, "error": error, "mptcp": mptcp_rep, "tcp_info": tcp_rep,
        **sub_rep,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m interop.linux_peer",
                                description="Linux kernel TCP/MPTCP test endpoint")
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--host", required=True, help="address to listen on / connect to")
    p.add_argument("--port", type=int, required=True, help="TCP port (server: 0 = any)")
    p.add_argument("--mode", choices=MODES, default="sink")
    p.add_argument("--bytes", type=int, default=0, help="bytes to send (source, duplex)")
    p.add_argument("--seed", type=int, default=0, help="payload pattern seed")
    p.add_argument("--mptcp", action="store_true", help="IPPROTO_MPTCP socket")
    p.add_argument("--no-hash", action="store_true", help="count bytes only (benchmarks)")
    p.add_argument("--duration", type=float, default=None,
                   help="send for this many seconds (with --bytes: whichever ends first)")
    p.add_argument("--abort-after", type=int, default=0,
                   help="sink: read this many bytes, then close with data unread (RST / "
                        "MP_FASTCLOSE)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="accept/connect timeout and idle I/O timeout, seconds")
    p.add_argument("--progress-interval", type=float, help="a progress event every SEC s")
    p.add_argument("--sample-interval", type=float, default=0.1,
                   help="MPTCP: sample the subflows every SEC s (0: only at the end)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.bytes < 0 or args.timeout <= 0 or (args.duration is not None and args.duration < 0)
            or (args.progress_interval is not None and args.progress_interval <= 0)
            or args.sample_interval < 0):
        _emit({"event": "done", "error": "bad arguments: negative bytes/duration or timeout"})
        return 2
    done = run_endpoint(args)
    _emit(done)
    return 0 if done["error"] is None else 1


# ---------------------------------------------------------------------------------------------
# the controller (runs in the test / benchmark process)


@dataclasses.dataclass(frozen=True, slots=True)
class PeerResult:
    """The ``done`` event of a kernel peer."""

    bytes_sent: int
    sha256_sent: str | None
    bytes_received: int
    sha256_received: str | None
    seconds: float
    goodput_bps: float
    cpu_seconds: float
    error: str | None
    mptcp: dict[str, Any] | None
    tcp_info: dict[str, int] | None = None
    role: str = ""
    mode: str = ""
    subflows: list[dict[str, Any]] | None = None
    subflows_max: int | None = None
    subflows_seen: list[dict[str, Any]] | None = None
    subflows_error: str | None = None
    exit_code: int | None = None
    stderr: str = ""

    @classmethod
    def from_event(cls, ev: dict[str, Any], exit_code: int | None = None,
                   stderr: str = "") -> PeerResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in ev.items() if k in names}
        kw.setdefault("bytes_sent", 0)
        kw.setdefault("sha256_sent", None)
        kw.setdefault("bytes_received", 0)
        kw.setdefault("sha256_received", None)
        kw.setdefault("seconds", 0.0)
        kw.setdefault("goodput_bps", 0.0)
        kw.setdefault("cpu_seconds", 0.0)
        kw.setdefault("error", None)
        kw.setdefault("mptcp", None)
        return cls(**kw, exit_code=exit_code, stderr=stderr)


class LinuxPeer:
    """A running kernel endpoint (``python -m interop.linux_peer``) in a subprocess.

    Use :meth:`start`; then :meth:`wait_listening` (server) and :meth:`result`.  As a context
    manager it stops the process (its own pid only) on exit.
    """

    module = "interop.linux_peer"
    """The module run with ``python -m`` (subclasses run other endpoints the same way)."""

    def __init__(self, argv: list[str], netns: str | None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(_REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", self.module, *argv]
        if netns is not None:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.argv = cmd
        self.netns = netns
        self.events: list[dict[str, Any]] = []
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=str(_REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
        except OSError as e:
            raise PeerError(f"cannot start {cmd[0]}: {e}") from e
        self._done: dict[str, Any] | None = None
        self._eof = False
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._out_thread.start()
        self._err_thread.start()

    @classmethod
    def start(
        cls,
        netns: str | None,
        role: Role,
        *,
        host: str,
        port: int,
        mode: Mode = "sink",
        nbytes: int = 0,
        seed: int = 0,
        mptcp: bool = False,
        hash: bool = True,
        duration: float | None = None,
        timeout: float = 30.0,
        abort_after: int = 0,
        progress_interval: float | None = None,
        sample_interval: float | None = None,
    ) -> LinuxPeer:
        """Start an endpoint; ``netns`` None = this namespace (loopback use only)."""
        if role not in ("server", "client"):
            raise PeerError(f"role {role!r}")
        if mode not in MODES:
            raise PeerError(f"mode {mode!r}")
        argv = [role, "--host", host, "--port", str(port), "--mode", mode,
                "--bytes", str(nbytes), "--seed", str(seed), "--timeout", str(timeout)]
        if mptcp:
            argv.append("--mptcp")
        if not hash:
            argv.append("--no-hash")
        if duration is not None:
            argv += ["--duration", str(duration)]
        if abort_after:
            argv += ["--abort-after", str(abort_after)]
        if progress_interval is not None:
            argv += ["--progress-interval", str(progress_interval)]
        if sample_interval is not None:
            argv += ["--sample-interval", str(sample_interval)]
        return cls(argv, netns)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                self._stderr.append(f"[stdout] {line}\n")
                continue
            if isinstance(ev, dict):
                self._q.put(ev)
        self._q.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next event, None at end of output; PeerError at the deadline."""
        if self._eof:
            return None
        try:
            ev = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise PeerError(f"kernel peer timed out; stderr: {self.stderr[-2000:]}") from None
        if ev is None:
            self._eof = True
            return None
        self.events.append(ev)
        if ev.get("event") == "done":
            self._done = ev
        return ev

    def progress(self) -> list[dict[str, Any]]:
        """The ``progress`` events received so far (all, once :meth:`result` returned)."""
        return [ev for ev in self.events if ev.get("event") == "progress"]

    def wait_listening(self, timeout: float = 10.0) -> int:
        """Wait for the server's ``listening`` event; returns the port it listens on."""
        deadline = time.monotonic() + timeout
        for seen in self.events:
            if seen.get("event") == "listening":
                return int(seen["port"])
        while True:
            ev = self._next_event(deadline)
            if ev is None or ev.get("event") == "done":
                self._reap(1.0)
                raise PeerError(
                    f"kernel peer exited before listening (rc={self.proc.returncode}): "
                    f"{(ev or {}).get('error')}; stderr: {self.stderr[-2000:]}")
            if ev.get("event") == "listening":
                return int(ev["port"])

    def result(self, timeout: float = 60.0) -> PeerResult:
        """Wait for the ``done`` event and the process exit (PeerError on timeout: the
        process is stopped; or if it exits without reporting)."""
        deadline = time.monotonic() + timeout
        try:
            while self._done is None:
                if self._next_event(deadline) is None:
                    break
        except PeerError:
            self.stop()
            raise
        rc = self._reap(max(1.0, deadline - time.monotonic()))
        if self._done is None:
            raise PeerError(f"kernel peer exited (rc={rc}) without a result; "
                            f"stderr: {self.stderr[-2000:]}")
        self._err_thread.join(1.0)
        return PeerResult.from_event(self._done, rc, self.stderr)

    def _reap(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return self.proc.returncode

    def stop(self) -> None:
        """Terminate (then kill) this peer's own process if it is still running."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        self._out_thread.join(2.0)
        self._err_thread.join(2.0)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()

    def __enter__(self) -> LinuxPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
