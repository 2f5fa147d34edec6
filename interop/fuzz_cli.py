"""``mptcp-lab fuzz netsim``: run N seeded fault schedules (``interop.fuzz_netsim``) and report.

::

    mptcp-lab fuzz netsim --schedules 2000 --seed 1 [--json] [--jobs 2] [--max-size BYTES]
    mptcp-lab fuzz netsim --seed 1 --only 17 [--pcap FILE] [--pcap-event send|deliver]

Every failure is printed with the command that reproduces it (``--only INDEX``, which reruns
that one schedule, prints it, and writes a pcap of its packets through the simulator's trace
hook).  The exit status is 1 when any schedule failed.  ``--jobs J`` runs schedules in J
worker processes (results are the same: each schedule depends on (seed, index) only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from interop.fuzz_netsim import (
    MAX_SIZE,
    SIZE_BUCKETS,
    Outcome,
    generate,
    run_index,
    run_schedule,
    size_bucket,
)
from interop.netsim import pcap_hook
from mptcp.wire.pcap import PcapWriter

__all__ = ["run_campaign", "summarize", "add_fuzz_parser", "reproduce_command"]


def reproduce_command(seed: int, index: int, max_size: int = MAX_SIZE) -> str:
    extra = f" --max-size {max_size}" if max_size != MAX_SIZE else ""
    return f"mptcp-lab fuzz netsim --seed {seed} --only {index}{extra}"


def _outcomes(seed: int, n: int, jobs: int, max_size: int) -> Iterator[Outcome]:
    if jobs <= 1:
        for i in range(n):
            yield run_index(seed, i, max_size)
        return
    work = partial(run_index, seed, max_size=max_size)
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(work, range(n), chunksize=1)


def run_campaign(
    seed: int, n: int, *, jobs: int = 1, max_size: int = MAX_SIZE,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """Run schedules 0..n-1 of ``seed``; returns :func:`summarize`'s report."""
    t0 = time.perf_counter()
    outcomes: list[Outcome] = []
    for o in _outcomes(seed, n, jobs, max_size):
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)
    return summarize(seed, outcomes, time.perf_counter() - t0, max_size=max_size, jobs=jobs)


def summarize(seed: int, outcomes: list[Outcome], wall: float, *, max_size: int = MAX_SIZE,
              jobs: int = 1) -> dict[str, Any]:
    """Counts, times, the size distribution and the failures (with how to reproduce them)."""
    sizes = [o.size for o in outcomes]
    buckets = Counter(size_bucket(s) for s in sizes)
    failures = [o for o in outcomes if not o.ok]
    slowest = max(outcomes, key=lambda o: o.wall_time, default=None)

    def top(key: Callable[[Outcome], float]) -> list[dict[str, Any]]:
        return [{"index": o.index, "size": o.size, "virtual_time": o.virtual_time,
                 "wall_time": o.wall_time, "events": o.events, "verdict": o.verdict}
                for o in sorted(outcomes, key=key, reverse=True)[:5]]

    return {
        "seed": seed,
        "schedules": len(outcomes),
        "jobs": jobs,
        "max_size": max_size,
        "passed": len(outcomes) - len(failures),
        "failures": len(failures),
        "completed": sum(o.complete for o in outcomes),
        "justified_failures": sum(o.ok and not o.complete for o in outcomes),
        "categories": dict(Counter(o.category for o in outcomes)),
        "verdicts": dict(Counter(o.verdict.split(" (")[0] for o in outcomes if o.ok)),
        "wall_time": round(wall, 3),
        "wall_time_schedules": round(sum(o.wall_time for o in outcomes), 3),
        "slowest": (None if slowest is None else
                    {"index": slowest.index, "wall_time": slowest.wall_time,
                     "size": slowest.size, "events": slowest.events}),
        "top_wall_time": top(lambda o: o.wall_time),
        "top_virtual_time": top(lambda o: o.virtual_time),
        "virtual_time": {
            "total": round(sum(o.virtual_time for o in outcomes), 3),
            "max": max((o.virtual_time for o in outcomes), default=0.0),
            "median": statistics.median([o.virtual_time for o in outcomes]) if outcomes else 0,
        },
        "events": sum(o.events for o in outcomes),
        "retransmits": sum(o.retransmits for o in outcomes),
        "sizes": {
            "buckets": {name: buckets.get(name, 0) for name, _lo, _hi in SIZE_BUCKETS},
            "total_bytes": sum(sizes),
            "mean": round(statistics.fmean(sizes)) if sizes else 0,
            "median": int(statistics.median(sizes)) if sizes else 0,
            "max": max(sizes, default=0),
        },
        "failed": [
            {"index": o.index, "category": o.category, "size": o.size, "verdict": o.verdict,
             "reproduce": reproduce_command(seed, o.index, max_size)}
            for o in failures
        ],
    }


def _print_summary(rep: dict[str, Any]) -> None:
    print(f"fuzz netsim: seed {rep['seed']}, {rep['schedules']} schedules "
          f"({', '.join(f'{k} {v}' for k, v in sorted(rep['categories'].items()))}), "
          f"jobs {rep['jobs']}")
    print(f"  passed {rep['passed']}, failed {rep['failures']} "
          f"(completed {rep['completed']}, justified failures {rep['justified_failures']})")
    vt = rep["virtual_time"]
    print(f"  wall time {rep['wall_time']:.1f} s; virtual time total {vt['total']:.1f} s, "
          f"median {vt['median']:.3f} s, max {vt['max']:.1f} s; {rep['events']:,} events, "
          f"{rep['retransmits']:,} retransmissions")
    sz = rep["sizes"]
    print(f"  sizes: {', '.join(f'{k}: {v}' for k, v in sz['buckets'].items())}; "
          f"mean {sz['mean']:,} B, median {sz['median']:,} B, max {sz['max']:,} B, "
          f"total {sz['total_bytes']:,} B")
    if rep["slowest"]:
        s = rep["slowest"]
        print(f"  slowest: schedule {s['index']} ({s['size']:,} B, {s['events']:,} events) "
              f"{s['wall_time']:.2f} s")
    for f in rep["failed"]:
        print(f"  FAILED {f['index']} [{f['category']}, {f['size']:,} B]: {f['verdict']}")
        print(f"    reproduce: {f['reproduce']}")


def _only(args: argparse.Namespace) -> int:
    sched = generate(args.seed, args.only, max_size=args.max_size)
    path = Path(args.pcap or f"fuzz-netsim-{args.seed}-{args.only}.pcap")
    with PcapWriter(path) as writer:
        outcome = run_schedule(sched, trace=pcap_hook(writer, event=args.pcap_event))
        count = writer.count
    if args.json:
        print(json.dumps({"schedule": sched.describe(), "outcome": outcome.as_dict(),
                          "pcap": str(path), "packets": count}, default=str))
    else:
        print(json.dumps(sched.describe(), indent=2, default=str))
        o = outcome
        print(f"\nschedule {o.index}: {'ok' if o.ok else 'FAILED'}: {o.verdict}")
        print(f"  delivered {o.delivered:,} of {o.size:,} B; stop {o.stop}; virtual "
              f"{o.virtual_time:.3f} s; wall {o.wall_time:.3f} s; {o.events:,} events; "
              f"{o.retransmits} retransmissions, {o.timeouts} RTO expiries")
        for side in (o.sender, o.sink):
            print(f"  {side['role']}: {side}")
        print(f"  pcap ({args.pcap_event} events, {count} packets): {path}")
    return 0 if outcome.ok else 1


def _netsim(args: argparse.Namespace) -> int:
    if args.only is not None:
        return _only(args)
    if args.schedules < 1 or args.jobs < 1:
        print("--schedules and --jobs must be >= 1", file=sys.stderr)
        return 2
    done = 0

    def progress(o: Outcome) -> None:
        nonlocal done
        done += 1
        if not o.ok:
            print(f"FAILED schedule {o.index}: {o.verdict}\n  reproduce: "
                  f"{reproduce_command(args.seed, o.index, args.max_size)}",
                  file=sys.stderr if args.json else sys.stdout, flush=True)
        if args.progress and done % args.progress == 0:
            print(f"  ... {done}/{args.schedules}", file=sys.stderr, flush=True)

    rep = run_campaign(args.seed, args.schedules, jobs=args.jobs, max_size=args.max_size,
                       on_outcome=progress)
    if args.json:
        print(json.dumps(rep))
    else:
        _print_summary(rep)
    return 1 if rep["failures"] else 0


def add_fuzz_parser(sub: Any) -> None:
    """Register ``fuzz`` and its subcommands on the ``mptcp-lab`` parser."""
    fuzz = sub.add_parser("fuzz", help="randomized fault-schedule testing")
    fsub = fuzz.add_subparsers(dest="fuzz", required=True, metavar="TARGET")
    p = fsub.add_parser(
        "netsim", help="TCP bulk transfers under random fault schedules",
        description="Run N seeded fault schedules, each a TCP bulk transfer between two of our "
        "stacks on the simulator (random TcpConfig knobs; loss, reordering, duplication, "
        "middleboxes, rate/delay changes, flaps). A schedule passes when every byte arrives "
        "(sha256) and both sides close cleanly, or when a reported failure is justified by "
        "its faults. Exit status 1 on any failure; each failure prints its --only command.")
    p.add_argument("--schedules", type=int, default=100, help="number of schedules (N)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed (S)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--max-size", type=int, default=MAX_SIZE,
                   help=f"largest transfer in bytes (default {MAX_SIZE})")
    p.add_argument("--only", type=int, metavar="INDEX",
                   help="rerun schedule INDEX alone, verbosely, with a pcap")
    p.add_argument("--pcap", help="pcap path for --only (default fuzz-netsim-S-INDEX.pcap)")
    p.add_argument("--pcap-event", choices=["send", "deliver"], default="send",
                   help="capture packets as sent by the hosts or as delivered to them")
    p.add_argument("--progress", type=int, default=0, metavar="K",
                   help="print progress to stderr every K schedules")
    p.set_defaults(handler=_netsim)
