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


def _engine(args: argparse.Namespace) -> int:
    import sys

    from interop.bench_engine import run_engine_bench

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_engine_bench(total=args.bytes, runs=args.runs, gso=not args.no_gso,
                              quic_default_size=not args.no_quic_1200, clock=args.clock,
                              progress=None if args.json or args.quiet else progress)
    if args.json:
        print(json.dumps(result))
        return 0
    mb = result["bytes"] / 1e6
    print(f"engine bench: {mb:g} MB one way, in-memory, both ends' CPU, median of "
          f"{result['runs']} runs")
    rows = [("ours, MSS 1460, IP packets as bytes (checksums, Stack)", "mss1460"),
            ("ours, MSS 1460, Segment objects (no serialization)", "mss1460_objects")]
    if "gso_mbit_per_s" in result:
        rows += [("ours, 64 KB TSO/GRO super-segments, as bytes", "gso"),
                 ("ours, 64 KB super-segments, Segment objects", "gso_objects")]
    for label, key in rows:
        pps = result.get(f"{key}_segments_per_s")
        extra = f" {pps:>8,} segments/s" if pps is not None else ""
        print(f"  {label:56}: {result[f'{key}_mbit_per_s']:>8.1f} Mbit/s{extra}  "
              f"({result[f'{key}_ratio']}x aioquic)")
    print(f"  {'aioquic, 1472-byte datagrams (same MTU)':56}: "
          f"{result['aioquic_mbit_per_s']:>8.1f} Mbit/s {result['aioquic_packets_per_s']:>8,} "
          f"packets/s")
    if "aioquic_1200_mbit_per_s" in result:
        print(f"  {'aioquic, 1200-byte datagrams (its default)':56}: "
              f"{result['aioquic_1200_mbit_per_s']:>8.1f} Mbit/s "
              f"{result['aioquic_1200_packets_per_s']:>8,} packets/s  (ours MSS 1460 / it: "
              f"{result['mss1460_ratio_vs_aioquic_1200']}x)")
    head = ("MSS 1460" if result["headline"] == "mss1460"
            else "super-segments (MSS 1460 stays below 2x)")
    print(f"  ratio, headline = {head}: {result['ratio']}x")
    return 0


def _goodput(args: argparse.Namespace) -> int:
    import sys

    from interop.bench_goodput import run_goodput_bench

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_goodput_bench(nbytes=args.bytes, runs=args.runs,
                               progress=None if args.quiet else progress)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"goodput bench: {result['bytes'] / 1e9:g} GB per measurement, TUN with offloads, "
          f"median of {result['runs']} runs")
    print(f"  kernel -> kernel (veth)  : {result['kernel_goodput_bps'] / 1e9:7.2f} Gbit/s")
    print(f"  ours -> kernel           : {result['ours_send_goodput_bps'] / 1e9:7.2f} Gbit/s "
          f"(ratio_send {result['ratio_send']})")
    print(f"  kernel -> ours           : {result['ours_recv_goodput_bps'] / 1e9:7.2f} Gbit/s "
          f"(ratio_recv {result['ratio_recv']})")
    for k, v in result["cpu_per_gb"].items():
        print(f"  CPU per GB, {k:22}: {v:.2f} s")
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
    engine = bsub.add_parser("engine", help="bulk transfer between two in-memory TCP engines "
                                            "vs aioquic (needs the 'bench' extra)")
    engine.add_argument("--json", action="store_true", help="print one JSON object")
    engine.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    engine.add_argument("--bytes", type=int, default=200_000_000, help="bytes per transfer")
    engine.add_argument("--no-gso", action="store_true",
                        help="skip the TSO/GRO super-segment configuration")
    engine.add_argument("--no-quic-1200", action="store_true",
                        help="skip aioquic with its default 1200-byte datagrams")
    engine.add_argument("--clock", choices=("real", "virtual"), default="real",
                        help="time given to the engines (virtual: deterministic, for profilers)")
    engine.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    engine.set_defaults(handler=_engine)
    goodput = bsub.add_parser("goodput", help="our stack over TUN vs the Linux kernel, in "
                                              "network namespaces (root)")
    goodput.add_argument("--json", action="store_true", help="print one JSON object")
    goodput.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    goodput.add_argument("--bytes", type=int, default=2_000_000_000,
                         help="bytes per measurement (>= 1 GB for the issue's rule)")
    goodput.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    goodput.set_defaults(handler=_goodput)
