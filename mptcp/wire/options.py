"""Generic TCP option list (RFC 9293 §3.2) with a kind registry, and the base options.

Implements: EOL / NOP / MSS (RFC 9293 §3.2), Window Scale and Timestamps (RFC 7323 §2.2,
§3.2), SACK-permitted and SACK (RFC 2018 §2, §3), TCP Fast Open cookie (RFC 7413 §4.1.1,
kind 34), and the shared experimental kinds 253/254 with a 16-bit ExID (RFC 6994 §3).
Unknown kinds are preserved byte-exact as :class:`UnknownOption`.

Other packages plug their codecs in with :func:`register_option` (by kind) and
:func:`register_experimental` (by ExID on kinds 253/254).  A parser receives the whole option
(kind and length bytes included) and the option's offset in the caller's buffer, and returns a
value with ``to_bytes()``; it raises :class:`WireError` with that offset added for anything
malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from struct import Struct
from typing import NamedTuple, Protocol

from mptcp.wire.errors import WireError
from mptcp.wire.value import wire_value

__all__ = [
    "EOL_KIND", "NOP_KIND", "MSS_KIND", "WS_KIND", "SACK_PERMITTED_KIND", "SACK_KIND",
    "TIMESTAMPS_KIND", "TFO_KIND", "EXPERIMENTAL_KINDS",
    "TcpOption", "OptionParser", "Eol", "Nop", "NOP", "Mss", "WindowScale", "SackPermitted",
    "Sack", "Timestamps", "FastOpen", "Experimental", "UnknownOption",
    "register_option", "register_experimental", "parse_options", "parse_option",
    "SACK_PERMITTED", "serialize_options",
    "registered_kinds", "registered_exids",
]

EOL_KIND = 0
NOP_KIND = 1
MSS_KIND = 2
WS_KIND = 3
SACK_PERMITTED_KIND = 4
SACK_KIND = 5
TIMESTAMPS_KIND = 8
TFO_KIND = 34
EXPERIMENTAL_KINDS = (253, 254)

_H = Struct("!H")
_BBH = Struct("!BBH")
_BBII = Struct("!BBII")
_II = Struct("!II")
_unpack_ii = _II.unpack_from

_new = tuple.__new__


class TcpOption(Protocol):
    """What every option value offers: its exact wire bytes (kind and length included)."""

    def to_bytes(self) -> bytes: ...


OptionParser = Callable[[bytes, int], TcpOption]
"""``parser(option_bytes, offset)``: ``option_bytes`` holds kind, length and body."""


@wire_value
class Eol(NamedTuple):
    """End of option list (kind 0); ``padding`` keeps the bytes after it exactly."""

    padding: bytes = b""

    def to_bytes(self) -> bytes:
        return b"\x00" + self.padding


@wire_value
class Nop(NamedTuple):
    """No-operation (kind 1), one byte."""

    def to_bytes(self) -> bytes:
        return b"\x01"


NOP = Nop()


@wire_value
class Mss(NamedTuple):
    """Maximum segment size (kind 2, length 4), RFC 9293 §3.7.1."""

    mss: int

    def to_bytes(self) -> bytes:
        return _BBH.pack(MSS_KIND, 4, self.mss)


@wire_value
class WindowScale(NamedTuple):
    """Window scale shift count (kind 3, length 3), RFC 7323 §2.2 (the raw byte, even > 14)."""

    shift: int

    def to_bytes(self) -> bytes:
        return bytes((WS_KIND, 3, self.shift))


@wire_value
class SackPermitted(NamedTuple):
    """SACK-permitted (kind 4, length 2), RFC 2018 §2."""

    def to_bytes(self) -> bytes:
        return b"\x04\x02"


SACK_PERMITTED = SackPermitted()


@wire_value
class Sack(NamedTuple):
    """SACK blocks (kind 5, length 2 + 8n, n >= 1), RFC 2018 §3: ((left, right), ...)."""

    blocks: tuple[tuple[int, int], ...]

    def to_bytes(self) -> bytes:
        out = bytearray((SACK_KIND, 2 + 8 * len(self.blocks)))
        for left, right in self.blocks:
            out += _II.pack(left, right)
        return bytes(out)


@wire_value
class Timestamps(NamedTuple):
    """Timestamps TSval / TSecr (kind 8, length 10), RFC 7323 §3.2."""

    tsval: int
    tsecr: int

    def to_bytes(self) -> bytes:
        return _BBII.pack(TIMESTAMPS_KIND, 10, self.tsval, self.tsecr)


@wire_value
class FastOpen(NamedTuple):
    """TFO cookie (kind 34), RFC 7413 §4.1.1: empty = cookie request, else 4..16 bytes."""

    cookie: bytes = b""

    def to_bytes(self) -> bytes:
        return bytes((TFO_KIND, 2 + len(self.cookie))) + self.cookie


@wire_value
class Experimental(NamedTuple):
    """Shared experimental option (kind 253/254) with an unregistered 16-bit ExID, RFC 6994."""

    kind: int
    exid: int
    data: bytes = b""

    def to_bytes(self) -> bytes:
        return _BBH.pack(self.kind, 4 + len(self.data), self.exid) + self.data


@wire_value
class UnknownOption(NamedTuple):
    """Any kind nobody registered: kept byte-exact."""

    kind: int
    data: bytes = b""

    def to_bytes(self) -> bytes:
        return bytes((self.kind, 2 + len(self.data))) + self.data


def _parse_mss(opt: bytes, off: int) -> TcpOption:
    if len(opt) != 4:
        raise WireError(off + 1, f"MSS option length {len(opt)}, expected 4")
    return _new(Mss, (_H.unpack_from(opt, 2)[0],))


def _parse_ws(opt: bytes, off: int) -> TcpOption:
    if len(opt) != 3:
        raise WireError(off + 1, f"window scale option length {len(opt)}, expected 3")
    return _new(WindowScale, (opt[2],))


def _parse_sackok(opt: bytes, off: int) -> TcpOption:
    if len(opt) != 2:
        raise WireError(off + 1, f"SACK-permitted option length {len(opt)}, expected 2")
    return SACK_PERMITTED


def _parse_sack(opt: bytes, off: int) -> TcpOption:
    n = len(opt) - 2
    if n < 8 or n % 8:
        raise WireError(off + 1, f"SACK option length {len(opt)}, expected 2 + 8n (n >= 1)")
    words = _II.iter_unpack(opt[2:]) if n > 8 else (_II.unpack_from(opt, 2),)
    return _new(Sack, (tuple(words),))


def _parse_ts(opt: bytes, off: int) -> TcpOption:
    if len(opt) != 10:
        raise WireError(off + 1, f"timestamps option length {len(opt)}, expected 10")
    return _new(Timestamps, _II.unpack_from(opt, 2))


def _parse_tfo(opt: bytes, off: int) -> TcpOption:
    n = len(opt) - 2
    if n and not 4 <= n <= 16:
        raise WireError(off + 1, f"TFO cookie of {n} bytes, expected 0 or 4..16")
    return _new(FastOpen, (opt[2:],))


# The base options' codecs: well-formed ones are decoded inline by parse_options, these
# handle (and reject) the other lengths and SACK / TFO.
_BASE_PARSERS: dict[int, OptionParser] = {
    MSS_KIND: _parse_mss,
    WS_KIND: _parse_ws,
    SACK_PERMITTED_KIND: _parse_sackok,
    SACK_KIND: _parse_sack,
    TIMESTAMPS_KIND: _parse_ts,
    TFO_KIND: _parse_tfo,
}
# Codecs plugged in by other packages (MPTCP, ENO, AccECN, ...) and the experimental kinds.
_PARSERS: dict[int, OptionParser] = {}
_EXPERIMENTAL: dict[int, OptionParser] = {}
# Base kinds that a plugged-in codec replaced (the per-segment fast paths then step aside).
_BASE_OVERRIDES: set[int] = set()


def _parse_experimental(opt: bytes, off: int) -> TcpOption:
    if len(opt) < 4:
        raise WireError(off + 1, f"experimental option length {len(opt)}, expected >= 4")
    exid = _H.unpack_from(opt, 2)[0]
    parser = _EXPERIMENTAL.get(exid)
    if parser is not None:
        return parser(opt, off)
    return _new(Experimental, (opt[0], exid, opt[4:]))


for _k in EXPERIMENTAL_KINDS:
    _PARSERS[_k] = _parse_experimental


def register_option(kind: int, parser: OptionParser) -> None:
    """Plug a codec in for option ``kind`` (2..255, not 253/254: use register_experimental).

    A codec registered for a base kind (MSS, SACK, ...) replaces the built-in one.
    """
    if not 2 <= kind <= 255 or kind in EXPERIMENTAL_KINDS:
        raise ValueError(f"cannot register option kind {kind}")
    if kind in _BASE_PARSERS:
        _BASE_OVERRIDES.add(kind)
    _PARSERS[kind] = parser


def register_experimental(exid: int, parser: OptionParser) -> None:
    """Plug a codec in for ExID ``exid`` on the experimental kinds 253 and 254 (RFC 6994)."""
    if not 0 <= exid <= 0xFFFF:
        raise ValueError(f"ExID {exid} out of range")
    _EXPERIMENTAL[exid] = parser


def registered_kinds() -> frozenset[int]:
    """Kinds with a codec (the base ones, 253/254 dispatching on ExID, and plugged-in ones)."""
    return frozenset(_PARSERS) | frozenset(_BASE_PARSERS)


def registered_exids() -> frozenset[int]:
    """ExIDs with a codec on kinds 253/254."""
    return frozenset(_EXPERIMENTAL)


def _bad_length(kind: int, length: int, offset: int) -> WireError:
    if length < 2:
        return WireError(offset, f"option kind {kind} has length {length} < 2")
    return WireError(offset, f"option kind {kind} length {length} overruns the list")


def parse_options(buf: bytes, base: int = 0) -> tuple[TcpOption, ...]:
    """Decode a TCP option list; ``base`` is its offset in the caller's buffer (for errors).

    RFC 9293 §3.2: EOL ends the list (bytes after it are kept as padding), NOP is one byte,
    every other option has a length byte >= 2 that must fit in the list.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    if len(buf) >= 12 and buf[:4] == b"\x01\x01\x08\x0a":
        # NOP, NOP, Timestamps: how Linux starts the options of every non-SYN segment
        return _parse_from(buf, 12, base, [NOP, NOP, _new(Timestamps, _unpack_ii(buf, 4))])
    return _parse_from(buf, 0, base, [])


def _parse_from(
    buf: bytes, i: int, base: int, out: list[TcpOption]
) -> tuple[TcpOption, ...]:
    """The options of ``buf`` (bytes) from ``i`` on, after those already in ``out``.

    The commonest well-formed options (timestamps, MSS, window scale, SACK-permitted) are
    decoded inline: this loop runs for every segment.  Used by :func:`parse_options` and by
    ``parse_segment``, which parses a leading NOP NOP Timestamps itself.
    """
    new = _new
    parsers = _PARSERS
    n = len(buf)
    # Kinds are literals below (globals cost a dictionary lookup each, per option).
    append = out.append
    while i < n:
        kind = buf[i]
        if kind == 1:  # NOP
            append(NOP)
            i += 1
            continue
        if kind == 0:  # EOL
            append(new(Eol, (buf[i + 1 :],)))
            break
        try:
            length = buf[i + 1]
        except IndexError:
            raise WireError(base + i, f"option kind {kind} has no length byte") from None
        end = i + length
        if length < 2 or end > n:
            raise _bad_length(kind, length, base + i + 1)
        parser = parsers.get(kind)
        if parser is not None:
            append(parser(buf[i:end], base + i))
        elif kind == 8 and length == 10:  # timestamps (RFC 7323 §3.2)
            append(new(Timestamps, _unpack_ii(buf, i + 2)))
        elif kind == 2 and length == 4:  # MSS (RFC 9293 §3.7.1)
            append(new(Mss, (buf[i + 2] << 8 | buf[i + 3],)))
        elif kind == 4 and length == 2:  # SACK-permitted (RFC 2018 §2)
            append(SACK_PERMITTED)
        elif kind == 3 and length == 3:  # window scale (RFC 7323 §2.2)
            append(new(WindowScale, (buf[i + 2],)))
        elif kind in _BASE_PARSERS:
            append(_BASE_PARSERS[kind](buf[i:end], base + i))
        else:
            append(new(UnknownOption, (kind, buf[i + 2 : end])))
        i = end
    return tuple(out)


def parse_option(opt: bytes, base: int = 0) -> TcpOption:
    """Decode exactly one option (kind, length and body) through the registry."""
    opts = parse_options(opt, base)
    if len(opts) != 1:
        raise WireError(base, f"expected one option, found {len(opts)}")
    return opts[0]


def serialize_options(options: Iterable[TcpOption]) -> bytes:
    """Concatenate the options' wire bytes (no padding added)."""
    nop = NOP
    return b"".join([b"\x01" if o is nop else o.to_bytes() for o in options])
