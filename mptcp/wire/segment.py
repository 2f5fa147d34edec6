"""One IP packet carrying a TCP segment: IPv4/IPv6 header + TCP header + payload.

``parse_segment`` is the per-packet entry point of the stack (RFC 9293 §3.1 header, RFC 791 /
RFC 8200 below it); ``Segment.to_bytes`` rebuilds the packet with every length and checksum
recomputed, so a parsed valid packet serializes back to the same bytes.

Both run for every packet, so both have a fast path for what Linux sends: IPv4 without
options or IPv6 without extension headers, and TCP options that start NOP NOP Timestamps
(RFC 7323 Appendix A; every segment but the SYNs) or, on a SYN, MSS, SACK-permitted,
Timestamps, NOP, window scale (RFC 9293 §3.7.1, RFC 2018 §2, RFC 7323 §2.2).  The IP header,
the TCP header and those options go through one ``struct`` call, the options after them
through their codecs; anything else takes the general path, which also raises every error.
The MPTCP data path's DSS option (RFC 8684 §3.3) right after the Timestamps, then NOP
padding or NOP NOP SACK (RFC 2018 §3), is decoded and encoded here too, without the option
dispatchers: that is most segments of an MPTCP connection.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import NamedTuple

from mptcp.wire.checksum import _M736, _M1456, _M2912, payload_sum, verify
from mptcp.wire.errors import WireError
from mptcp.wire.ip import PROTO_TCP, IPHeader, IPv4Header, IPv6Header, parse_ipv4, parse_ipv6
from mptcp.wire.mptcp_options import (
    _DSS_FMT,
    _DSS_WORD,
    _ENCODE_ERRORS,
    _TS_DSS_PACK,
    Dss,
    parse_mptcp_option,
)
from mptcp.wire.options import (
    _BASE_OVERRIDES,
    _PARSERS,
    NOP,
    SACK_PERMITTED,
    Mss,
    OptionParser,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    WindowScale,
    _parse_from,
    parse_options,
)
from mptcp.wire.tcp import TcpHeader
from mptcp.wire.value import wire_value

__all__ = ["Segment", "parse_segment", "checksum_ok"]

_V4 = Struct("!BBHHHBBH4s4s")
_V4_TCP_STRUCT = Struct("!BBHHHBBH4s4sHHIIHHHH")  # IPv4 without options, then TCP
_V6_TCP_STRUCT = Struct("!IHBB16s16sHHIIHHHH")  # IPv6 fixed header, then TCP
# ... followed by the first 12 option bytes read as NOP NOP Timestamps (kind 8, length 10)
_V4_TCP_TS_STRUCT = Struct("!BBHHHBBH4s4sHHIIHHHHIII")
_V6_TCP_TS_STRUCT = Struct("!IHBB16s16sHHIIHHHHIII")
# ... and the next 4 (a DSS option's kind, length, subtype and flags), for parse_segment
_V4_TCP_TS4 = Struct("!BBHHHBBH4s4sHHIIHHHHIIII").unpack_from
_V6_TCP_TS4 = Struct("!IHBB16s16sHHIIHHHHIIII").unpack_from
_V4_TCP = _V4_TCP_STRUCT.unpack_from
_V4_TCP_TS = _V4_TCP_TS_STRUCT.unpack_from
_V6_TCP_TS = _V6_TCP_TS_STRUCT.unpack_from
_V6_TCP = _V6_TCP_STRUCT.unpack_from
_V4_TCP_PACK = _V4_TCP_STRUCT.pack
_V6_TCP_PACK = _V6_TCP_STRUCT.pack
_V4_TCP_TS_PACK = _V4_TCP_TS_STRUCT.pack
_V6_TCP_TS_PACK = _V6_TCP_TS_STRUCT.pack
_join = b"".join
_TCP = Struct("!HHIIHHHH")
_TCP_PACK = _TCP.pack
_II = Struct("!II").unpack_from
_TS_HEAD = Struct("!III").pack  # NOP NOP kind length, TSval, TSecr
_NN_SACK1_PACK = _TS_HEAD  # NOP NOP kind length, left edge, right edge: the same layout
# MSS, SACK-permitted, Timestamps, NOP, window scale: a Linux SYN's options (20 bytes)
_SYN_OPTS = Struct("!HHIIIHBB").pack
_from_bytes = int.from_bytes
_new = tuple.__new__
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")
_NNTS = 0x0101080A  # NOP NOP kind 8 length 10 as one big-endian word
_NNTS_SUM = 0x0101 + 0x080A  # its two 16-bit words, for the checksum
_NNSACK_SUM = 0x0101 + 0x050A  # NOP NOP SACK kind, length 10 (one block): the same
# NOP padding after the last option -> the NOP values it parses to
_NOP_PAD: dict[bytes, tuple[TcpOption, ...]] = {b"\x01" * k: (NOP,) * k for k in (1, 2, 3)}
_nop_pad = _NOP_PAD.get
_parser_for: Callable[[int], OptionParser | None] = _PARSERS.get
_dss_layout = _DSS_WORD.get
_NN_SACK1 = b"\x01\x01\x05\x0a"  # NOP NOP SACK with one block (RFC 2018 §3)


def _whole_packs() -> dict[int, tuple[Callable[..., bytes], Callable[..., bytes], int, int]]:
    """DSS pack key (| 0x40: NOP NOP after it, | 0x80: NOP NOP SACK with one block) -> packs
    of IPv4 / IPv6 + TCP + NOP NOP Timestamps + that DSS (+ what follows) in one call, the
    DSS's first word, the TCP header length; for the DSS shapes with a data ACK whose
    options fill whole 32-bit words."""
    out = {}
    for key, (fmt, word) in _DSS_FMT.items():
        if not key & 1:  # no data ACK
            continue
        for more, after in ((0, ""), (0x40, "H"), (0x80, "III")):
            olen = 12 + ((word >> 16) & 0xFF) + Struct("!" + after).size
            if olen % 4 == 0 and olen <= 40 and not (more == 0x80 and key & 4):
                tail = "IIII" + fmt + after
                out[key | more] = (
                    Struct(_V4_TCP_STRUCT.format + tail).pack,
                    Struct(_V6_TCP_STRUCT.format + tail).pack, word, 20 + olen)
    return out


_WHOLE = _whole_packs()


@wire_value
class Segment(NamedTuple):
    """An IP packet holding one TCP segment."""

    ip: IPHeader
    tcp: TcpHeader
    payload: bytes = b""

    def to_bytes(self, partial: bool = False) -> bytes:
        """Wire bytes with IP length(s), IPv4 header checksum and TCP checksum recomputed.

        The TCP checksum (RFC 9293 §3.1) is computed from the header *fields*: a field at an
        even offset adds its value modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so no header bytes are
        built twice.  Leading NOP NOP Timestamps (every non-SYN Linux segment) are packed
        together with the IP and TCP headers, a SYN's MSS, SACK-permitted, Timestamps, NOP,
        window scale in one more pack; the other options are serialized by their own
        ``to_bytes()``.  A DSS with a data ACK after the Timestamps (RFC 8684 §3.3, Figure 9)
        is packed with them in one call from the layout table of ``Dss.to_bytes`` (any other
        DSS shape, or values that do not pack, go through ``Dss.to_bytes`` and its errors),
        then NOP padding or NOP NOP SACK with one block (RFC 2018 §3); those option bytes are
        then summed as one integer instead of the Timestamps fields.  Before all that, the
        MPTCP data path proper -- NOP NOP Timestamps and a DSS with a data ACK, then NOP NOP
        when it carries a mapping without checksum, under an IP header without options --
        goes out in a single pack per layout (``_WHOLE``), summed from the fields.  One
        function on purpose: this runs for every segment sent.

        ``partial=True`` is for checksum offload (virtio-net ``NEEDS_CSUM``, Linux
        ``CHECKSUM_PARTIAL``): the TCP checksum field holds the folded, uncomplemented sum of
        the pseudo-header only, and the device completes it over the segment -- so no payload
        is summed here.
        """
        ip, tcp, payload = self
        sport, dport, seq, ack, flags, window, _, urgent, options = tcp
        nopt = len(options)
        if (4 <= nopt <= 7 and type(options[3]) is Dss and options[0] is NOP
                and options[1] is NOP and type(options[2]) is Timestamps and not partial):
            # NOP NOP Timestamps then a DSS with a data ACK (RFC 8684 §3.3): MPTCP's data
            # path.  A mapping without a checksum is followed by NOP NOP, the other shapes
            # fill whole words as they are.  IP and TCP headers and the options in one pack,
            # their checksum from the fields (each at an even offset); values that do not
            # pack go to the code below, which raises their errors.
            d_ack, dsn, ssn, dll, dcs, fin, a64, m64, rsv = options[3]
            v4 = type(ip) is IPv4Header
            if d_ack is not None and (v4 or type(ip) is IPv6Header):
                lo = (2 if a64 else 0) | (8 if m64 else 0) | (0x10 if fin else 0)
                if dsn is not None:
                    if dcs is None:
                        if nopt == 6 and options[4] is NOP and options[5] is NOP:
                            spec = _WHOLE[lo & 0x0A | 0x45]
                            last = 0x0101
                        else:
                            spec = None
                    else:
                        spec = _WHOLE[lo & 0x0A | 0x25] if nopt == 4 else None
                        last = dcs
                elif dcs is None and ssn is None and dll is None:
                    if nopt == 4:
                        spec = _WHOLE[lo & 0x0A | 1]
                    elif (nopt == 7 and options[4] is NOP and options[5] is NOP
                          and type(options[6]) is Sack and len(options[6][0]) == 1):
                        # then NOP NOP SACK with one block: Linux's data ACK with a hole
                        spec = _WHOLE[lo & 0x0A | 0x81]
                        last = 0x0101050A  # NOP NOP kind 5 length 10
                    else:
                        spec = None
                else:
                    spec = None
                if spec is not None:
                    pack4, pack6, word, hlen = spec
                    tsval, tsecr = options[2]
                    off_flags = (hlen << 10) | flags
                    tcp_len = hlen + len(payload)
                    if type(ip) is IPv4Header:
                        tos, _, ident, ff, ttl, proto, _, src, dst, ipopts = ip
                    elif type(ip) is IPv6Header:
                        tc, flow, _, nh, hop, src, dst, ipopts, _ = ip
                    addrs = _from_bytes(src + dst, "big")
                    try:
                        w = word | (rsv & 0x0FE0) | lo
                        x = (sport + dport + off_flags + window + urgent + tcp_len + 6 + seq
                             + ack + addrs + _NNTS_SUM + tsval + tsecr + w + d_ack)
                        if dsn is not None:
                            # (a None raises TypeError: the code below says what is wrong)
                            x += dsn + ssn + dll + last  # type: ignore[operator]
                        elif nopt == 7:
                            ((left, right),) = options[6][0]  # type: ignore[index]  # a Sack
                            x += _NNSACK_SUM + left + right
                        if payload:
                            n = len(payload)
                            if 256 < n <= 1500:
                                # payload_sum's MSS case inline (no call): the halves read
                                # little-endian sum the byte-swapped words, which are the
                                # words times 256; and as 256 * 256 = 1 mod 0xFFFF,
                                # x + 256 * y = 256 * (256 * x + y), so no shift of y
                                h = (n >> 2) << 1
                                y = (_from_bytes(payload[:h], "little")
                                     + _from_bytes(payload[h:], "little"))
                                y = (y >> 2912) + (y & _M2912)
                                y = (y >> 1456) + (y & _M1456)
                                y = (y >> 736) + (y & _M736)
                                x = ((x << 8) + y) % 0xFFFF << 8
                            else:
                                x += payload_sum(payload)
                        x %= 0xFFFF
                        tsum = 0xFFFF - x if x else 0
                        if ipopts:
                            pass
                        elif v4:
                            total = 20 + tcp_len
                            x = ((0x4500 | tos) + total + ident + ff + ((ttl << 8) | proto)
                                 + addrs) % 0xFFFF
                            if dsn is None:
                                if nopt == 7:
                                    return pack4(0x45, tos, total, ident, ff, ttl, proto,
                                                 0xFFFF - x if x else 0, src, dst, sport,
                                                 dport, seq, ack, off_flags, window, tsum,
                                                 urgent, _NNTS, tsval, tsecr, w, d_ack, last,
                                                 left, right) + payload
                                return pack4(0x45, tos, total, ident, ff, ttl, proto,
                                             0xFFFF - x if x else 0, src, dst, sport, dport,
                                             seq, ack, off_flags, window, tsum, urgent, _NNTS,
                                             tsval, tsecr, w, d_ack) + payload
                            return pack4(0x45, tos, total, ident, ff, ttl, proto,
                                         0xFFFF - x if x else 0, src, dst, sport, dport, seq,
                                         ack, off_flags, window, tsum, urgent, _NNTS, tsval,
                                         tsecr, w, d_ack, dsn, ssn, dll, last) + payload
                        else:
                            vtf = 0x60000000 | (tc << 20) | flow
                            if dsn is None:
                                if nopt == 7:
                                    return pack6(vtf, tcp_len, nh, hop, src, dst, sport, dport,
                                                 seq, ack, off_flags, window, tsum, urgent,
                                                 _NNTS, tsval, tsecr, w, d_ack, last, left,
                                                 right) + payload
                                return pack6(vtf, tcp_len, nh, hop, src, dst, sport, dport, seq,
                                             ack, off_flags, window, tsum, urgent, _NNTS, tsval,
                                             tsecr, w, d_ack) + payload
                            return pack6(vtf, tcp_len, nh, hop, src, dst, sport, dport, seq,
                                         ack, off_flags, window, tsum, urgent, _NNTS, tsval,
                                         tsecr, w, d_ack, dsn, ssn, dll, last) + payload
                    except _ENCODE_ERRORS:
                        pass
        if nopt > 2 and options[0] is NOP and options[1] is NOP and type(options[2]) is Timestamps:
            tsval, tsecr = options[2]
            opts = b""
            if nopt > 3 and type(options[3]) is Dss:
                # then a DSS with a data ACK (RFC 8684 §3.3), packed with the Timestamps as
                # Dss.to_bytes packs it; other shapes, and values that do not pack, go through
                # Dss.to_bytes below (and raise its errors)
                d_ack, dsn, ssn, dll, dcs, fin, a64, m64, rsv = options[3]
                if d_ack is not None:
                    lo = (2 if a64 else 0) | (8 if m64 else 0) | (0x10 if fin else 0)
                    try:
                        if dsn is not None:
                            if dcs is None:
                                pack, word = _TS_DSS_PACK[lo & 0x0A | 5]
                                opts = pack(_NNTS, tsval, tsecr, word | (rsv & 0x0FE0) | lo,
                                            d_ack, dsn, ssn, dll)
                            else:
                                pack, word = _TS_DSS_PACK[lo & 0x0A | 0x25]
                                opts = pack(_NNTS, tsval, tsecr, word | (rsv & 0x0FE0) | lo,
                                            d_ack, dsn, ssn, dll, dcs)
                        elif dcs is None and ssn is None and dll is None:
                            pack, word = _TS_DSS_PACK[lo & 0x0A | 1]
                            opts = pack(_NNTS, tsval, tsecr, word | (rsv & 0x0FE0) | lo, d_ack)
                    except _ENCODE_ERRORS:
                        opts = b""
            if opts:  # NOP NOP TS DSS: the option bytes are summed as one integer below
                if nopt > 4:
                    if nopt == 6 and options[4] is NOP and options[5] is NOP:
                        opts += b"\x01\x01"
                    else:
                        if nopt == 7 and type(options[6]) is Sack and options[4] is NOP \
                                and options[5] is NOP:
                            try:  # NOP NOP SACK with one block (RFC 2018 §3)
                                ((left, right),) = options[6][0]
                                opts += _NN_SACK1_PACK(0x0101050A, left, right)
                                nopt = 4  # done
                            except _ENCODE_ERRORS:
                                pass
                        for o in options[4:nopt]:  # the general loop (and its errors)
                            opts += b"\x01" if o is NOP else o.to_bytes()
                has_ts = False
                x = 0
            else:
                if nopt > 3:
                    opts = options[3].to_bytes()
                    for o in options[4:]:  # mostly NOP padding
                        opts += b"\x01" if o is NOP else o.to_bytes()
                has_ts = True
                x = _NNTS_SUM + tsval + tsecr  # the 12 bytes before ``opts``
            k = len(opts) & 3
            if k:
                opts += _PAD[k]
            hlen = (32 if has_ts else 20) + len(opts)
        else:
            has_ts = False
            tsval = tsecr = 0
            if (nopt > 4 and type(options[0]) is Mss and type(options[4]) is WindowScale
                    and type(options[2]) is Timestamps and options[3] is NOP
                    and type(options[1]) is SackPermitted and 0 <= options[4][0] <= 0xFF):
                # a SYN's MSS, SACK-permitted, Timestamps, NOP, window scale in one pack
                tv, te = options[2]
                opts = _SYN_OPTS(0x0204, options[0][0], 0x0402080A, tv, te, 0x0103, 3,
                                 options[4][0])
                for o in options[5:]:
                    opts += b"\x01" if o is NOP else o.to_bytes()
            else:
                opts = _join([b"\x01" if o is NOP else o.to_bytes() for o in options])
            k = len(opts) & 3
            if k:
                opts += _PAD[k]
            hlen = 20 + len(opts)
            x = 0
        if hlen > 60:
            raise WireError(12, f"TCP options of {hlen - 20} bytes exceed 40")
        off_flags = (hlen << 10) | flags
        tcp_len = hlen + len(payload)
        if type(ip) is IPv4Header:  # the fields in one unpack (NamedTuple attributes cost more)
            tos, _, ident, ff, ttl, proto, _, src, dst, ipopts = ip
            v4 = True
        elif type(ip) is IPv6Header:
            tc, flow, _, nh, hop, src, dst, ipopts, _ = ip
            v4 = False
        else:
            src = ip.src
            dst = ip.dst
            ipopts = b"?"
            v4 = False
        addrs = _from_bytes(src + dst, "big")  # 2**32 = 1 mod 0xFFFF: the same as adding them
        if partial:
            x = (addrs + 6 + tcp_len) % 0xFFFF
            tsum = x if x else 0xFFFF
        else:
            # the fields below 2**30 first: CPython adds those without its multi-digit path
            x = (sport + dport + off_flags + window + urgent + tcp_len + 6 + x + seq + ack + addrs
                 + _from_bytes(opts, "big"))
            if payload:
                x += payload_sum(payload)
            x %= 0xFFFF
            tsum = 0xFFFF - x if x else 0
        if v4:
            # RFC 791 header checksum from the fields too; IP and TCP headers in one pack
            if not ipopts:
                total = 20 + tcp_len
                x = ((0x4500 | tos) + total + ident + ff + ((ttl << 8) | proto) + addrs) % 0xFFFF
                if not has_ts:
                    head = _V4_TCP_PACK(
                        0x45, tos, total, ident, ff, ttl, proto, 0xFFFF - x if x else 0, src,
                        dst, sport, dport, seq, ack, off_flags, window, tsum, urgent)
                else:
                    head = _V4_TCP_TS_PACK(
                        0x45, tos, total, ident, ff, ttl, proto, 0xFFFF - x if x else 0, src,
                        dst, sport, dport, seq, ack, off_flags, window, tsum, urgent, _NNTS,
                        tsval, tsecr)
                return _join((head, opts, payload))
        elif not ipopts:  # IPv6 without extension headers
            if not has_ts:
                head = _V6_TCP_PACK(
                    0x60000000 | (tc << 20) | flow, tcp_len, nh, hop, src, dst, sport, dport,
                    seq, ack, off_flags, window, tsum, urgent)
            else:
                head = _V6_TCP_TS_PACK(
                    0x60000000 | (tc << 20) | flow, tcp_len, nh, hop, src, dst, sport, dport,
                    seq, ack, off_flags, window, tsum, urgent, _NNTS, tsval, tsecr)
            return _join((head, opts, payload))
        return _join((
            ip.build(tcp_len),
            _TCP_PACK(sport, dport, seq, ack, off_flags, window, tsum, urgent),
            _TS_HEAD(_NNTS, tsval, tsecr) if has_ts else b"",
            opts,
            payload,
        ))



def parse_segment(buf: bytes) -> Segment:
    """Decode an IPv4 or IPv6 packet carrying TCP into a :class:`Segment`.

    Checksums are not verified here (see :func:`checksum_ok`); trailing bytes past the IP
    length (link-layer padding) are ignored.  Anything malformed raises ``WireError``.

    Fast path: an IPv4 header without options or an IPv6 header right before TCP, TCP options
    starting NOP NOP Timestamps or a SYN's MSS, SACK-permitted, Timestamps, NOP, window scale
    (decoded from the same unpack as the headers), then an option with a registered codec and
    NOP padding, all checks passing; other options after that go to the general option loop.
    Anything else goes to the general parser, which gives the same values for valid packets
    and raises the errors.  (A codec registered for a base kind turns the SYN layout off.)

    The unpack also reads the 4 option bytes after the Timestamps as one word: when that is
    the first word of a DSS option (RFC 8684 §3.3) of a layout ``mptcp_options`` has recorded
    (keyed by the word, layout only) and its kind-30 codec is registered, the DSS is decoded
    right here from that layout, as ``parse_mptcp_option`` would, then NOP padding or NOP
    NOP SACK with one block (RFC 2018 §3) without the option loop.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    if n >= 52 and buf[0] == 0x45:  # IPv4, no IP options: IP, TCP and 16 option bytes at once
        if n >= 56:
            (_, tos, total, ident, ff, ttl, proto, csum, src, dst, sport, dport, seq, ack,
             off_flags, window, tcsum, urg, nnts, tsval, tsecr, w4) = _V4_TCP_TS4(buf)
        else:
            (_, tos, total, ident, ff, ttl, proto, csum, src, dst, sport, dport, seq, ack,
             off_flags, window, tcsum, urg, nnts, tsval, tsecr) = _V4_TCP_TS(buf)
            w4 = 0
        data = 20 + ((off_flags >> 12) << 2)
        if not 40 <= data <= total <= n or proto != 6 or ff & 0x3FFF:
            return _parse_general(buf)
        ip: IPHeader = _new(IPv4Header, (tos, total, ident, ff, ttl, 6, csum, src, dst, b""))
        o = 40
        end = total
    elif n >= 72 and buf[6] == 6 and buf[0] >> 4 == 6:  # IPv6, TCP right after the header
        if n >= 76:
            (vtf, plen, _, hlim, src, dst, sport, dport, seq, ack, off_flags, window, tcsum,
             urg, nnts, tsval, tsecr, w4) = _V6_TCP_TS4(buf)
        else:
            (vtf, plen, _, hlim, src, dst, sport, dport, seq, ack, off_flags, window, tcsum,
             urg, nnts, tsval, tsecr) = _V6_TCP_TS(buf)
            w4 = 0
        data = 40 + ((off_flags >> 12) << 2)
        end = 40 + plen
        if not 60 <= data <= end <= n:
            return _parse_general(buf)
        ip = _new(IPv6Header, ((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, 6, hlim, src, dst, b"", 6))
        o = 60
    else:
        return _parse_general(buf)
    # TCP options, RFC 9293 §3.2: the leading options Linux sends, decoded from the unpack
    head: tuple[TcpOption, ...] = ()
    if nnts == _NNTS:  # NOP NOP Timestamps (RFC 7323 Appendix A)
        j = o + 12
        if j <= data:
            ts = _new(Timestamps, (tsval, tsecr))
            spec = _dss_layout(w4)
            if spec is not None and _parser_for(30) is parse_mptcp_option:
                # then a DSS option (RFC 8684 §3.3) of a layout seen before: decoded here
                # from the word and the cached layout, as parse_mptcp_option would
                e = j + ((w4 >> 16) & 0xFF)
                if e <= data:
                    unpack, prefix, suffix = spec
                    dss = _new(Dss, prefix + unpack(buf, j + 4) + suffix)
                    if e == data:
                        topts: tuple[TcpOption, ...] = (NOP, NOP, ts, dss)
                    else:
                        tail = buf[e:data]
                        if tail == b"\x01\x01":  # a 22- or 26-byte DSS, then NOP padding
                            topts = (NOP, NOP, ts, dss, NOP, NOP)
                        elif (pad := _nop_pad(tail)) is not None:
                            topts = (NOP, NOP, ts, dss, *pad)
                        elif tail[:4] == _NN_SACK1 and data - e == 12 and not _BASE_OVERRIDES:
                            # NOP NOP SACK with one block: Linux's data ACK with a hole
                            topts = (NOP, NOP, ts, dss, NOP, NOP, _new(Sack, ((_II(buf, e + 4),),)))
                        else:
                            topts = _parse_from(buf[o:data], e - o, o, [NOP, NOP, ts, dss])
                    tcp = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window,
                                           tcsum, urg, topts))
                    return _new(Segment, (ip, tcp, buf[data:end]))
            head = (NOP, NOP, ts)
    elif nnts >> 16 == 0x0204 and tsval == 0x0402080A and not _BASE_OVERRIDES:
        # a SYN: MSS, SACK-permitted, Timestamps (its TSval unpacked as ``tsecr``), NOP, WS
        j = o + 20
        if j <= data:
            ecr, nws = _II(buf, o + 12)
            if nws >> 8 == 0x010303:
                head = (_new(Mss, (nnts & 0xFFFF,)), SACK_PERMITTED,
                        _new(Timestamps, (tsecr, ecr)), NOP, _new(WindowScale, (nws & 0xFF,)))
    if not head:
        topts = _parse_from(buf[o:data], 0, o, []) if data > o else ()
    elif j == data:
        topts = head
    else:
        # then one option with a registered codec (DSS, MP_CAPABLE, AccECN, ...), NOP padding
        parser = _parser_for(buf[j])
        if parser is None or j + 1 >= data:
            topts = _parse_from(buf[o:data], j - o, o, list(head))
        else:
            e = j + buf[j + 1]
            if e == data:
                topts = (*head, parser(buf[j:data], j))
            elif j + 2 <= e < data:
                opt = parser(buf[j:e], j)
                pad = _nop_pad(buf[e:data])
                if pad is not None:
                    topts = (*head, opt, *pad)
                else:  # more options: the general loop from there on
                    topts = _parse_from(buf[o:data], e - o, o, [*head, opt])
            else:
                topts = _parse_from(buf[o:data], j - o, o, list(head))
    tcp = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window, tcsum, urg, topts))
    return _new(Segment, (ip, tcp, buf[data:end]))


def _parse_general(buf: bytes) -> Segment:
    """:func:`parse_segment` for any packet (``buf`` is bytes); raises every error."""
    n = len(buf)
    if not n:
        raise WireError(0, "empty packet")
    version = buf[0] >> 4
    ip: IPHeader
    if version == 4:
        if n >= 40 and buf[0] == 0x45:  # no IP options: IP and TCP headers in one unpack
            (_, tos, total, ident, ff, ttl, proto, csum, src, dst,
             sport, dport, seq, ack, off_flags, window, tcsum, urg) = _V4_TCP(buf)
            off = 20
            opts = b""
        else:
            if n < 20:
                raise WireError(0, f"IPv4 header truncated ({n} bytes)")
            vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _V4.unpack_from(buf)
            off = (vihl & 15) << 2
            if off < 20:
                raise WireError(0, f"IPv4 IHL {off >> 2} < 5")
            opts = buf[20:off]
            sport = -1
        if total < off or total > n:
            raise WireError(2, f"IPv4 total length {total} (header {off}, buffer {n})")
        if ff & 0x3FFF:
            raise WireError(6, "IPv4 fragment: not reassembled")
        ip = _new(IPv4Header, (tos, total, ident, ff, ttl, proto, csum, src, dst, opts))
        end = total
    elif version == 6:
        if n >= 60 and buf[6] == 6:  # TCP right after the fixed header: one unpack
            (vtf, plen, nh, hlim, src, dst,
             sport, dport, seq, ack, off_flags, window, tcsum, urg) = _V6_TCP(buf)
            end = 40 + plen
            if end > n:
                raise WireError(4, f"IPv6 payload length {plen} overruns the buffer")
            fields = ((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst, b"", nh)
            ip = _new(IPv6Header, fields)
            off = 40
            proto = nh
        else:
            ip, off, end = parse_ipv6(buf)
            proto = ip.proto
            sport = -1
    else:
        raise WireError(0, f"IP version {version}")
    if proto != PROTO_TCP:
        raise WireError(off, f"IP protocol {proto} is not TCP")
    # TCP header, RFC 9293 §3.1
    if end - off < 20:
        raise WireError(off, f"TCP header truncated ({end - off} bytes)")
    if sport < 0:
        sport, dport, seq, ack, off_flags, window, tcsum, urg = _TCP.unpack_from(buf, off)
    hlen = (off_flags >> 12) << 2
    if hlen < 20:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} < 5")
    data = off + hlen
    if data > end:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} overruns the segment")
    topts = parse_options(buf[off + 20 : data], off + 20) if hlen > 20 else ()
    tcp = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window, tcsum, urg, topts))
    return _new(Segment, (ip, tcp, buf[data:end]))


def checksum_ok(buf: bytes) -> bool:
    """True when ``buf`` (an IP packet carrying TCP) has a valid TCP checksum and, for IPv4, a
    valid header checksum (RFC 9293 §3.1, RFC 791 §3.1)."""
    if not buf:
        return False
    if buf[0] >> 4 == 4:
        v4, off, end = parse_ipv4(buf)
        if not verify(buf[:off]):
            return False
        ip: IPHeader = v4
    else:
        ip, off, end = parse_ipv6(buf)
    seg = buf[off:end]
    pseudo = _from_bytes(ip.src, "big") + _from_bytes(ip.dst, "big") + PROTO_TCP + len(seg)
    return verify(seg, pseudo)
