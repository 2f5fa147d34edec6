"""``mptcp-lab bench ...``: benchmark subcommands (separate from the test suite)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _codec(args: argparse.Namespace) -> int:
    from interop.bench_codec import run_codec_bench

    result = run_codec_bench(runs=args.runs, seconds=args.seconds, n=args.segments)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"codec bench over {result['segments']} segments "
              f"(mean {result['mean_packet_bytes']} bytes), median of {args.runs} runs:")
        print(f"  ours  : {result['ours_per_s']:>9,} segments/s "
              f"({result['ours_us_per_segment']} us each, parse + rebuild)")
        print(f"  scapy : {result['scapy_per_s']:>9,} segments/s (real rebuild)")
        print(f"  ratio : {result['ratio']}x")
    return 0


def add_bench_parser(sub: Any) -> None:
    """Register ``bench`` and its subcommands on the ``mptcp-lab`` parser."""
    bench = sub.add_parser("bench", help="benchmarks (ratios measured in one run)")
    bsub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    codec = bsub.add_parser("codec", help="wire codecs vs scapy's real rebuild")
    codec.add_argument("--json", action="store_true", help="print one JSON object")
    codec.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    codec.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per timing")
    codec.add_argument("--segments", type=int, default=2000, help="segments in the mix")
    codec.set_defaults(handler=_codec)
