"""The congestion-control interface of the TCP engine, with the machinery shared by all algorithms.

Implements the parts every window-based controller shares:

* RFC 6928 §2 initial window IW = min(10*SMSS, max(2*SMSS, 14600)) (or RFC 5681 §3.1 eq. 1,
  or an explicit value); ssthresh starts "arbitrarily high" (RFC 5681 §3.1).
* RFC 5681 §3.1 slow start with RFC 3465 Appropriate Byte Counting (cwnd += min(N, L*SMSS),
  L = 2; L = 1 during the slow start that follows an RTO); the slow start is pluggable
  (:class:`SlowStart`) so HyStart++ can be added without touching the algorithms.
* RFC 5681 §3.1 loss window (cwnd = 1 SMSS after an RTO; ssthresh reduced only on the first
  timeout of an episode), RFC 5681 §3.1 IW after a lost SYN, RFC 5681 §4.1 restart after idle.
* RFC 3168 §6.1.2 ECN response: like a loss, at most once per window of data, never increasing
  cwnd, with cwnd bounded below by 1 SMSS.
* RFC 6582 §3.2 step 3 (full ACK): on leaving recovery cwnd = min(ssthresh, max(FlightSize,
  SMSS) + SMSS) when the engine passes FlightSize, else cwnd = ssthresh.
* RFC 9438 §4.9 / RFC 4015 style undo of a spurious reduction.
* RFC 9438 §5.8 / RFC 7661 spirit: cwnd does not grow on ACKs for application-limited data.

Units: windows are **bytes** (``int`` in the public API; algorithms may keep a fractional
``float`` internally), times are **seconds** (``float``) passed in as ``now``.

State machine (:class:`CcState`)::

    OPEN --loss--> RECOVERY --on_recovery_exit / undo--> OPEN
    OPEN --ecn---> CWR      --on_recovery_exit / undo--> OPEN
    OPEN | RECOVERY | CWR --rto--> LOSS --rto--> LOSS --on_recovery_exit / undo--> OPEN

cwnd does not grow in RECOVERY and CWR (the engine's loss recovery -- RFC 6675 pipe, RFC 6937
PRR or RFC 6582 inflation -- decides what may be sent; :attr:`ssthresh` is its target).  It grows
by slow start in LOSS.  A congestion signal in any state but OPEN is counted and ignored: that
is how "once per window of data" (RFC 3168 §6.1.2, RFC 5681 §3.2, RFC 6582 §3.2) is realised.

What the engine must call, and when
-----------------------------------
* ``cc = create(name, smss, **params)`` once SMSS is known; :meth:`set_mss` when it changes.
* :meth:`on_handshake_retransmitted` before the first data if the SYN or SYN-ACK was
  retransmitted and the engine applies RFC 5681 §3.1 (IW becomes 1 SMSS).
* :meth:`on_ack` for every ACK that cumulatively acknowledges new data (``acked_bytes`` = the
  advance of SND.UNA, without SYN/FIN sequence space), also during recovery; duplicate ACKs
  need no call.  ``bytes_in_flight`` is FlightSize after the ACK; ``rtt_sample`` the RTT
  measured from this ACK, if any (the same one fed to :class:`~mptcp.tcp.rtt.RttEstimator`);
  ``app_limited`` is true when the acknowledged data was sent while the sender was not
  cwnd-limited (no growth then).
* :meth:`on_congestion_event` with ``"loss"`` when loss recovery starts (third duplicate ACK,
  RFC 6675 / RFC 8985 loss marking), or with ``"ecn"`` for an ACK with ECE (or an AccECN
  CE-counter increase).  Pass FlightSize (SND.NXT - SND.UNA) at detection.  Remember
  ``recover = SND.NXT``; when a cumulative ACK covers ``recover`` call :meth:`on_recovery_exit`
  (with FlightSize for the RFC 6582 burst-avoidance rule).  The engine sets CWR on the next new
  data segment (RFC 3168 §6.1.2), and restarts the RTO timer for an ECE received while
  ``cwnd <= smss``.
* :meth:`on_rto` on every retransmission-timer expiry (the controller tells a first timeout
  from a repeated one).  Remember ``recover = SND.NXT`` and call :meth:`on_recovery_exit` when
  it is cumulatively acknowledged.
* :meth:`on_spurious_undo` when a reduction is shown to be spurious (DSACK RFC 3708,
  Eifel RFC 3522, F-RTO RFC 5682).
* :meth:`on_idle_restart` before sending after an idle period longer than the RTO.

Coupled multipath controllers (LIA RFC 6356, OLIA, BALIA) subclass an algorithm, override
:meth:`CongestionControl._congestion_avoidance`, and read other subflows' :attr:`cwnd`,
:attr:`srtt` and :attr:`smss`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter, deque
from enum import Enum, StrEnum
from typing import ClassVar, Literal, NamedTuple, TypedDict

__all__ = [
    "CcError",
    "CcState",
    "CongestionReason",
    "CcEventKind",
    "CcEvent",
    "SlowStartStep",
    "SlowStart",
    "StandardSlowStart",
    "CongestionControl",
    "CcParams",
    "INFINITE_SSTHRESH",
    "IW_BYTES_CAP",
    "rfc6928_initial_window",
    "rfc5681_initial_window",
]

INFINITE_SSTHRESH = 1 << 62  # "arbitrarily high" (RFC 5681 §3.1)
IW_BYTES_CAP = 14600  # RFC 6928 §2

# Counter names (MIB style).
C_ACKS = "CcAcks"
C_SS_ACKS = "CcSlowStartAcks"
C_CA_ACKS = "CcCongAvoidAcks"
C_APP_LIMITED = "CcAppLimitedAcks"
C_REDUCTION_ACKS = "CcAcksDuringReduction"
C_SS_EXIT = "CcSlowStartExits"
C_SS_EXIT_EARLY = "CcSlowStartEarlyExits"
C_LOSS = "CcLossReductions"
C_ECN = "CcEcnReductions"
C_SUPPRESSED = "CcCongestionEventsSuppressed"
C_RTO = "CcRtoReductions"
C_RTO_REPEAT = "CcRtoRepeated"
C_EXIT = "CcRecoveryExits"
C_UNDO = "CcSpuriousUndo"
C_UNDO_REFUSED = "CcSpuriousUndoRefused"
C_IDLE = "CcIdleRestarts"
C_HS_LW = "CcHandshakeLossWindow"
C_MSS = "CcMssChanges"
C_CLAMPED = "CcCwndClamped"
C_EVENTS_DROPPED = "CcEventsDropped"


class CcError(ValueError):
    """API misuse: negative byte counts, non-finite or decreasing time, bad parameters."""


class CcState(Enum):
    OPEN = "open"  # slow start or congestion avoidance
    RECOVERY = "recovery"  # loss detected by ACKs: reduced once, cwnd frozen until exit
    CWR = "cwr"  # ECN reduction (RFC 3168 §6.1.2): reduced once, cwnd frozen until exit
    LOSS = "loss"  # after an RTO: slow start from the loss window


_TRANSITIONS: dict[CcState, frozenset[CcState]] = {
    CcState.OPEN: frozenset({CcState.RECOVERY, CcState.CWR, CcState.LOSS}),
    CcState.RECOVERY: frozenset({CcState.OPEN, CcState.LOSS}),
    CcState.CWR: frozenset({CcState.OPEN, CcState.LOSS}),
    CcState.LOSS: frozenset({CcState.OPEN, CcState.LOSS}),
}


class CongestionReason(StrEnum):
    LOSS = "loss"
    ECN = "ecn"


class CcEventKind(Enum):
    SLOW_START_EXIT = "slow_start_exit"
    REDUCTION = "reduction"
    SUPPRESSED = "suppressed"
    RTO = "rto"
    RECOVERY_EXIT = "recovery_exit"
    UNDO = "undo"
    UNDO_REFUSED = "undo_refused"
    IDLE_RESTART = "idle_restart"
    HANDSHAKE_LOSS_WINDOW = "handshake_loss_window"
    MSS_CHANGED = "mss_changed"
    EPOCH_START = "epoch_start"  # algorithm-specific (CUBIC §4.2)


class CcEvent(NamedTuple):
    """One congestion-control decision, for the JSON-lines event log."""

    time: float | None
    kind: CcEventKind
    cwnd: int
    ssthresh: int
    state: CcState
    detail: str


_RECOVERY = CcState.RECOVERY  # (an Enum member lookup costs ~0.1 us each time)
_CWR = CcState.CWR


def rfc6928_initial_window(smss: int) -> int:
    """RFC 6928 §2: IW = min(10*SMSS, max(2*SMSS, 14600)) bytes."""
    return min(10 * smss, max(2 * smss, IW_BYTES_CAP))


def rfc5681_initial_window(smss: int) -> int:
    """RFC 5681 §3.1 equation (1): 2, 3 or 4 segments depending on SMSS."""
    if smss > 2190:
        return 2 * smss
    if smss > 1095:
        return 3 * smss
    return 4 * smss


_IW_RULES = {"rfc6928": rfc6928_initial_window, "rfc5681": rfc5681_initial_window}


class SlowStartStep(NamedTuple):
    """Result of one slow-start ACK: the new cwnd (bytes), the acknowledged bytes left over for
    congestion avoidance once ssthresh is reached, and whether the algorithm ends slow start
    early (HyStart++-style: the controller then sets ssthresh = cwnd)."""

    cwnd: float
    leftover: int
    exit_early: bool


class SlowStart(ABC):
    """A pluggable slow-start algorithm (RFC 9438 §4.10 allows RFC 5681 or HyStart++)."""

    name: ClassVar[str] = "abstract"

    @abstractmethod
    def on_ack(
        self,
        *,
        now: float,
        cwnd: float,
        ssthresh: int,
        acked_bytes: int,
        smss: int,
        limit_segments: int,
        rtt_sample: float | None,
    ) -> SlowStartStep:
        """Grow ``cwnd`` for one ACK of ``acked_bytes`` new bytes while cwnd < ssthresh."""

    def reset(self) -> None:  # noqa: B027 -- optional hook, nothing to do by default
        """A new slow start begins (after an RTO or an idle restart)."""


class StandardSlowStart(SlowStart):
    """RFC 5681 §3.1 slow start with RFC 3465 byte counting: cwnd += min(N, L*SMSS).

    cwnd is not raised above ssthresh; the rest of the ACK goes to congestion avoidance.
    """

    name = "standard"

    def on_ack(
        self,
        *,
        now: float,
        cwnd: float,
        ssthresh: int,
        acked_bytes: int,
        smss: int,
        limit_segments: int,
        rtt_sample: float | None,
    ) -> SlowStartStep:
        grown = cwnd + min(acked_bytes, limit_segments * smss)
        if grown <= ssthresh:
            return SlowStartStep(grown, 0, False)
        used = max(0, math.ceil(ssthresh - cwnd))
        return SlowStartStep(float(ssthresh), max(0, acked_bytes - used), False)


class CcParams(TypedDict, total=False):
    """Keyword parameters every algorithm accepts (see :class:`CongestionControl`)."""

    initial_window: int | None
    iw_rule: Literal["rfc6928", "rfc5681"]
    initial_ssthresh: int | None
    abc_limit: int
    abc_limit_after_rto: int
    slow_start: SlowStart | None
    slow_start_after_idle: bool
    cwnd_clamp: int | None
    events_maxlen: int


class _Undo(NamedTuple):
    cwnd: float
    ssthresh: int
    cwnd_prior: float | None
    extra: object


def _check_now(now: float) -> float:
    if type(now) is float and now - now == 0.0:
        return now  # the common case: a finite float
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise CcError(f"now must be a number, got {type(now).__name__}")
    v = float(now)
    if not math.isfinite(v):
        raise CcError(f"now must be finite, got {now!r}")
    return v


def _check_bytes(value: int, what: str) -> int:
    if type(value) is int and value >= 0:
        return value  # the common case
    if isinstance(value, bool) or not isinstance(value, int):
        raise CcError(f"{what} must be an int, got {type(value).__name__}")
    if value < 0:
        raise CcError(f"{what} must be >= 0, got {value}")
    return value


class CongestionControl(ABC):
    """Base class of window-based congestion controllers (see the module docstring).

    Subclasses implement :meth:`_ssthresh_raw` (the multiplicative decrease) and
    :meth:`_congestion_avoidance` (the increase), and may override the ``_on_*`` hooks.
    """

    name: ClassVar[str] = "abstract"

    def __init__(
        self,
        smss: int,
        *,
        initial_window: int | None = None,
        iw_rule: Literal["rfc6928", "rfc5681"] = "rfc6928",
        initial_ssthresh: int | None = None,
        abc_limit: int = 2,
        abc_limit_after_rto: int = 1,
        slow_start: SlowStart | None = None,
        slow_start_after_idle: bool = True,
        cwnd_clamp: int | None = None,
        events_maxlen: int = 1024,
    ) -> None:
        """``initial_window`` (bytes) overrides ``iw_rule``; ``abc_limit`` is RFC 3465's L
        in segments; ``cwnd_clamp`` bounds cwnd (bytes) like Linux's ``snd_cwnd_clamp``."""
        self._smss = self._check_smss(smss)
        if iw_rule not in _IW_RULES:
            raise CcError(f"unknown iw_rule {iw_rule!r} (choose from {sorted(_IW_RULES)})")
        if initial_window is not None and _check_bytes(initial_window, "initial_window") < smss:
            raise CcError(f"initial_window must be >= smss ({smss}), got {initial_window}")
        if initial_ssthresh is not None and (
            _check_bytes(initial_ssthresh, "initial_ssthresh") < 2 * smss
        ):
            raise CcError(f"initial_ssthresh must be >= 2*smss, got {initial_ssthresh}")
        if abc_limit < 1 or abc_limit_after_rto < 1:
            raise CcError("abc_limit and abc_limit_after_rto must be >= 1 segment")
        if cwnd_clamp is not None and _check_bytes(cwnd_clamp, "cwnd_clamp") < 2 * smss:
            raise CcError(f"cwnd_clamp must be >= 2*smss, got {cwnd_clamp}")
        self._iw_explicit = initial_window
        self._iw_rule = iw_rule
        self.abc_limit = abc_limit
        self.abc_limit_after_rto = abc_limit_after_rto
        self.slow_start: SlowStart = slow_start if slow_start is not None else StandardSlowStart()
        self.slow_start_after_idle = slow_start_after_idle
        self.cwnd_clamp = cwnd_clamp
        self._state = CcState.OPEN
        self._cwnd = float(self.initial_window)
        self._ssthresh = initial_ssthresh if initial_ssthresh is not None else INFINITE_SSTHRESH
        self._cwnd_prior: float | None = None
        self._undo: _Undo | None = None
        self._pristine = True  # nothing acknowledged and no congestion signal yet
        self._handshake_lw = False  # on_handshake_retransmitted() applied
        self._last_now: float | None = None
        self.srtt: float | None = None  # EWMA (1/8) of the samples given to on_ack
        self.min_rtt: float | None = None  # smallest sample given to on_ack
        self.latest_rtt: float | None = None
        self.counters: Counter[str] = Counter()
        self.events: deque[CcEvent] = deque(maxlen=max(1, events_maxlen))

    # -- read-only views -------------------------------------------------------------------
    @property
    def smss(self) -> int:
        return self._smss

    @property
    def cwnd(self) -> int:
        """Congestion window in bytes (never below 1 SMSS)."""
        return max(self._smss, int(self._cwnd))

    @property
    def ssthresh(self) -> int:
        """Slow-start threshold in bytes (:data:`INFINITE_SSTHRESH` until the first reduction)."""
        return self._ssthresh

    @property
    def state(self) -> CcState:
        return self._state

    @property
    def in_slow_start(self) -> bool:
        """cwnd < ssthresh (RFC 5681 §3.1; at equality congestion avoidance is used)."""
        return self._cwnd < self._ssthresh

    @property
    def in_reduction(self) -> bool:
        """True in RECOVERY and CWR, where cwnd is frozen and further signals are ignored."""
        return self._state in (CcState.RECOVERY, CcState.CWR)

    @property
    def cwnd_prior(self) -> int | None:
        """cwnd just before the most recent reduction (RFC 9438 §4.1.2), in bytes."""
        return None if self._cwnd_prior is None else int(self._cwnd_prior)

    @property
    def initial_window(self) -> int:
        if self._iw_explicit is not None:
            return self._iw_explicit
        return _IW_RULES[self._iw_rule](self._smss)

    @property
    def loss_window(self) -> int:
        """LW = 1 SMSS (RFC 5681 §3.1)."""
        return self._smss

    def info(self) -> dict[str, object]:
        """A snapshot for logs and plots."""
        return {
            "algorithm": self.name,
            "state": self._state.value,
            "cwnd": self.cwnd,
            "ssthresh": self._ssthresh,
            "smss": self._smss,
            "srtt": self.srtt,
            "min_rtt": self.min_rtt,
            "cwnd_prior": self.cwnd_prior,
        }

    def drain_events(self) -> list[CcEvent]:
        """Return and forget the recorded events."""
        out = list(self.events)
        self.events.clear()
        return out

    # -- engine inputs ---------------------------------------------------------------------
    def on_ack(
        self,
        now: float,
        acked_bytes: int,
        bytes_in_flight: int,
        rtt_sample: float | None = None,
        app_limited: bool = False,
    ) -> None:
        """An ACK cumulatively acknowledged ``acked_bytes`` new bytes."""
        last = self._last_now
        if type(now) is float and now - now == 0.0 and (last is None or now >= last):
            self._last_now = now  # _tick's common case: a finite float, not going back
        else:
            now = self._tick(now)
        if not (type(acked_bytes) is int and acked_bytes >= 0
                and type(bytes_in_flight) is int and bytes_in_flight >= 0):
            _check_bytes(acked_bytes, "acked_bytes")
            _check_bytes(bytes_in_flight, "bytes_in_flight")
        if rtt_sample is not None:
            self._note_rtt(rtt_sample)
        if acked_bytes == 0:
            return
        self._pristine = False
        counters = self.counters
        counters[C_ACKS] += 1
        if self._state is _RECOVERY or self._state is _CWR:  # in_reduction
            # RFC 3168 §6.1.2 / RFC 6675: no growth while the reduction is in progress.
            self.counters[C_REDUCTION_ACKS] += 1
            self._on_ack_in_reduction(now)
            return
        if app_limited:
            # RFC 9438 §5.8: the window does not grow when the sender was not cwnd-limited.
            self.counters[C_APP_LIMITED] += 1
            self._on_app_limited_ack(now)
            return
        if self.in_slow_start:
            self.counters[C_SS_ACKS] += 1
            limit = self.abc_limit_after_rto if self._state is CcState.LOSS else self.abc_limit
            step = self.slow_start.on_ack(
                now=now, cwnd=self._cwnd, ssthresh=self._ssthresh, acked_bytes=acked_bytes,
                smss=self._smss, limit_segments=limit, rtt_sample=rtt_sample,
            )
            self._set_cwnd(step.cwnd)
            if step.exit_early and self.in_slow_start:
                self._ssthresh = max(int(self._cwnd), 2 * self._smss)
                self.counters[C_SS_EXIT_EARLY] += 1
            if self.in_slow_start:
                return
            self.counters[C_SS_EXIT] += 1
            self._event(now, CcEventKind.SLOW_START_EXIT, "early" if step.exit_early else "")
            self._on_slow_start_exit(now, step.exit_early)
            if step.leftover <= 0:
                return
            acked_bytes = step.leftover
        self.counters[C_CA_ACKS] += 1
        self._congestion_avoidance(now, acked_bytes, bytes_in_flight)

    def on_congestion_event(
        self,
        now: float,
        bytes_in_flight: int,
        reason: CongestionReason | Literal["loss", "ecn"] = CongestionReason.LOSS,
    ) -> bool:
        """Loss detected by ACKs, or ECN-Echo: reduce once per episode.

        Returns ``True`` when the window was reduced, ``False`` when the signal was ignored
        because a reduction (RECOVERY, CWR or LOSS) is already in progress.
        """
        now = self._tick(now)
        _check_bytes(bytes_in_flight, "bytes_in_flight")
        try:
            why = CongestionReason(reason)
        except ValueError:
            raise CcError(f"reason must be 'loss' or 'ecn', got {reason!r}") from None
        self._pristine = False
        if self._state is not CcState.OPEN:
            self.counters[C_SUPPRESSED] += 1
            self._event(now, CcEventKind.SUPPRESSED, why.value)
            return False
        before = self._cwnd
        # RFC 9438 §4.9.2: the state is saved for undo when loss is detected by ACKs;
        # an ECN signal cannot be spurious, and an older snapshot would ignore it.
        self._undo = self._snapshot() if why is CongestionReason.LOSS else None
        self._on_reduction(now, why)
        raw = self._ssthresh_raw(bytes_in_flight)
        floor = 2 * self._smss if why is CongestionReason.LOSS else self._smss
        self._cwnd_prior = before
        self._ssthresh = max(int(raw), 2 * self._smss)
        cwnd = max(raw, float(floor))
        if why is CongestionReason.ECN:
            cwnd = min(cwnd, before)  # RFC 3168 §6.1.2: never increase cwnd on ECE
        self._set_cwnd(cwnd)
        if why is CongestionReason.LOSS:
            self.counters[C_LOSS] += 1
            self._transition(CcState.RECOVERY)
        else:
            self.counters[C_ECN] += 1
            self._transition(CcState.CWR)
        self._event(now, CcEventKind.REDUCTION, why.value)
        return True

    def on_recovery_exit(self, now: float, bytes_in_flight: int | None = None) -> None:
        """The recovery point (SND.NXT when the episode began) was cumulatively acknowledged."""
        now = self._tick(now)
        if self._state is CcState.OPEN:
            return
        if self._state is CcState.RECOVERY and bytes_in_flight is not None:
            # RFC 6582 §3.2 step 3 option (1): avoid a burst when little is in flight.
            flight = _check_bytes(bytes_in_flight, "bytes_in_flight")
            self._set_cwnd(min(self._cwnd, float(max(flight, self._smss) + self._smss)))
        previous = self._state
        self._transition(CcState.OPEN)
        self.counters[C_EXIT] += 1
        self._event(now, CcEventKind.RECOVERY_EXIT, previous.value)
        self._on_recovery_exit(now, previous)

    def on_rto(self, now: float, bytes_in_flight: int) -> None:
        """The retransmission timer expired (RFC 5681 §3.1: cwnd = LW = 1 SMSS).

        ssthresh is reduced only on the first timeout of an episode ("the given segment has
        not yet been resent by way of the retransmission timer"); during RECOVERY or CWR it
        is lowered, never raised.
        """
        now = self._tick(now)
        _check_bytes(bytes_in_flight, "bytes_in_flight")
        self._pristine = False
        previous = self._state
        if previous is CcState.LOSS:
            self.counters[C_RTO_REPEAT] += 1
            self._set_cwnd(float(self.loss_window))
            self.slow_start.reset()
            self._transition(CcState.LOSS)
            self._event(now, CcEventKind.RTO, "repeated")
            return
        if previous is CcState.OPEN:
            self._undo = self._snapshot()  # RFC 9438 §4.9.1 / RFC 4015: spurious timeouts
        new_ssthresh = max(int(self._ssthresh_raw(bytes_in_flight)), 2 * self._smss)
        if previous is CcState.OPEN:
            self._cwnd_prior = self._cwnd
            self._ssthresh = new_ssthresh
        else:
            self._ssthresh = min(self._ssthresh, new_ssthresh)
        self._on_rto(now, previous)
        self._set_cwnd(float(self.loss_window))
        self.slow_start.reset()
        self.counters[C_RTO] += 1
        self._transition(CcState.LOSS)
        self._event(now, CcEventKind.RTO, previous.value)

    def on_spurious_undo(self, now: float | None = None) -> bool:
        """The last reduction was spurious: restore the saved state (RFC 9438 §4.9).

        The state is restored only if cwnd is still below cwnd_prior; otherwise the current
        values are kept (RFC 9438 §4.9.2).  Returns ``True`` when restored.
        """
        t = None if now is None else self._tick(now)
        snap = self._undo
        self._undo = None
        if snap is None or self._cwnd_prior is None or self._cwnd >= self._cwnd_prior:
            self.counters[C_UNDO_REFUSED] += 1
            self._event(t, CcEventKind.UNDO_REFUSED, "no snapshot" if snap is None else "grown")
            return False
        self._cwnd = snap.cwnd
        self._ssthresh = snap.ssthresh
        self._cwnd_prior = snap.cwnd_prior
        self._restore_extra(snap.extra)
        if self._state is not CcState.OPEN:
            self._transition(CcState.OPEN)
        self.counters[C_UNDO] += 1
        self._event(t, CcEventKind.UNDO, "")
        return True

    def on_idle_restart(self, now: float) -> None:
        """Sending resumes after an idle period longer than the RTO (RFC 5681 §4.1):
        cwnd = RW = min(IW, cwnd) when ``slow_start_after_idle`` is set."""
        now = self._tick(now)
        if not self.slow_start_after_idle:
            return
        restart = float(min(self.initial_window, self.cwnd))
        if restart < self._cwnd:
            self._set_cwnd(restart)
        self.slow_start.reset()
        self.counters[C_IDLE] += 1
        self._event(now, CcEventKind.IDLE_RESTART, "")
        self._on_idle_restart(now)

    def on_handshake_retransmitted(self, now: float | None = None) -> None:
        """The SYN or SYN-ACK was lost: the initial window is one segment (RFC 5681 §3.1).

        Only effective before any data was acknowledged.
        """
        t = None if now is None else self._tick(now)
        if not self._pristine:
            return
        self._set_cwnd(float(self.loss_window))
        self._handshake_lw = True
        self.counters[C_HS_LW] += 1
        self._event(t, CcEventKind.HANDSHAKE_LOSS_WINDOW, "")

    def set_mss(self, smss: int, now: float | None = None) -> None:
        """SMSS changed (MSS option, PMTU).  Before any data was acknowledged the initial
        window is recomputed; afterwards the windows keep their size in segments."""
        t = None if now is None else self._tick(now)
        smss = self._check_smss(smss)
        old = self._smss
        if smss == old:
            return
        self._smss = smss
        if self._pristine:
            lw = self._handshake_lw
            self._cwnd = float(self.loss_window if lw else self.initial_window)
        else:
            factor = smss / old
            self._cwnd *= factor
            if self._ssthresh != INFINITE_SSTHRESH:
                self._ssthresh = int(self._ssthresh * factor)
            if self._cwnd_prior is not None:
                self._cwnd_prior *= factor
            self._undo = None
            self._rescale(factor)
        if self._ssthresh < 2 * smss:
            self._ssthresh = 2 * smss
        self._set_cwnd(self._cwnd)
        self.counters[C_MSS] += 1
        self._event(t, CcEventKind.MSS_CHANGED, f"{old}->{smss}")

    # -- subclass interface ----------------------------------------------------------------
    @abstractmethod
    def _ssthresh_raw(self, bytes_in_flight: int) -> float:
        """The multiplicative decrease before the 2*SMSS / 1*SMSS floors (bytes)."""

    @abstractmethod
    def _congestion_avoidance(self, now: float, acked_bytes: int, bytes_in_flight: int) -> None:
        """Grow cwnd for ``acked_bytes`` newly acknowledged bytes in congestion avoidance."""

    def _on_reduction(self, now: float, reason: CongestionReason) -> None:  # noqa: B027
        """Called before a loss/ECN reduction, with cwnd still at its old value."""

    def _on_rto(self, now: float, previous: CcState) -> None:  # noqa: B027
        """Called on a first timeout, after ssthresh was set and before cwnd = LW."""

    def _on_recovery_exit(self, now: float, previous: CcState) -> None:  # noqa: B027
        """Called after the state returned to OPEN."""

    def _on_slow_start_exit(self, now: float, early: bool) -> None:  # noqa: B027
        """Called when cwnd reached ssthresh (or slow start ended early)."""

    def _on_app_limited_ack(self, now: float) -> None:  # noqa: B027
        """Called for an ACK that did not grow cwnd because of application limitation."""

    def _on_ack_in_reduction(self, now: float) -> None:  # noqa: B027
        """Called for an ACK during RECOVERY or CWR."""

    def _on_idle_restart(self, now: float) -> None:  # noqa: B027
        """Called after an RFC 5681 §4.1 restart."""

    def _save_extra(self) -> object:
        """Algorithm state to save for undo."""
        return None

    def _restore_extra(self, extra: object) -> None:  # noqa: B027
        """Restore what :meth:`_save_extra` returned."""

    def _rescale(self, factor: float) -> None:  # noqa: B027
        """Scale algorithm byte quantities after an SMSS change."""

    # -- helpers ---------------------------------------------------------------------------
    def _set_cwnd(self, value: float) -> None:
        if math.isnan(value):
            raise CcError("cwnd computation produced NaN")
        value = max(value, float(self._smss))
        if self.cwnd_clamp is not None and value > max(self.cwnd_clamp, self._smss):
            self.counters[C_CLAMPED] += 1
            value = float(max(self.cwnd_clamp, self._smss))
        self._cwnd = value

    def _snapshot(self) -> _Undo:
        return _Undo(self._cwnd, self._ssthresh, self._cwnd_prior, self._save_extra())

    def _transition(self, new: CcState) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise CcError(f"invalid congestion-control transition {self._state} -> {new}")
        self._state = new

    def _tick(self, now: float) -> float:
        now = _check_now(now)
        if self._last_now is not None and now < self._last_now:
            raise CcError(f"time went backwards: {now} < {self._last_now}")
        self._last_now = now
        return now

    def _note_rtt(self, rtt: float) -> None:
        if type(rtt) is float and rtt >= 0.0 and rtt - rtt == 0.0:  # the common case
            self.latest_rtt = rtt
            self.min_rtt = rtt if self.min_rtt is None or rtt < self.min_rtt else self.min_rtt
            self.srtt = rtt if self.srtt is None else self.srtt + (rtt - self.srtt) / 8
            return
        if isinstance(rtt, bool) or not isinstance(rtt, int | float) or not math.isfinite(rtt):
            raise CcError(f"rtt_sample must be a finite number, got {rtt!r}")
        if rtt < 0:
            raise CcError(f"rtt_sample must be >= 0, got {rtt}")
        r = float(rtt)
        self.latest_rtt = r
        self.min_rtt = r if self.min_rtt is None else min(self.min_rtt, r)
        self.srtt = r if self.srtt is None else self.srtt + (r - self.srtt) / 8

    @staticmethod
    def _check_smss(smss: int) -> int:
        if isinstance(smss, bool) or not isinstance(smss, int) or smss <= 0:
            raise CcError(f"smss must be a positive int, got {smss!r}")
        return smss

    def _event(self, now: float | None, kind: CcEventKind, detail: str) -> None:
        if self.events.maxlen is not None and len(self.events) == self.events.maxlen:
            self.counters[C_EVENTS_DROPPED] += 1
        self.events.append(CcEvent(now, kind, self.cwnd, self._ssthresh, self._state, detail))
