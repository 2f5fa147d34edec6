"""Configuration of one TCP connection (or of every connection a listener accepts).

Every knob an experimenter may want to turn, with defaults that follow the RFCs where they give
a number and Linux where they leave room (the choice is named next to each field):

- MSS: RFC 9293 §3.7.1 (default send MSS 536 / 1220 when the peer sends none), clamped to the
  path (``path_mss``).
- Windows: RFC 9293 §3.8.6 (flow control, SWS avoidance), RFC 7323 §2 (window scale).
- Options: SACK (RFC 2018), timestamps (RFC 7323 §3-§5), TFO (RFC 7413), ECN (RFC 3168).
- Timers: RFC 6298 (RTO bounds), RFC 9293 §3.8.6.3 / RFC 1122 §4.2.3.2 (delayed ACK), §3.8.4
  (keepalive), §3.8.3 (user timeout, R1/R2), §3.6.1 (TIME-WAIT = 2 * MSL).
- Randomness: ISNs (RFC 6528) are keyed with ``isn_secret`` (drawn from the injected
  ``random.Random`` when None).

The object is frozen; derive variants with :func:`dataclasses.replace`.  Bad values raise
:class:`TcpConfigError` at construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mptcp.tcp.hooks import TcpExtension

__all__ = ["TcpConfig", "TcpConfigError", "RECOVERY_MODES", "MAX_WSCALE", "default_wscale"]

MAX_WSCALE = 14
"""RFC 7323 §2.3: a shift count above 14 is treated as 14."""

RECOVERY_MODES = ("rack", "dupack")
"""Loss detection with SACK: RFC 8985 RACK-TLP ("rack") or RFC 6675's DupThresh ("dupack")."""


class TcpConfigError(ValueError):
    """A :class:`TcpConfig` field (or an engine API argument) is out of range."""


def default_wscale(rcv_buffer: int) -> int:
    """Smallest shift that lets a 16-bit window field cover ``rcv_buffer`` (RFC 7323 §2.2),
    capped at 14."""
    shift = 0
    while (rcv_buffer >> shift) > 0xFFFF and shift < MAX_WSCALE:
        shift += 1
    return shift


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Per-connection parameters; see the module docstring for the RFC behind each group."""

    # --- segment sizes (RFC 9293 §3.7.1) ---
    mss: int = 1460
    """MSS advertised in our SYN (what we can receive) and the upper bound of the send MSS."""
    path_mss: int | None = None
    """Clamp of the send MSS to the path (e.g. from the PMTU); None = no clamp."""
    gso_size: int | None = None
    """When set, new data goes out in "super-segments" of up to this many payload bytes (a
    multiple of the MSS is sensible), for TSO/GSO-capable drivers; None = one MSS."""

    # --- buffers and windows (RFC 9293 §3.8.6, RFC 7323 §2) ---
    send_buffer: int = 256 * 1024
    recv_buffer: int = 256 * 1024
    window_scaling: bool = True
    wscale: int | None = None
    """Our shift count; None = the smallest covering ``recv_buffer`` (capped at 14)."""

    # --- options ---
    sack: bool = True
    dsack: bool = True
    timestamps: bool = True
    ts_hz: int = 1000
    """Timestamp clock rate (RFC 7323 §5.4 wants 1 ms .. 1 s per tick); Linux uses 1000."""
    ts_random_offset: bool = True
    """Start TSval at a random offset (RFC 7323 §5.4 allows it; Linux does it per connection)."""
    paws_idle_limit: float = 24 * 24 * 3600.0
    """RFC 7323 §5.5: TS.Recent is invalid after 24 days of idleness."""
    ecn: bool = False
    """RFC 3168 classic ECN (ECE/CWR); AccECN is an extension."""

    # --- Fast Open (RFC 7413) ---
    tfo_client: bool = False
    tfo_server: bool = False
    tfo_key: bytes | None = None
    """16-byte server cookie key; None = drawn from the injected randomness."""

    # --- sending behaviour ---
    header_prediction: bool = True
    """Fast paths for the common segments of a bulk transfer -- receiving in-order data and
    ACKs of new data (input.header_prediction), sending bursts of new data -- with the same
    effects as the general code; False forces the general path (differential tests,
    debugging).  Connections with extensions always take the general path."""
    nagle: bool = True
    """RFC 9293 §3.7.4 (RFC 896); False = TCP_NODELAY."""
    delayed_ack: bool = True
    delack_timeout: float = 0.04
    """Delayed-ACK timer; RFC 9293 §3.8.6.3 requires < 0.5 s (Linux's minimum is 40 ms)."""
    delack_segments: int = 2
    """ACK at least every this many full-sized segments (RFC 1122 §4.2.3.2: 2)."""

    # --- retransmission (RFC 6298) and give-up (RFC 9293 §3.8.3) ---
    rto_initial: float = 1.0
    rto_min: float = 1.0
    """RFC 6298 §2.4 says 1 s (Linux uses 0.2 s)."""
    rto_max: float = 60.0
    syn_retries: int = 6
    """Retransmissions of a SYN / SYN-ACK before giving up (R2 for SYNs, >= 3 min with backoff
    in RFC 9293 §3.8.3; Linux default 6)."""
    max_retries: int = 15
    """Data retransmissions by timeout before ConnectionFailed (Linux tcp_retries2)."""
    user_timeout: float | None = None
    """RFC 9293 §3.8.3 / RFC 5482: give up when data stays unacknowledged this long."""
    recovery: str = "rack"
    """Loss detection when SACK is negotiated; see :data:`RECOVERY_MODES`."""
    tlp: bool = True
    """RFC 8985 §7 tail loss probes (with "rack")."""
    tlp_min_pto: float = 0.01
    """Floor of the probe timeout (Linux: 10 ms): with microsecond RTTs (a local link), 2 x
    SRTT would fire probes while the ACK is merely being processed (RFC 8985 §7.2 leaves the
    PTO's granularity to the implementation)."""
    dupthresh: int = 3

    # --- congestion control ---
    cc: str = "cubic"
    cc_params: Mapping[str, Any] = field(default_factory=dict)

    # --- keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6) ---
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9

    # --- RST / challenge ACK (RFC 5961 §7) ---
    challenge_ack_limit: int = 1000
    """Challenge ACKs sent per second at most (per connection)."""

    # --- identity / lifetime ---
    isn_secret: bytes | None = None
    """RFC 6528 secret key; None = drawn from the injected randomness."""
    msl: float = 1.0
    """Maximum segment lifetime; TIME-WAIT lasts 2 * msl (RFC 9293 §3.6.1 says 2 minutes, a
    small default keeps simulations short)."""
    timewait_reuse: bool = True
    """Accept a new SYN on a TIME-WAIT 4-tuple under RFC 9293 §3.6.1 / RFC 6191 rules."""
    ttl: int = 64
    tos: int = 0
    """DSCP bits (the ECN bits are set by the engine)."""

    # --- extensions (hooks.py) ---
    extensions: tuple[Callable[[], TcpExtension], ...] = ()
    """Factories: each new connection gets one fresh extension object from each, in order."""

    def __post_init__(self) -> None:
        if not 88 <= self.mss <= 65495:
            raise TcpConfigError(f"mss {self.mss} outside 88..65495")
        if self.path_mss is not None and not 88 <= self.path_mss <= 65495:
            raise TcpConfigError(f"path_mss {self.path_mss} outside 88..65495")
        if self.gso_size is not None and not 88 <= self.gso_size <= 65535:
            raise TcpConfigError(f"gso_size {self.gso_size} outside 88..65535")
        if self.send_buffer < 1 or self.recv_buffer < 1:
            raise TcpConfigError("buffers must hold at least one byte")
        if self.recv_buffer > 0xFFFF << MAX_WSCALE:
            raise TcpConfigError(f"recv_buffer {self.recv_buffer} exceeds 65535 << 14")
        if self.wscale is not None and not 0 <= self.wscale <= MAX_WSCALE:
            raise TcpConfigError(f"wscale {self.wscale} outside 0..14")
        if not self.window_scaling and self.recv_buffer > 0xFFFF:
            raise TcpConfigError("recv_buffer > 65535 needs window_scaling")
        if self.ts_hz < 1 or self.ts_hz > 1_000_000:
            raise TcpConfigError(f"ts_hz {self.ts_hz} outside 1..1000000")
        if not 0 < self.delack_timeout < 0.5:
            raise TcpConfigError("delack_timeout must be in (0, 0.5) (RFC 9293 §3.8.6.3)")
        if self.delack_segments < 1:
            raise TcpConfigError("delack_segments must be >= 1")
        if not 0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise TcpConfigError("need 0 < rto_min <= rto_initial <= rto_max")
        if not 0 <= self.tlp_min_pto <= self.rto_max:
            raise TcpConfigError("need 0 <= tlp_min_pto <= rto_max")
        if self.syn_retries < 0 or self.max_retries < 0 or self.keepalive_probes < 1:
            raise TcpConfigError("retry counts must be >= 0 (keepalive_probes >= 1)")
        if self.user_timeout is not None and self.user_timeout <= 0:
            raise TcpConfigError("user_timeout must be > 0")
        if self.recovery not in RECOVERY_MODES:
            raise TcpConfigError(f"recovery {self.recovery!r} not in {RECOVERY_MODES}")
        if self.dupthresh < 1:
            raise TcpConfigError("dupthresh must be >= 1")
        if self.keepalive_idle <= 0 or self.keepalive_interval <= 0:
            raise TcpConfigError("keepalive times must be > 0")
        if self.challenge_ack_limit < 1:
            raise TcpConfigError("challenge_ack_limit must be >= 1")
        if self.msl <= 0:
            raise TcpConfigError("msl must be > 0")
        if self.tfo_key is not None and len(self.tfo_key) != 16:
            raise TcpConfigError("tfo_key must be 16 bytes")
        if self.isn_secret is not None and not 16 <= len(self.isn_secret) <= 32:
            raise TcpConfigError("isn_secret must be 16..32 bytes")
        if not 1 <= self.ttl <= 255 or not 0 <= self.tos <= 255 or self.tos & 3:
            raise TcpConfigError("ttl 1..255; tos 0..255 with the ECN bits clear")

    @property
    def our_wscale(self) -> int:
        """The shift count we offer in our SYN (RFC 7323 §2.2)."""
        if self.wscale is not None:
            return self.wscale
        return default_wscale(self.recv_buffer)

    @property
    def time_wait(self) -> float:
        """TIME-WAIT duration, 2 * MSL (RFC 9293 §3.6.1)."""
        return 2.0 * self.msl
