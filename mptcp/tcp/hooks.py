"""The extension interface of the TCP engine (DESIGN.md "Extension hooks").

MPTCP subflows, TCP-ENO/tcpcrypt, Inner Space and AccECN plug into a connection through
:class:`TcpExtension` objects.  A connection holds a list of them (from
``TcpConfig.extensions`` factories, plus ``TcpConnection.add_extension``) and calls them **in
order**; every method has a no-op default, and the engine only calls the methods a subclass
overrides (detected once when the extension is added), so a connection without extensions
pays one empty-tuple test per hook point.

Hook points, in the order a segment meets them:

1. **Incoming segment** -- :meth:`TcpExtension.on_segment` sees every segment addressed to the
   connection (header bits, options, IP ECN field, payload) *before* the engine processes it.
   It returns a :class:`Verdict`: ``ACCEPT`` (go on), ``DROP`` (consume it silently, e.g. a
   segment the extension answered itself) or ``RESET`` (the engine sends a RST and closes
   with ``Reset("extension")``).  The first extension not returning ``ACCEPT`` wins.
2. **Payload transforms** -- :meth:`TcpExtension.transform_send` rewrites application bytes
   on their way into the send buffer, :meth:`TcpExtension.transform_receive` rewrites
   in-order bytes on their way to the application (tcpcrypt framing, Inner Space in-band
   options).  Stream transforms, not per-segment: the engine still retransmits the
   transformed bytes exactly.  Send transforms run in list order, receive transforms in
   reverse order.  Send-buffer accounting counts the *application* bytes accepted; a
   transform that expands data may overfill the buffer by the expansion.
3. **Outgoing options** -- for every segment the engine builds (:class:`SegmentKind`), it asks
   :meth:`TcpExtension.option_space` how many bytes each extension wants, frees space by
   leaving out its own optional options in the order of :data:`DROP_ORDER_SYN` /
   :data:`DROP_ORDER_OTHER`, then calls :meth:`TcpExtension.write_options` with the space
   still free (after the engine's options and the earlier extensions' ones).  The returned
   options must fit (:class:`HookError` otherwise); padding is added at the end.
4. **Header bits** -- :meth:`TcpExtension.on_header` may rewrite the AE/CWR/ECE flags and the
   IP ECN codepoint of every outgoing segment (:class:`OutHeader`).  An extension with
   ``handles_ecn = True`` (AccECN) owns ECN: the engine then neither negotiates RFC 3168 ECN
   nor sets ECT/CWR/ECE itself; the extension reports congestion with
   ``TcpConnection.ecn_congestion(now)``.
5. **Events** -- :meth:`TcpExtension.on_event` receives every application event
   (``Connected``, ``EofReceived``, ``Reset`` ...) and the engine notices ``DataAcked`` and
   ``Retransmitted`` (events.py).

A listener-level hook lives in the Stack (``ListenerHook`` in stack.py): it may claim a SYN
before the 4-tuple / listener lookup (MP_JOIN routes by token).

:class:`EchoCounterExtension` is a tiny working example: an experimental option (kind 253,
ExID 0x4D4C, RFC 6994) carrying a counter and the last counter seen from the peer.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from struct import Struct
from typing import TYPE_CHECKING, NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.options import TcpOption, register_experimental
from mptcp.wire.value import wire_value

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection
    from mptcp.tcp.events import Event
    from mptcp.wire.segment import Segment

__all__ = [
    "SegmentKind", "Verdict", "OutHeader", "TcpExtension", "HookError", "DROP_ORDER_SYN",
    "DROP_ORDER_OTHER", "overrides", "EchoCounterOption", "EchoCounterExtension",
    "ECHO_EXID", "MAX_OPTION_SPACE",
]

MAX_OPTION_SPACE = 40  # RFC 9293 §3.1: data offset of 15 words


class HookError(RuntimeError):
    """An extension broke the contract (options larger than the space it was given)."""


class SegmentKind(enum.Enum):
    """What the engine is building, for option and header hooks."""

    SYN = "SYN"
    SYN_ACK = "SYN-ACK"
    ACK = "ACK"  # no payload, no SYN/FIN: pure ACK, window update, dup ACK, keepalive
    DATA = "DATA"  # payload and/or FIN
    RST = "RST"


class Verdict(enum.Enum):
    """What :meth:`TcpExtension.on_segment` decides about an incoming segment."""

    ACCEPT = "accept"
    DROP = "drop"
    RESET = "reset"


DROP_ORDER_SYN = ("timestamps", "sack_permitted", "window_scale")
"""Options the engine leaves out of a SYN / SYN-ACK, in this order, to make room for
extensions (MSS and the TFO cookie are never left out; dropping one means that feature is not
negotiated).  RFC 7323 §3.2 / RFC 2018 §2 allow a SYN without them."""

DROP_ORDER_OTHER = ("sack_blocks", "timestamps")
"""Options the engine leaves out of other segments: SACK blocks first, one at a time from the
last (oldest) block, then the timestamps option (counted as ``TcpExtTCPTSDroppedForOpt``:
RFC 7323 §3.2 wants it on every segment once negotiated, so this is a last resort, as Linux
MPTCP does for ADD_ADDR)."""


@dataclass(slots=True)
class OutHeader:
    """The header fields an extension may change on an outgoing segment (hook 4).

    ``flags`` is the 12-bit TCP flags field (only AE, CWR and ECE may be changed), ``ecn`` the
    IP ECN codepoint (``mptcp.wire.ip.ECN_*``).  ``seq`` is the segment's stream offset (0 =
    the SYN), ``length`` its payload length, ``retransmission`` whether it was sent before.
    """

    kind: SegmentKind
    flags: int
    ecn: int
    seq: int
    length: int
    retransmission: bool


class TcpExtension:
    """Base class of extensions: override what you need; defaults do nothing.

    ``conn`` is the :class:`~mptcp.tcp.connection.TcpConnection` the extension is attached to
    (read its state, ``conn.mib`` for counters).  Extensions must not call ``receive`` /
    ``packets_to_send`` from a hook.
    """

    handles_ecn: bool = False
    """True: the extension owns ECN (AccECN); see the module docstring, hook 4."""

    def attach(self, conn: TcpConnection) -> None:
        """Called once when the extension is added to ``conn``."""

    def on_segment(self, conn: TcpConnection, seg: Segment, now: float) -> Verdict:
        """Hook 1: an incoming segment, before the engine looks at it."""
        return Verdict.ACCEPT

    def transform_send(self, conn: TcpConnection, data: bytes) -> bytes:
        """Hook 2: application bytes on their way into the send buffer."""
        return data

    def transform_receive(self, conn: TcpConnection, data: bytes) -> bytes:
        """Hook 2: in-order bytes on their way to the application."""
        return data

    def option_space(self, conn: TcpConnection, kind: SegmentKind) -> int:
        """Hook 3: option bytes wanted on the next segment of ``kind`` (0 = none)."""
        return 0

    def write_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                      hdr: OutHeader) -> Sequence[TcpOption]:
        """Hook 3: the options to add (their wire size must be <= ``space``)."""
        return ()

    def on_header(self, conn: TcpConnection, hdr: OutHeader) -> None:
        """Hook 4: rewrite ``hdr.flags`` (AE/CWR/ECE) and ``hdr.ecn`` before sending."""

    def on_event(self, conn: TcpConnection, event: Event) -> None:
        """Hook 5: an engine event or notice."""


_HOOKS = ("on_segment", "transform_send", "transform_receive", "option_space", "on_header",
          "on_event")


def overrides(ext: TcpExtension, name: str) -> bool:
    """Whether ``ext`` overrides hook ``name`` of :class:`TcpExtension` (so it gets called)."""
    if name not in _HOOKS:
        raise ValueError(f"unknown hook {name!r}")
    return getattr(type(ext), name) is not getattr(TcpExtension, name)


# --- the example extension ------------------------------------------------------------------

ECHO_EXID = 0x4D4C  # "ML" (mptcp-lab), RFC 6994 experimental ExID
_ECHO = Struct("!BBHHH")


@wire_value
class EchoCounterOption(NamedTuple):
    """Kind 253, length 8, ExID 0x4D4C: our 16-bit ``counter`` and the peer's last ``echo``."""

    counter: int
    echo: int

    def to_bytes(self) -> bytes:
        return _ECHO.pack(253, 8, ECHO_EXID, self.counter, self.echo)


def _parse_echo(opt: bytes, off: int) -> TcpOption:
    if len(opt) != 8:
        raise WireError(off + 1, f"echo-counter option length {len(opt)}, expected 8")
    _, _, _, counter, echo = _ECHO.unpack(opt)
    return EchoCounterOption(counter, echo)


register_experimental(ECHO_EXID, _parse_echo)


class EchoCounterExtension(TcpExtension):
    """Puts :class:`EchoCounterOption` on every segment (counter incremented per segment) and
    remembers the peer's counter; ``mismatches`` counts echoes of values we never sent."""

    def __init__(self, wanted: int = 8) -> None:
        self.counter = 0
        self.peer_counter = 0
        self.echoes: list[int] = []
        self.seen_kinds: list[SegmentKind] = []
        self.events: list[Event] = []
        self.wanted = wanted  # > 8 to test the engine's option-dropping order

    def on_segment(self, conn: TcpConnection, seg: Segment, now: float) -> Verdict:
        for opt in seg.tcp.options:
            if type(opt) is EchoCounterOption:
                self.peer_counter = opt.counter
                self.echoes.append(opt.echo)
        return Verdict.ACCEPT

    def option_space(self, conn: TcpConnection, kind: SegmentKind) -> int:
        return 0 if kind is SegmentKind.RST else self.wanted

    def write_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                      hdr: OutHeader) -> Sequence[TcpOption]:
        self.seen_kinds.append(kind)
        if space < 8:
            return ()
        self.counter = (self.counter + 1) & 0xFFFF
        return (EchoCounterOption(self.counter, self.peer_counter),)

    def on_event(self, conn: TcpConnection, event: Event) -> None:
        self.events.append(event)
