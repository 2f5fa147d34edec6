"""The data-level retransmission timer (RFC 8684 §3.3.6) between two of our stacks over
``interop.netsim``.

A receiver may drop data its subflow already acknowledged -- Linux does when its MPTCP
receive memory runs out (``RcvPruned``) -- so the sender keeps every byte until it is
DATA_ACKed and, when the DATA_ACK stops moving for a timeout, sends the first un-DATA_ACKed
bytes again on a subflow with nothing outstanding.  Without that timer such a hole is never
repaired: no subflow loses anything, so none goes stale and nothing is reinjected.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from interop.netsim import Simulator
from interop.netsim.link import Link
from mptcp.datalevel import DataReceiveBuffer
from mptcp.pm import FullMeshPM, Limits
from tests.mptcp.test_multipath_netsim import (
    Tracked,
    _assert_exact,
    _conn,
    _mib,
    _pair,
)

SIZE = 1_500_000


def _drop_once_at(t: float) -> Callable[[Simulator, Tracked, Tracked, list[Link]], None]:
    """Setup: at ``t`` the server's data level throws away the next bytes it is given (after
    its subflow acknowledged them), once, as a receiver pruning memory would."""
    dropped: list[int] = []

    class Pruning(DataReceiveBuffer):
        __slots__ = ()

        def insert(self, dsn: int, data: bytes | bytearray | memoryview) -> int:
            if not dropped and len(data) >= 1000:
                dropped.append(len(data))
                return 0
            return super().insert(dsn, data)

    def setup(sim: Simulator, c: Tracked, s: Tracked, links: list[Link]) -> None:
        def arm() -> None:
            rb = _conn(s).recvbuf
            assert type(rb) is DataReceiveBuffer
            rb.__class__ = Pruning  # this one buffer, from now on

        sim.schedule(t, arm)

    setup.dropped = dropped  # type: ignore[attr-defined]
    return setup


@pytest.mark.rfc("8684", "3.3.6")
@pytest.mark.parametrize("paths", [1, 2], ids=["one-subflow", "two-subflows"])
def test_data_dropped_after_the_subflow_ack_is_sent_again(paths: int) -> None:
    """The server's data level drops one chunk its subflow acknowledged: the client's
    data-level timer fires, the chunk goes again, both transfers complete byte-exact -- and
    no subflow went stale (only the data-level timer could repair this hole)."""
    setup = _drop_once_at(0.3)
    kw = {} if paths == 2 else {"cpm": FullMeshPM([], Limits(subflows=0)),
                                "spm": FullMeshPM([], Limits(subflows=0))}
    c, s, _, _ = _pair(SIZE, SIZE, setup=setup, **kw)  # type: ignore[arg-type]
    assert setup.dropped, "nothing was dropped"  # type: ignore[attr-defined]
    _assert_exact(c, s, SIZE, SIZE)
    mib = _mib(c)
    assert mib["MPTcpExtDataRtxTimeout"] >= 1 and mib["MPTcpExtMPTCPRetrans"] >= 1, mib
    assert mib["MPTcpExtSubflowStale"] == 0, mib
    assert len(_conn(c).subflows_info()) == paths
    stall = s.stall_after(0.3)
    print(f"{paths} subflow(s): dropped {setup.dropped} bytes at 0.3 s, "  # type: ignore
          f"data level moved again after {stall:.3f} s, "
          f"{mib['MPTcpExtDataRtxTimeout']} timeouts")
    assert stall < 3.0, stall


@pytest.mark.rfc("8684", "3.3.6")
def test_no_data_level_retransmission_without_loss() -> None:
    """A clean two-path transfer each way: the DATA_ACK keeps moving, so the timer never
    fires and nothing is sent twice at the data level."""
    c, s, _, _ = _pair(SIZE, SIZE)
    _assert_exact(c, s, SIZE, SIZE)
    for p in (c, s):
        assert _mib(p)["MPTcpExtDataRtxTimeout"] == 0, _mib(p)
        assert _mib(p)["MPTcpExtMPTCPRetrans"] == 0, _mib(p)
