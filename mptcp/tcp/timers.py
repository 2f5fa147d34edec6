"""Timers of a connection: deadlines as absolute virtual times, run by ``handle_timer``.

- Retransmission (RFC 6298 §5): armed when data is sent and none is running (5.1), stopped
  when everything is acknowledged (5.2), restarted on an ACK of new data (5.3); on expiry
  (5.4-5.6) the earliest segment is resent and the RTO backed off (recovery.on_rto).  SYNs
  and SYN-ACKs use it too, up to ``syn_retries``; data gives up after ``max_retries``
  expiries or ``user_timeout`` seconds without progress (RFC 9293 §3.8.3 R2, RFC 5482)
  with ConnectionFailed("timeout").
- Persist (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17): with a zero send window and data queued,
  a probe carrying one new octet, at exponentially backed-off intervals (RTO-based, capped at
  ``rto_max``); never gives up while the peer answers (only the user timeout applies).
- Delayed ACK (RFC 9293 §3.8.6.3): ``delack_timeout`` after the first unacknowledged segment.
- Keepalive (RFC 9293 §3.8.4): after ``keepalive_idle`` seconds of silence, probes of
  <SEQ=SND.UNA-1> without data every ``keepalive_interval``; ``keepalive_probes`` unanswered
  probes reset the connection (Linux sends a RST then).
- TIME-WAIT (RFC 9293 §3.6.1): 2 * MSL, restarted by a retransmitted FIN.
- RACK reordering and TLP probe timeout (RFC 8985 §6.2 step 5, §7.2-§7.3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mptcp.tcp import output, recovery
from mptcp.tcp.hooks import SegmentKind
from mptcp.tcp.scoreboard import Scoreboard
from mptcp.tcp.state import TcpState, Trigger
from mptcp.wire.tcp import ACK

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection

__all__ = [
    "next_deadline", "expire", "arm_rto", "arm_rto_if_stopped", "arm_persist",
    "arm_keepalive", "arm_fin_wait_2", "enter_time_wait", "window_opened", "stop_all",
]


def next_deadline(c: TcpConnection) -> float | None:
    best = c.t_rto  # unrolled: this runs after every segment
    t = c.t_persist
    if t is not None and (best is None or t < best):
        best = t
    t = c.t_delack
    if t is not None and (best is None or t < best):
        best = t
    t = c.t_keepalive
    if t is not None and (best is None or t < best):
        best = t
    t = c.t_timewait
    if t is not None and (best is None or t < best):
        best = t
    t = c.t_tlp
    if t is not None and (best is None or t < best):
        best = t
    t = c.t_reorder
    if t is not None and (best is None or t < best):
        best = t
    return best


def stop_all(c: TcpConnection) -> None:
    c.t_rto = c.t_persist = c.t_delack = c.t_keepalive = c.t_timewait = None
    c.t_tlp = c.t_reorder = None


def arm_rto(c: TcpConnection, now: float) -> None:
    """(Re)start the retransmission timer for the current RTO (RFC 6298 §5.3)."""
    if c.persist_probe and c.snd_wnd == 0:
        c.t_rto = None  # the persist timer is in charge
        return
    c.t_rto = now + c.rtt.rto


def arm_rto_if_stopped(c: TcpConnection, now: float) -> None:
    """RFC 6298 §5.1: start the timer if it is not running."""
    if c.t_rto is None:
        c.unacked_since = now
        arm_rto(c, now)


def arm_persist(c: TcpConnection, now: float) -> None:
    if c.t_persist is not None:
        return
    base = max(c.rtt.base_rto, c.config.rto_min)
    c.t_persist = now + min(base * (2 ** c.persist_backoff), c.config.rto_max)
    c.t_rto = None


def arm_keepalive(c: TcpConnection, now: float) -> None:
    c.t_keepalive = now + c.config.keepalive_idle


def arm_fin_wait_2(c: TcpConnection, now: float) -> None:
    """No FIN-WAIT-2 timeout (RFC 9293 has none; Linux's tcp_fin_timeout is not modelled):
    a half-closed connection may keep receiving indefinitely."""
    c.t_rto = None if c.snd_una >= c.snd_nxt else c.t_rto


def enter_time_wait(c: TcpConnection) -> None:
    """(Re)start the 2 MSL timer; nothing else runs in TIME-WAIT."""
    if c.t_timewait is None:
        c.mib["TcpExtTW"] += 1
    c.t_rto = c.t_persist = c.t_keepalive = c.t_tlp = c.t_reorder = None
    c.t_timewait = c.last_activity + c.config.time_wait


def window_opened(c: TcpConnection, now: float) -> None:
    """The peer's window went from zero to positive: stop probing; a probe octet the peer
    did not take is sent again as ordinary data."""
    c.t_persist = None
    c.persist_backoff = 0
    if c.persist_probe:
        c.persist_probe = False
        if c.snd_nxt > c.snd_una:
            c.snd_nxt = c.snd_una
            c.rec.reset(c.snd_una)
            c.sb = Scoreboard(max(c.snd_una, 1), c.smss, dup_thresh=c.config.dupthresh,
                              counters=c.mib)
            c.t_rto = None


def expire(c: TcpConnection, now: float) -> None:
    """Run the timers that are due."""
    if c.t_timewait is not None and now >= c.t_timewait:
        c.t_timewait = None
        if c.state is TcpState.TIME_WAIT:
            c.mib["TcpExtTWKilled"] += 1
            c.set_state(Trigger.TIMEOUT_2MSL)
        return
    if c.t_delack is not None and now >= c.t_delack:
        c.t_delack = None
        if c.delack_bytes or c.ack_now:
            c.ack_now = True
            c.mib["TcpExtDelayedACKs"] += 1
    if c.t_reorder is not None and now >= c.t_reorder:
        recovery.on_reorder_timer(c, now)
    if c.t_tlp is not None and now >= c.t_tlp:
        _tlp(c, now)
    if c.t_rto is not None and now >= c.t_rto:
        _rto(c, now)
        if c.state is TcpState.CLOSED:
            return
    if c.t_persist is not None and now >= c.t_persist:
        _persist(c, now)
    if c.t_keepalive is not None and now >= c.t_keepalive:
        _keepalive(c, now)


def _rto(c: TcpConnection, now: float) -> None:
    c.t_rto = None
    cfg = c.config
    if c.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
        if c.syn_retransmits >= cfg.syn_retries:
            c.fail("timeout", counter="TcpExtTCPAbortOnTimeout")
            return
        c.rtt.backoff(now)
        c.mib["TcpExtTCPTimeouts"] += 1
        c.need_syn = True
        return
    if c.snd_una >= c.snd_nxt:
        return
    c.retries += 1
    if cfg.user_timeout is not None and now - c.unacked_since >= cfg.user_timeout:
        if c.state is not TcpState.TIME_WAIT:
            c.fail("user timeout", counter="TcpExtTCPAbortOnUserTimeout")
        return
    if c.retries > cfg.max_retries:
        c.fail("timeout", counter="TcpExtTCPAbortOnTimeout")
        return
    recovery.on_rto(c, now)
    arm_rto(c, now)  # §5.6 with the backed-off value


def _tlp(c: TcpConnection, now: float) -> None:
    c.t_tlp = None
    probe: list[tuple[int, int]] = []
    recovery.on_tlp_timer(c, now, probe)
    if probe:
        start, end = probe[0]
        plan = output.plan_options(c, SegmentKind.DATA)
        retrans = start < c.snd_nxt
        if output.send_range(c, start, end, now, c.outq, plan, "tlp" if retrans else None):
            c.rec.rack.on_probe_sent(c.snd_nxt, retrans)
            arm_rto(c, now)  # §7.3: the RTO, not the PTO, is armed after a probe
            return
    arm_rto_if_stopped(c, now)  # no probe: the RTO keeps its deadline


def _persist(c: TcpConnection, now: float) -> None:
    c.t_persist = None
    if c.snd_wnd > 0 or c.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT,
                                        TcpState.FIN_WAIT_1, TcpState.CLOSING,
                                        TcpState.LAST_ACK):
        return
    cfg = c.config
    if cfg.user_timeout is not None and c.snd_una < c.snd_nxt \
            and now - c.unacked_since >= cfg.user_timeout:
        c.fail("user timeout", counter="TcpExtTCPAbortOnUserTimeout")
        return
    plan = output.plan_options(c, SegmentKind.DATA)
    if c.snd_nxt > c.snd_una:
        start, reason = c.snd_una, "persist"  # the earlier probe (or unacked data) again
    elif c.snd_nxt < c.sendbuf.end:
        start, reason = c.snd_nxt, None  # one octet of new data (§3.8.6.1)
    else:
        return
    if output.send_range(c, start, start + 1, now, c.outq, plan, reason):
        c.persist_probe = True
        c.mib["TcpExtTCPWinProbe"] += 1
    c.t_rto = None
    c.persist_backoff += 1
    arm_persist(c, now)


def _keepalive(c: TcpConnection, now: float) -> None:
    cfg = c.config
    c.t_keepalive = None
    if c.state not in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT_2):
        return
    idle = now - c.last_activity
    if idle < cfg.keepalive_idle and c.keepalive_sent == 0:
        c.t_keepalive = c.last_activity + cfg.keepalive_idle
        return
    if c.snd_nxt > c.snd_una or c.sendbuf.end > c.snd_nxt:
        c.t_keepalive = now + cfg.keepalive_idle  # not idle: the RTO / persist timer rules
        return
    if c.keepalive_sent >= cfg.keepalive_probes:
        output.queue_rst(c, c.snd.seq(c.snd_nxt), None)
        c.fail("keepalive timeout", counter="TcpExtTCPAbortOnKeepalive")
        return
    plan = output.plan_options(c, SegmentKind.ACK)
    opts, size = output.own_options(c, plan, now)
    c.outq.append(output.assemble(c, SegmentKind.ACK, c.snd_una - 1, ACK, opts, size, b"",
                                  False, now))
    c.keepalive_sent += 1
    c.mib["TcpExtTCPKeepAlive"] += 1
    c.t_keepalive = now + cfg.keepalive_interval
