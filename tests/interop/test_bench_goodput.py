"""``mptcp-lab bench goodput`` end to end on a small size (root, TUN): the three measurements
run in one topology, every transfer is complete, and the result has the fields the issue names.
The >= 0.10 ratios themselves are a benchmark claim (``mptcp-lab bench goodput``, 2 GB, median
of 3), not a test: a loaded CI machine would make them flaky."""

from __future__ import annotations

import pytest

from interop.bench_goodput import run_goodput_bench
from interop.topology import skip_reason


def test_goodput_bench_small() -> None:
    reason = skip_reason(tun=True, tools=("ip",))
    if reason:
        pytest.skip(reason)
    r = run_goodput_bench(nbytes=200_000_000, runs=1)
    for key in ("kernel_goodput_bps", "ours_send_goodput_bps", "ours_recv_goodput_bps"):
        assert r[key] > 1e8, (key, r)
    assert r["kernel_goodput_bps"] > r["ours_send_goodput_bps"]
    assert 0 < r["ratio_send"] < 1 and 0 < r["ratio_recv"] < 1
    assert set(r["cpu_per_gb"]) >= {"ours_sender", "ours_receiver", "kernel_sender",
                                    "kernel_receiver"}
    assert all(v > 0 for v in r["cpu_per_gb"].values())
