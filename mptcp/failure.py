"""Fallback, failure and abort paths of an MPTCP connection (functions bound as methods of
:class:`~mptcp.connection.MptcpConnection`).

- RFC 8684 §3.7: fallback to TCP on the initial subflow while it is the only one (options
  stripped, SYN blackhole), the DSS checksum failure with one subflow (MP_FAIL, then an
  infinite mapping both ways), and with several subflows: the affected subflow is reset
  (MP_TCPRST reason 6, "middlebox interference") and its data reinjected on the others.
- RFC 8684 §3.5 MP_FASTCLOSE (option R on RSTs on every subflow, option A received) and §3.6
  MP_TCPRST reasons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mptcp.events import (
    ChecksumError,
    FallbackToTcp,
    FastCloseReceived,
    FastCloseSent,
    MpFailReceived,
    MpFailSent,
    MptcpReset,
)
from mptcp.tcp.events import ConnectionFailed, DataReceived, Reset
from mptcp.tcp.state import TcpState

if TYPE_CHECKING:
    from mptcp.connection import MptcpConnection
    from mptcp.subflow import SubflowExt

__all__ = ["set_fallback", "syn_blackhole", "fallback_safe", "fail", "fastclose",
           "on_fastclose", "on_tcprst", "on_infinite_mapping", "on_checksum_failure",
           "on_mp_fail", "_enter_infinite", "_force_segment", "on_bad_mapping"]

_MASK64 = (1 << 64) - 1
S = TcpState




def set_fallback(mc: MptcpConnection, reason: str, counter: str) -> None:
    """RFC 8684 §3.7: go on as plain TCP on the (only) subflow."""
    if mc.fallback is not None:
        return
    if not mc.fallback_safe():
        # data already moved through mappings the peer acknowledged: the byte streams
        # may no longer line up without an infinite mapping (§3.7): reset instead
        mc.fail(f"fallback after data ({reason})", reset=True, tcprst=1)
        return
    sb = mc.sendbuf
    if sb.nxt != sb.una:
        sb.ack(sb.nxt)  # already in the subflow: TCP delivers it from now on
    mc.fallback = reason
    mc.mib.incr(counter)
    mc.mib.incr("MPTcpExtFallback")
    mc.events.append(FallbackToTcp(reason))
    # everything written so far goes straight to the subflow from now on
    mc.touch()


def syn_blackhole(mc: MptcpConnection) -> None:
    """Our MP_CAPABLE SYNs went unanswered: fall back and remember the destination."""
    if mc.fallback is not None or mc.sub is None:
        return
    mc.set_fallback("SYN blackhole: retried without MP_CAPABLE",
                      "MPTcpExtMPCapableSYNTXDrop")
    mc.mib.incr("MPTcpExtBlackhole")
    mc.stack.blackholed[mc.sub.remote[0]] = mc._now + mc.config.blackhole_ttl


def fallback_safe(mc: MptcpConnection) -> bool:
    """The subflow's byte streams equal the data-level ones (so plain TCP can take over
    without an infinite mapping): nothing was DATA_ACKed by the peer, our data went into
    the subflow in one run from its first byte, and nothing from the peer moved to the
    data level, or it did with the same identity offset."""
    ext, sb, rb = mc.ext, mc.sendbuf, mc.recvbuf
    if ext is None:
        return True
    if ext.data_ack_seen and sb.una != mc.local_idsn_plus1():
        return False
    runs = ext.send_maps
    if runs and (len(runs) > 1 or runs[0][0] != 1
                 or runs[0][1] != mc.local_idsn_plus1()):
        return False
    if rb is not None and ext.read_ssn > 1:
        return (rb.rcv_nxt - mc.remote_idsn - ext.read_ssn) & _MASK64 == 0
    return True


def fail(mc: MptcpConnection, reason: str, *, reset: bool, tcprst: int | None = None) -> None:
    """End the connection with ``reason``; ``reset`` aborts the subflow (a RST carrying
    MP_TCPRST ``tcprst``, RFC 8684 §3.6)."""
    if mc.failed is None:
        mc.failed = reason
        mc.events.append(Reset(reason) if reset else ConnectionFailed(reason))
        mc.events.append(MptcpReset(reason, tcprst))
    if tcprst is not None:
        mc.tcprst_reason = tcprst
    if reset:
        for sf in list(mc.subs):
            if sf.conn.state is not S.CLOSED:
                sf.conn.abort()



# RFC 8684 §3.5 / §3.6 ---------------------------------------------------------------
def fastclose(mc: MptcpConnection) -> None:
    """RFC 8684 §3.5 option R: a RST with MP_FASTCLOSE (the peer's key) on every subflow,
    then CLOSED.  Before MPTCP is up (or after fallback) it is a plain abort."""
    if mc.failed is not None:
        return
    if mc.fallback is None and mc.remote_key is not None:
        mc.fastclose_pending = True
        mc.events.append(FastCloseSent())
    mc.fail("fastclose sent" if mc.fastclose_pending else "aborted", reset=True, tcprst=0)
    mc.touch()


def on_fastclose(mc: MptcpConnection, key: int, on_rst: bool) -> bool:
    """An MP_FASTCLOSE arrived; True when it carries our key (then the connection is
    over: option R on a RST, option A on an ACK -- answered by a RST)."""
    if key != mc.local_key:
        mc.mib.incr("MPTcpExtFastcloseIgnoredBadKey")  # RFC 8684 §3.5: the valid key
        return False
    mc.mib.incr("MPTcpExtMPFastcloseRx")
    if not mc.fastclose_received:
        mc.fastclose_received = True
        mc.events.append(FastCloseReceived())
        if mc.failed is None:
            mc.failed = "fastclose received"
            mc.events.append(Reset("fastclose received"))
            mc.events.append(MptcpReset("fastclose received", mc.peer_tcprst))
    mc.touch()
    return True


def on_tcprst(mc: MptcpConnection, reason: int, transient: bool) -> None:
    mc.mib.incr("MPTcpExtMPRstRx")
    mc.peer_tcprst = reason
    mc.touch()


def on_infinite_mapping(mc: MptcpConnection, ext: SubflowExt, dsn: int, ssn: int) -> None:
    """The peer switched to an infinite mapping (RFC 8684 §3.7): from the last byte it
    knows we DATA_ACKed, its subflow bytes are the stream, unchecked."""
    mc.mib.incr("MPTcpExtInfiniteMapRx")
    mc._enter_infinite("infinite mapping received")


def on_checksum_failure(mc: MptcpConnection, ext: SubflowExt, dsn: int, data: bytes) -> None:
    """RFC 8684 §3.7 with one subflow: the mapping at ``dsn`` failed its checksum; keep
    its bytes aside, send MP_FAIL on our ACKs, wait for the peer's infinite mapping."""
    mc.mib.incr("MPTcpExtDataCsumErr")
    mc.events.append(ChecksumError(dsn))
    if mc.subflow_count() > 1 or ext.is_join:
        # several subflows: reset the one the middlebox interferes with (reason 6), the
        # others carry its data (reinjected by the peer)
        mc.mib.incr("MPTcpExtSubflowResetChecksum")
        mc.reset_subflow(ext, "checksum failure", tcprst=6)
        return
    if mc.awaiting_infinite:
        return
    mc.awaiting_infinite = True
    mc.mp_fail_send = dsn
    ext.held = data
    mc.events.append(MpFailSent(dsn))
    mc._force_segment()


def on_mp_fail(mc: MptcpConnection, ext: SubflowExt, dsn: int) -> None:
    """The peer's checksum failed on our data from ``dsn`` (RFC 8684 §3.7): answer with
    an infinite mapping (and an MP_FAIL of our own: "the receiver of an MP_FAIL MUST
    also respond with an MP_FAIL"), then plain TCP both ways."""
    mc.mib.incr("MPTcpExtMPFailRx")
    mc.events.append(MpFailReceived(dsn))
    if mc.fallback is not None or mc.subflow_count() > 1 or ext.is_join:
        return  # several subflows: the peer resets the subflow instead (RFC 8684 §3.7)
    if not mc.awaiting_infinite:
        mc.mp_fail_send = mc.rcv_nxt() if mc.recvbuf is not None else dsn
    else:
        mc.awaiting_peer_infinite = True  # its infinite mapping follows on a later segment
    mc._enter_infinite("MP_FAIL received")


def _enter_infinite(mc: MptcpConnection, reason: str) -> None:
    if mc.fallback is not None:
        return
    ext, sb, rb = mc.ext, mc.sendbuf, mc.recvbuf
    assert ext is not None
    mc.fallback = f"checksum failure: {reason}"
    mc.mib.incr("MPTcpExtFallback")
    mc.mib.incr("MPTcpExtFallbackChecksum")
    mc.events.append(FallbackToTcp(mc.fallback))
    mc.awaiting_infinite = False
    # our direction: an infinite mapping from the last byte the peer DATA_ACKed
    if sb.una != sb.nxt or ext.send_maps:
        ssn = ext.ssn_of(sb.una)
        if ssn is not None:
            mc.infinite_send = (sb.una, ssn)
    if rb is not None and ext.staged:
        rb.insert(ext.staged_dsn, ext.staged)  # verified before the failure: in order first
        ext.staged = b""
    if rb is not None and ext.held:
        rb.insert(rb.rcv_nxt, ext.held)  # the stream as the path delivered it
        mc.events.append(DataReceived(len(ext.held)))
        ext.read_ssn += len(ext.held)
        ext.held = b""
    mc._force_segment()
    mc.touch()


def _force_segment(mc: MptcpConnection) -> None:
    sub = mc.sub
    if sub is not None:
        sub.ack_now = True
        if sub.wake is not None:
            sub.wake(sub)


def on_bad_mapping(mc: MptcpConnection, ext: SubflowExt, why: str) -> None:
    mc.mib.incr("MPTcpExtMappingInvalid")
    if ext.is_join or mc.subflow_count() > 1:
        mc.reset_subflow(ext, f"invalid mapping: {why}", tcprst=1)
        return
    mc.fail(f"invalid mapping: {why}", reset=True, tcprst=1)  # MPTCP-specific error
