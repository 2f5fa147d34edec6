"""Round-trip time estimation and the retransmission timeout (RFC 6298, RFC 7323 §4, RFC 8985).

Implements:

* RFC 6298 §2.1-2.5: SRTT / RTTVAR / RTO with clock granularity G, K = 4, alpha = 1/8,
  beta = 1/4, the initial RTO (1 s), a lower bound (1 s by default, configurable -- Linux uses
  200 ms) and an upper bound (60 s by default; the RFC requires any bound to be >= 60 s).
* RFC 6298 §3: Karn's algorithm -- a sample measured on a retransmitted segment is refused
  unless it comes from the Timestamps option (RFC 7323 §4 / Appendix H(d) remove the ambiguity).
* RFC 6298 §4: the variance term is never less than G.
* RFC 6298 §5.5: exponential back-off on expiry, capped at the maximum RTO; the backed-off value
  stays until a valid sample "collapses" it (the note after §5.7).  Optionally, SRTT/RTTVAR are
  cleared after several back-offs (the MAY in that note).
* RFC 6298 §5.7: after a SYN timeout the RTO is re-initialised to 3 s when data transfer starts.
* RFC 7323 Appendix G: ``expected_samples`` scales alpha/beta when many samples per RTT are taken.
* RFC 8985 §6.2 step 1: a windowed minimum RTT (``min_rtt``) for RACK, and ``latest_rtt``.

What the engine must do (RFC 6298 §5, not done here because it owns the timer):

* (5.1) when a data segment is sent and the timer is not running, start it for :attr:`rto`;
* (5.2) when all outstanding data is acknowledged, stop the timer;
* (5.3) when an ACK acknowledges new data, restart the timer for :attr:`rto`;
* (5.4-5.6) on expiry, retransmit the earliest unacknowledged segment, call :meth:`backoff`
  and start the timer for the new :attr:`rto`;
* RFC 7323 §4.1 (RTTM rule): only feed a timestamp sample if the ACK advanced SND.UNA;
* call :meth:`sample` with ``retransmitted=True`` for a segment that was sent more than once
  (Karn) and ``from_timestamp=True`` when the RTT came from TSecr.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from enum import Enum
from typing import NamedTuple

__all__ = [
    "RttError",
    "RttEventKind",
    "RttEvent",
    "WindowedMin",
    "RttEstimator",
    "expected_samples",
    "DEFAULT_GRANULARITY",
    "DEFAULT_MIN_RTO",
    "DEFAULT_MAX_RTO",
    "DEFAULT_INITIAL_RTO",
    "SYN_FALLBACK_RTO",
    "RFC_MIN_MAX_RTO",
    "DEFAULT_MIN_RTT_WINDOW",
]

DEFAULT_GRANULARITY = 0.001  # G, seconds (RFC 6298 §4 leaves it to the implementation)
DEFAULT_MIN_RTO = 1.0  # RFC 6298 §2.4 (SHOULD round up to 1 s)
DEFAULT_MAX_RTO = 60.0  # RFC 6298 §2.5 (a maximum MAY be placed, at least 60 s)
RFC_MIN_MAX_RTO = 60.0  # the smallest upper bound RFC 6298 §2.5 allows
DEFAULT_INITIAL_RTO = 1.0  # RFC 6298 §2.1
SYN_FALLBACK_RTO = 3.0  # RFC 6298 §5.7
DEFAULT_MIN_RTT_WINDOW = 300.0  # seconds; RFC 8985 §6.2 leaves the window open (Linux: 300 s)
_MIN_RTT_BUCKETS = 8  # sub-windows of the windowed-min filter

# Counter names (MIB style, like the kernel's TcpExt counters).
C_SAMPLES = "TcpRttSamples"
C_SAMPLES_TS = "TcpRttSamplesTimestamp"
C_KARN_REJECTED = "TcpRttKarnRejected"
C_BACKOFFS = "TcpRtoBackoffs"
C_BACKOFF_CAPPED = "TcpRtoBackoffCapped"
C_COLLAPSED = "TcpRtoBackoffCollapsed"
C_CLEARED = "TcpRttEstimatorCleared"
C_SYN_FALLBACK = "TcpRtoSynFallback"


class RttError(ValueError):
    """API misuse: a negative, NaN or infinite RTT or time, or an invalid configuration."""


class RttEventKind(Enum):
    FIRST_SAMPLE = "first_sample"  # RFC 6298 §2.2
    KARN_REJECTED = "karn_rejected"  # RFC 6298 §3
    BACKOFF = "backoff"  # RFC 6298 §5.5
    COLLAPSED = "collapsed"  # note after RFC 6298 §5.7: a sample ends the back-off
    CLEARED = "cleared"  # SRTT/RTTVAR dropped after repeated back-offs
    SYN_FALLBACK = "syn_fallback"  # RFC 6298 §5.7


class RttEvent(NamedTuple):
    """One decision of the estimator, for the JSON-lines event log."""

    time: float | None
    kind: RttEventKind
    rto: float
    srtt: float | None
    rttvar: float | None


def _check_time(value: float, what: str) -> float:
    if type(value) is float and value - value == 0.0:
        return value  # the common case: a finite float (inf - inf and nan - nan are nan)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RttError(f"{what} must be a number, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise RttError(f"{what} must be finite, got {value!r}")
    return v


def expected_samples(flight_size: int, smss: int) -> int:
    """RFC 7323 Appendix G: ExpectedSamples = ceiling(FlightSize / (SMSS * 2)), at least 1."""
    if smss <= 0:
        raise RttError(f"smss must be positive, got {smss}")
    if flight_size < 0:
        raise RttError(f"flight_size must be >= 0, got {flight_size}")
    return max(1, -(-flight_size // (2 * smss)))


class WindowedMin:
    """Minimum of the samples of the last ``window`` seconds (RFC 8985 §6.2 step 1).

    The window is split into ``buckets`` sub-windows of equal length; each keeps the smallest
    sample taken during it, and a sub-window is forgotten once it lies wholly before
    ``now - window``.  Memory is bounded (``buckets + 1`` entries) and a sample is forgotten
    between ``window`` and ``window * (1 + 1/buckets)`` seconds after it was taken, so the
    estimate can grow when a connection migrates to a longer path.
    """

    __slots__ = ("_buckets", "_entries", "_width", "window")

    def __init__(self, window: float, buckets: int = _MIN_RTT_BUCKETS) -> None:
        window = _check_time(window, "window")
        if window <= 0:
            raise RttError(f"window must be positive, got {window}")
        if buckets < 1:
            raise RttError(f"buckets must be >= 1, got {buckets}")
        self.window = window
        self._buckets = buckets
        self._width = window / buckets
        self._entries: deque[tuple[int, float]] = deque()

    def _expire(self, index: int) -> None:
        while self._entries and self._entries[0][0] < index - self._buckets:
            self._entries.popleft()

    def update(self, now: float, value: float) -> float:
        """Record ``value`` seen at ``now``; return the windowed minimum."""
        index = math.floor(now / self._width)
        entries = self._entries
        if entries and entries[-1][0] >= index:
            last_index, last_value = entries[-1]
            if value < last_value:
                entries[-1] = (last_index, value)
        else:
            entries.append((index, value))
        if entries[0][0] < index - self._buckets:
            self._expire(index)
        if len(entries) == 1:
            return entries[0][1]
        return min(v for _, v in entries)

    def get(self, now: float | None = None) -> float | None:
        """The current minimum (expiring old sub-windows first when ``now`` is given)."""
        if now is not None:
            self._expire(math.floor(now / self._width))
        if not self._entries:
            return None
        return min(v for _, v in self._entries)

    def reset(self) -> None:
        self._entries.clear()


class RttEstimator:
    """RFC 6298 RTO computation with Karn's algorithm and exponential back-off.

    Times are seconds (floats).  :attr:`rto` is the value the engine arms the retransmission
    timer with; it already includes the back-off.
    """

    def __init__(
        self,
        *,
        granularity: float = DEFAULT_GRANULARITY,
        min_rto: float = DEFAULT_MIN_RTO,
        max_rto: float = DEFAULT_MAX_RTO,
        initial_rto: float = DEFAULT_INITIAL_RTO,
        k: float = 4.0,
        alpha: float = 1 / 8,
        beta: float = 1 / 4,
        min_rtt_window: float = DEFAULT_MIN_RTT_WINDOW,
        clear_after_backoffs: int | None = None,
        strict: bool = True,
        events_maxlen: int = 256,
    ) -> None:
        """Create an estimator.

        ``strict`` enforces the RFC 6298 bounds a conforming TCP keeps: ``max_rto >= 60``
        (§2.5) and ``initial_rto >= 1`` (§2.1).  Experimenters can pass ``strict=False``.
        ``clear_after_backoffs=n`` drops SRTT/RTTVAR after the n-th consecutive back-off
        (RFC 6298 note after §5.7, a MAY); ``None`` never clears.
        """
        granularity = _check_time(granularity, "granularity")
        min_rto = _check_time(min_rto, "min_rto")
        max_rto = _check_time(max_rto, "max_rto")
        initial_rto = _check_time(initial_rto, "initial_rto")
        if granularity < 0:
            raise RttError("granularity must be >= 0")
        if min_rto <= 0 or max_rto < min_rto:
            raise RttError(f"need 0 < min_rto <= max_rto, got {min_rto}, {max_rto}")
        if initial_rto <= 0 or initial_rto > max_rto:
            raise RttError(f"need 0 < initial_rto <= max_rto, got {initial_rto}")
        if not (0 < alpha <= 1 and 0 < beta <= 1 and k > 0):
            raise RttError("need 0 < alpha <= 1, 0 < beta <= 1 and k > 0")
        if clear_after_backoffs is not None and clear_after_backoffs < 1:
            raise RttError("clear_after_backoffs must be >= 1 or None")
        if strict and max_rto < RFC_MIN_MAX_RTO:
            raise RttError(f"RFC 6298 §2.5: max_rto must be >= 60 s (strict), got {max_rto}")
        if strict and initial_rto < DEFAULT_INITIAL_RTO:
            raise RttError(f"RFC 6298 §2.1: initial_rto must be >= 1 s (strict), got {initial_rto}")
        self.granularity = granularity
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.initial_rto = initial_rto
        self.k = k
        self.alpha = alpha
        self.beta = beta
        self.clear_after_backoffs = clear_after_backoffs
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.latest_rtt: float | None = None
        self.backoffs = 0  # consecutive back-offs since the last valid sample
        self._base_rto = initial_rto  # RTO before back-off (RFC 6298 §2)
        self._rto = initial_rto  # RTO including back-off
        self._min_filter = WindowedMin(min_rtt_window)
        self.counters: Counter[str] = Counter()
        self.events: deque[RttEvent] = deque(maxlen=events_maxlen)

    # -- read-only views -------------------------------------------------------------------
    @property
    def rto(self) -> float:
        """The retransmission timeout to arm the timer with (back-off included)."""
        return self._rto

    @property
    def base_rto(self) -> float:
        """The RTO from SRTT/RTTVAR (or the initial value), without back-off."""
        return self._base_rto

    @property
    def has_sample(self) -> bool:
        return self.srtt is not None

    @property
    def min_rtt(self) -> float | None:
        """Windowed minimum RTT (RFC 8985 §6.2 step 1, RACK.min_RTT)."""
        return self._min_filter.get()

    def min_rtt_at(self, now: float) -> float | None:
        """Windowed minimum RTT, expiring samples older than the window at ``now``."""
        return self._min_filter.get(_check_time(now, "now"))

    # -- inputs ----------------------------------------------------------------------------
    def sample(
        self,
        rtt: float,
        now: float,
        *,
        retransmitted: bool = False,
        from_timestamp: bool = False,
        expected_samples: int = 1,
    ) -> bool:
        """Feed one RTT measurement ``rtt`` taken at time ``now``.

        Returns ``True`` when the sample was used, ``False`` when Karn's algorithm refused it
        (``retransmitted`` and not ``from_timestamp``; RFC 6298 §3).  A used sample updates
        SRTT/RTTVAR/RTO (RFC 6298 §2.2/2.3), ends any back-off, and updates :attr:`latest_rtt`
        and :attr:`min_rtt`.  ``expected_samples`` (RFC 7323 Appendix G) divides alpha and beta.
        """
        if not (type(rtt) is float and rtt - rtt == 0.0):
            rtt = _check_time(rtt, "rtt")
        if not (type(now) is float and now - now == 0.0):
            now = _check_time(now, "now")
        if rtt < 0:
            raise RttError(f"rtt must be >= 0, got {rtt}")
        if expected_samples < 1:
            raise RttError(f"expected_samples must be >= 1, got {expected_samples}")
        if retransmitted and not from_timestamp:
            # RFC 6298 §3: "RTT samples MUST NOT be made using segments that were retransmitted"
            self.counters[C_KARN_REJECTED] += 1
            self._event(now, RttEventKind.KARN_REJECTED)
            return False
        counters = self.counters
        counters[C_SAMPLES] += 1
        if from_timestamp:
            counters[C_SAMPLES_TS] += 1
        self.latest_rtt = rtt
        self._min_filter.update(now, rtt)
        srtt, rttvar = self.srtt, self.rttvar
        if srtt is None or rttvar is None:
            # RFC 6298 §2.2
            self.srtt = srtt = rtt
            self.rttvar = rttvar = rtt / 2
            self._event(now, RttEventKind.FIRST_SAMPLE)
        else:
            # RFC 6298 §2.3 (RTTVAR first, with the old SRTT); RFC 7323 Appendix G scaling
            a = self.alpha / expected_samples
            b = self.beta / expected_samples
            self.rttvar = rttvar = (1 - b) * rttvar + b * abs(srtt - rtt)
            self.srtt = srtt = (1 - a) * srtt + a * rtt
        # RFC 6298 §2.2/2.3 and §4: RTO <- SRTT + max(G, K*RTTVAR); §2.4 / §2.5 bounds
        var = self.k * rttvar
        rto = srtt + (var if var > self.granularity else self.granularity)
        if rto < self.min_rto:
            rto = self.min_rto
        self._base_rto = rto if rto < self.max_rto else self.max_rto
        if self.backoffs:
            # Note after RFC 6298 §5.7: a new sample "collapses" the backed-off RTO.
            self.counters[C_COLLAPSED] += 1
            self.backoffs = 0
            self._rto = self._base_rto
            self._event(now, RttEventKind.COLLAPSED)
        else:
            self._rto = self._base_rto
        return True

    def _compute_rto(self, srtt: float, rttvar: float) -> float:
        # RFC 6298 §2.2/2.3 and §4: RTO <- SRTT + max(G, K*RTTVAR); §2.4 lower, §2.5 upper bound
        rto = srtt + max(self.granularity, self.k * rttvar)
        return min(max(rto, self.min_rto), self.max_rto)

    def backoff(self, now: float | None = None) -> float:
        """The retransmission timer expired: RTO <- min(2 * RTO, max_rto) (RFC 6298 §5.5).

        Returns the new RTO (the engine arms the timer with it, §5.6).
        """
        if now is not None:
            now = _check_time(now, "now")
        self.backoffs += 1
        self.counters[C_BACKOFFS] += 1
        doubled = self._rto * 2
        if doubled > self.max_rto:
            # RFC 6298 §5.5: the maximum of §2.5 bounds the doubling.
            self.counters[C_BACKOFF_CAPPED] += 1
            doubled = self.max_rto
        self._rto = doubled
        self._event(now, RttEventKind.BACKOFF)
        if (
            self.clear_after_backoffs is not None
            and self.backoffs >= self.clear_after_backoffs
            and self.srtt is not None
        ):
            # RFC 6298 note after §5.7: SRTT/RTTVAR MAY be cleared; the next sample uses §2.2.
            self.srtt = None
            self.rttvar = None
            self.counters[C_CLEARED] += 1
            self._event(now, RttEventKind.CLEARED)
        return self._rto

    def handshake_complete(self, *, syn_timed_out: bool, now: float | None = None) -> None:
        """Data transmission begins after the three-way handshake.

        RFC 6298 §5.7: if the timer expired awaiting the ACK of a SYN and the RTO in use is
        below 3 s, the RTO is re-initialised to 3 s (a later valid sample replaces it).
        """
        if now is not None:
            now = _check_time(now, "now")
        if syn_timed_out and self._base_rto < SYN_FALLBACK_RTO:
            self._base_rto = min(SYN_FALLBACK_RTO, self.max_rto)
            self._rto = self._base_rto
            self.backoffs = 0
            self.counters[C_SYN_FALLBACK] += 1
            self._event(now, RttEventKind.SYN_FALLBACK)
        # Otherwise (RTO already >= 3 s) the backed-off value stays until a valid sample.

    def drain_events(self) -> list[RttEvent]:
        """Return and forget the recorded events."""
        out = list(self.events)
        self.events.clear()
        return out

    def info(self) -> dict[str, float | int | None]:
        """A snapshot for logs."""
        return {
            "srtt": self.srtt,
            "rttvar": self.rttvar,
            "rto": self._rto,
            "base_rto": self._base_rto,
            "backoffs": self.backoffs,
            "latest_rtt": self.latest_rtt,
            "min_rtt": self.min_rtt,
        }

    def _event(self, now: float | None, kind: RttEventKind) -> None:
        self.events.append(RttEvent(now, kind, self._rto, self.srtt, self.rttvar))
