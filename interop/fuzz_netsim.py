"""Fault-schedule fuzzing of the TCP engine over ``interop.netsim`` (``mptcp-lab fuzz netsim``).

Each schedule is drawn from ``random.Random(f"fuzz-netsim/{seed}/{index}")`` alone, so any
schedule can be rerun by its (seed, index).  A schedule is one bulk transfer
(:mod:`interop.tcp_app`: seeded data, sha256 at both ends) between two stacks with random
``TcpConfig`` knobs (SACK, timestamps, window scaling, buffers, Nagle, delayed ACK, Reno or
CUBIC, RACK-TLP or DupThresh recovery, MSS, RTO floor, ECN) over a link with random faults:
iid and Gilbert-Elliott loss, reordering, duplication, jitter, queue limits with an ECN AQM,
rate / delay / loss changes mid-transfer, link flaps, sink read pauses (zero windows), and
middleboxes (splitting, coalescing, SYN option stripping, sequence-number shifting, NAT).

The verdict (:func:`judge`) -- the brief's rule "a failure is clean only when the faults
justify it":

- always: the sink's bytes are a prefix of the sent data (never more, never different);
- ``faults`` schedules (the bulk): the transfer must complete -- all bytes delivered with the
  right sha256 and both sides closed by the FIN handshake (RFC 9293 §3.6).  Their bounds keep
  a legitimate give-up out of reach: flaps of at most 3 s, loss of at most 20 %, bursts of a
  mean length <= 2 packets, ``syn_retries`` 10 and ``max_retries`` 15 (RFC 9293 §3.8.3 R2),
  no user timeout, and a TIME-WAIT (2 MSL = 120 s) longer than the largest RTO (60 s) so a
  lost last ACK is always answered;
- ``blackout`` schedules: a user timeout U (RFC 9293 §3.8.3 / RFC 5482) and one outage of
  both directions lasting more than 2U + 2 s, no random loss.  U exceeds 4 x (the largest
  queueing delay + RTT) + 3 s, so nothing but the outage can keep data unacknowledged that
  long, and the outage is long enough for the check (made at RTO expiries) to fire inside it.
  Completing is fine (the outage may come after the end); otherwise a side must fail with
  "user timeout" *during the outage*, and the other side may then only be left half-open
  (RFC 9293 §3.5.1), be reset by the failed side's stack (§3.10.7.1), or time out itself
  during the outage.

Everything else is a failure of the engine (or of the generator's honesty): corrupted or extra
data, an unjustified failure, a transfer left unfinished, or a hang -- :data:`STALL` virtual
seconds without progress (a byte delivered or acknowledged, a state change), or the event /
virtual-time budget used up.  A slow transfer is not a hang: at 20 % loss without SACK a few
megabytes can take thousands of virtual seconds (and little wall time).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

from interop.netsim import (
    CoalesceOptions,
    Coalescer,
    GilbertElliott,
    LinkParams,
    Nat,
    OptionStrip,
    SeqShift,
    Simulator,
    SplitOptions,
    Splitter,
    StopReason,
    StripMode,
    StripScope,
    TraceHook,
)
from interop.tcp_app import TransferResult, payload_prefix_sha256, setup_transfer
from mptcp.tcp.config import TcpConfig

__all__ = [
    "Schedule", "Outcome", "generate", "run_schedule", "judge", "run_index", "MAX_SIZE",
    "MAX_EVENTS", "MAX_TIME", "size_bucket", "SIZE_BUCKETS",
]

MAX_SIZE = 4_000_000
"""Largest transfer a schedule draws (bytes)."""
MAX_EVENTS = 3_000_000
"""Simulator events a schedule may use before it counts as a hang."""
MAX_TIME = 100_000.0
"""Virtual seconds a schedule may use at most (a safety net: a lossy transfer may be slow)."""
STALL = 1200.0
"""Virtual seconds without progress (a byte delivered or acknowledged, a state change) that
count as a hang: twice the longest legitimate silence, the ~11 minutes of RTO back-off
before ``max_retries`` 15 gives up."""

FLAP_MAX = 3.0
PAUSE_MAX = 5.0
MSL = 60.0  # TIME-WAIT 120 s > rto_max 60 s (see the module docstring)
SYN_RETRIES = 10

SIZE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("0", 0, 0),
    ("1B-1KB", 1, 1_000),
    ("1KB-100KB", 1_001, 100_000),
    ("100KB-1MB", 100_001, 1_000_000),
    ("1MB+", 1_000_001, 1 << 62),
)
_SIZE_WEIGHTS = (0.02, 0.08, 0.50, 0.30, 0.10)


def size_bucket(size: int) -> str:
    for name, lo, hi in SIZE_BUCKETS:
        if lo <= size <= hi:
            return name
    return "?"


def _loguniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


@dataclass
class Schedule:
    """One generated fault schedule; plain data (``describe()`` is JSON-ready)."""

    seed: int
    index: int
    category: str  # "faults" or "blackout"
    size: int
    data_seed: int
    sim_seed: int
    client: TcpConfig
    server: TcpConfig
    ab: LinkParams  # client -> server (data)
    ba: LinkParams  # server -> client (ACKs)
    horizon: float  # faults happen in [0, horizon]
    changes: list[tuple[float, str | None, dict[str, Any]]] = field(default_factory=list)
    flaps: list[tuple[float, float, str | None]] = field(default_factory=list)
    pauses: list[tuple[float, float]] = field(default_factory=list)
    middleboxes: list[tuple[str, dict[str, Any], float | None]] = field(default_factory=list)
    blackout: tuple[float, float] | None = None
    user_timeout: float | None = None

    def describe(self) -> dict[str, Any]:
        def cfg(c: TcpConfig) -> dict[str, Any]:
            return {k: getattr(c, k) for k in _KNOBS}

        return {
            "seed": self.seed, "index": self.index, "category": self.category,
            "size": self.size, "client": cfg(self.client), "server": cfg(self.server),
            "ab": _params_dict(self.ab), "ba": _params_dict(self.ba), "horizon": self.horizon,
            "changes": [[t, d, c] for t, d, c in self.changes],
            "flaps": [list(f) for f in self.flaps], "pauses": [list(p) for p in self.pauses],
            "middleboxes": [[k, o, t] for k, o, t in self.middleboxes],
            "blackout": list(self.blackout) if self.blackout else None,
            "user_timeout": self.user_timeout,
        }


_KNOBS = ("mss", "sack", "dsack", "timestamps", "window_scaling", "send_buffer",
          "recv_buffer", "nagle", "delayed_ack", "cc", "recovery", "tlp", "rto_min", "ecn",
          "user_timeout")


def _params_dict(p: LinkParams) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("delay", "jitter", "rate", "queue_packets", "ecn_threshold_packets", "loss",
              "duplicate", "reorder", "reorder_delay"):
        v = getattr(p, k)
        if v:
            out[k] = v
    if p.burst_loss is not None:
        b = p.burst_loss
        out["burst_loss"] = {"p": b.p, "r": b.r, "loss_bad": b.loss_bad}
    return out


# --------------------------------------------------------------------------- generation ---

def _size(rng: random.Random, max_size: int) -> int:
    buckets = [(lo, min(hi, max_size)) for _n, lo, hi in SIZE_BUCKETS]
    weights = [w if lo <= hi else 0.0 for w, (lo, hi) in zip(_SIZE_WEIGHTS, buckets, strict=True)]
    lo, hi = rng.choices(buckets, weights)[0]
    if lo == hi:
        return lo
    return min(hi, max(lo, int(_loguniform(rng, max(lo, 1), hi + 1))))


def _config(rng: random.Random) -> TcpConfig:
    ws = rng.random() < 0.8
    bufs = [16_384, 65_535, 262_144, 1_048_576]
    recv = rng.choice(bufs if ws else bufs[:2])
    return TcpConfig(
        mss=rng.choices([200, 536, 1200, 1460, 4000, 8960], [1, 2, 2, 6, 1, 1])[0],
        sack=rng.random() < 0.8, dsack=rng.random() < 0.7,
        timestamps=rng.random() < 0.7, window_scaling=ws,
        send_buffer=rng.choice(bufs), recv_buffer=recv,
        nagle=rng.random() < 0.6, delayed_ack=rng.random() < 0.7,
        cc=rng.choice(["reno", "cubic"]), recovery=rng.choice(["rack", "dupack"]),
        tlp=rng.random() < 0.8, rto_min=rng.choice([0.2, 1.0]), ecn=rng.random() < 0.2,
        syn_retries=SYN_RETRIES, msl=MSL,
    )


def _loss(rng: random.Random) -> float:
    x = rng.random()
    if x < 0.4:
        return 0.0
    if x < 0.8:
        return rng.uniform(0.0, 0.03)
    return rng.uniform(0.03, 0.2)


def _link(rng: random.Random, lossy: bool, *, min_rate: float = 0.5e6) -> LinkParams:
    delay = _loguniform(rng, 0.0005, 0.15)
    rate = None if rng.random() < 0.1 else _loguniform(rng, min_rate, 100e6)
    queue = rng.randint(8, 300) if rate is not None else None
    ecn_th = rng.randint(2, queue - 1) if queue is not None and rng.random() < 0.2 else None
    jitter = delay * rng.uniform(0.0, 0.5) if rng.random() < 0.2 else 0.0
    loss = _loss(rng) if lossy else 0.0
    burst = None
    if lossy and rng.random() < 0.15:
        burst = GilbertElliott(p=rng.uniform(0.001, 0.05), r=rng.uniform(0.5, 1.0),
                               loss_bad=rng.uniform(0.5, 1.0))
        loss = min(loss, max(0.0, 0.2 - burst.mean_loss()))
    reorder = rng.uniform(0.0, 0.1) if rng.random() < 0.25 else 0.0
    reorder_delay = rng.uniform(0.001, max(0.002, 3 * delay)) if reorder else 0.0
    dup = rng.uniform(0.0, 0.05) if rng.random() < 0.15 else 0.0
    return LinkParams(delay=delay, jitter=jitter, rate=rate, queue_packets=queue,
                      ecn_threshold_packets=ecn_th, loss=loss, burst_loss=burst,
                      duplicate=dup, reorder=reorder, reorder_delay=reorder_delay)


def _burst_mean(p: LinkParams) -> float:
    return p.burst_loss.mean_loss() if p.burst_loss is not None else 0.0


def _horizon(size: int, ab: LinkParams, ba: LinkParams) -> float:
    rate = ab.rate or 1e9
    rtt = ab.delay + ba.delay
    est = 3 * rtt + size * 8 / rate * 1.5 + size / 65536 * rtt
    return min(30.0, max(0.2, est))


def _middleboxes(rng: random.Random, s: Schedule) -> None:
    ts_possible = s.client.timestamps and s.server.timestamps
    if rng.random() < 0.1:
        kinds = sorted(rng.sample([2, 3, 4, 8], rng.randint(1, 4)))
        mode = rng.choice(["nop", "remove"])
        s.middleboxes.append(("strip_syn", {"kinds": kinds, "mode": mode}, None))
        if 8 in kinds:
            ts_possible = False
    if rng.random() < 0.15:
        opts = ["all"] + ([] if ts_possible else ["first", "none"])
        o: dict[str, Any] = {"options": rng.choice(opts)}
        if rng.random() < 0.5:
            o["pieces"] = rng.randint(2, 4)
        else:
            o["size"] = rng.randint(100, 1400)
        s.middleboxes.append(("split", o, _maybe_at(rng, s.horizon)))
    if rng.random() < 0.15:
        o = {"window": _loguniform(rng, 0.0005, 0.02), "max_payload": rng.randint(2000, 65000),
             "options": rng.choice(["last", "first", "equal"])}
        s.middleboxes.append(("coalesce", o, _maybe_at(rng, s.horizon)))
    if rng.random() < 0.08:
        s.middleboxes.append(("seqshift", {"delta": rng.getrandbits(32),
                                           "sack": rng.random() < 0.8,
                                           "reverse": rng.random() < 0.5}, None))
    if rng.random() < 0.05:
        s.middleboxes.append(("nat", {"preserve_ports": rng.random() < 0.5}, None))


def _maybe_at(rng: random.Random, horizon: float) -> float | None:
    return None if rng.random() < 0.5 else round(rng.uniform(0.0, horizon), 6)


def _change(rng: random.Random, lossy: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    choices = ["rate", "delay", "reorder", "duplicate"] + (["loss"] if lossy else [])
    for what in rng.sample(choices, rng.randint(1, 2)):
        if what == "rate":
            out["rate"] = _loguniform(rng, 0.5e6, 100e6)
            out["queue_packets"] = rng.randint(8, 300)
        elif what == "delay":
            out["delay"] = _loguniform(rng, 0.0005, 0.15)
        elif what == "reorder":
            out["reorder"] = rng.uniform(0.0, 0.1)
            out["reorder_delay"] = rng.uniform(0.001, 0.05)
        elif what == "duplicate":
            out["duplicate"] = rng.uniform(0.0, 0.05)
        else:
            out["loss"] = _loss(rng)
    return out


def generate(seed: int, index: int, *, max_size: int = MAX_SIZE) -> Schedule:
    """The schedule (seed, index): a pure function of its arguments."""
    rng = random.Random(f"fuzz-netsim/{seed}/{index}")
    category = "blackout" if rng.random() < 0.1 else "faults"
    lossy = category == "faults"
    size = _size(rng, max_size)
    client, server = _config(rng), _config(rng)
    ab = _link(rng, lossy, min_rate=0.5e6 if lossy else 5e6)
    ba = _link(rng, lossy, min_rate=0.5e6 if lossy else 5e6) if rng.random() < 0.3 else ab
    s = Schedule(seed, index, category, size, rng.getrandbits(32), rng.getrandbits(32),
                 client, server, ab, ba, round(_horizon(size, ab, ba), 6))
    _middleboxes(rng, s)
    if category == "faults":
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            d = rng.choice([None, None, "ab", "ba"])
            ch = _change(rng, True)
            if "loss" in ch:  # iid + burst loss stays <= 20 % on the directions changed
                burst = max(_burst_mean(p) for p in ((ab, ba) if d is None else
                                                     (ab if d == "ab" else ba,)))
                ch["loss"] = min(ch["loss"], max(0.0, 0.2 - burst))
            s.changes.append((round(rng.uniform(0.0, s.horizon), 6), d, ch))
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            s.flaps.append((round(rng.uniform(0.0, s.horizon), 6),
                            round(_loguniform(rng, 0.005, FLAP_MAX), 6),
                            rng.choice([None, None, "ab", "ba"])))
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            s.pauses.append((round(rng.uniform(0.0, s.horizon), 6),
                             round(_loguniform(rng, 0.01, PAUSE_MAX), 6)))
    else:
        # the user timeout must outlast anything but the outage: queueing delay, the RTO
        # after a queue drop (>= rto_min, backed off once) -- see the module docstring
        mss = max(client.mss, server.mss) + 60
        qdelay = max((p.queue_packets or 0) * mss * 8 / (p.rate or 1e12) for p in (ab, ba))
        rtt = ab.delay + ba.delay + ab.jitter + ba.jitter + ab.reorder_delay + ba.reorder_delay
        u = round(4 * (qdelay + rtt) + 3.0 + rng.uniform(0.0, 5.0), 3)
        s.user_timeout = u
        s.client = replace(client, user_timeout=u)
        if rng.random() < 0.5:
            s.server = replace(server, user_timeout=u)
        s.blackout = (round(rng.uniform(0.02, s.horizon), 6),
                      round(2 * u + 2.0 + rng.uniform(0.0, 4.0), 6))
    return s


# --------------------------------------------------------------------------- running ------

@dataclass
class Outcome:
    """The result of one schedule."""

    seed: int
    index: int
    category: str
    size: int
    ok: bool
    verdict: str
    delivered: int
    complete: bool
    sender: dict[str, Any]
    sink: dict[str, Any]
    stop: str
    virtual_time: float
    wall_time: float
    events: int
    retransmits: int
    timeouts: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _install(sim: Simulator, s: Schedule) -> None:
    link = next(iter(sim.links.values()))
    for kind, o, at in s.middleboxes:
        if kind == "strip_syn":
            mode = StripMode.NOP if o["mode"] == "nop" else StripMode.REMOVE
            for d in ("ab", "ba"):
                sim.add_middlebox(link, d, OptionStrip.of_kinds(
                    o["kinds"], mode=mode, scope=StripScope.SYN), at)
        elif kind == "split":
            sp = Splitter(o.get("pieces"), size=o.get("size"),
                          options=SplitOptions(o["options"]))
            sim.add_middlebox(link, "ab", sp, at)
        elif kind == "coalesce":
            sim.add_middlebox(link, "ab", Coalescer(o["window"], max_payload=o["max_payload"],
                                                    options=CoalesceOptions(o["options"])), at)
        elif kind == "seqshift":
            sh = SeqShift(o["delta"], sack=o["sack"])
            fwd, rev = ("ba", "ab") if o["reverse"] else ("ab", "ba")
            sim.add_middlebox(link, fwd, sh.forward, at)
            sim.add_middlebox(link, rev, sh.reverse, at)
        elif kind == "nat":
            nat = Nat("192.0.2.1", preserve_ports=o["preserve_ports"])
            sim.add_middlebox(link, "ab", nat.outbound, at)
            sim.add_middlebox(link, "ba", nat.inbound, at)
    for at, cd, changes in s.changes:
        sim.configure_at(at, link, cd, **changes)
    for at, dur, fd in s.flaps:
        sim.flap(link, at, dur, fd)
    if s.blackout is not None:
        sim.flap(link, s.blackout[0], s.blackout[1])


def run_schedule(s: Schedule, *, trace: TraceHook | None = None,
                 max_events: int = MAX_EVENTS, max_time: float = MAX_TIME) -> Outcome:
    """Run one schedule and judge it."""
    sim = Simulator(seed=s.sim_seed, max_time=max_time, max_events=max_events)
    if trace is not None:
        sim.add_trace(trace)
    tr, _link = setup_transfer(sim, s.size, ab=s.ab, ba=s.ba, seed=s.data_seed,
                               client_config=s.client, server_config=s.server)
    tr.sink.pauses = sorted((a, a + d) for a, d in s.pauses)
    _install(sim, s)
    sender, sink = tr.sender, tr.sink
    last: list[Any] = [None, 0.0]
    stalled = False

    def stop() -> bool:
        nonlocal stalled
        if tr.finished:
            return True
        c, k = sender.conn, sink.conn
        key = (sink.result.bytes, c.snd_una if c else -1, c.state if c else None,
               k.state if k else None)
        now = sim.now
        if key != last[0]:
            last[0], last[1] = key, now
        elif now - last[1] > STALL:
            stalled = True
            return True
        return False

    t0 = time.perf_counter()
    res = sim.run(until=stop)
    wall = time.perf_counter() - t0
    snd, snk = tr.results()
    ok, complete, verdict = judge(s, snd, snk, res.reason, stalled=stalled)
    mib = sim.host("client").stack.stack.mib  # type: ignore[attr-defined]
    return Outcome(
        s.seed, s.index, s.category, s.size, ok, verdict, snk.bytes, complete,
        snd.as_dict(), snk.as_dict(), str(res.reason), round(res.now, 6), round(wall, 4),
        res.events, mib["TcpRetransSegs"], mib["TcpExtTCPTimeouts"])


def judge(s: Schedule, snd: TransferResult, snk: TransferResult,
          stop: StopReason, *, stalled: bool = False) -> tuple[bool, bool, str]:
    """(ok, complete, verdict) for a finished run; see the module docstring."""
    if snk.bytes > s.size:
        return False, False, f"sink got {snk.bytes} bytes, more than the {s.size} sent"
    if snk.sha256 != payload_prefix_sha256(s.data_seed, s.size, snk.bytes):
        return False, False, f"the {snk.bytes} bytes delivered are not the data sent"
    complete = (snk.bytes == s.size and snd.bytes == s.size and snd.closed_clean
                and snk.closed_clean)
    if complete:
        return True, True, "complete"
    if stalled:
        return False, False, (f"hang: no progress for {STALL:.0f} s with sender {_state(snd)}, "
                              f"sink {_state(snk)}")
    if stop in (StopReason.MAX_EVENTS, StopReason.MAX_TIME):
        return False, False, f"hang: {stop} with sender {_state(snd)}, sink {_state(snk)}"
    if s.category != "blackout" or s.blackout is None:
        return False, False, f"not completed: sender {_state(snd)}, sink {_state(snk)}"
    b0, dur = s.blackout
    b1 = b0 + dur

    def timed_out_in_outage(r: TransferResult) -> bool:
        return (r.failure == "ConnectionFailed: user timeout" and r.failed_at is not None
                and b0 <= r.failed_at <= b1 + 1e-9)

    first = [r for r in (snd, snk) if timed_out_in_outage(r)]
    if not first:
        return False, False, (f"failure not justified by the outage [{b0:.3f}, {b1:.3f}]: "
                              f"sender {_state(snd)}, sink {_state(snk)}")
    t_first = min(r.failed_at for r in first if r.failed_at is not None)
    for r in (snd, snk):
        if r in first or r.closed_clean:
            continue
        if r.failure is None:
            continue  # half-open: its peer is gone and nothing more arrives
        if r.failure == "Reset: connection reset" and r.failed_at is not None \
                and r.failed_at >= t_first:
            continue  # the failed side's stack answered with a RST (RFC 9293 §3.10.7.1)
        return False, False, f"{r.role} failure not justified: {_state(r)}"
    return True, False, f"user timeout in the outage ({_state(snd)} / {_state(snk)})"


def _state(r: TransferResult) -> str:
    if r.closed_clean:
        return f"closed ({r.bytes} B)"
    if r.failure:
        return f"{r.failure} at {r.failed_at:.3f} in {r.failed_state} ({r.bytes} B)"
    return f"unfinished ({r.bytes} B)"


def run_index(seed: int, index: int, max_size: int = MAX_SIZE) -> Outcome:
    """Generate and run schedule (seed, index) -- the unit of work of a campaign."""
    return run_schedule(generate(seed, index, max_size=max_size))


