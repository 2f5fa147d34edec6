"""MPTCP MIB counters and events."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mptcp import events as ev
from mptcp.mib import (
    FALLBACK_COUNTERS,
    FALLBACK_OTHER,
    LINUX_MPTCP_COUNTERS,
    MPTCP_COUNTERS,
    OWN_MPTCP_COUNTERS,
    MptcpMib,
)
from mptcp.tcp.events import MIB_COUNTERS, Event, TcpMib

# --- MIB ------------------------------------------------------------------------------------


def test_every_counter_prefixed_and_described() -> None:
    assert MPTCP_COUNTERS
    for name, desc in MPTCP_COUNTERS.items():
        assert name.startswith("MPTcpExt"), name
        assert isinstance(desc, str) and desc.strip(), name
        assert name.isidentifier()


def test_linux_and_own_disjoint_and_complete() -> None:
    assert not set(LINUX_MPTCP_COUNTERS) & set(OWN_MPTCP_COUNTERS)
    assert set(MPTCP_COUNTERS) == set(LINUX_MPTCP_COUNTERS) | set(OWN_MPTCP_COUNTERS)
    assert not set(MPTCP_COUNTERS) & set(MIB_COUNTERS)


def test_linux_names_present() -> None:
    for short in (
        "MPCapableSYNRX", "MPCapableSYNTX", "MPCapableSYNACKRX", "MPCapableACKRX",
        "MPCapableFallbackACK", "MPCapableFallbackSYNACK", "MPFallbackTokenInit",
        "MPTCPRetrans", "MPJoinNoTokenFound", "MPJoinSynRx", "MPJoinSynAckRx",
        "MPJoinSynAckHMacFailure", "MPJoinAckRx", "MPJoinAckHMacFailure", "DSSNotMatching",
        "InfiniteMapTx", "InfiniteMapRx", "DSSNoMatchTCP", "DataCsumErr", "OFOQueueTail",
        "OFOQueue", "OFOMerge", "NoDSSInWindow", "DuplicateData", "AddAddr", "AddAddrTx",
        "EchoAdd", "PortAdd", "AddAddrDrop", "MPJoinPortSynRx", "MismatchPortSynRx",
        "RmAddr", "RmAddrDrop", "RmSubflow", "MPPrioTx", "MPPrioRx", "MPFailTx", "MPFailRx",
        "MPFastcloseTx", "MPFastcloseRx", "MPRstTx", "MPRstRx", "RcvPruned", "SubflowStale",
        "SubflowRecover", "SndWndShared", "RcvWndShared", "RcvWndConflictUpdate",
        "RcvWndConflict", "MPCurrEstab", "Blackhole", "MPCapableSYNTXDrop",
        "MPCapableSYNTXDisabled", "MPCapableEndpAttempt", "DSSCorruptionFallback",
        "DSSCorruptionReset",
    ):
        assert "MPTcpExt" + short in LINUX_MPTCP_COUNTERS, short


def test_own_names_present() -> None:
    for short in (
        "DataFinTx", "DataFinRx", "DataAckBeyondNxt", "Fallback", "FallbackNoMpcSynAck",
        "FallbackNoDss", "FallbackChecksum", "FallbackBlackhole", "MappingInvalid",
        "FastcloseIgnoredBadKey", "MpcVersionMismatch", "MpcFlagBSet",
    ):
        assert "MPTcpExt" + short in OWN_MPTCP_COUNTERS, short


def test_mib_behaves_like_tcp_mib() -> None:
    mib, tcp = MptcpMib(), TcpMib()
    assert isinstance(mib, dict)
    # Pre-filled with every counter at zero.
    assert set(mib) == set(MPTCP_COUNTERS)
    assert all(v == 0 for v in mib.values())
    assert mib.nonzero() == {} == tcp.nonzero()
    # Missing names read 0, without being inserted (as TcpMib).
    assert mib["MPTcpExtNoSuchCounter"] == 0 == tcp["TcpExtNoSuchCounter"]
    assert "MPTcpExtNoSuchCounter" not in mib
    # += works on known and unknown names.
    mib["MPTcpExtMPFailTx"] += 1
    mib["MPTcpExtBrandNew"] += 2
    mib.incr("MPTcpExtMPFailTx")
    mib.incr("MPTcpExtDataFinTx", 5)
    assert mib.nonzero() == {
        "MPTcpExtMPFailTx": 2, "MPTcpExtBrandNew": 2, "MPTcpExtDataFinTx": 5,
    }
    # A snapshot is a plain copy.
    snap = mib.nonzero()
    mib.incr("MPTcpExtMPFailTx")
    assert snap["MPTcpExtMPFailTx"] == 2
    # Same method set as TcpMib.
    for meth in ("incr", "nonzero", "__missing__"):
        assert hasattr(mib, meth) and hasattr(tcp, meth)


def test_mib_gauge_can_go_down() -> None:
    mib = MptcpMib()
    mib.incr("MPTcpExtMPCurrEstab")
    mib.incr("MPTcpExtMPCurrEstab", -1)
    assert mib["MPTcpExtMPCurrEstab"] == 0


@pytest.mark.rfc("8684", "3.7")
def test_count_fallback() -> None:
    mib = MptcpMib()
    for reason in ev.FallbackReason:
        mib.count_fallback(reason)
    mib.count_fallback("something else")
    n = len(ev.FallbackReason)
    assert mib["MPTcpExtFallback"] == n + 1
    assert mib[FALLBACK_OTHER] == 1
    for reason in ev.FallbackReason:
        assert mib[FALLBACK_COUNTERS[reason]] == 1
    # Plain strings equal to a reason's value count the same way.
    mib.count_fallback("checksum")
    assert mib["MPTcpExtFallbackChecksum"] == 2


def test_every_fallback_reason_has_a_described_counter() -> None:
    assert set(FALLBACK_COUNTERS) == set(ev.FallbackReason)
    for name in (*FALLBACK_COUNTERS.values(), FALLBACK_OTHER):
        assert name in OWN_MPTCP_COUNTERS
    assert len(set(FALLBACK_COUNTERS.values())) == len(FALLBACK_COUNTERS)


# --- events ---------------------------------------------------------------------------------

SAMPLES: list[tuple[type[Event], dict[str, Any]]] = [
    (ev.MptcpConnected, {"fallback": True, "checksums": False}),
    (ev.FallbackToTcp, {"reason": ev.FallbackReason.NO_DSS}),
    (ev.MptcpDataReceived, {"length": 1400}),
    (ev.MptcpEofReceived, {}),
    (ev.MptcpClosed, {}),
    (ev.MptcpReset, {"reason": "peer reset", "tcprst": 6}),
    (ev.MptcpReset, {"reason": "fastclose", "tcprst": None}),
    (ev.FastCloseReceived, {}),
    (ev.FastCloseSent, {}),
    (ev.SubflowEstablished, {"subflow": "10.0.0.1:1->10.0.0.2:2"}),
    (ev.SubflowClosed, {"subflow": "sf1", "reason": "reset"}),
    (ev.MpFailSent, {"dsn": (1 << 64) - 1}),
    (ev.MpFailReceived, {"dsn": 12345}),
    (ev.ChecksumError, {"dsn": 99}),
    (ev.MptcpSendBufferFree, {"free": 65536}),
    (ev.AddressAnnounced, {"address_id": 3, "address": "10.0.3.2", "port": None}),
    (ev.AddressRemoved, {"address_id": 3}),
    (ev.PriorityChanged, {"subflow": "1:10.0.3.2:1-10.0.1.2:2", "backup": True}),
]


@pytest.mark.parametrize(("cls", "kw"), SAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_event_fields_and_immutability(cls: type[Event], kw: dict[str, Any]) -> None:
    e = cls(**kw)
    assert isinstance(e, Event)
    assert dataclasses.is_dataclass(e)
    assert {f.name for f in dataclasses.fields(e)} == set(kw)
    for k, v in kw.items():
        assert getattr(e, k) == v
    assert e == cls(**kw)
    assert hash(e) == hash(cls(**kw))
    for k in kw:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(e, k, 1)
    # No new attributes either (CPython reports this as TypeError for frozen slotted
    # dataclasses, AttributeError elsewhere).
    with pytest.raises((AttributeError, TypeError)):
        e.zzz = 1  # type: ignore[attr-defined]
    assert not hasattr(e, "__dict__")  # slots


def test_every_exported_event_is_sampled() -> None:
    exported = {
        getattr(ev, n) for n in ev.__all__
        if isinstance(getattr(ev, n), type) and issubclass(getattr(ev, n), Event)
    }
    assert exported == {cls for cls, _ in SAMPLES}


def test_event_defaults() -> None:
    assert ev.MptcpConnected() == ev.MptcpConnected(fallback=False, checksums=False)
    assert ev.MptcpReset("x").tcprst is None


def test_fallback_reason_is_str() -> None:
    e = ev.FallbackToTcp(ev.FallbackReason.CHECKSUM)
    assert e.reason == "checksum"
    assert isinstance(e.reason, str)
    assert len({r.value for r in ev.FallbackReason}) == len(ev.FallbackReason)
