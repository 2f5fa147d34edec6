"""``mptcp-lab decode FILE [--json]``: print every TCP packet of a capture with its options.

Text mode prints one line per TCP packet and one indented line per option, as the records of
:mod:`interop.decode` are read; ``--json`` prints one JSON list of those records.  A malformed
capture file prints what was decoded before the damage, reports the error (with its byte
offset in the file) on stderr and exits with status 1; a missing file exits with status 2.
Packets that do not parse are part of the output (their ``error`` field), not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from interop.decode import Record, format_record, iter_decode
from mptcp.wire.errors import WireError

__all__ = ["add_decode_parser", "run_decode"]


def add_decode_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``decode`` on the ``mptcp-lab`` subparsers (handler in ``args.handler``)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "decode",
        help="decode the TCP packets of a pcap/pcapng file (MPTCP, ENO, AccECN options)",
        description="Print every TCP packet of a pcap or pcapng capture with all its options "
        "decoded. Packet indexes count every packet of the file from 0.",
    )
    p.add_argument("file", metavar="FILE", help="pcap or pcapng capture ('-' for stdin)")
    p.add_argument("--json", action="store_true", help="print one JSON list of packet records")
    p.set_defaults(handler=run_decode)
    return p


def run_decode(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``mptcp-lab decode``; returns the exit status."""
    stdout = sys.stdout if out is None else out
    try:
        return _run(args, stdout)
    except BrokenPipeError:  # e.g. `mptcp-lab decode x.pcap | head`: stop quietly
        if out is None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace, stdout: TextIO) -> int:
    source: Any = sys.stdin.buffer if args.file == "-" else args.file
    records: list[Record] = []
    status = 0
    decoded = iter_decode(source)
    while True:
        try:
            rec = next(decoded, None)
        except WireError as exc:
            print(f"mptcp-lab decode: {args.file}: malformed capture file {exc}", file=sys.stderr)
            status = 1
            break
        except OSError as exc:
            print(f"mptcp-lab decode: {exc}", file=sys.stderr)
            return 2
        if rec is None:
            break
        if args.json:
            records.append(rec)
        else:
            print(format_record(rec), file=stdout)
    if args.json:
        json.dump(records, stdout, indent=1)
        stdout.write("\n")
    stdout.flush()
    return status


def main(argv: list[str] | None = None) -> int:
    """Run ``decode`` alone (``python -m interop.decode_cli FILE [--json]``)."""
    parser = argparse.ArgumentParser(prog="mptcp-lab")
    sub = parser.add_subparsers(dest="command", required=True)
    add_decode_parser(sub)
    args = parser.parse_args(["decode", *(sys.argv[1:] if argv is None else argv)])
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
