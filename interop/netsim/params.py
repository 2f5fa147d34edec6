"""Per-direction link parameters: delay, jitter, rate, queue, ECN-marking AQM, loss, burst loss
(Gilbert-Elliott), duplication, reordering.

Values are frozen and validated on construction; a direction's parameters are changed by
replacing the whole value (``LinkDirection.params = params.replace(loss=0.01)``), so a
half-applied change never exists.  The ECN marking follows RFC 3168 §5: a congested queue sets
CE on ECT(0)/ECT(1) packets where it would otherwise have dropped them, and drops Not-ECT ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from interop.netsim.errors import NetsimError

__all__ = ["GilbertElliott", "LinkParams"]


def _prob(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise NetsimError(f"{name} must be a probability in [0, 1], got {value!r}")


def _nonneg(name: str, value: float) -> None:
    if not (value >= 0.0 and math.isfinite(value)):
        raise NetsimError(f"{name} must be finite and >= 0, got {value!r}")


def _limit(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 0):
        raise NetsimError(f"{name} must be None or an int >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Two-state burst-loss channel (Gilbert 1960, Elliott 1963), stepped once per packet.

    In state GOOD a packet is lost with probability ``loss_good``, in BAD with ``loss_bad``;
    after each packet the channel moves GOOD->BAD with probability ``p`` and BAD->GOOD with
    ``r``.  With the defaults (0 and 1) losses come in bursts of mean length ``1/r`` and the
    long-run loss rate is ``p / (p + r)``.
    """

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        _prob("p", self.p)
        _prob("r", self.r)
        _prob("loss_good", self.loss_good)
        _prob("loss_bad", self.loss_bad)

    def mean_loss(self) -> float:
        """Stationary loss probability (pi_bad * loss_bad + pi_good * loss_good)."""
        if self.p + self.r == 0.0:
            return self.loss_good
        bad = self.p / (self.p + self.r)
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good


@dataclass(frozen=True, slots=True)
class LinkParams:
    """One direction of a point-to-point link.

    The pipeline a packet goes through, in order: middleboxes; routing check; the bottleneck
    queue (only with a finite ``rate``: drop-tail at ``queue_packets``/``queue_bytes``, ECN
    AQM at ``ecn_threshold_*``); serialization at ``rate`` bits/s; random loss (``loss``, then
    ``burst_loss``) on the wire; propagation ``delay`` with ``jitter`` (uniform in
    ``[-jitter, +jitter]``, never below zero, never reordering while ``fifo``); reordering
    (``reorder`` probability: the packet is held ``reorder_delay`` longer and later packets
    overtake it); duplication (``duplicate`` probability: a second copy arrives right after).

    Queue occupancy counts the packets waiting *and* the one being serialized.
    """

    delay: float = 0.0
    jitter: float = 0.0
    rate: float | None = None
    queue_packets: int | None = None
    queue_bytes: int | None = None
    ecn_threshold_packets: int | None = None
    ecn_threshold_bytes: int | None = None
    aqm_drop_not_ect: bool = True
    loss: float = 0.0
    burst_loss: GilbertElliott | None = None
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.0
    fifo: bool = True

    def __post_init__(self) -> None:
        _nonneg("delay", self.delay)
        _nonneg("jitter", self.jitter)
        _nonneg("reorder_delay", self.reorder_delay)
        if self.rate is not None:
            if not (self.rate >= 0.0 and math.isfinite(self.rate)):
                raise NetsimError(f"rate must be None or finite and >= 0, got {self.rate!r}")
            if self.rate == 0.0:  # 0 means infinite, like None
                object.__setattr__(self, "rate", None)
        _limit("queue_packets", self.queue_packets)
        _limit("queue_bytes", self.queue_bytes)
        _limit("ecn_threshold_packets", self.ecn_threshold_packets)
        _limit("ecn_threshold_bytes", self.ecn_threshold_bytes)
        _prob("loss", self.loss)
        _prob("duplicate", self.duplicate)
        _prob("reorder", self.reorder)
        if self.burst_loss is not None and not isinstance(self.burst_loss, GilbertElliott):
            raise NetsimError("burst_loss must be a GilbertElliott or None")

    @property
    def aqm(self) -> bool:
        """True when an ECN-marking threshold is configured."""
        return self.ecn_threshold_packets is not None or self.ecn_threshold_bytes is not None

    def replace(self, **changes: Any) -> LinkParams:
        """A copy with ``changes`` applied (validated); unknown names raise NetsimError."""
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise NetsimError(str(exc)) from exc
