"""RFC 6298 RTO estimation, Karn's algorithm, back-off, RFC 7323 Appendix G, RFC 8985 min_RTT.

Expected values are recomputed here from the RFC formulas, independently of the module.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.rtt import (
    RttError,
    RttEstimator,
    RttEventKind,
    WindowedMin,
    expected_samples,
)

G = 0.001


def rfc6298_reference(samples: list[float], *, g: float, lo: float, hi: float) -> tuple[
    float, float, float
]:
    """SRTT, RTTVAR, RTO after ``samples`` per RFC 6298 §2.2/2.3/2.4/2.5 (K=4, 1/8, 1/4)."""
    srtt = samples[0]
    rttvar = samples[0] / 2
    for r in samples[1:]:
        rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
        srtt = 0.875 * srtt + 0.125 * r
    rto = srtt + max(g, 4 * rttvar)
    return srtt, rttvar, min(max(rto, lo), hi)


@pytest.mark.rfc("6298", "2.1")
def test_initial_rto_is_one_second_and_backs_off_before_any_sample() -> None:
    est = RttEstimator()
    assert est.rto == 1.0
    assert est.srtt is None and est.rttvar is None
    assert est.backoff() == 2.0
    assert est.backoff() == 4.0


@pytest.mark.rfc("6298", "2.2")
def test_first_sample() -> None:
    est = RttEstimator(min_rto=0.2, granularity=G)
    assert est.sample(0.1, now=0.0)
    assert est.srtt == pytest.approx(0.1)
    assert est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.1 + 4 * 0.05)


@pytest.mark.rfc("6298", "2.3")
def test_subsequent_samples_update_rttvar_with_old_srtt() -> None:
    samples = [0.1, 0.3, 0.05, 0.2, 0.2, 0.12]
    est = RttEstimator(min_rto=0.01, granularity=G)
    for i, r in enumerate(samples):
        est.sample(r, now=float(i))
    srtt, rttvar, rto = rfc6298_reference(samples, g=G, lo=0.01, hi=60.0)
    assert est.srtt == pytest.approx(srtt)
    assert est.rttvar == pytest.approx(rttvar)
    assert est.rto == pytest.approx(rto)
    # The wrong order (SRTT first) gives a different RTTVAR for this sequence.
    s, v = samples[0], samples[0] / 2
    for r in samples[1:]:
        s = 0.875 * s + 0.125 * r
        v = 0.75 * v + 0.25 * abs(s - r)
    assert est.rttvar is not None and not math.isclose(v, est.rttvar)


@pytest.mark.rfc("6298", "2.4")
def test_rto_rounded_up_to_minimum() -> None:
    est = RttEstimator()
    est.sample(0.01, now=0.0)
    assert est.rto == 1.0
    linux_like = RttEstimator(min_rto=0.2)
    linux_like.sample(0.01, now=0.0)
    assert linux_like.rto == pytest.approx(0.2)


@pytest.mark.rfc("6298", "2.5")
def test_maximum_rto_at_least_60s() -> None:
    est = RttEstimator()
    est.sample(50.0, now=0.0)
    assert est.rto == 60.0
    with pytest.raises(RttError):
        RttEstimator(max_rto=30.0)
    relaxed = RttEstimator(max_rto=30.0, strict=False)
    relaxed.sample(50.0, now=0.0)
    assert relaxed.rto == 30.0
    assert RttEstimator(max_rto=120.0).max_rto == 120.0


@pytest.mark.rfc("6298", "4")
def test_variance_term_never_below_granularity() -> None:
    est = RttEstimator(min_rto=0.001, granularity=0.05)
    for i in range(200):
        est.sample(0.1, now=float(i))
    assert est.rttvar is not None and 4 * est.rttvar < 0.05
    assert est.rto == pytest.approx(0.1 + 0.05)


@pytest.mark.rfc("6298", "3")
def test_karn_rejects_samples_from_retransmitted_segments() -> None:
    est = RttEstimator(min_rto=0.01)
    est.sample(0.1, now=0.0)
    before = (est.srtt, est.rttvar, est.rto)
    assert est.sample(5.0, now=1.0, retransmitted=True) is False
    assert (est.srtt, est.rttvar, est.rto) == before
    assert est.latest_rtt == 0.1
    assert est.counters["TcpRttKarnRejected"] == 1
    assert [e.kind for e in est.drain_events()][-1] is RttEventKind.KARN_REJECTED


@pytest.mark.rfc("7323", "4")
def test_timestamp_samples_are_valid_after_retransmission() -> None:
    est = RttEstimator(min_rto=0.01)
    est.sample(0.1, now=0.0)
    assert est.sample(0.3, now=1.0, retransmitted=True, from_timestamp=True) is True
    srtt, rttvar, rto = rfc6298_reference([0.1, 0.3], g=G, lo=0.01, hi=60.0)
    assert est.rttvar == pytest.approx(rttvar)
    assert est.srtt == pytest.approx(srtt) and est.rto == pytest.approx(rto)
    assert est.counters["TcpRttSamplesTimestamp"] == 1


@pytest.mark.rfc("6298", "5.5")
def test_backoff_doubles_and_is_capped() -> None:
    est = RttEstimator()
    est.sample(0.5, now=0.0)
    rto = est.rto
    values = [est.backoff() for _ in range(10)]
    expected = [min(rto * 2 ** (i + 1), 60.0) for i in range(10)]
    assert values == pytest.approx(expected)
    assert est.rto == 60.0
    assert est.counters["TcpRtoBackoffCapped"] >= 1


@pytest.mark.rfc("6298", "5.7")
def test_backoff_kept_until_valid_sample_then_collapses() -> None:
    est = RttEstimator(min_rto=0.01)
    est.sample(0.1, now=0.0)
    base = est.rto
    est.backoff()
    est.backoff()
    assert est.rto == pytest.approx(4 * base)
    # Karn: an ambiguous sample does not end the back-off.
    est.sample(0.1, now=1.0, retransmitted=True)
    assert est.rto == pytest.approx(4 * base)
    assert est.backoffs == 2
    est.sample(0.1, now=2.0)
    assert est.backoffs == 0
    _, _, rto = rfc6298_reference([0.1, 0.1], g=G, lo=0.01, hi=60.0)
    assert est.rto == pytest.approx(rto)
    assert RttEventKind.COLLAPSED in [e.kind for e in est.drain_events()]


@pytest.mark.rfc("6298", "5.7")
def test_syn_timeout_reinitialises_rto_to_three_seconds() -> None:
    est = RttEstimator()
    est.backoff()  # SYN timed out: 1 s -> 2 s
    est.handshake_complete(syn_timed_out=True)
    assert est.rto == 3.0
    assert est.backoffs == 0
    plain = RttEstimator()
    plain.handshake_complete(syn_timed_out=False)
    assert plain.rto == 1.0


@pytest.mark.rfc("6298", "5.7")
def test_srtt_may_be_cleared_after_repeated_backoffs() -> None:
    est = RttEstimator(min_rto=0.01, clear_after_backoffs=3)
    est.sample(0.1, now=0.0)
    est.backoff()
    est.backoff()
    assert est.srtt is not None
    est.backoff()
    assert est.srtt is None and est.rttvar is None
    est.sample(0.4, now=1.0)  # re-initialised per §2.2
    assert est.srtt == pytest.approx(0.4) and est.rttvar == pytest.approx(0.2)


@pytest.mark.rfc("7323", "G")
def test_expected_samples_scale_alpha_and_beta() -> None:
    assert expected_samples(0, 1000) == 1
    assert expected_samples(2000, 1000) == 1
    assert expected_samples(2001, 1000) == 2
    assert expected_samples(20_000, 1000) == 10
    est = RttEstimator(min_rto=0.01)
    est.sample(0.1, now=0.0)
    est.sample(0.3, now=1.0, expected_samples=4)
    a, b = 0.125 / 4, 0.25 / 4
    rttvar = (1 - b) * 0.05 + b * abs(0.1 - 0.3)
    srtt = (1 - a) * 0.1 + a * 0.3
    assert est.rttvar == pytest.approx(rttvar)
    assert est.srtt == pytest.approx(srtt)


@pytest.mark.rfc("8985", "6.2")
def test_min_rtt_is_windowed_and_adapts_to_longer_paths() -> None:
    est = RttEstimator(min_rtt_window=10.0)
    est.sample(0.05, now=0.0)
    est.sample(0.08, now=1.0)
    assert est.min_rtt == 0.05
    assert est.latest_rtt == 0.08
    # the path becomes longer: after the window the old minimum is forgotten
    for t in range(2, 30):
        est.sample(0.2 + t / 1000, now=float(t))
    assert est.min_rtt is not None and est.min_rtt > 0.2
    assert est.min_rtt == pytest.approx(min(0.2 + t / 1000 for t in range(18, 30)), abs=0.002)


def test_windowed_min_bounds() -> None:
    wm = WindowedMin(8.0, buckets=4)
    assert wm.get() is None
    assert wm.update(0.0, 3.0) == 3.0
    assert wm.update(1.0, 5.0) == 3.0
    assert wm.get(now=8.5) == 3.0  # still inside window * (1 + 1/buckets)
    assert wm.get(now=10.5) is None  # all sub-windows expired
    with pytest.raises(RttError):
        WindowedMin(0.0)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_bad_samples_raise_typed_error(bad: float) -> None:
    est = RttEstimator()
    with pytest.raises(RttError):
        est.sample(bad, now=0.0)
    with pytest.raises(RttError):
        est.sample(0.1, now=bad if bad != -0.1 else math.nan)
    with pytest.raises(RttError):
        est.sample(0.1, now=0.0, expected_samples=0)


def test_bad_configuration_raises() -> None:
    with pytest.raises(RttError):
        RttEstimator(min_rto=2.0, max_rto=1.0, strict=False)
    with pytest.raises(RttError):
        RttEstimator(initial_rto=0.5)
    with pytest.raises(RttError):
        RttEstimator(alpha=0.0)
    with pytest.raises(RttError):
        RttEstimator(clear_after_backoffs=0)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.floats(0.0, 100.0), st.booleans(), st.booleans()),
        st.tuples(st.just("backoff"), st.just(0.0), st.just(False), st.just(False)),
    ),
    max_size=60,
)


@pytest.mark.rfc("6298", "2")
@given(ops, st.floats(0.01, 1.0), st.floats(60.0, 200.0))
def test_rto_always_within_bounds(
    seq: list[tuple[str, float, bool, bool]], min_rto: float, max_rto: float
) -> None:
    est = RttEstimator(min_rto=min_rto, max_rto=max_rto)
    used: list[float] = []
    now = 0.0
    for op, rtt, retrans, ts in seq:
        now += 0.5
        if op == "sample":
            if est.sample(rtt, now, retransmitted=retrans, from_timestamp=ts):
                used.append(rtt)
        else:
            est.backoff(now)
        assert min(min_rto, est.initial_rto) <= est.rto <= max_rto
        assert math.isfinite(est.rto)
        if est.srtt is not None:
            assert est.rttvar is not None and est.rttvar >= 0
            assert min(used) - 1e-9 <= est.srtt <= max(used) + 1e-9
        if est.backoffs == 0 and est.srtt is not None and est.rttvar is not None:
            assert est.rto == pytest.approx(
                min(max(est.srtt + max(G, 4 * est.rttvar), min_rto), max_rto)
            )
