"""Reno / NewReno (RFC 5681, RFC 6582, RFC 3465, RFC 6928, RFC 3168 §6.1.2) and the shared
congestion-control machinery; the random-sequence invariants run for every registered
algorithm."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.cc import (
    INFINITE_SSTHRESH,
    CcError,
    CcEventKind,
    CcState,
    CongestionControl,
    Reno,
    available,
    create,
    register,
)

S = 1000  # SMSS used by most tests


def ack_round(cc: CongestionControl, now: float, rtt: float, *, per_ack: int = S) -> float:
    """Acknowledge one window (cwnd at the start of the round), ``per_ack`` bytes per ACK,
    spread over one RTT.  Returns the time at the end of the round."""
    window = cc.cwnd
    n = max(1, window // per_ack)
    for i in range(n):
        cc.on_ack(now + rtt * i / n, per_ack, window - i * per_ack, rtt)
    return now + rtt


def in_ca(cc: CongestionControl, now: float, flight: int) -> float:
    """Drive ``cc`` through a loss episode so that it is in congestion avoidance."""
    cc.on_congestion_event(now, flight, "loss")
    cc.on_recovery_exit(now + 0.1)
    return now + 0.1


@pytest.mark.rfc("6928", "2")
@pytest.mark.parametrize("smss", [536, 1000, 1460, 4000, 8960, 9000])
def test_initial_window_rfc6928(smss: int) -> None:
    cc = Reno(smss)
    assert cc.cwnd == min(10 * smss, max(2 * smss, 14600))
    assert cc.ssthresh == INFINITE_SSTHRESH and cc.in_slow_start


@pytest.mark.rfc("5681", "3.1")
@pytest.mark.parametrize(("smss", "segments"), [(536, 4), (1095, 4), (1096, 3), (2190, 3),
                                                (2191, 2)])
def test_initial_window_rfc5681(smss: int, segments: int) -> None:
    assert Reno(smss, iw_rule="rfc5681").cwnd == segments * smss
    assert Reno(smss, initial_window=7 * smss).cwnd == 7 * smss


@pytest.mark.rfc("5681", "3.1")
def test_slow_start_doubles_per_rtt() -> None:
    cc = Reno(S)
    now = 0.0
    for _ in range(5):
        start = cc.cwnd
        now = ack_round(cc, now, 0.1)
        assert cc.cwnd == 2 * start
    assert cc.counters["CcSlowStartAcks"] > 0


@pytest.mark.rfc("3465", "2.2")
def test_abc_limits_stretch_acks_to_two_segments() -> None:
    cc = Reno(S)
    start = cc.cwnd
    cc.on_ack(0.0, 5 * S, 0)
    assert cc.cwnd == start + 2 * S
    cc.on_ack(0.1, S // 2, 0)  # a partial segment counts its bytes
    assert cc.cwnd == start + 2 * S + S // 2
    one = Reno(S, abc_limit=1)
    one.on_ack(0.0, 5 * S, 0)
    assert one.cwnd == start + S


@pytest.mark.rfc("3465", "2.3")
def test_abc_limit_is_one_segment_in_slow_start_after_rto() -> None:
    cc = Reno(S)
    cc.on_rto(0.0, 20 * S)
    assert cc.cwnd == S and cc.state is CcState.LOSS
    cc.on_ack(0.5, 4 * S, 19 * S)
    assert cc.cwnd == 2 * S


@pytest.mark.rfc("5681", "3.1")
def test_congestion_avoidance_adds_one_smss_per_rtt() -> None:
    cc = Reno(S)
    now = in_ca(cc, 0.0, 40 * S)
    assert cc.cwnd == cc.ssthresh == 20 * S and not cc.in_slow_start
    for _ in range(10):
        start = cc.cwnd
        now = ack_round(cc, now, 0.1)
        assert cc.cwnd == start + S
    # with delayed ACKs (2 segments per ACK) byte counting gives the same growth
    start = cc.cwnd
    now = ack_round(cc, now, 0.1, per_ack=2 * S)
    assert cc.cwnd == start + S


@pytest.mark.rfc("5681", "3.1")
def test_congestion_avoidance_per_ack_formula() -> None:
    cc = Reno(S, ca_mode="per_ack")
    now = in_ca(cc, 0.0, 40 * S)
    cwnd = cc.cwnd
    window = cwnd
    for i in range(window // S):
        cc.on_ack(now + i * 0.001, S, window)
        cwnd += max(1, S * S // cwnd)  # RFC 5681 equation (3)
        assert cc.cwnd == cwnd
    assert window + S * 9 // 10 <= cc.cwnd <= window + S


@pytest.mark.rfc("5681", "3.2")
def test_loss_halves_flight_and_sets_cwnd_to_ssthresh() -> None:
    cc = Reno(S)
    now = 0.0
    for _ in range(3):
        now = ack_round(cc, now, 0.1)
    flight = 37 * S + 123
    assert cc.on_congestion_event(now, flight, "loss") is True
    assert cc.ssthresh == max(flight // 2, 2 * S)
    assert cc.cwnd == cc.ssthresh
    assert cc.state is CcState.RECOVERY
    assert cc.cwnd_prior == 80 * S
    small = Reno(S)
    small.on_congestion_event(0.0, S, "loss")
    assert small.ssthresh == 2 * S and small.cwnd == 2 * S


@pytest.mark.rfc("6582", "3.2")
def test_recovery_freezes_cwnd_and_ignores_further_signals() -> None:
    cc = Reno(S)
    cc.on_congestion_event(0.0, 40 * S, "loss")
    reduced = cc.cwnd
    for i in range(30):
        cc.on_ack(0.01 * i, S, 40 * S)
    assert cc.cwnd == reduced
    assert cc.on_congestion_event(0.5, 40 * S, "loss") is False
    assert cc.on_congestion_event(0.5, 40 * S, "ecn") is False
    assert cc.ssthresh == 20 * S
    assert cc.counters["CcCongestionEventsSuppressed"] == 2


@pytest.mark.rfc("6582", "3.2")
def test_recovery_exit_avoids_burst_when_flight_is_small() -> None:
    cc = Reno(S)
    cc.on_congestion_event(0.0, 40 * S, "loss")
    cc.on_recovery_exit(1.0, bytes_in_flight=3 * S)
    assert cc.cwnd == min(cc.ssthresh, max(3 * S, S) + S) == 4 * S
    assert cc.state is CcState.OPEN and cc.in_slow_start
    other = Reno(S)
    other.on_congestion_event(0.0, 40 * S, "loss")
    other.on_recovery_exit(1.0)
    assert other.cwnd == other.ssthresh


@pytest.mark.rfc("5681", "3.1")
def test_rto_sets_loss_window_and_ssthresh_once() -> None:
    cc = Reno(S)
    now = ack_round(cc, 0.0, 0.1)
    cc.on_rto(now, 30 * S)
    assert cc.cwnd == S
    assert cc.ssthresh == 15 * S
    cc.on_ack(now + 1, S, 29 * S)
    cc.on_rto(now + 2, 29 * S)  # the retransmission timed out again
    assert cc.cwnd == S and cc.ssthresh == 15 * S
    assert cc.counters["CcRtoRepeated"] == 1
    # slow start up to ssthresh, then congestion avoidance
    t = now + 3
    while cc.in_slow_start:
        t = ack_round(cc, t, 0.1)
    assert cc.cwnd == cc.ssthresh
    cc.on_recovery_exit(t)
    assert cc.state is CcState.OPEN


@pytest.mark.rfc("5681", "3.1")
def test_rto_during_recovery_never_raises_ssthresh() -> None:
    cc = Reno(S)
    cc.on_congestion_event(0.0, 20 * S, "loss")
    cc.on_rto(1.0, 60 * S)
    assert cc.ssthresh == 10 * S and cc.cwnd == S
    cc2 = Reno(S)
    cc2.on_congestion_event(0.0, 40 * S, "loss")
    cc2.on_rto(1.0, 10 * S)
    assert cc2.ssthresh == 5 * S


@pytest.mark.rfc("3168", "6.1.2")
def test_ecn_halves_once_per_window() -> None:
    cc = Reno(S)
    now = ack_round(cc, 0.0, 0.1)
    assert cc.on_congestion_event(now, 20 * S, "ecn") is True
    assert cc.state is CcState.CWR
    assert cc.ssthresh == 10 * S and cc.cwnd == 10 * S
    assert cc.on_congestion_event(now + 0.01, 20 * S, "ecn") is False
    cc.on_ack(now + 0.02, S, 19 * S)
    assert cc.cwnd == 10 * S  # no increase in response to ECE ACKs
    cc.on_recovery_exit(now + 0.1)
    assert cc.on_congestion_event(now + 0.2, 10 * S, "ecn") is True
    assert cc.cwnd == 5 * S


@pytest.mark.rfc("3168", "6.1.2")
def test_ecn_bounded_by_one_mss_and_never_increases_cwnd() -> None:
    cc = Reno(S)
    cc.on_rto(0.0, 4 * S)
    assert cc.on_congestion_event(0.1, S, "ecn") is False  # already reduced in this window
    cc.on_recovery_exit(0.2)
    assert cc.on_congestion_event(0.3, S, "ecn") is True
    assert cc.cwnd == S
    assert cc.ssthresh == 2 * S


@pytest.mark.rfc("9438", "5.8")
def test_application_limited_acks_do_not_grow_cwnd() -> None:
    cc = Reno(S)
    start = cc.cwnd
    for i in range(20):
        cc.on_ack(0.01 * i, S, S, app_limited=True)
    assert cc.cwnd == start
    assert cc.counters["CcAppLimitedAcks"] == 20


@pytest.mark.rfc("5681", "4.1")
def test_restart_after_idle() -> None:
    cc = Reno(S)
    now = 0.0
    for _ in range(3):
        now = ack_round(cc, now, 0.1)
    cc.on_idle_restart(now + 10)
    assert cc.cwnd == cc.initial_window
    small = Reno(S)
    small.on_rto(0.0, 10 * S)
    small.on_idle_restart(5.0)
    assert small.cwnd == S  # RW = min(IW, cwnd)
    off = Reno(S, slow_start_after_idle=False)
    ack_round(off, 0.0, 0.1)
    off.on_idle_restart(10.0)
    assert off.cwnd == 2 * off.initial_window


@pytest.mark.rfc("5681", "3.1")
def test_lost_syn_makes_initial_window_one_segment() -> None:
    cc = Reno(S)
    cc.on_handshake_retransmitted()
    assert cc.cwnd == S
    later = Reno(S)
    later.on_ack(0.0, S, 0)
    later.on_handshake_retransmitted()
    assert later.cwnd == later.initial_window + S


@pytest.mark.rfc("9438", "4.9")
def test_spurious_loss_undo_restores_window() -> None:
    cc = Reno(S)
    now = ack_round(cc, 0.0, 0.1)
    before = (cc.cwnd, cc.ssthresh)
    cc.on_congestion_event(now, 20 * S, "loss")
    assert cc.on_spurious_undo(now + 0.05) is True
    assert (cc.cwnd, cc.ssthresh) == before
    assert cc.state is CcState.OPEN
    assert cc.on_spurious_undo(now + 0.06) is False  # nothing left to undo
    cc.on_congestion_event(now + 0.1, 20 * S, "ecn")
    assert cc.on_spurious_undo(now + 0.2) is False  # ECN cannot be spurious
    kinds = [e.kind for e in cc.drain_events()]
    assert CcEventKind.UNDO in kinds and CcEventKind.UNDO_REFUSED in kinds


def test_set_mss_before_and_after_data() -> None:
    cc = Reno(1460)
    cc.set_mss(1000)
    assert cc.cwnd == 10_000
    cc.on_congestion_event(0.0, 40_000, "loss")
    cc.set_mss(500)
    assert cc.cwnd == 10_000 and cc.ssthresh == 10_000 and cc.smss == 500
    with pytest.raises(CcError):
        cc.set_mss(0)


def test_registry() -> None:
    assert {"reno", "cubic"} <= set(available())
    assert isinstance(create("Reno", S), Reno)
    with pytest.raises(CcError):
        create("vegas", S)
    with pytest.raises(CcError):
        create("reno", S, no_such_parameter=1)
    with pytest.raises(CcError):
        register("reno", Reno)


@pytest.mark.parametrize(
    "call",
    [
        lambda cc: cc.on_ack(0.0, -1, 0),
        lambda cc: cc.on_ack(math.nan, 1, 0),
        lambda cc: cc.on_ack(0.0, 1, 0, rtt_sample=-0.5),
        lambda cc: cc.on_congestion_event(0.0, 10, "timeout"),
        lambda cc: cc.on_rto(0.0, -5),
        lambda cc: Reno(0),
        lambda cc: Reno(S, initial_window=10),
        lambda cc: Reno(S, ca_mode="cubic"),  # type: ignore[arg-type]
    ],
)
def test_misuse_raises_typed_error(call: object) -> None:
    cc = Reno(S)
    with pytest.raises(CcError):
        call(cc)  # type: ignore[operator]


def test_time_must_not_go_backwards() -> None:
    cc = Reno(S)
    cc.on_ack(5.0, S, 0)
    with pytest.raises(CcError):
        cc.on_ack(4.0, S, 0)


# -- random event sequences: invariants for every algorithm -----------------------------------

event = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 20 * S), st.booleans(), st.floats(0.0, 2.0)),
    st.tuples(st.just("loss"), st.integers(0, 200 * S), st.booleans(), st.just(0.0)),
    st.tuples(st.just("ecn"), st.integers(0, 200 * S), st.booleans(), st.just(0.0)),
    st.tuples(st.just("rto"), st.integers(0, 200 * S), st.booleans(), st.just(0.0)),
    st.tuples(st.just("exit"), st.integers(0, 200 * S), st.booleans(), st.just(0.0)),
    st.tuples(st.just("undo"), st.just(0), st.booleans(), st.just(0.0)),
    st.tuples(st.just("idle"), st.just(0), st.booleans(), st.just(0.0)),
)


@pytest.mark.rfc("5681", "3.1")
@pytest.mark.parametrize("name", ["reno", "cubic"])
@given(
    events=st.lists(st.tuples(event, st.floats(0.0, 5.0)), max_size=80),
    smss=st.sampled_from([536, 1000, 1460, 9000]),
)
def test_random_sequences_keep_windows_sane(
    name: str, events: list[tuple[tuple[str, int, bool, float], float]], smss: int
) -> None:
    cc = create(name, smss)
    now = 0.0
    max_flight = 0
    for (kind, amount, flag, rtt), dt in events:
        now += dt
        before = cc.cwnd
        state = cc.state
        if kind == "ack":
            cc.on_ack(now, amount, amount, rtt if flag else None, app_limited=not flag)
            if state in (CcState.RECOVERY, CcState.CWR):
                assert cc.cwnd == before  # no growth while reducing
        elif kind in ("loss", "ecn"):
            max_flight = max(max_flight, amount)
            reduced = cc.on_congestion_event(now, amount, kind)  # type: ignore[arg-type]
            assert reduced == (state is CcState.OPEN)
            if reduced and kind == "loss":
                assert cc.cwnd >= 2 * smss  # RFC 5681 / RFC 9438 §4.6: at least 2 SMSS
            if kind == "ecn":
                assert cc.cwnd <= before  # RFC 3168 §6.1.2
        elif kind == "rto":
            max_flight = max(max_flight, amount)
            cc.on_rto(now, amount)
            assert cc.cwnd == smss and cc.state is CcState.LOSS
        elif kind == "exit":
            cc.on_recovery_exit(now, amount if flag else None)
            assert cc.state is CcState.OPEN
        elif kind == "undo":
            cc.on_spurious_undo(now)
        else:
            cc.on_idle_restart(now)
        assert isinstance(cc.cwnd, int) and cc.cwnd >= smss
        assert cc.ssthresh == INFINITE_SSTHRESH or (
            2 * smss <= cc.ssthresh <= max(max_flight, 2 * smss)
        )
        for value in cc.info().values():
            if isinstance(value, float):
                assert math.isfinite(value)
