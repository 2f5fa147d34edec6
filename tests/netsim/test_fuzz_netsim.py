"""``mptcp-lab fuzz netsim``: the schedule generator's honesty bounds, the verdict rules, the
CLI, and a CI campaign of 250 small schedules that must all pass."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interop.cli import main
from interop.decode import decode_pcap
from interop.fuzz_cli import run_campaign
from interop.fuzz_netsim import (
    FLAP_MAX,
    PAUSE_MAX,
    SYN_RETRIES,
    Outcome,
    Schedule,
    generate,
    judge,
    run_schedule,
)
from interop.netsim.sim import StopReason
from interop.tcp_app import TransferResult, payload_prefix_sha256, payload_sha256


def test_generation_is_a_function_of_seed_and_index() -> None:
    assert generate(5, 3).describe() == generate(5, 3).describe()
    assert generate(5, 3).describe() != generate(5, 4).describe()
    assert generate(5, 3).describe() != generate(6, 3).describe()


@settings(max_examples=300)
@given(st.integers(0, 10_000), st.integers(0, 100_000), st.integers(0, 5_000_000))
def test_generator_bounds_are_honest(seed: int, index: int, max_size: int) -> None:
    s = generate(seed, index, max_size=max_size)
    assert 0 <= s.size <= max_size
    for p in (s.ab, s.ba):
        ge = p.burst_loss.mean_loss() if p.burst_loss is not None else 0.0
        assert p.loss + ge <= 0.2 + 1e-9
        if p.burst_loss is not None:
            assert p.burst_loss.r >= 0.5  # mean burst <= 2 packets
    for cfg in (s.client, s.server):
        assert cfg.syn_retries == SYN_RETRIES and cfg.max_retries == 15
        assert 2 * cfg.msl >= cfg.rto_max  # a lost last ACK is always answered
    ts_possible = s.client.timestamps and s.server.timestamps and not any(
        k == "strip_syn" and 8 in o["kinds"] for k, o, _ in s.middleboxes)
    for kind, o, _at in s.middleboxes:
        if kind == "split" and ts_possible:
            assert o["options"] == "all"  # pieces without timestamps would be dropped
    if s.category == "faults":
        assert s.user_timeout is None and s.client.user_timeout is None
        assert s.blackout is None
        assert all(0 < d <= FLAP_MAX for _t, d, _dir in s.flaps)
        assert all(0 < d <= PAUSE_MAX for _t, d in s.pauses)
        for _t, d, c in s.changes:
            for p in ((s.ab, s.ba) if d is None else (s.ab if d == "ab" else s.ba,)):
                ge = p.burst_loss.mean_loss() if p.burst_loss is not None else 0.0
                assert c.get("loss", 0.0) + ge <= 0.2 + 1e-9
    else:
        assert s.category == "blackout" and s.blackout is not None and s.user_timeout
        assert s.blackout[1] > 2 * s.user_timeout + 2
        assert s.ab.loss == s.ba.loss == 0 and s.ab.burst_loss is None
        assert not s.flaps and not s.pauses
        assert not any("loss" in c for _t, _d, c in s.changes)


def _result(role: str, **kw: object) -> TransferResult:
    r = TransferResult(role)
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def _blackout_schedule() -> Schedule:
    for i in range(200):
        s = generate(9, i, max_size=50_000)
        if s.category == "blackout":
            return s
    raise AssertionError("no blackout schedule in 200")


def test_judge_rules() -> None:
    s = replace(generate(1, 0), size=1000, category="faults", blackout=None)
    full = payload_sha256(s.data_seed, 1000)
    ok = judge(s, _result("sender", bytes=1000, closed_clean=True),
               _result("sink", bytes=1000, sha256=full, closed_clean=True), StopReason.CONDITION)
    assert ok == (True, True, "complete")
    # corrupted data is always a failure
    bad = judge(s, _result("sender", bytes=1000, closed_clean=True),
                _result("sink", bytes=1000, sha256="0" * 64, closed_clean=True),
                StopReason.CONDITION)
    assert not bad[0] and "not the data sent" in bad[2]
    # more than sent
    assert not judge(s, _result("sender", bytes=1000), _result("sink", bytes=1001),
                     StopReason.IDLE)[0]
    # a reported failure in a "faults" schedule is never justified
    half = payload_prefix_sha256(s.data_seed, 1000, 500)
    v = judge(s, _result("sender", bytes=1000, failure="ConnectionFailed: timeout",
                         failed_at=5.0),
              _result("sink", bytes=500, sha256=half), StopReason.IDLE)
    assert not v[0] and "not completed" in v[2]
    # a stall is a hang
    v = judge(s, _result("sender", bytes=1000), _result("sink", bytes=500, sha256=half),
              StopReason.CONDITION, stalled=True)
    assert not v[0] and v[2].startswith("hang")


def test_judge_blackout_rules() -> None:
    s = replace(_blackout_schedule(), size=1000)
    assert s.blackout is not None
    b0, dur = s.blackout
    half = payload_prefix_sha256(s.data_seed, 1000, 400)
    inside = b0 + dur / 2
    sink_half_open = _result("sink", bytes=400, sha256=half)
    timed_out = _result("sender", bytes=1000, failure="ConnectionFailed: user timeout",
                        failed_at=inside)
    assert judge(s, timed_out, sink_half_open, StopReason.IDLE)[:2] == (True, False)
    # the same failure outside the outage is not justified
    early = replace(timed_out, failed_at=b0 - 1.0)
    assert not judge(s, early, sink_half_open, StopReason.IDLE)[0]
    # the peer may be reset by the failed side's stack afterwards, not before
    reset_after = _result("sink", bytes=400, sha256=half, failure="Reset: connection reset",
                          failed_at=inside + 1)
    assert judge(s, timed_out, reset_after, StopReason.IDLE)[0]
    reset_before = replace(reset_after, failed_at=b0 - 0.5)
    assert not judge(s, timed_out, reset_before, StopReason.IDLE)[0]
    # another reason is not justified by an outage
    other = replace(timed_out, failure="ConnectionFailed: timeout")
    assert not judge(s, other, sink_half_open, StopReason.IDLE)[0]


def test_one_schedule_runs_and_is_deterministic() -> None:
    s = generate(3, 17, max_size=30_000)
    a, b = run_schedule(s), run_schedule(s)
    assert a.ok, a.verdict
    assert (a.verdict, a.delivered, a.virtual_time, a.events, a.sink) == \
        (b.verdict, b.delivered, b.virtual_time, b.events, b.sink)


def test_ci_campaign_250_small_schedules() -> None:
    """The CI share of the campaign: 250 schedules of at most 128 kB, all must pass."""
    rep = run_campaign(2024, 250, max_size=128_000)
    assert rep["failed"] == [], rep["failed"]
    assert rep["schedules"] == 250 and rep["passed"] == 250
    assert rep["completed"] + rep["justified_failures"] == 250
    assert sum(rep["sizes"]["buckets"].values()) == 250
    assert rep["categories"]["faults"] > rep["categories"]["blackout"] > 0


def test_cli_only_writes_a_pcap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / "one.pcap"
    assert main(["fuzz", "netsim", "--seed", "3", "--only", "17", "--max-size", "30000",
                 "--pcap", str(pcap), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"]["ok"] and out["schedule"]["index"] == 17
    records = decode_pcap(pcap)
    assert len(records) == out["packets"] > 0
    assert not any("error" in r for r in records)


def test_cli_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "netsim", "--schedules", "6", "--seed", "4", "--max-size", "8000",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["schedules"] == 6 and rep["failures"] == 0 and rep["seed"] == 4


def test_cli_reports_failures_with_a_reproducer(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import interop.fuzz_cli as cli
    from interop.fuzz_netsim import run_index as real

    def flaky(seed: int, index: int, max_size: int) -> Outcome:
        o = real(seed, index, max_size)
        if index == 2:
            o = replace(o, ok=False, verdict="injected failure")
        return o

    monkeypatch.setattr(cli, "run_index", flaky)
    assert main(["fuzz", "netsim", "--schedules", "4", "--seed", "8",
                 "--max-size", "5000"]) == 1
    out = capsys.readouterr().out
    assert "FAILED schedule 2: injected failure" in out
    assert "mptcp-lab fuzz netsim --seed 8 --only 2 --max-size 5000" in out
