"""CUBIC congestion control (RFC 9438; text: draft-ietf-tcpm-rfc8312bis-15).

Implements §4.2 (window increase function W_cubic(t) = C*(t-K)^3 + W_max, K from Figure 2,
the target of §4.2 bounded to [cwnd, 1.5*cwnd]), §4.3 (Reno-friendly region: W_est with
alpha_cubic = 3*(1-beta)/(1+beta), switched to 1 once W_est >= cwnd_prior), §4.4/§4.5 (concave
and convex regions), §4.6 (multiplicative decrease with beta_cubic = 0.7 applied to FlightSize,
cwnd >= 2 SMSS after loss, >= 1 SMSS after ECE), §4.7 (fast convergence), §4.8 (timeout: K = 0
and W_max = cwnd_epoch in the first congestion avoidance after an RTO), §4.9 (undo of a
spurious congestion event), §4.10 (slow start: pluggable, RFC 5681 by default; an early exit
behaves like HyStart++'s: cwnd_prior = cwnd, K = 0) and §5.8 (the elapsed time excludes
application-limited periods).

Units.  The RFC counts windows in segments; this module keeps them in **bytes** (floats inside,
``int`` through :attr:`cwnd`).  Conversions, with SMSS the sender MSS:

* W_cubic_bytes(t) = C * SMSS * (t - K)^3 + W_max_bytes, so C keeps its unit segment/s^3;
* K = cbrt((W_max_bytes - cwnd_epoch_bytes) / (C * SMSS)) seconds, the same as in segments;
* Figure 4: W_est_bytes += alpha * SMSS * acked_bytes / cwnd_bytes
  (= alpha * segments_acked / cwnd_segments, in segments);
* §4.4/4.5: cwnd_bytes += (target - cwnd) / cwnd * acked_bytes, i.e. the RFC's
  (target - cwnd)/cwnd per acknowledged full-sized segment.

Choices where the RFC leaves room (also listed in the module's report):

* The congestion-avoidance stage (t_epoch) starts on the first ACK processed in congestion
  avoidance after the reduction, i.e. after the engine ends recovery.
* If W_max < cwnd_epoch, K is the real (negative) cube root of Figure 2, so W_cubic(0) still
  equals cwnd_epoch.
* In the Reno-friendly region cwnd is set to W_est only upwards: an ACK never shrinks cwnd.
* The §4.4/4.5 increment is scaled by segments acknowledged (delayed ACKs do not slow CUBIC),
  and never passes the target.
* Application-limited ACKs (§5.8) move t_epoch forward by the time since the previous ACK.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import NamedTuple, Unpack

from mptcp.tcp.cc.base import (
    CcError,
    CcEventKind,
    CcParams,
    CcState,
    CongestionControl,
    CongestionReason,
)

__all__ = ["Cubic", "CubicRegion", "CUBIC_C", "CUBIC_BETA"]

CUBIC_C = 0.4  # RFC 9438 §5.1 (segment / second^3)
CUBIC_BETA = 0.7  # RFC 9438 §4.6

C_EPOCHS = "CubicEpochs"
C_RENO_ACKS = "CubicRenoFriendlyAcks"
C_CONCAVE_ACKS = "CubicConcaveAcks"
C_CONVEX_ACKS = "CubicConvexAcks"
C_FAST_CONV = "CubicFastConvergence"
C_ALPHA_ONE = "CubicRenoAlphaToOne"


class CubicRegion(Enum):
    RENO_FRIENDLY = "reno_friendly"  # §4.3
    CONCAVE = "concave"  # §4.4
    CONVEX = "convex"  # §4.5


class _CubicUndo(NamedTuple):
    w_max: float | None
    k: float
    t_epoch: float | None
    cwnd_epoch: float
    w_est: float
    alpha_one: bool
    k_zero_next: bool


class Cubic(CongestionControl):
    """CUBIC per RFC 9438, windows in bytes."""

    name = "cubic"

    def __init__(
        self,
        smss: int,
        *,
        c: float = CUBIC_C,
        beta: float = CUBIC_BETA,
        fast_convergence: bool = True,
        reno_friendly: bool = True,
        **params: Unpack[CcParams],
    ) -> None:
        """``fast_convergence`` (§4.7, SHOULD be on with competing flows) and
        ``reno_friendly`` (§4.3) can be switched off for experiments."""
        if not (isinstance(c, int | float) and math.isfinite(c) and c > 0):
            raise CcError(f"C must be a positive finite number, got {c!r}")
        if not (isinstance(beta, int | float) and 0 < beta < 1):
            raise CcError(f"beta must be in (0, 1), got {beta!r}")
        super().__init__(smss, **params)
        self.c = float(c)
        self.beta = float(beta)
        self.fast_convergence = fast_convergence
        self.reno_friendly = reno_friendly
        self._w_max: float | None = None
        self._k = 0.0
        self._t_epoch: float | None = None
        self._cwnd_epoch = 0.0
        self._w_est = 0.0
        self._alpha_one = False
        self._k_zero_next = False
        self._t_last: float | None = None
        self.region: CubicRegion | None = None

    # -- read-only views -------------------------------------------------------------------
    @property
    def alpha_cubic(self) -> float:
        """§4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta)."""
        return 3 * (1 - self.beta) / (1 + self.beta)

    @property
    def w_max(self) -> float | None:
        """W_max in bytes (``None`` before the first congestion event or epoch)."""
        return self._w_max

    @property
    def k(self) -> float:
        """K in seconds for the current congestion-avoidance stage."""
        return self._k

    @property
    def t_epoch(self) -> float | None:
        return self._t_epoch

    @property
    def cwnd_epoch(self) -> float:
        return self._cwnd_epoch

    @property
    def w_est(self) -> float:
        """W_est in bytes (§4.3)."""
        return self._w_est

    def w_cubic(self, t: float) -> float:
        """Figure 1 in bytes: C * SMSS * (t - K)^3 + W_max, for the current stage."""
        if self._w_max is None:
            raise CcError("W_cubic is undefined before a congestion-avoidance stage")
        d = t - self._k
        return self.c * self._smss * (d * d * d) + self._w_max

    def info(self) -> dict[str, object]:
        out = super().info()
        out.update(
            w_max=self._w_max, k=self._k, t_epoch=self._t_epoch, cwnd_epoch=self._cwnd_epoch,
            w_est=self._w_est, region=None if self.region is None else self.region.value,
            beta=self.beta, c=self.c,
        )
        return out

    # -- algorithm -------------------------------------------------------------------------
    def _ssthresh_raw(self, bytes_in_flight: int) -> float:
        # §4.6 Figure 5: ssthresh = flight_size * beta_cubic (floors applied by the base)
        return bytes_in_flight * self.beta

    def _on_reduction(self, now: float, reason: CongestionReason) -> None:
        cwnd = self._cwnd
        if self.fast_convergence and self._w_max is not None and cwnd < self._w_max:
            # §4.7: the saturation point shrank; release bandwidth by lowering W_max further
            self._w_max = cwnd * (1 + self.beta) / 2
            self.counters[C_FAST_CONV] += 1
        else:
            self._w_max = cwnd  # §4.6: remember cwnd before the reduction
        self._t_epoch = None  # a new congestion-avoidance stage begins after recovery
        self._k_zero_next = False

    def _on_rto(self, now: float, previous: CcState) -> None:
        # §4.8: the first congestion avoidance after a timeout uses K = 0 and W_max = cwnd_epoch
        self._t_epoch = None
        self._k_zero_next = True

    def _on_slow_start_exit(self, now: float, early: bool) -> None:
        if early:
            # §4.10: leaving slow start without loss (HyStart++): cwnd_prior = cwnd, K = 0
            self._cwnd_prior = self._cwnd
            self._k_zero_next = True

    def _on_idle_restart(self, now: float) -> None:
        self._t_epoch = None

    def _on_app_limited_ack(self, now: float) -> None:
        # §5.8: t must not include periods during which cwnd was not updated because the
        # sender was application-limited.
        if self._t_epoch is not None and self._t_last is not None:
            self._t_epoch += now - self._t_last
        self._t_last = now

    def _on_ack_in_reduction(self, now: float) -> None:
        self._t_last = now

    def _start_epoch(self, now: float) -> None:
        self._t_epoch = now
        self._cwnd_epoch = self._cwnd
        if self._k_zero_next or self._w_max is None:
            # §4.8 / §4.10: K = 0 and W_max = cwnd_epoch
            self._w_max = self._cwnd_epoch
            self._k = 0.0
            self._k_zero_next = False
        else:
            # §4.2 Figure 2 (real cube root, negative if W_max < cwnd_epoch)
            self._k = math.cbrt((self._w_max - self._cwnd_epoch) / (self.c * self._smss))
        self._w_est = self._cwnd_epoch  # §4.3: W_est = cwnd_epoch at the start of the stage
        if self._cwnd_prior is None:
            self._cwnd_prior = self._cwnd_epoch
        self._alpha_one = False
        self.counters[C_EPOCHS] += 1
        self._event(now, CcEventKind.EPOCH_START, f"K={self._k:.6f} W_max={self._w_max:.1f}")

    def _congestion_avoidance(self, now: float, acked_bytes: int, bytes_in_flight: int) -> None:
        if self._t_epoch is None:
            self._start_epoch(now)
        assert self._t_epoch is not None and self._w_max is not None
        cwnd = self._cwnd
        t = now - self._t_epoch
        rtt = self.srtt if self.srtt is not None else 0.0
        w_t = self.w_cubic(t)
        # §4.2: target = W_cubic(t + RTT) bounded to [cwnd, 1.5 * cwnd]
        target = min(max(self.w_cubic(t + rtt), cwnd), 1.5 * cwnd)
        if self.reno_friendly:
            if (
                not self._alpha_one
                and self._cwnd_prior is not None
                and self._w_est >= self._cwnd_prior
            ):
                self._alpha_one = True  # §4.3: alpha_cubic -> 1 once W_est >= cwnd_prior
                self.counters[C_ALPHA_ONE] += 1
            alpha = 1.0 if self._alpha_one else self.alpha_cubic
            self._w_est += alpha * self._smss * acked_bytes / cwnd  # §4.3 Figure 4 (bytes)
        if self.reno_friendly and w_t < self._w_est:
            self.region = CubicRegion.RENO_FRIENDLY
            self.counters[C_RENO_ACKS] += 1
            new = max(cwnd, self._w_est)
        else:
            if cwnd < self._w_max:
                self.region = CubicRegion.CONCAVE
                self.counters[C_CONCAVE_ACKS] += 1
            else:
                self.region = CubicRegion.CONVEX
                self.counters[C_CONVEX_ACKS] += 1
            # §4.4 / §4.5: cwnd += (target - cwnd) / cwnd per acknowledged segment
            new = min(cwnd + (target - cwnd) / cwnd * acked_bytes, target)
        self._set_cwnd(new)
        self._t_last = now

    # -- undo and MSS changes ----------------------------------------------------------------
    def _save_extra(self) -> object:
        return _CubicUndo(
            self._w_max, self._k, self._t_epoch, self._cwnd_epoch, self._w_est,
            self._alpha_one, self._k_zero_next,
        )

    def _restore_extra(self, extra: object) -> None:
        if not isinstance(extra, _CubicUndo):
            return
        # §4.9.2: restore W_max, K, t_epoch and W_est (with cwnd, cwnd_prior, ssthresh)
        self._w_max = extra.w_max
        self._k = extra.k
        self._t_epoch = extra.t_epoch
        self._cwnd_epoch = extra.cwnd_epoch
        self._w_est = extra.w_est
        self._alpha_one = extra.alpha_one
        self._k_zero_next = extra.k_zero_next

    def _rescale(self, factor: float) -> None:
        if self._w_max is not None:
            self._w_max *= factor
        self._cwnd_epoch *= factor
        self._w_est *= factor
