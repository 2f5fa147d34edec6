"""CUBIC (RFC 9438, text draft-ietf-tcpm-rfc8312bis-15).

The RFC formulas are re-derived here in segments and compared with the implementation, which
works in bytes.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.cc import (
    CcError,
    CcState,
    Cubic,
    CubicRegion,
    SlowStart,
    SlowStartStep,
    create,
)

S = 1000
C = 0.4
BETA = 0.7


def k_rfc(w_max_seg: float, cwnd_epoch_seg: float, c: float = C) -> float:
    """RFC 9438 §4.2 Figure 2 in segments."""
    x = (w_max_seg - cwnd_epoch_seg) / c
    return math.copysign(abs(x) ** (1 / 3), x)


def w_cubic_rfc(t: float, k: float, w_max_seg: float, c: float = C) -> float:
    """RFC 9438 §4.2 Figure 1 in segments."""
    return c * (t - k) ** 3 + w_max_seg


def ack_round(cc: Cubic, now: float, rtt: float, *, per_ack: int = S) -> float:
    window = cc.cwnd
    n = max(1, window // per_ack)
    for i in range(n):
        cc.on_ack(now + rtt * i / n, per_ack, window, rtt)
    return now + rtt


def grown_to(cc: Cubic, segments: int, rtt: float) -> float:
    """Slow start until cwnd >= ``segments``; returns the time."""
    now = 0.0
    while cc.cwnd < segments * S:
        now = ack_round(cc, now, rtt)
    return now


@pytest.mark.rfc("9438", "4.6")
def test_multiplicative_decrease_uses_beta_on_flight_size() -> None:
    cc = Cubic(S)
    now = grown_to(cc, 80, 0.1)
    cwnd = cc.cwnd
    flight = 77 * S
    assert cc.on_congestion_event(now, flight, "loss")
    assert cc.ssthresh == int(flight * BETA)
    assert cc.cwnd == max(cc.ssthresh, 2 * S)
    assert cc.cwnd_prior == cwnd and cc.w_max == cwnd
    small = Cubic(S)
    small.on_congestion_event(0.0, 2 * S, "loss")
    assert small.cwnd == 2 * S and small.ssthresh == 2 * S  # at least 2 MSS after loss
    ecn = Cubic(S)
    ecn.on_rto(0.0, 2 * S)
    ecn.on_recovery_exit(0.1)
    ecn.on_congestion_event(0.2, S, "ecn")
    assert ecn.cwnd == S and ecn.ssthresh == 2 * S  # ECE: cwnd >= 1 MSS, ssthresh >= 2 MSS


@pytest.mark.rfc("9438", "4.2")
def test_k_and_w_cubic_follow_figures_1_and_2() -> None:
    cc = Cubic(S, fast_convergence=False)
    now = grown_to(cc, 100, 0.1)
    w_max = cc.cwnd / S
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now + 0.1)
    cc.on_ack(now + 0.2, S, cc.cwnd, 0.1)  # first ACK in congestion avoidance: epoch starts
    assert cc.t_epoch == now + 0.2
    epoch = cc.cwnd_epoch / S
    assert epoch == pytest.approx(w_max * BETA, abs=1 / S)
    assert cc.k == pytest.approx(k_rfc(w_max, epoch))
    assert cc.k == pytest.approx((w_max * (1 - BETA) / C) ** (1 / 3), rel=1e-3)
    for t in (0.0, 0.5, 1.0, cc.k, 2 * cc.k, 10.0):
        assert cc.w_cubic(t) / S == pytest.approx(w_cubic_rfc(t, cc.k, w_max))
    assert cc.w_cubic(0.0) == pytest.approx(cc.cwnd_epoch)
    assert cc.w_cubic(cc.k) == pytest.approx(w_max * S)


@pytest.mark.rfc("9438", "4.4")
def test_cwnd_growth_tracks_the_cubic_curve() -> None:
    rtt = 0.1
    cc = Cubic(S, fast_convergence=False)
    now = grown_to(cc, 400, rtt)
    w_max = cc.cwnd / S
    cc.on_congestion_event(now, cc.cwnd, "loss")
    now += rtt
    cc.on_recovery_exit(now)
    k = k_rfc(w_max, w_max * BETA)
    regions: set[CubicRegion] = set()
    for _ in range(int(1.6 * k / rtt)):
        now = ack_round(cc, now, rtt)
        assert cc.region is not None
        regions.add(cc.region)
        assert cc.t_epoch is not None
        t = now - cc.t_epoch
        expected = w_cubic_rfc(t, k, w_max)
        # after each RTT of ACKs cwnd has reached W_cubic of that time, within rounding
        assert cc.cwnd / S == pytest.approx(expected, rel=0.01, abs=1.0)
    assert CubicRegion.CONCAVE in regions and CubicRegion.CONVEX in regions
    assert cc.cwnd > w_max * S  # probing beyond the old maximum in the convex region


@pytest.mark.rfc("9438", "4.2")
def test_target_is_bounded_by_one_and_a_half_cwnd() -> None:
    cc = Cubic(S, reno_friendly=False)
    now = grown_to(cc, 20, 0.1)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now)
    cc.on_ack(now, S, cc.cwnd, 0.1)
    start = cc.cwnd
    # far beyond K, W_cubic(t + RTT) is huge; growth per RTT is capped at 1.5 * cwnd
    ack_round(cc, now + 1000.0, 0.1)
    assert start < cc.cwnd <= 1.5 * start + S


@pytest.mark.rfc("9438", "4.3")
def test_reno_friendly_region_dominates_at_small_bdp() -> None:
    rtt = 0.001  # tiny BDP: the cubic curve barely moves within an RTT
    cc = Cubic(S)
    now = grown_to(cc, 20, rtt)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    prior = cc.cwnd_prior
    assert prior is not None
    cc.on_recovery_exit(now)
    w_est_seg = cc.cwnd / S
    cwnd_seg = w_est_seg
    alpha = 3 * (1 - BETA) / (1 + BETA)
    for _ in range(20):
        window = cc.cwnd
        for i in range(window // S):
            cc.on_ack(now + rtt * i / (window // S), S, window, rtt)
            # RFC 9438 §4.3 Figure 4, alpha switched to 1 once W_est >= cwnd_prior
            a = 1.0 if w_est_seg >= prior / S else alpha
            w_est_seg += a * 1 / cwnd_seg
            cwnd_seg = max(cwnd_seg, w_est_seg)
        now += rtt
        assert cc.region is CubicRegion.RENO_FRIENDLY
        assert cc.w_est / S == pytest.approx(w_est_seg, rel=1e-6)
        assert cc.cwnd // S == int(w_est_seg)
    assert cc.counters["CubicRenoFriendlyAcks"] > 10 * cc.counters["CubicConcaveAcks"]
    # growth per RTT: about alpha_cubic segments while below cwnd_prior
    assert 20 * alpha * 0.8 <= w_est_seg - 0.7 * prior / S <= 20 * 1.0


@pytest.mark.rfc("9438", "4.3")
def test_reno_friendly_alpha_becomes_one_at_cwnd_prior() -> None:
    cc = Cubic(S)
    now = grown_to(cc, 10, 0.001)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now)
    prior = cc.cwnd_prior
    assert prior is not None
    cc.on_ack(now, S, cc.cwnd, 0.001)  # the congestion-avoidance stage starts: W_est set
    growth_before: list[float] = []
    while cc.counters["CubicRenoAlphaToOne"] == 0:
        before = cc.w_est
        now = ack_round(cc, now, 0.001)
        growth_before.append((cc.w_est - before) / S)
    assert cc.w_est >= prior
    alpha = 3 * (1 - BETA) / (1 + BETA)
    # about alpha_cubic segments per RTT before, one segment per RTT after (Reno's rate)
    assert growth_before[0] == pytest.approx(alpha, rel=0.1)
    before = cc.w_est
    ack_round(cc, now, 0.001)
    assert (cc.w_est - before) / S == pytest.approx(1.0, rel=0.1)


@pytest.mark.rfc("9438", "4.7")
def test_fast_convergence_reduces_w_max() -> None:
    for enabled in (True, False):
        cc = Cubic(S, fast_convergence=enabled)
        now = grown_to(cc, 100, 0.1)
        first = cc.cwnd
        cc.on_congestion_event(now, first, "loss")
        cc.on_recovery_exit(now + 0.1)
        now = ack_round(cc, now + 0.1, 0.1)
        second = cc.cwnd
        assert second < first
        cc.on_congestion_event(now, second, "loss")
        if enabled:
            assert cc.w_max == pytest.approx(second * (1 + BETA) / 2, abs=1)
            assert cc.counters["CubicFastConvergence"] == 1
        else:
            assert cc.w_max == pytest.approx(second, abs=1)
        assert cc.cwnd_prior == second


@pytest.mark.rfc("9438", "4.8")
def test_timeout_then_first_ca_stage_uses_k_zero() -> None:
    cc = Cubic(S)
    now = grown_to(cc, 60, 0.1)
    cwnd = cc.cwnd
    cc.on_rto(now, 50 * S)
    assert cc.cwnd == S and cc.state is CcState.LOSS
    assert cc.ssthresh == int(50 * S * BETA)
    assert cc.cwnd_prior == cwnd
    cc.on_rto(now + 1, 50 * S)  # repeated timeout: ssthresh is not reduced again
    assert cc.ssthresh == int(50 * S * BETA)
    now += 2
    while cc.in_slow_start:
        now = ack_round(cc, now, 0.1)
    assert cc.t_epoch is not None  # the first congestion-avoidance ACK started the stage
    assert cc.k == 0.0
    assert cc.w_max == cc.cwnd_epoch
    assert cc.w_est == pytest.approx(cc.cwnd_epoch, abs=S)
    assert cc.w_cubic(0.0) == cc.cwnd_epoch


@pytest.mark.rfc("9438", "4.9")
def test_spurious_loss_undo_restores_all_variables() -> None:
    cc = Cubic(S)
    now = grown_to(cc, 50, 0.1)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now + 0.1)
    now = ack_round(cc, now + 0.1, 0.1)
    saved = (cc.cwnd, cc.ssthresh, cc.w_max, cc.k, cc.t_epoch, cc.w_est, cc.cwnd_prior)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    assert cc.cwnd < saved[0]
    assert cc.on_spurious_undo(now + 0.05) is True
    assert (cc.cwnd, cc.ssthresh, cc.w_max, cc.k, cc.t_epoch, cc.w_est, cc.cwnd_prior) == saved
    assert cc.state is CcState.OPEN


@pytest.mark.rfc("9438", "4.9")
def test_late_undo_keeps_current_values_when_cwnd_regrew() -> None:
    cc = Cubic(S)
    now = grown_to(cc, 20, 0.01)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now)
    while cc.cwnd < (cc.cwnd_prior or 0):
        now = ack_round(cc, now, 0.01)
    current = (cc.cwnd, cc.ssthresh, cc.w_max)
    assert cc.on_spurious_undo(now) is False
    assert (cc.cwnd, cc.ssthresh, cc.w_max) == current


@pytest.mark.rfc("9438", "5.8")
def test_application_limited_time_is_excluded_from_t() -> None:
    cc = Cubic(S, reno_friendly=False)
    now = grown_to(cc, 50, 0.1)
    cc.on_congestion_event(now, cc.cwnd, "loss")
    cc.on_recovery_exit(now)
    now = ack_round(cc, now, 0.1)
    cc.on_ack(now, S, cc.cwnd, 0.1)  # the last cwnd-limited ACK
    epoch = cc.t_epoch
    assert epoch is not None
    cwnd = cc.cwnd
    for i in range(1, 21):  # two seconds application-limited
        cc.on_ack(now + 0.1 * i, S, S, 0.1, app_limited=True)
    assert cc.cwnd == cwnd
    assert cc.t_epoch == pytest.approx(epoch + 2.0)


@pytest.mark.rfc("9438", "4.10")
def test_pluggable_slow_start_early_exit() -> None:
    class ExitAtTwenty(SlowStart):
        name = "exit-at-20"

        def on_ack(self, *, now: float, cwnd: float, ssthresh: int, acked_bytes: int,
                   smss: int, limit_segments: int, rtt_sample: float | None) -> SlowStartStep:
            grown = cwnd + min(acked_bytes, limit_segments * smss)
            return SlowStartStep(grown, 0, grown >= 20 * smss)

    cc = Cubic(S, slow_start=ExitAtTwenty())
    now = grown_to(cc, 20, 0.1)
    assert not cc.in_slow_start and cc.ssthresh == cc.cwnd == 20 * S
    assert cc.cwnd_prior == 20 * S
    cc.on_ack(now, S, 20 * S, 0.1)
    assert cc.k == 0.0 and cc.w_max == pytest.approx(20 * S)
    assert cc.counters["CcSlowStartEarlyExits"] == 1


def test_parameters_validated_and_registered() -> None:
    assert isinstance(create("cubic", S, beta=0.8), Cubic)
    with pytest.raises(CcError):
        Cubic(S, beta=1.0)
    with pytest.raises(CcError):
        Cubic(S, c=-1.0)
    with pytest.raises(CcError):
        Cubic(S).w_cubic(1.0)


@pytest.mark.rfc("9438", "4.2")
@given(
    w_max=st.integers(4, 5000),
    beta=st.floats(0.5, 0.9),
    c=st.floats(0.1, 2.0),
    smss=st.sampled_from([536, 1460, 9000]),
)
def test_k_matches_rfc_for_any_parameters(w_max: int, beta: float, c: float, smss: int) -> None:
    cc = Cubic(smss, beta=beta, c=c, fast_convergence=False, initial_window=w_max * smss)
    cc.on_congestion_event(0.0, w_max * smss, "loss")
    cc.on_recovery_exit(0.0)
    cc.on_ack(1.0, smss, cc.cwnd)
    epoch = cc.cwnd_epoch / smss
    assert cc.k == pytest.approx(k_rfc(w_max, epoch, c), rel=1e-9, abs=1e-9)
    assert cc.w_cubic(cc.k) == pytest.approx(w_max * smss)
