"""``mptcp-lab bench codec``: our wire codecs against scapy's real rebuild, in one run.

The mix is a fixed, seeded list of realistic IPv4/IPv6 segments as a Linux MPTCP/AccECN/ENO
connection would put on the wire: SYN / SYN-ACK / third ACK with MP_CAPABLE, TCP-ENO and
AccECN, MP_JOIN handshakes, data with DSS (+ checksum sometimes) and timestamps, pure data ACKs
with SACK blocks, ADD_ADDR with HMAC, AccECN ACKs.  Option bytes are laid out here by hand from
the RFC formats (RFC 8684 §3, RFC 8547 §4, RFC 9768 §3.2.3), independently of our codecs.

ours  = ``parse_segment(raw)`` (every option decoded to a typed value) then ``to_bytes()``
        (lengths and checksums recomputed);
scapy = ``IP(raw)`` / ``IPv6(raw)``, delete the length and checksum fields, ``bytes()``
        (without the deletes scapy returns its cached input bytes: no rebuild).
Both must give back the input bytes exactly; that is asserted before anything is timed.
"""

from __future__ import annotations

import random
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

import accecn  # noqa: F401  (registers the AccECN option codecs)
import mptcp.wire.mptcp_options  # noqa: F401  (registers kind 30)
import tcpinc  # noqa: F401  (registers the TCP-ENO codec)
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.options import NOP, Mss, SackPermitted, Timestamps, UnknownOption, WindowScale
from mptcp.wire.segment import Segment, parse_segment
from mptcp.wire.tcp import ACK, AE, CWR, ECE, PSH, SYN, TcpHeader

__all__ = ["build_mix", "run_codec_bench"]

_Opt = UnknownOption  # raw option bytes for the mix: kind + body, laid out by hand


def _mptcp(subtype_nibble: int, low_nibble: int, body: bytes) -> _Opt:
    return _Opt(30, bytes((subtype_nibble << 4 | low_nibble,)) + body)


def _syn_opts(rng: random.Random) -> list[Any]:
    return [Mss(1460), SackPermitted(), Timestamps(rng.getrandbits(32), 0), NOP, WindowScale(7)]


def _segment(rng: random.Random, v6: bool, flags: int, options: list[Any], payload: bytes,
             ecn: int = 0) -> bytes:
    if v6:
        ip: Any = ipv6(b"\xfd\x00" + rng.randbytes(14), b"\xfd\x00" + rng.randbytes(14),
                       traffic_class=ecn, flow_label=rng.getrandbits(20))
    else:
        ip = ipv4(b"\x0a" + rng.randbytes(3), b"\x0a" + rng.randbytes(3), tos=ecn,
                  ident=rng.getrandbits(16))
    used = sum(len(o.to_bytes()) for o in options)
    if used % 4:  # 32-bit alignment with NOPs, as Linux does (it never sends EOL)
        options = [*options, *[NOP] * (4 - used % 4)]
    tcp = TcpHeader(rng.randrange(1024, 65536), rng.choice((80, 443, 5201)),
                    rng.getrandbits(32), rng.getrandbits(32) if flags & ACK else 0, flags,
                    rng.randrange(1000, 65536), 0, 0, tuple(options))
    return Segment(ip, tcp, payload).to_bytes()


def _dss(rng: random.Random, ack8: bool, mapping: bool, csum: bool, fin: bool) -> _Opt:
    flags = 0x01 | (0x02 if ack8 else 0) | (0x04 | 0x08 if mapping else 0) | (0x10 if fin else 0)
    body = bytes((flags,)) + (rng.getrandbits(64).to_bytes(8, "big") if ack8
                             else rng.getrandbits(32).to_bytes(4, "big"))
    if mapping:
        dsn, ssn = rng.getrandbits(64), rng.getrandbits(32)
        body += struct.pack("!QIH", dsn, ssn, rng.randrange(1, 1449))
        if csum:
            body += rng.getrandbits(16).to_bytes(2, "big")
    return _mptcp(2, 0, body)


def _one(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.3
    kind = rng.choices(
        ("syn", "synack", "ack3", "join", "data", "ack", "addaddr", "eno", "accecn"),
        weights=(6, 6, 4, 4, 40, 28, 3, 4, 5),
    )[0]
    ts = [NOP, NOP, Timestamps(rng.getrandbits(32), rng.getrandbits(32))]
    if kind == "syn":  # Linux MPTCP v1 SYN, AccECN setup (ACE = 111), RFC 8684 §3.1
        return _segment(rng, v6, SYN | AE | CWR | ECE, [*_syn_opts(rng), _mptcp(0, 1, b"\x81")],
                        b"")
    if kind == "synack":  # MP_CAPABLE with the listener's key + AccECN option (174, length 2)
        opts = [*_syn_opts(rng), _mptcp(0, 1, b"\x01" + rng.randbytes(8)), _Opt(174, b"")]
        return _segment(rng, v6, SYN | ACK | CWR, opts, b"")
    if kind == "ack3":  # third ACK: both keys
        return _segment(rng, v6, ACK, [*ts, _mptcp(0, 1, b"\x01" + rng.randbytes(16))], b"")
    if kind == "join":  # MP_JOIN SYN / SYN-ACK / ACK, RFC 8684 §3.2
        step = rng.randrange(3)
        if step == 0:
            return _segment(rng, v6, SYN, [*_syn_opts(rng), _mptcp(1, 0, bytes((rng.randrange(8),))
                                                                    + rng.randbytes(8))], b"")
        if step == 1:
            opts = [*_syn_opts(rng), _mptcp(1, 0, bytes((rng.randrange(8),)) + rng.randbytes(12))]
            return _segment(rng, v6, SYN | ACK, opts, b"")
        return _segment(rng, v6, ACK, [*ts, _mptcp(1, 0, b"\x00" + rng.randbytes(20))], b"")
    if kind == "data":  # DSS mapping with 8-byte DSN (Linux) and TS; sometimes a checksum
        csum = rng.random() < 0.2
        size = 1448 - (2 if csum else 0) if rng.random() < 0.6 else rng.randrange(1, 1400)
        opts = [*ts, _dss(rng, ack8=rng.random() < 0.5, mapping=True, csum=csum, fin=False)]
        return _segment(rng, v6, ACK | PSH, opts, rng.randbytes(size))
    if kind == "ack":  # data ACK, maybe SACK blocks (RFC 2018)
        opts = [*ts, _dss(rng, ack8=True, mapping=False, csum=False, fin=rng.random() < 0.05)]
        if rng.random() < 0.3:
            left = rng.getrandbits(32)
            opts += [NOP, NOP, _Opt(5, struct.pack("!II", left, (left + 1448) & 0xFFFFFFFF))]
        return _segment(rng, v6, ACK, opts, b"")
    if kind == "addaddr":  # ADD_ADDR with truncated HMAC, RFC 8684 §3.4.1
        addr = rng.randbytes(16 if v6 else 4)
        opts = [_mptcp(3, 0, bytes((rng.randrange(1, 9),)) + addr + rng.randbytes(8))]
        if not v6:
            opts = [*ts, *opts]
        return _segment(rng, v6, ACK, opts, b"")
    if kind == "eno":  # tcpcrypt over TCP-ENO SYN: global b=0, TEPs X25519 + P-256, RFC 8547 §4
        opts = [*_syn_opts(rng), _Opt(69, bytes((0x00, 0x23, 0x21)))]
        return _segment(rng, v6, SYN, opts, b"")
    # AccECN ACK with an 11-byte AccECN1 option (RFC 9768 §3.2.3) and ACE in the flags
    ace = rng.randrange(8)
    flags = ACK | (AE if ace & 4 else 0) | (CWR if ace & 2 else 0) | (ECE if ace & 1 else 0)
    opts = [*ts, NOP, _Opt(174, rng.randbytes(9))]
    size = rng.choice((0, 0, 1448))
    return _segment(rng, v6, flags, opts, rng.randbytes(size), ecn=rng.choice((1, 2, 3)))


def build_mix(n: int = 2000, seed: int = 20261126) -> list[bytes]:
    """The fixed, seeded mix of ``n`` raw IP packets."""
    rng = random.Random(seed)
    return [_one(rng) for _ in range(n)]


def _ours(raw: bytes) -> bytes:
    return parse_segment(raw).to_bytes()


def _scapy_rebuild() -> Callable[[bytes], bytes]:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    def rebuild(raw: bytes) -> bytes:
        pkt: Any
        if raw[0] >> 4 == 4:
            pkt = IP(raw)
            del pkt[IP].len
            del pkt[IP].chksum
        else:
            pkt = IPv6(raw)
            del pkt[IPv6].plen
        del pkt[TCP].chksum
        return bytes(pkt)

    return rebuild


def _interleaved(scapy: Callable[[bytes], bytes], mix: list[bytes],
                 min_seconds: float) -> tuple[float, float]:
    """(ours, scapy) segments per second, timed in alternating slices of a few ms each.

    This VM's speed drifts by tens of percent within seconds; timing one codec for a second
    and then the other compares two different machines.  Here each step times a slice of
    ours (``_OURS_SLICE`` segments, about 2 ms) and then a slice of scapy's
    (``_SCAPY_SLICE``, about as long), both walking the mix in order, so both see the same
    drift.  It stops once each side has at least ``min_seconds`` of timed work and scapy's
    slices have covered the mix a whole number of times (ours cover it many times, always
    whole too: the mix length is a multiple of both slices), so both rates are over the
    same mix.  Our slice calls ``parse_segment(raw).to_bytes()`` in the loop body: the same
    codec work as :func:`_ours` without its Python call (~1% of our time, and no codec
    work; scapy's wrapper does codec work: it deletes the fields to rebuild)."""
    parse = parse_segment
    clock = time.perf_counter
    n = len(mix)
    ours_slices = [mix[i:i + _OURS_SLICE] for i in range(0, n, _OURS_SLICE)]
    scapy_slices = [mix[i:i + _SCAPY_SLICE] for i in range(0, n, _SCAPY_SLICE)]
    t_ours = t_scapy = 0.0
    n_ours = n_scapy = 0
    step = 0
    while True:
        part = ours_slices[step % len(ours_slices)]
        t0 = clock()
        for raw in part:
            parse(raw).to_bytes()
        t1 = clock()
        t_ours += t1 - t0
        n_ours += len(part)
        part = scapy_slices[step % len(scapy_slices)]
        t0 = clock()
        for raw in part:
            scapy(raw)
        t1 = clock()
        t_scapy += t1 - t0
        n_scapy += len(part)
        step += 1
        if step % len(scapy_slices) == 0 and step % len(ours_slices) == 0 \
                and min(t_ours, t_scapy) >= min_seconds:
            return n_ours / t_ours, n_scapy / t_scapy


_OURS_SLICE = 200
_SCAPY_SLICE = 4


def run_codec_bench(runs: int = 3, seconds: float = 1.0, n: int = 2000) -> dict[str, Any]:
    """Time both codecs over the mix ``runs`` times (interleaved, :func:`_interleaved`);
    medians and every run's numbers.  ``n`` is rounded up to a multiple of 200."""
    n = -(-n // _OURS_SLICE) * _OURS_SLICE
    mix = build_mix(n)
    scapy = _scapy_rebuild()
    for raw in mix:  # both must reproduce the input exactly
        if _ours(raw) != raw:
            raise AssertionError(f"our codec changed a segment: {raw.hex()}")
        if scapy(raw) != raw:
            raise AssertionError(f"scapy changed a segment: {raw.hex()}")
    scapy_mix = mix  # the same segments for both
    per_run = []
    for _ in range(runs):
        ours, theirs = _interleaved(scapy, scapy_mix, seconds)
        per_run.append({"ours_per_s": ours, "scapy_per_s": theirs, "ratio": ours / theirs})
    ours_med = statistics.median(r["ours_per_s"] for r in per_run)
    scapy_med = statistics.median(r["scapy_per_s"] for r in per_run)
    return {
        "ours_per_s": round(ours_med),
        "scapy_per_s": round(scapy_med),
        "ratio": round(statistics.median(r["ratio"] for r in per_run), 2),
        "ours_us_per_segment": round(1e6 / ours_med, 2),
        "segments": len(mix),
        "mean_packet_bytes": round(sum(map(len, mix)) / len(mix), 1),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in per_run],
    }
