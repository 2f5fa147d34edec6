"""MIB-style counters of the MPTCP connection layer.

Names follow the Linux kernel's ``MPTcpExt*`` counters (``/proc/net/netstat``, ``nstat``,
``net/mptcp/mib.c``) so a run of this stack and a run of the kernel can be compared counter by
counter; :data:`LINUX_MPTCP_COUNTERS` holds exactly the names Linux 6.18 reports (checked
against this machine's ``/proc/net/netstat``), plus ``RcvPruned`` from earlier kernels.
:data:`OWN_MPTCP_COUNTERS` adds one counter per protocol decision that Linux does not count
(DATA_FIN, fallback reasons, ignored options), RFC 8684 §3.1 (MP_CAPABLE), §3.3 (DSS,
§3.3.3 DATA_FIN), §3.5 (MP_FASTCLOSE), §3.6 (MP_TCPRST), §3.7 (fallback, MP_FAIL).

:class:`MptcpMib` behaves like :class:`mptcp.tcp.events.TcpMib`: a ``dict[str, int]`` whose
missing names read 0, pre-filled with :data:`MPTCP_COUNTERS` so a snapshot lists every
counter.  Every name carries the ``MPTcpExt`` prefix, so the counters can live next to the
TCP ones in one dictionary without clashes.
"""

from __future__ import annotations

from mptcp.events import FallbackReason

__all__ = [
    "LINUX_MPTCP_COUNTERS", "OWN_MPTCP_COUNTERS", "MPTCP_COUNTERS", "FALLBACK_COUNTERS",
    "FALLBACK_OTHER", "MptcpMib",
]

_P = "MPTcpExt"

# Linux names (without the prefix) and what they count, in the kernel's order.
_LINUX: dict[str, str] = {
    "MPCapableSYNRX": "SYNs received with MP_CAPABLE (RFC 8684 §3.1)",
    "MPCapableSYNTX": "SYNs sent with MP_CAPABLE",
    "MPCapableSYNACKRX": "SYN/ACKs received with MP_CAPABLE",
    "MPCapableACKRX": "third ACKs received with MP_CAPABLE",
    "MPCapableFallbackACK": "server-side fallbacks during the 3-way handshake (no MPC ACK)",
    "MPCapableFallbackSYNACK": "client-side fallbacks during the 3-way handshake (no MPC "
                               "SYN/ACK)",
    "MPCapableSYNTXDrop": "client-side fallbacks after MP_CAPABLE SYNs went unanswered",
    "MPCapableSYNTXDisabled": "MP_CAPABLE not attempted because of past blackholes",
    "MPCapableEndpAttempt": "MP_CAPABLE SYNs refused on a port-based endpoint",
    "MPFallbackTokenInit": "fallbacks because no unique token could be allocated (§3.1)",
    "MPTCPRetrans": "segments retransmitted at the MPTCP (data) level",
    "MPJoinNoTokenFound": "MP_JOIN SYNs for an unknown token (§3.2)",
    "MPJoinSynRx": "SYNs received with MP_JOIN",
    "MPJoinSynBackupRx": "SYNs received with MP_JOIN and the backup flag",
    "MPJoinSynAckRx": "SYN/ACKs received with MP_JOIN",
    "MPJoinSynAckBackupRx": "SYN/ACKs received with MP_JOIN and the backup flag",
    "MPJoinSynAckHMacFailure": "MP_JOIN SYN/ACKs with a wrong HMAC (§3.2)",
    "MPJoinAckRx": "third ACKs received with MP_JOIN",
    "MPJoinAckHMacFailure": "MP_JOIN third ACKs with a wrong HMAC (§3.2)",
    "MPJoinRejected": "MP_JOIN requests rejected by the path manager",
    "MPJoinSynTx": "SYNs sent with MP_JOIN",
    "MPJoinSynTxCreatSkErr": "MP_JOIN SYNs not sent: subflow creation failed",
    "MPJoinSynTxBindErr": "MP_JOIN SYNs not sent: bind failed",
    "MPJoinSynTxConnectErr": "MP_JOIN SYNs not sent: connect failed",
    "DSSNotMatching": "new mappings that did not match the previous one (§3.3.1)",
    "DSSCorruptionFallback": "DSS corruption detected, fallback to TCP",
    "DSSCorruptionReset": "DSS corruption detected, joined subflow reset",
    "InfiniteMapTx": "infinite mappings sent (§3.7)",
    "InfiniteMapRx": "infinite mappings received (§3.7)",
    "DSSNoMatchTCP": "mappings that do not match the subflow sequence space",
    "DataCsumErr": "DSS checksum failures (§3.3.1)",
    "OFOQueueTail": "segments appended to the data-level out-of-order queue tail",
    "OFOQueue": "segments inserted into the data-level out-of-order queue",
    "OFOMerge": "segments merged in the data-level out-of-order queue",
    "NoDSSInWindow": "segments outside the data-level receive window",
    "DuplicateData": "segments discarded as duplicate data-level data",
    "AddAddr": "ADD_ADDR received with echo flag 0 (§3.4.1)",
    "AddAddrTx": "ADD_ADDR sent with echo flag 0",
    "AddAddrTxDrop": "ADD_ADDR not sent (no option space / resources)",
    "EchoAdd": "ADD_ADDR received with echo flag 1",
    "EchoAddTx": "ADD_ADDR echoes sent",
    "EchoAddTxDrop": "ADD_ADDR echoes not sent",
    "PortAdd": "ADD_ADDR received with a port",
    "AddAddrDrop": "ADD_ADDR received and dropped (limits, bad HMAC)",
    "MPJoinPortSynRx": "MP_JOIN SYNs received on a port-based endpoint",
    "MPJoinPortSynAckRx": "MP_JOIN SYN/ACKs received from a port-based endpoint",
    "MPJoinPortAckRx": "MP_JOIN third ACKs received on a port-based endpoint",
    "MismatchPortSynRx": "MP_JOIN SYNs to a port not matching the advertised one",
    "MismatchPortAckRx": "MP_JOIN third ACKs to a port not matching the advertised one",
    "RmAddr": "REMOVE_ADDR received (§3.4.2)",
    "RmAddrDrop": "REMOVE_ADDR received and dropped",
    "RmAddrTx": "REMOVE_ADDR sent",
    "RmAddrTxDrop": "REMOVE_ADDR not sent",
    "RmSubflow": "subflows removed",
    "MPPrioTx": "MP_PRIO sent (§3.3.8)",
    "MPPrioRx": "MP_PRIO received",
    "MPFailTx": "MP_FAIL sent (§3.7)",
    "MPFailRx": "MP_FAIL received (§3.7)",
    "MPFastcloseTx": "MP_FASTCLOSE sent (§3.5)",
    "MPFastcloseRx": "MP_FASTCLOSE received and acted on (§3.5)",
    "MPRstTx": "MP_TCPRST sent (§3.6)",
    "MPRstRx": "MP_TCPRST received (§3.6)",
    "SubflowStale": "subflows marked stale (no progress)",
    "SubflowRecover": "stale subflows that made progress again",
    "SndWndShared": "subflow send window overridden by the connection's",
    "RcvWndShared": "subflow receive window overridden by the connection's",
    "RcvWndConflictUpdate": "subflow receive window overridden after a conflict",
    "RcvWndConflict": "conflicts while updating the connection's receive window",
    "MPCurrEstab": "MPTCP connections now established (a gauge)",
    "Blackhole": "MP_CAPABLE blackholes detected",
    "MPCapableDataFallback": "fallbacks: first data without DSS or MP_CAPABLE",
    "MD5SigFallback": "fallbacks: a conflicting TCP option (MD5 signature) is in use",
    "DssFallback": "fallbacks: bad or missing DSS",
    "SimultConnectFallback": "fallbacks: simultaneous connect",
    "FallbackFailed": "fallbacks needed but impossible (connection reset instead)",
    "WinProbe": "data-level zero-window probes sent",
    # Earlier kernels (absent from 6.18):
    "RcvPruned": "data dropped for lack of receive memory (earlier Linux kernels)",
}

# Our own: decisions Linux does not count (or counts under a coarser name).
_OWN: dict[str, str] = {
    "DataFinTx": "DATA_FIN sent (§3.3.3)",
    "DataFinRx": "DATA_FIN received in data-sequence order (§3.3.3)",
    "DataFinIgnored": "DATA_FIN not acted on (out of window / beyond the data received)",
    "DataAckBeyondNxt": "DATA_ACKs for data never sent, ignored (§3.3.2)",
    "DataAckOld": "DATA_ACKs below the data-level SND.UNA, ignored",
    "DataRtxTimeout": "data-level retransmission timeouts: no DATA_ACK progress (§3.3.6)",
    "MappingInvalid": "DSS mappings rejected as invalid (§3.3.1)",
    "MappingChecksumMissing": "mappings without a checksum when checksums are in use "
                              "(§3.3.1)",
    "Fallback": "connections that fell back to regular TCP, all reasons (§3.7)",
    "FallbackNoMpcSynAck": "fallbacks: SYN/ACK without MP_CAPABLE (§3.1)",
    "FallbackNoMpcAck": "fallbacks: third ACK / first data without MP_CAPABLE (§3.1)",
    "FallbackNoDss": "fallbacks: data without a DSS mapping, options stripped (§3.7)",
    "FallbackChecksum": "fallbacks: checksum failure on the only subflow (§3.7)",
    "FallbackInfiniteMap": "fallbacks: infinite mapping received (§3.7)",
    "FallbackBlackhole": "fallbacks: MP_CAPABLE SYNs unanswered, retried without MPTCP",
    "FallbackVersion": "fallbacks: unsupported MPTCP version (§3.1)",
    "FallbackUnsupportedFlags": "fallbacks: MP_CAPABLE with B set or H clear (§3.1)",
    "FallbackTokenInit": "fallbacks: no locally unique token (§3.1)",
    "FallbackDisabled": "connections without MPTCP by local configuration",
    "FallbackOther": "fallbacks for a reason with no counter of its own",
    "MpcVersionMismatch": "MP_CAPABLE options with an unsupported version, ignored (§3.1)",
    "MpcFlagBSet": "MP_CAPABLE options with the B flag set, ignored (§3.1)",
    "MpcNoHmacFlag": "MP_CAPABLE options without the H flag, ignored (§3.1)",
    "FastcloseIgnoredBadKey": "MP_FASTCLOSE with a key that is not ours, ignored (§3.5)",
    "TcpRstIgnoredNoRst": "MP_TCPRST on a segment without RST, ignored (§3.6)",
    "MpFailIgnored": "MP_FAIL not acted on (no checksum in use / bad DSN) (§3.7)",
    "SubflowResetChecksum": "subflows reset after a checksum failure (§3.7)",
    "SubflowResetNoDss": "joined subflows reset: MPTCP options stripped (§3.7)",
    "MPJoinEstab": "joined subflows that became usable (fourth ACK seen, §3.2)",
    "MPJoinNoJoinSynAck": "our MP_JOIN SYN answered by a SYN/ACK without MP_JOIN (§3.2)",
    "MPJoinAckMissing": "joined subflows whose third ACK carried no MP_JOIN (§3.2)",
    "AddAddrBadHmac": "ADD_ADDR with a missing or wrong HMAC, ignored (§3.4.1)",
    "SubflowsFailed": "subflows that ended with an error while others went on",
}

LINUX_MPTCP_COUNTERS: dict[str, str] = {_P + k: v for k, v in _LINUX.items()}
OWN_MPTCP_COUNTERS: dict[str, str] = {_P + k: v for k, v in _OWN.items()}
MPTCP_COUNTERS: dict[str, str] = {**LINUX_MPTCP_COUNTERS, **OWN_MPTCP_COUNTERS}

FALLBACK_OTHER = _P + "FallbackOther"
# FallbackReason -> its breakdown counter (MptcpMib.count_fallback).
FALLBACK_COUNTERS: dict[str, str] = {
    FallbackReason.NO_MPC_SYNACK: _P + "FallbackNoMpcSynAck",
    FallbackReason.NO_MPC_ACK: _P + "FallbackNoMpcAck",
    FallbackReason.NO_DSS: _P + "FallbackNoDss",
    FallbackReason.CHECKSUM: _P + "FallbackChecksum",
    FallbackReason.INFINITE_MAPPING: _P + "FallbackInfiniteMap",
    FallbackReason.BLACKHOLE: _P + "FallbackBlackhole",
    FallbackReason.VERSION: _P + "FallbackVersion",
    FallbackReason.UNSUPPORTED_FLAGS: _P + "FallbackUnsupportedFlags",
    FallbackReason.TOKEN_INIT: _P + "FallbackTokenInit",
    FallbackReason.DISABLED: _P + "FallbackDisabled",
}


class MptcpMib(dict[str, int]):
    """MPTCP counters by name; a missing name reads as 0 (``mib["X"] += 1`` always works).

    Pre-filled with :data:`MPTCP_COUNTERS` so that a snapshot lists every counter, including
    the ones still at zero.  Like ``TcpMib``, one object is meant to be shared by all the
    connections of a ``Stack`` (the kernel keeps one MIB per network namespace).
    """

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(MPTCP_COUNTERS, 0))

    def __missing__(self, key: str) -> int:
        return 0

    def incr(self, name: str, n: int = 1) -> None:
        """Add ``n`` to ``name``."""
        self[name] = self.get(name, 0) + n

    def nonzero(self) -> dict[str, int]:
        """The counters that are not zero (for compact logs and tests)."""
        return {k: v for k, v in self.items() if v}

    def count_fallback(self, reason: str) -> None:
        """Count one fallback to TCP (RFC 8684 §3.7): ``MPTcpExtFallback`` and the
        breakdown counter of ``reason`` (a :class:`FallbackReason`; any other string counts
        as ``MPTcpExtFallbackOther``).  Linux's own site counters (e.g.
        ``MPTcpExtMPCapableFallbackSYNACK``) are the caller's to increment."""
        self.incr(_P + "Fallback")
        self.incr(FALLBACK_COUNTERS.get(reason, FALLBACK_OTHER))
