"""``mptcp-lab demo --wire``: an MPTCP v1 + AccECN + TCP-ENO exchange built from the wire codecs.

The wire-layer demo, end to end, in-process, no root (moved here unchanged from the first
``mptcp-lab demo``; the default demo is now a TCP transfer, ``interop.demo``): it lays out
the packets of a two-path MPTCP connection the way RFC 8684 describes it -- MP_CAPABLE
handshake (§3.1) with AccECN negotiation (RFC 9768 §3.1) and a TCP-ENO offer (RFC 8547 §4),
data under DSS mappings with checksums (§3.3), ADD_ADDR with its HMAC (§3.4.1), an MP_JOIN
handshake with both HMACs (§3.2), data on the second subflow and a DATA_FIN (§3.3.3) -- with
real keys, tokens, IDSNs, HMACs and DSS checksums, writes them to a pcap, decodes the file
back with ``mptcp-lab decode``'s decoder, re-verifies every MPTCP authentication value from
the decoded fields, and, when tshark is installed, has tshark read the file too.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import accecn  # noqa: F401  (registers the AccECN codecs)
import tcpinc  # noqa: F401  (registers the TCP-ENO codec)
from accecn.ace import CEP_INIT, E0B_INIT, flags_with_ace
from accecn.option import AccEcnOption
from interop.decode import decode_pcap, format_record
from mptcp.wire.ip import ipv4
from mptcp.wire.mptcp_crypto import (
    add_addr_hmac,
    dss_checksum,
    dss_checksum_ok,
    idsn,
    join_ack_hmac,
    join_synack_hmac,
    token,
)
from mptcp.wire.mptcp_handshake import (
    MPC_FLAG_CHECKSUM,
    MPC_FLAG_HMAC_SHA256,
    MpCapable,
    MpJoinAck,
    MpJoinSyn,
    MpJoinSynAck,
)
from mptcp.wire.mptcp_options import AddAddr, Dss
from mptcp.wire.options import NOP, Mss, SackPermitted, TcpOption, Timestamps, WindowScale
from mptcp.wire.pcap import PcapWriter
from mptcp.wire.segment import Segment, checksum_ok
from mptcp.wire.tcp import ACK, AE, CWR, ECE, FIN, PSH, SYN, TcpHeader
from tcpinc.eno_option import TEP_X25519, EnoOption, GlobalSuboption, Tep

__all__ = ["run_demo"]

CLIENT = bytes((10, 0, 1, 1))
SERVER = bytes((10, 0, 1, 2))
SERVER2 = bytes((10, 0, 2, 2))
MPC_FLAGS = MPC_FLAG_CHECKSUM | MPC_FLAG_HMAC_SHA256  # checksums on, to show them


class _Flow:
    """One direction of one subflow: ports, sequence numbers, timestamps."""

    def __init__(self, rng: random.Random, src: bytes, dst: bytes, sport: int, dport: int):
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.isn = rng.getrandbits(32)
        self.seq = self.isn
        self.ack = 0
        self.ts = rng.getrandbits(32)

    def seg(self, flags: int, opts: list[TcpOption], payload: bytes = b"") -> Segment:
        used = sum(len(o.to_bytes()) for o in opts)
        opts = opts + [NOP] * (-used % 4)
        tcp = TcpHeader(self.sport, self.dport, self.seq & 0xFFFFFFFF, self.ack & 0xFFFFFFFF,
                        flags, 64240, 0, 0, tuple(opts))
        self.seq += len(payload) + (1 if flags & (SYN | FIN) else 0)
        return Segment(ipv4(self.src, self.dst), tcp, payload)


def _build(rng: random.Random) -> tuple[list[Segment], dict[str, int]]:
    key_a, key_b = rng.getrandbits(64), rng.getrandbits(64)
    c = _Flow(rng, CLIENT, SERVER, rng.randrange(32768, 61000), 5201)
    s = _Flow(rng, SERVER, CLIENT, 5201, c.sport)
    syn_opts: list[TcpOption] = [Mss(1460), SackPermitted(), Timestamps(c.ts, 0), NOP,
                                 WindowScale(7)]
    eno = EnoOption((GlobalSuboption(0), Tep(TEP_X25519)))
    out = [c.seg(SYN | AE | CWR | ECE, [*syn_opts, MpCapable(1, MPC_FLAGS), eno])]
    s.ack = c.seq
    synack_ace = flags_with_ace(SYN | ACK, 0b010)  # the SYN arrived Not-ECT (RFC 9768 §3.1.2)
    # two AccECN fields fit next to MP_CAPABLE in the 40 option bytes (RFC 9768 §3.2.3.3)
    counters = AccEcnOption.encode(1, 2, e0b=E0B_INIT, ceb=0, e1b=E0B_INIT)
    out.append(s.seg(synack_ace, [Mss(1460), SackPermitted(), Timestamps(s.ts, c.ts), NOP,
                                  WindowScale(7), MpCapable(1, MPC_FLAGS, key_b), counters]))
    c.ack = s.seq
    ace = flags_with_ace(ACK, CEP_INIT)  # both ends feed back r.cep = 5: no CE seen (§3.2.2)
    out.append(c.seg(ace, [NOP, NOP, Timestamps(c.ts + 1, s.ts),
                           MpCapable(1, MPC_FLAGS, key_a, key_b)]))
    # first data: DSS mapping from IDSN + 1, relative SSN 1, with the DSS checksum (§3.3.1)
    dsn_a = idsn(key_a) + 1
    for chunk in (b"hello over MPTCP v1, ", b"AccECN and TCP-ENO! "):
        rel = c.seq - c.isn
        csum = dss_checksum(dsn_a, rel, len(chunk), chunk)
        dss = Dss(data_ack=idsn(key_b) + 1, dsn=dsn_a, ssn=rel, data_level_length=len(chunk),
                  checksum=csum, ack64=True, dsn64=True)
        out.append(c.seg(ace | PSH, [NOP, NOP, Timestamps(c.ts + 2, s.ts), dss], chunk))
        dsn_a += len(chunk)
    s.ack = c.seq
    # the server announces its second address (HMAC with its key first, §3.4.1)
    hmac = add_addr_hmac(key_b, key_a, 1, SERVER2, None)
    out.append(s.seg(ace, [NOP, NOP, Timestamps(s.ts + 1, c.ts + 2),
                           AddAddr(1, SERVER2, hmac=hmac),
                           Dss(data_ack=dsn_a, ack64=True)]))
    # MP_JOIN towards it: token of B's key, nonces, truncated HMACs (§3.2)
    c2 = _Flow(rng, CLIENT, SERVER2, rng.randrange(32768, 61000), 5201)
    s2 = _Flow(rng, SERVER2, CLIENT, 5201, c2.sport)
    r_a, r_b = rng.getrandbits(32), rng.getrandbits(32)
    out.append(c2.seg(SYN, [*syn_opts, MpJoinSyn(0, token(key_b), r_a)]))
    s2.ack = c2.seq
    join_synack = MpJoinSynAck(1, join_synack_hmac(key_b, key_a, r_b, r_a), r_b)
    out.append(s2.seg(SYN | ACK, [Mss(1460), SackPermitted(), Timestamps(s2.ts, c.ts), NOP,
                                  WindowScale(7), join_synack]))
    c2.ack = s2.seq
    out.append(c2.seg(ACK, [NOP, NOP, Timestamps(c2.ts, s2.ts),
                            MpJoinAck(join_ack_hmac(key_a, key_b, r_a, r_b))]))
    chunk = b"...and this went over the second path."
    rel = c2.seq - c2.isn
    dss = Dss(data_ack=idsn(key_b) + 1, dsn=dsn_a, ssn=rel, data_level_length=len(chunk),
              checksum=dss_checksum(dsn_a, rel, len(chunk), chunk), ack64=True, dsn64=True)
    out.append(c2.seg(ACK | PSH, [NOP, NOP, Timestamps(c2.ts + 1, s2.ts), dss], chunk))
    dsn_a += len(chunk)
    # DATA_FIN without data: SSN 0, data-level length 1 (Linux's form, SPEC_NOTES)
    fin_csum = dss_checksum(dsn_a, 0, 1, b"")
    out.append(c.seg(ace, [NOP, NOP, Timestamps(c.ts + 3, s.ts + 1),
                           Dss(data_ack=idsn(key_b) + 1, dsn=dsn_a, ssn=0, data_level_length=1,
                               checksum=fin_csum, data_fin=True, ack64=True, dsn64=True)]))
    out.append(s.seg(ace, [NOP, NOP, Timestamps(s.ts + 2, c.ts + 3),
                           Dss(data_ack=dsn_a + 1, ack64=True)]))
    return out, {"key_a": key_a, "key_b": key_b, "r_a": r_a, "r_b": r_b}


def _verify(records: list[dict[str, Any]], keys: dict[str, int]) -> list[str]:
    """Re-derive every authentication value from the *decoded* fields."""
    problems: list[str] = []
    key_a, key_b = keys["key_a"], keys["key_b"]
    for rec in records:
        for opt in rec.get("mptcp") or []:
            kind = opt["subtype"]
            if kind == "MP_JOIN" and "receiver_token" in opt and opt["receiver_token"] != token(
                    key_b):
                problems.append(f"packet {rec['index']}: MP_JOIN token is not token(key B)")
            if kind == "MP_JOIN" and "sender_hmac" in opt:
                want = (join_synack_hmac(key_b, key_a, keys["r_b"], keys["r_a"])
                        if "sender_random" in opt
                        else join_ack_hmac(key_a, key_b, keys["r_a"], keys["r_b"]))
                if bytes.fromhex(opt["sender_hmac"]) != want:
                    problems.append(f"packet {rec['index']}: MP_JOIN HMAC mismatch")
            if kind == "ADD_ADDR":
                want = add_addr_hmac(key_b, key_a, opt["address_id"], SERVER2, opt.get("port"))
                if bytes.fromhex(opt["hmac"]) != want:
                    problems.append(f"packet {rec['index']}: ADD_ADDR HMAC mismatch")
    return problems


def run_demo(keep: str | None = None, seed: int = 8684) -> int:
    """Build, write, decode and verify the exchange; 0 when every check holds."""
    segments, keys = _build(random.Random(seed))
    raws = [seg.to_bytes() for seg in segments]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(keep) if keep else Path(tmp) / "demo.pcap"
        with PcapWriter(path) as w:
            for i, raw in enumerate(raws):
                w.write(raw, 1_800_000_000 + i * 0.001)
        records = decode_pcap(path)
        print(f"MPTCP v1 demo: {len(raws)} packets, keys A={keys['key_a']:#018x} "
              f"B={keys['key_b']:#018x}, token(B)={token(keys['key_b']):#010x}\n")
        for rec in records:
            print(format_record(rec))
        problems = _verify(records, keys)
        problems += [f"packet {i}: bad TCP/IP checksum" for i, r in enumerate(raws)
                     if not checksum_ok(r)]
        for seg in segments:  # the DSS checksums, from the typed values
            for opt in seg.tcp.options:
                if isinstance(opt, Dss) and opt.checksum is not None and opt.ssn is not None \
                        and opt.dsn is not None and opt.data_level_length is not None:
                    body = seg.payload if opt.ssn else b""
                    if not dss_checksum_ok(opt.dsn, opt.ssn, opt.data_level_length, body,
                                           opt.checksum):
                        problems.append("a DSS checksum does not verify")
        tshark = shutil.which("tshark")
        if tshark:
            res = subprocess.run([tshark, "-r", str(path), "-z", "expert,warn", "-q"],
                                 capture_output=True, text=True, check=False, timeout=60)
            malformed = res.stdout.count("Malformed") + res.stdout.count("Bad checksum")
            print(f"\ntshark read the capture: exit {res.returncode}, "
                  f"{malformed} malformed/checksum warnings")
            if res.returncode or malformed:
                problems.append("tshark found problems:\n" + res.stdout + res.stderr)
        else:
            print("\ntshark not installed: skipped the independent read")
    print("\nchecks: tokens, MP_JOIN and ADD_ADDR HMACs re-derived from the decoded fields, "
          "DSS and TCP checksums verified")
    for p in problems:
        print("  PROBLEM:", p)
    print("result:", "all checks passed" if not problems else f"{len(problems)} problem(s)")
    if keep:
        print(f"capture kept in {keep}")
    return 1 if problems else 0
