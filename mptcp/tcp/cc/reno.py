"""Reno / NewReno congestion control (RFC 5681 §3, the window parts of RFC 6582 §3.2).

* Slow start (RFC 5681 §3.1, RFC 3465 byte counting): inherited from
  :class:`~mptcp.tcp.cc.base.CongestionControl`.
* Congestion avoidance (RFC 5681 §3.1): the RECOMMENDED byte counting -- when the bytes
  acknowledged since the last increase reach cwnd, cwnd += SMSS (RFC 3465 §2.1) -- or, with
  ``ca_mode="per_ack"``, equation (3): cwnd += SMSS*SMSS/cwnd per ACK, at least 1 byte.
* Loss detected by ACKs (RFC 5681 §3.2 step 2, RFC 6582 §3.2 step 2): ssthresh =
  max(FlightSize/2, 2*SMSS) (equation (4)); cwnd = ssthresh.  The fast-recovery window
  inflation / deflation of RFC 5681 §3.2 steps 3-6 and RFC 6582 §3.2 step 3 (partial ACKs)
  only governs what may be transmitted during recovery, so it belongs to the engine's loss
  recovery (or is replaced by RFC 6675's pipe / RFC 6937 PRR); the full-ACK exit rule (step 3)
  is applied by :meth:`~mptcp.tcp.cc.base.CongestionControl.on_recovery_exit`.
* Timeout (RFC 5681 §3.1): ssthresh per equation (4), cwnd = LW = 1 SMSS.
* ECN-Echo (RFC 3168 §6.1.2): the same halving, once per window of data, cwnd >= 1 SMSS.
"""

from __future__ import annotations

from typing import Literal, Unpack

from mptcp.tcp.cc.base import CcError, CcParams, CcState, CongestionControl, CongestionReason

__all__ = ["Reno"]

C_CA_INCREASES = "RenoCwndIncreases"


class Reno(CongestionControl):
    """RFC 5681 Reno with NewReno's (RFC 6582) window rules."""

    name = "reno"

    def __init__(
        self,
        smss: int,
        *,
        ca_mode: Literal["bytes", "per_ack"] = "bytes",
        **params: Unpack[CcParams],
    ) -> None:
        if ca_mode not in ("bytes", "per_ack"):
            raise CcError(f"ca_mode must be 'bytes' or 'per_ack', got {ca_mode!r}")
        super().__init__(smss, **params)
        self.ca_mode = ca_mode
        self._bytes_acked = 0  # RFC 3465 §2.1 bytes_acked

    def _ssthresh_raw(self, bytes_in_flight: int) -> float:
        # RFC 5681 equation (4): FlightSize / 2 (the 2*SMSS floor is applied by the base)
        return float(bytes_in_flight // 2)

    def _congestion_avoidance(self, now: float, acked_bytes: int, bytes_in_flight: int) -> None:
        cwnd = int(self._cwnd)
        if self.ca_mode == "bytes":
            # RFC 5681 §3.1 / RFC 3465 §2.1: one SMSS per cwnd of acknowledged bytes
            self._bytes_acked += acked_bytes
            if self._bytes_acked >= cwnd:
                self._bytes_acked -= cwnd
                self._set_cwnd(float(cwnd + self._smss))
                self.counters[C_CA_INCREASES] += 1
        else:
            # RFC 5681 equation (3), rounded up to 1 byte when it yields 0
            self._set_cwnd(float(cwnd + max(1, self._smss * self._smss // cwnd)))
            self.counters[C_CA_INCREASES] += 1

    def _on_reduction(self, now: float, reason: CongestionReason) -> None:
        self._bytes_acked = 0

    def _on_rto(self, now: float, previous: CcState) -> None:
        self._bytes_acked = 0

    def _on_idle_restart(self, now: float) -> None:
        self._bytes_acked = 0

    def _save_extra(self) -> object:
        return self._bytes_acked

    def _restore_extra(self, extra: object) -> None:
        self._bytes_acked = extra if isinstance(extra, int) else 0

    def _rescale(self, factor: float) -> None:
        self._bytes_acked = int(self._bytes_acked * factor)

    def info(self) -> dict[str, object]:
        out = super().info()
        out["ca_mode"] = self.ca_mode
        out["bytes_acked"] = self._bytes_acked
        return out
