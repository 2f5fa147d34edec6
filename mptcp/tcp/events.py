"""Events the TCP engine reports, and its MIB-style counters.

Application events come out of ``TcpConnection.next_event()`` (RFC 9293 §3.9.1 "user
interface" notifications: connection open, data available, closing, reset, errors §3.10.7).
Engine notices (:class:`DataAcked`, :class:`Retransmitted`) go to extensions only
(``TcpExtension.on_event``, hooks.py), together with every application event.

:class:`TcpMib` is a ``dict[str, int]`` whose missing keys read as 0, pre-filled with every
counter name the engine uses (:data:`MIB_COUNTERS`, named like the Linux kernel's
``/proc/net/snmp`` and ``netstat`` TcpExt counters, one per protocol decision).  A ``Stack``
shares one object between its connections, like the kernel's per-namespace MIB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mptcp.tcp.state import TcpState

__all__ = [
    "Event", "Connected", "DataReceived", "SendBufferFree", "EofReceived", "ConnectionClosed",
    "Reset", "ConnectionFailed", "StateChanged", "DataAcked", "Retransmitted",
    "TcpMib", "MIB_COUNTERS",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of everything ``next_event()`` returns."""


@dataclass(frozen=True, slots=True)
class Connected(Event):
    """The three-way handshake completed (ESTABLISHED); ``fast_open`` when SYN data was
    accepted by the peer (client) or delivered from a valid cookie (server)."""

    fast_open: bool = False


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """``length`` new in-order bytes can be read (``read()``)."""

    length: int


@dataclass(frozen=True, slots=True)
class SendBufferFree(Event):
    """The send buffer, full before, has ``free`` bytes of room again (back-pressure end)."""

    free: int


@dataclass(frozen=True, slots=True)
class EofReceived(Event):
    """The peer's FIN arrived in order: no more data will come (RFC 9293 §3.10.7.4)."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """Both directions are closed cleanly (TIME-WAIT entered, or LAST-ACK -> CLOSED)."""


@dataclass(frozen=True, slots=True)
class Reset(Event):
    """The connection was reset: ``reason`` e.g. "connection reset" (peer's RST), "aborted"
    (our abort()), "extension" (an extension vetoed a segment)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed(Event):
    """The connection failed: "refused" (RST to our SYN), "timeout" (retries exhausted,
    RFC 9293 §3.8.3 R2), "user timeout", "keepalive timeout"."""

    reason: str


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """Every state transition (RFC 9293 §3.3.2), for observers."""

    old: TcpState
    new: TcpState


@dataclass(frozen=True, slots=True)
class DataAcked(Event):
    """Engine notice for extensions: SND.UNA advanced to ``snd_una`` (a stream offset,
    offset 0 = our SYN) acknowledging ``acked`` data bytes."""

    snd_una: int
    acked: int


@dataclass(frozen=True, slots=True)
class Retransmitted(Event):
    """Engine notice for extensions: bytes ``[offset, offset + length)`` were sent again;
    ``reason`` is "rto", "fast", "sack", "rack", "tlp", "syn" or "persist"."""

    offset: int
    length: int
    reason: str


MIB_COUNTERS: dict[str, str] = {
    # RFC 4022 / Linux /proc/net/snmp Tcp:
    "TcpActiveOpens": "SYN-SENT entered by an active open",
    "TcpPassiveOpens": "SYN-RECEIVED entered from a listener",
    "TcpAttemptFails": "SYN-SENT/SYN-RECEIVED -> CLOSED (RST, timeout)",
    "TcpEstabResets": "ESTABLISHED/CLOSE-WAIT -> CLOSED by a RST",
    "TcpCurrEstab": "connections now ESTABLISHED or CLOSE-WAIT (a gauge)",
    "TcpInSegs": "segments received",
    "TcpOutSegs": "segments sent (excluding retransmissions)",
    "TcpRetransSegs": "segments retransmitted",
    "TcpInErrs": "segments received with a bad checksum or unparsable",
    "TcpInCsumErrors": "segments received with a bad checksum",
    "TcpOutRsts": "RSTs sent",
    "TcpInRsts": "RSTs received and acted on",
    # Linux TcpExt names:
    "TcpExtTCPChallengeACK": "challenge ACKs sent (RFC 5961 §3, §4, §5)",
    "TcpExtTCPChallengeACKLimited": "challenge ACKs suppressed by the rate limit (RFC 5961 §7)",
    "TcpExtTCPSYNChallenge": "SYNs in a synchronized state answered by a challenge ACK",
    "TcpExtPAWSEstab": "segments dropped by PAWS (RFC 7323 §5)",
    "TcpExtPAWSIdleReset": "TS.Recent invalidated after 24 days idle (RFC 7323 §5.5)",
    "TcpExtTCPTSMissingDrop": "segments without the negotiated timestamps, dropped (RFC 7323)",
    "TcpExtTCPACKSkipped": "out-of-window segments dropped",
    "TcpExtTCPACKTooOld": "ACKs below SND.UNA - MAX.SND.WND dropped (RFC 5961 §5)",
    "TcpExtTCPACKUnsent": "ACKs for data not yet sent dropped (RFC 9293 §3.10.7.4)",
    "TcpExtTCPSACKRecovery": "SACK loss recovery episodes (RFC 6675)",
    "TcpExtTCPRenoRecovery": "NewReno fast recovery episodes (RFC 6582)",
    "TcpExtTCPSACKReneging": "SACK reneging detected",
    "TcpExtTCPFastRetrans": "fast retransmissions",
    "TcpExtTCPPartialAck": "NewReno partial ACKs (RFC 6582 §3.2 step 4)",
    "TcpExtTCPLostRetransmit": "segments retransmitted after RACK/SACK marked them lost",
    "TcpExtTCPLossProbes": "tail loss probes sent (RFC 8985 §7)",
    "TcpExtTCPLossProbeRecovery": "losses repaired by a tail loss probe",
    "TcpExtTCPTimeouts": "retransmission timeouts (RFC 6298 §5.4)",
    "TcpExtTCPSynRetrans": "SYN / SYN-ACK retransmissions",
    "TcpExtTCPDSACKRecv": "D-SACK blocks received (RFC 2883)",
    "TcpExtTCPSpuriousRtxHostQueues": "unused (kept for name parity)",
    "TcpExtDelayedACKs": "delayed-ACK timer expiries that sent an ACK",
    "TcpExtTCPDelAckQuick": "ACKs sent at once for every 2nd full segment",
    "TcpExtTCPOFOImmediateAck": "immediate ACKs for out-of-order data or a gap fill",
    "TcpExtTCPPureAcks": "pure ACKs received",
    "TcpExtTCPHPAcks": "ACKs that advanced SND.UNA",
    "TcpExtTCPWinProbe": "zero-window probes sent (RFC 9293 §3.8.6.1)",
    "TcpExtTCPWantZeroWindowAdv": "zero windows advertised",
    "TcpExtTCPWindowUpdate": "pure window updates sent",
    "TcpExtTCPKeepAlive": "keepalive probes sent (RFC 9293 §3.8.4)",
    "TcpExtTCPAbortOnTimeout": "connections given up after too many retransmissions",
    "TcpExtTCPAbortOnData": "RSTs sent because data arrived after close",
    "TcpExtTCPAbortOnClose": "RSTs sent by abort()",
    "TcpExtTCPAbortOnUserTimeout": "connections given up by the user timeout",
    "TcpExtTCPAbortOnKeepalive": "connections given up by keepalive",
    "TcpExtTW": "connections that entered TIME-WAIT",
    "TcpExtTWKilled": "TIME-WAIT connections expired (2 MSL)",
    "TcpExtTWRecycled": "TIME-WAIT connections reopened by a new SYN (RFC 6191)",
    "TcpExtTCPFastOpenActive": "SYNs sent with data and a cookie (RFC 7413)",
    "TcpExtTCPFastOpenActiveFail": "SYN data not acknowledged by the server",
    "TcpExtTCPFastOpenCookieReqd": "cookie requests sent or received",
    "TcpExtTCPFastOpenPassive": "SYN data accepted with a valid cookie",
    "TcpExtTCPFastOpenPassiveFail": "SYN data rejected (bad cookie)",
    "TcpExtTCPOrigDataSent": "data segments sent for the first time",
    "TcpExtTCPECNNegotiated": "connections with ECN negotiated (RFC 3168 §6.1.1)",
    "TcpExtTCPECNCE": "CE-marked segments received",
    "TcpExtTCPECNEcho": "ECE-marked ACKs acted on (RFC 3168 §6.1.2)",
    "TcpExtTCPExtVeto": "segments dropped or reset by an extension",
    "TcpExtTCPTSDroppedForOpt": "timestamps left out to make option room for an extension",
    "TcpExtTCPSACKDroppedForOpt": "SACK blocks left out to make option room",
    "TcpExtTCPUrgIgnored": "segments with URG whose urgent pointer was ignored",
    "TcpExtListenOverflows": "SYNs dropped because the accept backlog was full",
    "TcpExtListenDrops": "SYNs dropped by a listener",
    "TcpExtTCPRcvPastFin": "segments with data beyond the peer's FIN, dropped",
    "TcpExtOutOfWindowIcmps": "unused (kept for name parity)",
    "TcpExtTCPRcvQDrop": "data dropped for lack of receive-buffer space",
    "TcpExtTCPMinRTTSample": "RTT samples taken",
    "TcpExtTCPSlowStartRetrans": "retransmissions after an RTO",
    "TcpExtTCPDSACKUndo": "unused (no undo implemented)",
    "TcpExtTCPLostRetransmitReduction": "extra window reductions for a lost retransmission "
                                        "(RFC 8985 §9.3)",
    "TcpExtTCPRackReoTimeout": "RACK reordering-timer expiries (RFC 8985 §6.2 step 5)",
    "TcpExtTCPSackShifted": "segments newly SACKed",
    "TcpNoPortRsts": "RSTs sent for segments to no connection (Stack)",
    "TcpExtOtherHostDrops": "packets for addresses the Stack does not own",
    "IpExtNonTcpDrops": "packets that are not TCP (ICMPv6 on a TUN, UDP, ...), ignored",
}


class TcpMib(dict[str, int]):
    """Counters by name; a missing name reads as 0 (``mib["X"] += 1`` always works).

    Pre-filled with :data:`MIB_COUNTERS` so that a snapshot lists every counter, including
    the ones still at zero.  Modules of other helpers (send/receive buffers) increment their
    own names into the same object.
    """

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(MIB_COUNTERS, 0))

    def __missing__(self, key: str) -> int:
        return 0

    def incr(self, name: str, n: int = 1) -> None:
        """Add ``n`` to ``name``."""
        self[name] = self.get(name, 0) + n

    def nonzero(self) -> dict[str, int]:
        """The counters that are not zero (for compact logs and tests)."""
        return {k: v for k, v in self.items() if v}
