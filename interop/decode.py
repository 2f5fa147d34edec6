"""Decode a capture file into one record per TCP packet, with every TCP option decoded.

The record of a TCP packet (IPv4 or IPv6) has the fixed header fields (RFC 9293 §3.1; all 12
flag bits, AE included, RFC 9768 §3.1), the ACE counter (RFC 9768 §3.2.2), the first AccECN
Option (RFC 9768 §3.2.3), every MPTCP option in wire order (RFC 8684 §3) and every option of
the header in wire order (ENO, RFC 8547 §4.1, among them).  ``index`` counts every packet of
the file from 0, including the non-IP and non-TCP packets that get no record.  A packet that
does not parse gets an ``error`` text plus whatever header fields could be read.

This is what ``mptcp-lab decode`` prints (:mod:`interop.decode_cli`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from enum import Enum
from ipaddress import ip_address
from struct import Struct
from typing import Any, BinaryIO

import accecn  # noqa: F401 - registers the AccECN option codecs (kinds 172 / 174)
import mptcp.wire.mptcp_options  # noqa: F401 - registers the MPTCP option codec (kind 30)
import tcpinc  # noqa: F401 - registers the ENO option codec (kind 69)
from accecn.ace import ace_from_flags
from accecn.option import AccEcnOption
from mptcp.wire.errors import WireError
from mptcp.wire.ip import PROTO_TCP, parse_ipv6
from mptcp.wire.mptcp_options import MPTCP_OPTION_CLASSES
from mptcp.wire.options import (
    Eol,
    Experimental,
    FastOpen,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
    parse_options,
)
from mptcp.wire.pcap import Frame, link_payload, read_frames
from mptcp.wire.segment import parse_segment
from mptcp.wire.tcp import flags_text
from tcpinc.eno_option import EnoOpaque, EnoOption

__all__ = [
    "Record", "option_json", "decode_ip", "iter_decode_frames", "iter_decode", "decode_pcap",
    "format_record", "render_text", "to_json",
]

Record = dict[str, Any]
"""One decoded packet (see the module docstring); JSON-serializable."""

_TCP_FIXED = Struct("!HHIIH")

_BASE_NAMES: dict[type, str] = {
    Eol: "EOL", Nop: "NOP", Mss: "MSS", WindowScale: "WS", SackPermitted: "SACK_PERM",
    Sack: "SACK", Timestamps: "TS", FastOpen: "TFO", Experimental: "EXP",
    UnknownOption: "UNKNOWN", EnoOption: "ENO", EnoOpaque: "ENO",
}
_MPTCP_CLASSES = frozenset(MPTCP_OPTION_CLASSES)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy: bytes as lowercase hex, tuples as lists, enums as their value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "to_json"):
        return _plain(value.to_json())
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return str(value)


def _option_name(opt: TcpOption) -> str:
    cls = type(opt)
    if cls in _MPTCP_CLASSES:
        return "MPTCP"
    if cls is AccEcnOption:
        assert isinstance(opt, AccEcnOption)
        return f"AccECN{opt.order}"
    return _BASE_NAMES.get(cls, cls.__name__)


def option_json(opt: TcpOption) -> dict[str, Any]:
    """One option in readable form: ``{"kind": k, "name": ..., fields...}``.

    Values with a ``to_json()`` (MPTCP, AccECN, ENO) contribute its fields; the base options
    contribute their named fields, bytes as hex.
    """
    wire = opt.to_bytes()
    out: dict[str, Any] = {"kind": wire[0], "name": _option_name(opt)}
    to_json = getattr(opt, "to_json", None)
    if to_json is not None:
        fields = _plain(to_json())
    elif hasattr(opt, "_asdict"):
        fields = _plain(opt._asdict())
    else:
        fields = {"bytes": wire.hex()}
    for key, val in fields.items():
        if key != "kind":
            out[key] = val
    return out


def _fill_options(rec: Record, options: Iterable[TcpOption]) -> None:
    accecn_json: dict[str, Any] | None = None
    mptcp_list: list[dict[str, Any]] = []
    opt_list: list[dict[str, Any]] = []
    for opt in options:
        cls = type(opt)
        if cls in _MPTCP_CLASSES:
            mptcp_list.append(_plain(opt.to_json()))  # type: ignore[attr-defined]
        elif cls is AccEcnOption and accecn_json is None:
            accecn_json = _plain(opt.to_json())  # type: ignore[attr-defined]
        opt_list.append(option_json(opt))
    rec["accecn"] = accecn_json
    rec["mptcp"] = mptcp_list
    rec["options"] = opt_list


def _is_tcp(ip: bytes) -> bool:
    """Whether a (non-empty) IP packet carries TCP; WireError for a malformed IP header."""
    version = ip[0] >> 4
    if version == 4:
        return len(ip) < 20 or ip[9] == PROTO_TCP  # too short: let the segment parser say so
    if version == 6:
        return parse_ipv6(ip)[0].proto == PROTO_TCP
    raise WireError(0, f"IP version {version}")


def _partial(rec: Record, ip: bytes) -> None:
    """Add what can be read of a packet that failed to parse: addresses, the TCP fixed
    header, and the options up to the first bad one."""
    n = len(ip)
    version = ip[0] >> 4 if n else 0
    if version == 4 and n >= 20:
        rec["src"], rec["dst"] = str(ip_address(ip[12:16])), str(ip_address(ip[16:20]))
        if (ip[6] << 8 | ip[7]) & 0x1FFF:
            return  # a later fragment: no TCP header in it
        off = (ip[0] & 15) << 2
    elif version == 6 and n >= 40:
        rec["src"], rec["dst"] = str(ip_address(ip[8:24])), str(ip_address(ip[24:40]))
        try:
            off = parse_ipv6(ip)[1]
        except WireError:
            if ip[6] != PROTO_TCP:
                return  # cannot tell where (or whether) a TCP header starts
            off = 40
    else:
        return
    if off < 20 or off + 20 > n:
        return
    sport, dport, seq, ack, off_flags = _TCP_FIXED.unpack_from(ip, off)
    flags = off_flags & 0xFFF
    rec.update(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, ace=ace_from_flags(flags))
    end = min(n, off + ((off_flags >> 12) << 2))
    readable: list[TcpOption] = []
    i = off + 20
    while i < end:  # one option at a time, so the ones before a bad one still show
        kind = ip[i]
        if kind == 0:
            size = end - i
        elif kind == 1:
            size = 1
        else:
            size = ip[i + 1] if i + 1 < end else 0
            if size < 2:
                break
        if i + size > end:
            break
        try:
            readable.extend(parse_options(ip[i : i + size], i))
        except WireError:
            break
        i += size
    _fill_options(rec, readable)


def decode_ip(index: int, ip: bytes) -> Record | None:
    """The record of one IP packet, or None when it does not carry TCP."""
    rec: Record = {"index": index}
    try:
        if not ip:
            raise WireError(0, "empty IP packet")
        if not _is_tcp(ip):
            return None
        seg = parse_segment(ip)
    except WireError as exc:
        rec["error"] = str(exc)
        _partial(rec, ip)
        return rec
    hdr = seg.ip
    tcp = seg.tcp
    rec["src"] = str(ip_address(hdr.src))
    rec["dst"] = str(ip_address(hdr.dst))
    rec["sport"] = tcp.sport
    rec["dport"] = tcp.dport
    rec["seq"] = tcp.seq
    rec["ack"] = tcp.ack
    rec["flags"] = tcp.flags
    rec["payload_len"] = len(seg.payload)
    rec["ace"] = ace_from_flags(tcp.flags)
    _fill_options(rec, tcp.options)
    return rec


def iter_decode_frames(frames: Iterable[Frame]) -> Iterator[Record]:
    """Records for the TCP packets among ``frames`` (errors per packet, never raised)."""
    for fr in frames:
        try:
            ip = link_payload(fr.link_type, fr.data)
        except WireError as exc:
            yield {"index": fr.index, "error": f"link layer (type {fr.link_type}): {exc}"}
            continue
        if ip is None:
            continue
        rec = decode_ip(fr.index, ip)
        if rec is not None:
            yield rec


def iter_decode(source: str | os.PathLike[str] | BinaryIO) -> Iterator[Record]:
    """Records for the TCP packets of a pcap/pcapng file, as they are read.

    A malformed file structure raises WireError (offset = byte position in the file) after
    the records of the packets before it.
    """
    return iter_decode_frames(read_frames(source))


def decode_pcap(path: str | os.PathLike[str] | BinaryIO) -> list[Record]:
    """Every TCP packet of a pcap/pcapng file as a record (see the module docstring)."""
    return list(iter_decode(path))


# --------------------------------------------------------------------------------------------
# text rendering

_HEX_KEYS = frozenset({"flags", "checksum", "nibble", "id", "exid"})


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) and key in _HEX_KEYS:
        return f"0x{value:02x}"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return "[" + ", ".join(_fmt_fields(v) for v in value) + "]"
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return "{" + _fmt_fields(value) + "}"
    return str(value)


def _fmt_fields(d: dict[str, Any], skip: frozenset[str] = frozenset()) -> str:
    return " ".join(f"{k}={_fmt(k, v)}" for k, v in d.items() if k not in skip)


_OPT_SKIP = frozenset({"kind", "name", "subtype"})


def _fmt_option(opt: dict[str, Any]) -> str:
    name = str(opt.get("name", "?"))
    if "subtype" in opt:
        name += f" {opt['subtype']}"
    if name == "UNKNOWN" or name == "EXP":
        name += f"({opt.get('kind')})"
    fields = _fmt_fields(opt, _OPT_SKIP)
    return f"{name} {fields}" if fields else name


def _endpoint(addr: Any, port: Any) -> str:
    a = str(addr)
    return f"[{a}]:{port}" if ":" in a else f"{a}:{port}"


def format_record(rec: Record) -> str:
    """One line for the packet, then one indented line per option (NOP runs collapsed)."""
    parts = [f"#{rec['index']}"]
    if "src" in rec:
        parts.append(f"{_endpoint(rec['src'], rec.get('sport', '?'))} > "
                     f"{_endpoint(rec['dst'], rec.get('dport', '?'))}")
    if "flags" in rec:
        parts.append(f"[{flags_text(rec['flags'])}]")
        parts.append(f"seq={rec['seq']} ack={rec['ack']}")
    if "payload_len" in rec:
        parts.append(f"len={rec['payload_len']}")
    if "ace" in rec:
        parts.append(f"ace={rec['ace']}")
    if "error" in rec:
        parts.append(f"ERROR: {rec['error']}")
    lines = [" ".join(parts)]
    nops = 0
    for opt in rec.get("options", ()):
        if opt.get("name") == "NOP":
            nops += 1
            continue
        if nops:
            lines.append(f"    NOP x{nops}" if nops > 1 else "    NOP")
            nops = 0
        lines.append("    " + _fmt_option(opt))
    if nops:
        lines.append(f"    NOP x{nops}" if nops > 1 else "    NOP")
    return "\n".join(lines)


def render_text(records: Iterable[Record]) -> Iterator[str]:
    """The text form of each record (see :func:`format_record`)."""
    for rec in records:
        yield format_record(rec)


def to_json(records: Iterable[Record]) -> str:
    """The records as one JSON list."""
    return json.dumps(list(records), indent=1)
