"""``mptcp-lab demo``: one TCP bulk transfer between two of our stacks on the in-process
network simulator -- no root, no sockets, no real clock.

Two hosts (``interop.netsim``) joined by a link with a rate, a delay, a drop-tail queue and a
little random loss run the Sans-IO TCP engine (RFC 9293, SACK RFC 2018, timestamps RFC 7323,
RACK-TLP RFC 8985, CUBIC RFC 9438); ``interop.tcp_app`` sends a few megabytes of seeded data
and hashes them on both ends.  The summary shows what an experimenter looks at: bytes and
sha256 on both sides, goodput in virtual time, retransmissions from the MIB, the RTT
estimate (SRTT / min RTT, RFC 6298), the congestion window, and virtual vs wall time.

``mptcp-lab demo --wire`` runs the wire-codec demo (an MPTCP v1 + AccECN + TCP-ENO exchange
built from the codecs, ``interop.demo_wire``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from interop.netsim import LinkParams, Simulator, pcap_hook
from interop.tcp_app import CLIENT_ADDR, SERVER_ADDR, payload_sha256, setup_transfer
from mptcp.wire.pcap import PcapWriter

__all__ = ["run_tcp_demo", "add_demo_parser", "DEFAULT_SIZE"]

DEFAULT_SIZE = 4_000_000
SAMPLE_EVERY = 0.01  # seconds of virtual time between cwnd samples


def run_tcp_demo(
    *, size: int = DEFAULT_SIZE, rate_mbit: float = 50.0, rtt_ms: float = 20.0,
    loss_pct: float = 0.5, queue: int = 100, seed: int = 1, pcap: str | None = None,
) -> dict[str, Any]:
    """Run the transfer; returns the summary (``ok`` is True when the hashes match and both
    sides closed cleanly)."""
    sim = Simulator(seed=seed)
    params = LinkParams(delay=rtt_ms / 2000.0, rate=rate_mbit * 1e6, queue_packets=queue,
                        loss=loss_pct / 100.0)
    tr, link = setup_transfer(sim, size, params, seed=seed)
    writer = PcapWriter(pcap) if pcap else None
    if writer is not None:
        sim.add_trace(pcap_hook(writer, event="send"))
    cwnd_samples: list[int] = []

    def sample() -> None:
        conn = tr.sender.conn
        if conn is not None and conn.synchronized:
            cwnd_samples.append(conn.cc.cwnd)
        if not tr.finished:
            sim.schedule(sim.now + SAMPLE_EVERY, sample)

    sim.schedule(0.0, sample)
    t0 = time.perf_counter()
    res = sim.run(until=lambda: tr.finished, max_time=3600.0)
    wall = time.perf_counter() - t0
    if writer is not None:
        writer.close()
    snd, snk = tr.results()
    expected = payload_sha256(seed, size)
    conn = tr.sender.conn
    assert conn is not None
    mib = conn.mib
    info = conn.info()
    start = snd.started_at or 0.0
    data_time = (snk.eof_at or res.now) - start
    stats = link.stats()
    mss = int(info["mss"])  # type: ignore[call-overload]
    return {
        "ok": snk.sha256 == expected and snd.sha256 == expected and snd.closed_clean
        and snk.closed_clean and snk.bytes == size,
        "path": {"client": CLIENT_ADDR, "server": SERVER_ADDR, "rate_mbit": rate_mbit,
                 "rtt_ms": rtt_ms, "loss_pct": loss_pct, "queue_packets": queue},
        "size": size,
        "sent_bytes": snd.bytes,
        "received_bytes": snk.bytes,
        "sha256_sent": snd.sha256,
        "sha256_received": snk.sha256,
        "sha256_expected": expected,
        "handshake_ms": round(((snd.connected_at or start) - start) * 1000, 3),
        "transfer_s": round(data_time, 6),
        "goodput_mbit": round(snk.bytes * 8 / data_time / 1e6, 3) if data_time > 0 else 0.0,
        "virtual_s": round(res.now, 6),
        "wall_s": round(wall, 3),
        "events": res.events,
        "closed_clean": {"sender": snd.closed_clean, "receiver": snk.closed_clean},
        "failure": snd.failure or snk.failure,
        "retransmissions": {
            "total": mib["TcpRetransSegs"], "fast": mib["TcpExtTCPFastRetrans"],
            "rack_lost": mib["TcpExtTCPRackLost"], "rto": mib["TcpExtTCPTimeouts"],
            "tlp": mib["TcpExtTCPLossProbes"], "segments_sent": mib["TcpOutSegs"],
        },
        "rtt": {"srtt_ms": _ms(conn.rtt.srtt), "min_rtt_ms": _ms(conn.rtt.min_rtt),
                "rto_ms": _ms(conn.rtt.rto)},
        "cwnd": {"mss": mss, "final_bytes": conn.cc.cwnd,
                 "peak_bytes": max(cwnd_samples, default=conn.cc.cwnd),
                 "mean_bytes": round(sum(cwnd_samples) / len(cwnd_samples))
                 if cwnd_samples else conn.cc.cwnd,
                 "cc": conn.config.cc},
        "options": {"sack": conn.sack_ok, "timestamps": conn.ts_ok,
                    "wscale": info["wscale"]},
        "link": {"data_packets_sent": stats["ab"]["sent"],
                 "data_packets_lost": stats["ab"]["dropped"],
                 "ack_packets_sent": stats["ba"]["sent"],
                 "ack_packets_lost": stats["ba"]["dropped"]},
        "pcap": pcap,
    }


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 3)


def _print(r: dict[str, Any]) -> None:
    p = r["path"]
    rt = r["retransmissions"]
    rtt = r["rtt"]
    cw = r["cwnd"]
    mss = cw["mss"]
    print("mptcp-lab demo: one TCP bulk transfer between two of our Sans-IO stacks on the "
          "in-process simulator")
    print(f"  path      {p['client']} -> {p['server']}: {p['rate_mbit']:g} Mbit/s, RTT "
          f"{p['rtt_ms']:g} ms, {p['loss_pct']:g} % random loss each way, queue "
          f"{p['queue_packets']} packets")
    print(f"  options   SACK {_yn(r['options']['sack'])}, timestamps "
          f"{_yn(r['options']['timestamps'])}, window scale {r['options']['wscale']}, "
          f"{cw['cc']}, MSS {mss}")
    print(f"  bytes     sent {r['sent_bytes']:,}, received {r['received_bytes']:,}")
    same = r["sha256_sent"] == r["sha256_received"] == r["sha256_expected"]
    print(f"  sha256    sent     {r['sha256_sent']}")
    print(f"            received {r['sha256_received']}  "
          f"({'equal' if same else 'DIFFERENT'})")
    print(f"  goodput   {r['goodput_mbit']:.2f} Mbit/s over {r['transfer_s']:.3f} s of "
          f"virtual time (handshake {r['handshake_ms']:.1f} ms)")
    print(f"  losses    link dropped {r['link']['data_packets_lost']} of "
          f"{r['link']['data_packets_sent']} data packets and "
          f"{r['link']['ack_packets_lost']} of {r['link']['ack_packets_sent']} ACKs")
    print(f"  retrans   {rt['total']} segments (TcpRetransSegs) of {rt['segments_sent']} sent: "
          f"fast recoveries {rt['fast']}, marked lost by RACK {rt['rack_lost']}, tail loss "
          f"probes {rt['tlp']}, RTO expiries {rt['rto']}")
    print(f"  RTT       srtt {rtt['srtt_ms']} ms, min_rtt {rtt['min_rtt_ms']} ms, "
          f"rto {rtt['rto_ms']} ms")
    print(f"  cwnd      mean {cw['mean_bytes'] / mss:.1f} segments, peak "
          f"{cw['peak_bytes'] / mss:.1f}, final {cw['final_bytes'] / mss:.1f} "
          f"(sampled every {SAMPLE_EVERY * 1000:g} ms)")
    ratio = r["virtual_s"] / r["wall_s"] if r["wall_s"] else float("inf")
    print(f"  time      {r['virtual_s']:.3f} s virtual, {r['wall_s']:.3f} s wall "
          f"({ratio:.2f}x real time), {r['events']:,} simulator events")
    cc = r["closed_clean"]
    close = ("both sides closed cleanly (FIN handshake)" if cc["sender"] and cc["receiver"]
             else f"not closed cleanly: {r['failure'] or 'unfinished'}")
    print(f"  close     {close}")
    if r["pcap"]:
        print(f"  pcap      {r['pcap']} (every packet as sent by the hosts)")
    print("result:", "transfer verified (sha256 equal, clean close)" if r["ok"]
          else "FAILED")


def _yn(b: object) -> str:
    return "on" if b else "off"


def _handler(args: argparse.Namespace) -> int:
    if args.wire:
        from interop.demo_wire import run_demo

        return run_demo(args.pcap, args.seed if args.seed is not None else 8684)
    if args.size < 0:
        print("--size must be >= 0")
        return 2
    r = run_tcp_demo(size=args.size, rate_mbit=args.rate, rtt_ms=args.rtt,
                     loss_pct=args.loss, queue=args.queue,
                     seed=args.seed if args.seed is not None else 1, pcap=args.pcap)
    if args.json:
        print(json.dumps(r))
    else:
        _print(r)
    return 0 if r["ok"] else 1


def add_demo_parser(sub: Any) -> None:
    """Register ``mptcp-lab demo``."""
    p = sub.add_parser("demo", help="the embedded demo: a TCP transfer on the simulator "
                       "(--wire: the wire-codec MPTCP demo); no root needed")
    p.add_argument("--wire", action="store_true",
                   help="the wire-codec demo (MPTCP v1 + AccECN + TCP-ENO packets, decoded)")
    p.add_argument("--pcap", help="write the packets to this pcap file")
    p.add_argument("--seed", type=int, help="seed (TCP demo: 1; --wire: 8684)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="bytes to transfer")
    p.add_argument("--rate", type=float, default=50.0, help="link rate, Mbit/s")
    p.add_argument("--rtt", type=float, default=20.0, help="round-trip time, ms")
    p.add_argument("--loss", type=float, default=0.5, help="random loss each way, %%")
    p.add_argument("--queue", type=int, default=100, help="bottleneck queue, packets")
    p.add_argument("--json", action="store_true", help="print one JSON object (TCP demo)")
    p.set_defaults(handler=_handler)
