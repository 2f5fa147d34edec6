"""TCP-ENO option codec and the negotiation helpers built on it (RFC 8547).

Implements: the ENO option (RFC 8547 §4.1, kind 69; also carried in the shared experimental
kind 253 with ExID 0x454E as pre-RFC code did, RFC 8547 §11 and RFC 6994 §3 -- kind 254 is
accepted too, and the kind is kept), the initial suboption byte and Table 1 (§4.1), the global
suboption and its b / a / z bits (§4.2), roles (§4.3), length bytes and suboption data (§4.4),
the negotiated TEP (§4.5), the handshake failure rules that depend only on the options (§4.6),
the SYN TEP (§4.7), the negotiation transcript (§4.8) and the first byte of a session ID
(§5.1).

Two values come out of the option list for an ENO option:

* :class:`EnoOption` -- the contents parse as a SYN-form suboption list (§4.1 Figure 2).  The
  empty ENO option (length 2) is one of these: in a non-SYN segment it is the one-bit "I speak
  ENO" acknowledgment (§4.1 Figure 3, §4.6), in a SYN segment it is a *vacuous* option (§4.6).
* :class:`EnoOpaque` -- the contents break the SYN-form syntax (§4.4 rules 1 and 2).  Such
  bytes are still a valid *non-SYN-form* option, whose contents ENO ignores and TEPs may define
  (§4.1), and in a SYN segment the host ignores the option and disables encryption (§4.4).
  Neither case is a malformed TCP segment, so the parser registered with the option list never
  raises; :func:`parse_eno` is the strict SYN-form parser that raises :class:`WireError`.

Each suboption keeps its exact framing (bare TEP byte, length byte + TEP, or TEP with data to
the end of the option), so ``parse(x).to_bytes() == x`` for every input: the transcript (§4.8)
is built from the options exactly as they appeared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Any, NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.options import TcpOption, register_experimental, register_option
from mptcp.wire.value import wire_value

__all__ = [
    "ENO_KIND", "ENO_EXID", "TEP_EXPERIMENTAL", "TEP_P256", "TEP_P521", "TEP_X25519", "TEP_X448",
    "GLOBAL_B", "GLOBAL_A", "GLOBAL_Z",
    "TepFraming", "GlobalSuboption", "Tep", "Suboption", "EnoOption", "EnoOpaque", "ENO_ACK",
    "TepValidator",
    "parse_eno", "parse_eno_contents", "parse_eno_option", "find_syn_eno", "order_by_role",
    "negotiated_tep", "negotiate", "transcript",
]

ENO_KIND = 69
"""RFC 8547 §4.1 / §11 Table 2: TCP option kind of the ENO option."""
ENO_EXID = 0x454E
"""ExID ("EN") of pre-RFC TCP-ENO code in kind 253 (RFC 8547 §11; RFC 6994 framing)."""

# TEP identifiers (RFC 8547 §11 Table 3 "Experimental Use"; RFC 8548 §7 Table 4 for tcpcrypt).
TEP_EXPERIMENTAL = 0x20
TEP_P256 = 0x21  # TCP_CRYPT_ECDHE_P256
TEP_P521 = 0x22  # TCP_CRYPT_ECDHE_P521
TEP_X25519 = 0x23  # TCP_CRYPT_ECDHE_Curve25519
TEP_X448 = 0x24  # TCP_CRYPT_ECDHE_Curve448

# Global suboption bits, RFC 8547 §4.2 Figure 5.
GLOBAL_B = 0x01  # passive role bit
GLOBAL_A = 0x02  # application-aware bit
GLOBAL_Z = 0x1C  # z1 z2 z3: zero when sent, ignored when received

_V = 0x80  # the "v" bit of an initial suboption byte (§4.1 Figure 4)
_GLT_TEP_MIN = 0x20  # glt >= 0x20 is a TEP identifier (§4.1 Table 1)
_LENGTH_MIN = 0x80  # 100nnnnn length bytes (§4.4 Figure 6)
_TO_END_MIN = 0xA0  # TEP identifier with v = 1: data to the end of the option (§4.4)
_EXID_BYTES = ENO_EXID.to_bytes(2, "big")

_new = tuple.__new__


class TepFraming(IntEnum):
    """How a TEP suboption sits in the option (RFC 8547 §4.1 Table 1, §4.4)."""

    BARE = 0
    """One byte, v = 0, no data (0x20-0x7f)."""
    LENGTH = 1
    """Length byte ``100nnnnn``, TEP byte with v = 1, then nnnnn + 1 (1..32) data bytes (§4.4)."""
    TO_END = 2
    """TEP byte with v = 1 (0xa0-0xff), data runs to the end of the option: last only (§4.4)."""


# The members as module globals: ``TepFraming.BARE`` is a slow enum class attribute lookup.
_BARE = TepFraming.BARE
_LENGTH = TepFraming.LENGTH
_TO_END = TepFraming.TO_END


@wire_value
class GlobalSuboption(NamedTuple):
    """A global suboption byte 0x00-0x1f (RFC 8547 §4.2), kept whole (z bits included)."""

    value: int = 0

    @property
    def b(self) -> bool:
        """Passive role bit: the sender plays role B (§4.2, §4.3)."""
        return bool(self.value & GLOBAL_B)

    @property
    def a(self) -> bool:
        """Application-aware bit (§4.2, §8.4)."""
        return bool(self.value & GLOBAL_A)

    @property
    def z(self) -> int:
        """The reserved z1..z3 bits as sent (0x1c mask); receivers ignore them (§4.2)."""
        return self.value & GLOBAL_Z

    @classmethod
    def make(cls, *, b: bool = False, a: bool = False) -> GlobalSuboption:
        """The global suboption a conforming sender emits: z bits zero (§4.2)."""
        return _new(cls, ((GLOBAL_B if b else 0) | (GLOBAL_A if a else 0),))

    def to_bytes(self) -> bytes:
        value = self[0]
        if 0 <= value < 0x20:  # _GLT_TEP_MIN
            return bytes((value,))
        raise ValueError(f"global suboption 0x{value:02x} is not in 0x00-0x1f")

    def to_json(self) -> dict[str, Any]:
        return {"type": "global", "value": self.value, "b": self.b, "a": self.a, "z": self.z}


@wire_value
class Tep(NamedTuple):
    """A TEP identifier suboption (RFC 8547 §4.1, §4.4) with its data and exact framing."""

    id: int
    """The 7-bit TEP identifier glt, 0x20-0x7f."""
    data: bytes = b""
    framing: TepFraming = TepFraming.BARE

    @property
    def v(self) -> bool:
        """The v bit that accompanied the identifier on the wire (§4.1)."""
        return self.framing != _BARE

    @property
    def suboption_byte(self) -> int:
        """``v | glt`` as sent: the first byte of a session ID for this TEP (§5.1)."""
        return self.id | _V if self.framing != _BARE else self.id

    def to_bytes(self) -> bytes:
        tep = self[0]
        if not 0x20 <= tep <= 0x7F:  # _GLT_TEP_MIN
            raise ValueError(f"TEP identifier 0x{tep:02x} is not in 0x20-0x7f")
        framing = self[2]
        data = self[1]
        if framing == _BARE:
            if data:
                raise ValueError("a TEP without the v bit carries no data (RFC 8547 §4.1)")
            return bytes((tep,))
        if framing == _LENGTH:
            if not 1 <= len(data) <= 32:
                raise ValueError(f"a length byte covers 1..32 data bytes, not {len(data)}")
            return bytes((_LENGTH_MIN | (len(data) - 1), tep | _V)) + data
        if framing != _TO_END:
            raise ValueError(f"unknown TEP framing {framing!r}")
        return bytes((tep | _V,)) + data

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "tep",
            "id": self.id,
            "data": self.data.hex(),
            "framing": self.framing.name.lower(),
        }


Suboption = GlobalSuboption | Tep


def _one_byte_values(suboptions: tuple[Suboption, ...], out: list[int]) -> bool:
    """Append each suboption's byte to ``out`` while they are one-byte forms (a global
    suboption, or a TEP without data: §4.1 Table 1); True when all of them were."""
    for sub in suboptions:
        if type(sub) is Tep:
            if sub[2] is _BARE and not sub[1] and 0x20 <= sub[0] <= 0x7F:
                out.append(sub[0])
                continue
        elif type(sub) is GlobalSuboption and 0 <= sub[0] < 0x20:
            out.append(sub[0])
            continue
        return False
    return True


def _contents_bytes(suboptions: tuple[Suboption, ...]) -> bytes:
    last = len(suboptions) - 1
    # Fast path: only one-byte suboptions (global, or TEP without data), as a SYN carries.
    values: list[int] = []
    if _one_byte_values(suboptions, values):
        return bytes(values)
    parts = []
    for i, sub in enumerate(suboptions):
        if i != last and type(sub) is Tep and sub.framing == _TO_END:
            raise ValueError("a TEP with data to the end of the option must be the last suboption")
        parts.append(sub.to_bytes())
    return b"".join(parts)


def _frame(kind: int, contents: bytes) -> bytes:
    if kind == ENO_KIND:
        if len(contents) > 253:
            raise ValueError(f"ENO contents of {len(contents)} bytes do not fit a TCP option")
        return bytes((ENO_KIND, 2 + len(contents))) + contents
    if kind in (253, 254):
        if len(contents) > 251:
            raise ValueError(f"ENO contents of {len(contents)} bytes do not fit a TCP option")
        return bytes((kind, 4 + len(contents), 0x45, 0x4E)) + contents  # ExID 0x454E
    raise ValueError(f"ENO option kind {kind}: expected 69, 253 or 254")


def _json_head(kind: int) -> dict[str, Any]:
    head: dict[str, Any] = {"kind": kind}
    if kind != ENO_KIND:
        head["exid"] = ENO_EXID
    return head


@wire_value
class EnoOption(NamedTuple):
    """An ENO option whose contents are a well-formed SYN-form suboption list (§4.1).

    ``kind`` is 69, or 253/254 for the experimental framing with ExID 0x454E.  The empty option
    ``EnoOption()`` is the non-SYN-form acknowledgment a host sends (§4.1 Figure 3, §4.6) and,
    in a SYN, a vacuous ENO option (§4.6).
    """

    suboptions: tuple[Suboption, ...] = ()
    kind: int = ENO_KIND

    @property
    def global_suboption(self) -> GlobalSuboption:
        """The first global suboption, else the implicit 0x00 (§4.2: ignore all but the first)."""
        for sub in self.suboptions:
            if type(sub) is GlobalSuboption:
                return sub
        return _IMPLICIT_GLOBAL

    @property
    def b(self) -> bool:
        """The sender's passive role bit: True means it plays role B (§4.3)."""
        return self.global_suboption.b

    @property
    def a(self) -> bool:
        """The sender's application-aware bit (§4.2)."""
        return self.global_suboption.a

    @property
    def teps(self) -> tuple[Tep, ...]:
        """The TEP suboptions in wire order (the sender's increasing priority for B, §4.5)."""
        return tuple(sub for sub in self.suboptions if type(sub) is Tep)

    @property
    def vacuous(self) -> bool:
        """No TEP suboption at all: a SYN with this disables encryption (§4.6)."""
        return not any(type(sub) is Tep for sub in self.suboptions)

    @property
    def syn_tep(self) -> Tep | None:
        """The last TEP suboption: it decides the meaning of SYN data (§4.7)."""
        for sub in reversed(self.suboptions):
            if type(sub) is Tep:
                return sub
        return None

    @property
    def contents(self) -> bytes:
        """The option body after kind and length (and ExID for kinds 253/254)."""
        return _contents_bytes(self.suboptions)

    def to_bytes(self) -> bytes:
        suboptions, kind = self
        if not suboptions and kind == ENO_KIND:
            return b"\x45\x02"
        # Fast path: only one-byte suboptions (global, or TEP without data), as a SYN carries:
        # the option is its kind, length (and ExID) and one byte per suboption (§4.1, §4.4).
        if kind == ENO_KIND:
            out = [ENO_KIND, 2 + len(suboptions)]
            room = 253
        elif kind == 253 or kind == 254:
            out = [kind, 4 + len(suboptions), 0x45, 0x4E]  # ExID 0x454E
            room = 251
        else:
            return _frame(kind, _contents_bytes(suboptions))  # raises
        if _one_byte_values(suboptions, out) and len(suboptions) <= room:
            return bytes(out)
        return _frame(kind, _contents_bytes(suboptions))

    def to_json(self) -> dict[str, Any]:
        out = _json_head(self.kind)
        out["suboptions"] = [sub.to_json() for sub in self.suboptions]
        return out


_IMPLICIT_GLOBAL = GlobalSuboption(0)

ENO_ACK = EnoOption()
"""The non-SYN-form ENO option with zero contents (§4.1: N = 0 unless the TEP says otherwise)."""
_ENO_ACK_BYTES = ENO_ACK.to_bytes()


@wire_value
class EnoOpaque(NamedTuple):
    """An ENO option whose contents are not a valid SYN-form suboption list.

    Valid as a non-SYN-form option (contents ignored by ENO, TEP-defined, §4.1); in a SYN
    segment the option MUST be ignored and encryption disabled (§4.4, §4.6 rule 1).
    """

    contents: bytes
    kind: int = ENO_KIND

    @property
    def syn_form_error(self) -> WireError:
        """Why the contents are not SYN-form (offset relative to the option's first byte)."""
        head = 2 if self.kind == ENO_KIND else 4
        try:
            parse_eno_contents(self.contents, head)
        except WireError as err:
            return err
        return WireError(0, "contents are a valid SYN-form suboption list")

    def to_bytes(self) -> bytes:
        return _frame(self.kind, self.contents)

    def to_json(self) -> dict[str, Any]:
        out = _json_head(self.kind)
        out["contents"] = self.contents.hex()
        out["syn_form_error"] = self.syn_form_error.reason
        return out


def parse_eno_contents(contents: bytes, base: int = 0) -> tuple[Suboption, ...]:
    """Decode SYN-form ENO contents into suboptions (§4.1 Table 1, §4.2, §4.4).

    ``base`` is the offset of ``contents`` in the caller's buffer.  Raises :class:`WireError`
    for the two syntax errors of §4.4: a length byte whose data would run past the end of the
    option, and a length byte followed by a byte in 0x00-0x9f.
    """
    out: list[Suboption] = []
    append = out.append
    i = 0
    n = len(contents)
    while i < n:
        c = contents[i]
        if c < _GLT_TEP_MIN:  # v = 0, glt < 0x20: global suboption (§4.2)
            append(_new(GlobalSuboption, (c,)))
            i += 1
        elif c < _LENGTH_MIN:  # v = 0, glt >= 0x20: TEP without data
            append(_new(Tep, (c, b"", _BARE)))
            i += 1
        elif c < _TO_END_MIN:  # v = 1, glt < 0x20: length byte (§4.4)
            if i + 1 >= n:
                raise WireError(base + i, "ENO length byte is the last byte: no TEP follows")
            tep = contents[i + 1]
            if tep < _TO_END_MIN:
                raise WireError(
                    base + i + 1,
                    f"ENO length byte followed by 0x{tep:02x}, expected a TEP with v = 1",
                )
            end = i + 3 + (c & 0x1F)
            if end > n:
                raise WireError(
                    base + i,
                    f"ENO length byte announces {end - i - 2} data bytes, "
                    f"only {n - i - 2} left in the option",
                )
            append(_new(Tep, (tep & 0x7F, bytes(contents[i + 2 : end]), _LENGTH)))
            i = end
        else:  # v = 1, glt >= 0x20: TEP whose data runs to the end of the option (§4.4)
            append(_new(Tep, (c & 0x7F, bytes(contents[i + 1 :]), _TO_END)))
            break
    return tuple(out)


def _one_byte_form(opt: bytes) -> EnoOption | None:
    """The option if it is well framed and every content byte is below 0x80, else None.

    Such contents are one-byte suboptions only: globals (0x00-0x1f) and TEPs without data
    (0x20-0x7f), as a SYN usually carries (§4.1 Table 1); no length byte, so no syntax error
    (§4.4).  ``opt`` is bytes, at least 3 long; anything else is left to the general parser.
    """
    kind = opt[0]
    if kind == 69:  # ENO_KIND; the length byte and kind are below 0x80 too
        if opt[1] != len(opt) or not opt.isascii():
            return None
        body = opt[2:]
    elif kind == 253 or kind == 254:
        body = opt[4:]
        if opt[1] != len(opt) or not opt.startswith(b"EN", 2) or not body.isascii():
            return None
    else:
        return None
    subs = []
    for c in body:
        subs.append(_new(GlobalSuboption, (c,)) if c < 0x20 else _new(Tep, (c, b"", _BARE)))
    return _new(EnoOption, (tuple(subs), kind))


def _fast_form(opt: bytes) -> EnoOption | None:
    """The common shapes without the suboption loop, else None: the 5-byte SYN option (kind
    69, three one-byte suboptions, §4.1 Table 1), any option whose contents are one-byte
    suboptions only (:func:`_one_byte_form`), the empty non-SYN-form option (kind 69,
    length 2: ``ENO_ACK``, §4.1)."""
    n = len(opt)
    if n == 5:  # the usual SYN shape: kind 69 and three one-byte suboptions (§4.1 Table 1)
        kind, length, x, y, z = opt
        if kind == 69 and length == 5 and x < 0x80 and y < 0x80 and z < 0x80:
            return _new(EnoOption, ((
                _new(GlobalSuboption, (x,)) if x < 0x20 else _new(Tep, (x, b"", _BARE)),
                _new(GlobalSuboption, (y,)) if y < 0x20 else _new(Tep, (y, b"", _BARE)),
                _new(GlobalSuboption, (z,)) if z < 0x20 else _new(Tep, (z, b"", _BARE)),
            ), kind))
    if n > 2 and type(opt) is bytes:
        eno = _one_byte_form(opt)
        if eno is not None:
            return eno
    if opt == _ENO_ACK_BYTES:
        return ENO_ACK
    return None


def _split(opt: bytes, off: int) -> tuple[int, int]:
    """(kind, first content byte) of a whole ENO option; checks the framing only."""
    kind = opt[0] if opt else -1
    if kind == ENO_KIND:
        if len(opt) < 2 or opt[1] != len(opt):
            raise WireError(off + 1, f"ENO option length does not match its {len(opt)} bytes")
        return kind, 2
    if kind in (253, 254):
        if len(opt) < 4 or opt[1] != len(opt) or opt[2:4] != _EXID_BYTES:
            raise WireError(off, "not an experimental ENO option (ExID 0x454E)")
        return kind, 4
    raise WireError(off, f"option kind {kind} is not ENO")


def parse_eno(opt: bytes, off: int = 0) -> EnoOption:
    """Strict parser: the whole option (kind 69, or 253/254 + ExID 0x454E) as SYN-form ENO.

    Raises :class:`WireError` (offsets relative to ``off``) if the contents break the
    suboption syntax of §4.4.
    """
    eno = _fast_form(opt)
    if eno is not None:
        return eno
    kind, head = _split(opt, off)
    return _new(EnoOption, (parse_eno_contents(opt[head:], off + head), kind))


def parse_eno_option(opt: bytes, off: int) -> TcpOption:
    """The parser registered with the option list: :class:`EnoOption` or :class:`EnoOpaque`.

    Never fails on an option the list parser accepted: contents that are not SYN-form are a
    valid non-SYN-form option (§4.1) and only disable ENO when seen in a SYN (§4.4).
    """
    eno = _fast_form(opt)
    if eno is not None:
        return eno
    kind, head = _split(opt, off)
    try:
        return _new(EnoOption, (parse_eno_contents(opt[head:], off + head), kind))
    except WireError:
        return _new(EnoOpaque, (bytes(opt[head:]), kind))


register_option(ENO_KIND, parse_eno_option)
register_experimental(ENO_EXID, parse_eno_option)


def find_syn_eno(options: Iterable[object]) -> EnoOption | None:
    """The ENO option of a SYN segment's option list, or None if ENO must be treated as absent.

    RFC 8547 §4.1: a SYN with more than one ENO option is treated as having none; §4.4 / §4.6
    rule 1: an ill-formed SYN-form option (:class:`EnoOpaque`) is ignored.
    """
    found: EnoOption | None = None
    count = 0
    for opt in options:
        if type(opt) is EnoOption:
            found = opt
            count += 1
        elif type(opt) is EnoOpaque:
            count += 1
    return found if count == 1 else None


def order_by_role(x: EnoOption, y: EnoOption) -> tuple[EnoOption, EnoOption] | None:
    """(A's option, B's option) from two SYN-form options, by their b bits (§4.3).

    None when both sides set the same b value: role negotiation failed (§4.3, §4.6 rule 3).
    Useful for a simultaneous open, where either side may be A.
    """
    if x.b == y.b:
        return None
    return (y, x) if x.b else (x, y)


TepValidator = Callable[[int, tuple[Tep, ...], tuple[Tep, ...]], bool]
"""``valid(glt, a_suboptions, b_suboptions)``: the TEP-specific checks of §4.5 rules 2 and 3
(suboption data valid and runtime constraints met; repetition well-defined), given all of A's
and all of B's suboptions carrying that identifier."""


def negotiated_tep(
    a_syn: EnoOption | EnoOpaque | None,
    b_syn: EnoOption | EnoOpaque | None,
    *,
    valid: TepValidator | None = None,
) -> Tep | None:
    """B's suboption for the negotiated TEP, or None if ENO fails (RFC 8547 §4.5, §4.6).

    ``a_syn`` is the ENO option of host A's SYN, ``b_syn`` that of host B's SYN(-ACK).  ENO
    fails when either is missing or ill-formed (§4.6 rule 1), when A did not send b = 0 or B
    did not send b = 1 (§4.3, §4.6 rule 3), or when no TEP is valid (§4.6 rule 2), which
    includes a vacuous option on either side (§4.6).  A TEP is valid when both sides offered
    it (§4.5 rule 1) and ``valid`` (if given) accepts it (§4.5 rules 2-3).  The negotiated TEP
    is the *last* valid one in B's option (§4.5); the returned suboption is B's last one for
    that identifier, whose v bit starts the session ID (§5.1).  The mandatory
    application-aware mode check (§4.2, §4.6 rule 3) is the caller's: see ``EnoOption.a``.
    """
    if type(a_syn) is not EnoOption or type(b_syn) is not EnoOption:
        return None
    if a_syn.b or not b_syn.b:
        return None
    a_teps = a_syn.teps
    offered = {t.id for t in a_teps}
    b_teps = b_syn.teps
    rejected: set[int] = set()
    for tep in reversed(b_teps):
        glt = tep.id
        if glt not in offered or glt in rejected:
            continue
        if valid is None or valid(
            glt, tuple(t for t in a_teps if t.id == glt), tuple(t for t in b_teps if t.id == glt)
        ):
            return tep
        rejected.add(glt)
    return None


def negotiate(
    a_syn: EnoOption | EnoOpaque | None,
    b_syn: EnoOption | EnoOpaque | None,
    *,
    valid: TepValidator | None = None,
) -> int | None:
    """The negotiated TEP identifier (glt, 0x20-0x7f), or None: see :func:`negotiated_tep`."""
    tep = negotiated_tep(a_syn, b_syn, valid=valid)
    return None if tep is None else tep.id


def transcript(a_syn: EnoOption, b_syn: EnoOption) -> bytes:
    """The negotiation transcript (§4.8): A's then B's SYN-form ENO option exactly as sent,
    kind and length bytes included."""
    return a_syn.to_bytes() + b_syn.to_bytes()
