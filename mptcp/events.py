"""Events an MPTCP connection reports from ``next_event()``.

They subclass :class:`mptcp.tcp.events.Event` (frozen, slotted dataclasses) so the runner's
tracer logs them like TCP events (one JSON object per event, the fields by name, enum members
by value).  The vocabulary follows RFC 8684: connection establishment with MP_CAPABLE (§3.1)
or fallback to regular TCP (§3.7), data-level delivery and DATA_FIN (§3.3, §3.3.3),
MP_FASTCLOSE (§3.5), MP_TCPRST reasons (§3.6), DSS checksum failures and MP_FAIL (§3.7),
subflows coming and going (§3.2, §3.3.3, §3.4).

:class:`FallbackReason` names why a connection fell back; its members are plain ``str`` and
``mptcp.mib.FALLBACK_COUNTERS`` maps each one to its MIB counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mptcp.tcp.events import Event

__all__ = [
    "FallbackReason", "MptcpConnected", "FallbackToTcp", "MptcpDataReceived",
    "MptcpEofReceived", "MptcpClosed", "MptcpReset", "FastCloseReceived", "FastCloseSent",
    "SubflowEstablished", "SubflowClosed", "MpFailSent", "MpFailReceived", "ChecksumError",
    "MptcpSendBufferFree", "AddressAnnounced", "AddressRemoved", "PriorityChanged",
]


class FallbackReason(StrEnum):
    """Why a connection continues as plain TCP (RFC 8684 §3.1, §3.7)."""

    # Client: the SYN/ACK carried no (valid) MP_CAPABLE (§3.1).
    NO_MPC_SYNACK = "no-mpc-synack"
    # Server: the third ACK / first data carried no MP_CAPABLE and no DSS (§3.1).
    NO_MPC_ACK = "no-mpc-ack"
    # The first data segment, or data before any DSS, came without a mapping: options
    # stripped by a middlebox (§3.7).
    NO_DSS = "no-dss"
    # A DSS checksum failed with a single subflow: MP_FAIL and an infinite mapping (§3.7).
    CHECKSUM = "checksum"
    # The peer sent an infinite mapping (§3.7).
    INFINITE_MAPPING = "infinite-mapping"
    # MP_CAPABLE SYNs went unanswered; retried without MPTCP (Linux's blackhole detection).
    BLACKHOLE = "blackhole"
    # The peer's MP_CAPABLE asks for a version we do not speak (§3.1).
    VERSION = "version"
    # The peer's MP_CAPABLE sets B (extensibility) or lacks H: ignored, so fallback (§3.1).
    UNSUPPORTED_FLAGS = "unsupported-flags"
    # No key with a locally unique token could be generated (§3.1).
    TOKEN_INIT = "token-init"
    # MPTCP disabled locally (configuration, or the listener/application did not ask for it).
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class MptcpConnected(Event):
    """The connection is usable (RFC 8684 §3.1): ``fallback`` when it runs as plain TCP,
    ``checksums`` when DSS checksums were negotiated (either side set A)."""

    fallback: bool = False
    checksums: bool = False


@dataclass(frozen=True, slots=True)
class FallbackToTcp(Event):
    """The connection fell back to regular TCP (RFC 8684 §3.7); ``reason`` is usually a
    :class:`FallbackReason`."""

    reason: str


@dataclass(frozen=True, slots=True)
class MptcpDataReceived(Event):
    """``length`` new in-order data-level bytes can be read (RFC 8684 §3.3)."""

    length: int


@dataclass(frozen=True, slots=True)
class MptcpEofReceived(Event):
    """The peer's DATA_FIN arrived in data-sequence order: no more data (RFC 8684 §3.3.3)."""


@dataclass(frozen=True, slots=True)
class MptcpClosed(Event):
    """The data-level close completed in both directions: our DATA_FIN was DATA_ACKed and
    the peer's was received (RFC 8684 §3.3.3)."""


@dataclass(frozen=True, slots=True)
class MptcpReset(Event):
    """The connection ended abruptly: the peer reset it or a fatal error occurred.

    ``reason`` is free text ("peer reset", "fastclose", "mp_fail", ...); ``tcprst`` the
    MP_TCPRST reason code (RFC 8684 §3.6, ``MptcpRstReason`` for known codes) when the
    reset carried one, else None.
    """

    reason: str
    tcprst: int | None = None


@dataclass(frozen=True, slots=True)
class FastCloseReceived(Event):
    """A valid MP_FASTCLOSE (carrying our key) closed the connection (RFC 8684 §3.5)."""


@dataclass(frozen=True, slots=True)
class FastCloseSent(Event):
    """We sent MP_FASTCLOSE to abort the connection (RFC 8684 §3.5)."""


@dataclass(frozen=True, slots=True)
class SubflowEstablished(Event):
    """Subflow ``subflow`` (a printable id, e.g. its 4-tuple) is established (RFC 8684
    §3.1 for the initial subflow, §3.2 for MP_JOIN)."""

    subflow: str


@dataclass(frozen=True, slots=True)
class SubflowClosed(Event):
    """Subflow ``subflow`` closed: ``reason`` e.g. "fin", "reset", "mp_tcprst",
    "checksum" (RFC 8684 §3.3.3, §3.6, §3.7)."""

    subflow: str
    reason: str


@dataclass(frozen=True, slots=True)
class MpFailSent(Event):
    """We sent MP_FAIL for data starting at ``dsn`` (a 64-bit DSN, RFC 8684 §3.7)."""

    dsn: int


@dataclass(frozen=True, slots=True)
class MpFailReceived(Event):
    """The peer sent MP_FAIL: its data from ``dsn`` on failed the checksum (RFC 8684 §3.7)."""

    dsn: int


@dataclass(frozen=True, slots=True)
class ChecksumError(Event):
    """A DSS checksum failed for the mapping starting at ``dsn`` (RFC 8684 §3.3.1, §3.7)."""

    dsn: int


@dataclass(frozen=True, slots=True)
class MptcpSendBufferFree(Event):
    """The data-level send buffer, full before, has ``free`` bytes of room again."""

    free: int


@dataclass(frozen=True, slots=True)
class AddressAnnounced(Event):
    """The peer announced ``address`` [``port``] as ``address_id`` (ADD_ADDR with a valid
    HMAC, RFC 8684 §3.4.1)."""

    address_id: int
    address: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class AddressRemoved(Event):
    """The peer withdrew ``address_id`` (REMOVE_ADDR, RFC 8684 §3.4.2)."""

    address_id: int


@dataclass(frozen=True, slots=True)
class PriorityChanged(Event):
    """The peer marked ``subflow`` as backup or regular (MP_PRIO, RFC 8684 §3.3.8)."""

    subflow: str
    backup: bool
