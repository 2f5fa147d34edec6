"""``mptcp-lab``: the command-line entry point for experimenters.

Subcommands register themselves from their own modules (``add_*_parser(subparsers)``) so this
file stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The full ``mptcp-lab`` argument parser."""
    from interop.bench_cli import add_bench_parser
    from interop.decode_cli import add_decode_parser
    from interop.demo import add_demo_parser
    from interop.fuzz_cli import add_fuzz_parser
    from interop.lab_cli import add_lab_parsers

    parser = argparse.ArgumentParser(
        prog="mptcp-lab",
        description="Python MPTCP / tcpinc / AccECN / Inner Space stack for experimenters",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(sub)
    add_decode_parser(sub)
    add_bench_parser(sub)
    add_fuzz_parser(sub)
    add_lab_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mptcp-lab``; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    status: int = handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
