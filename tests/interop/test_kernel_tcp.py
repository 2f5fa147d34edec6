"""Our userspace TCP against the Linux kernel's, in network namespaces (root).

Topology (:func:`interop.topology.stack_and_peer`): our stack in namespace S behind a TUN
device (virtio-net offloads on) or on S's veth through raw sockets, the kernel peer
(:mod:`interop.linux_peer`) in namespace P.  Our side runs the experimenter CLI
(``mptcp-lab connect`` / ``serve``) in S, so the CLI is what is tested.  Every transfer is
duplex -- 100 MB each way at the same time -- and both ends' SHA-256 must match what the other
sent (the seeded pattern of :mod:`interop.payload`).

Conditions: clean; 1 % random loss on both veth egresses (nftables ``numgen``; segmentation
offloads off on the veths and our super-segments off, so a drop is one wire packet); 10 Mbit/s
tbf on both egresses.  Plus: the kernel of S never resets a raw-socket connection (its
``Tcp: OutRsts`` stays 0 and our stack sees no RST), and pcaps written by the stack read
cleanly in tshark.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from interop.linux_peer import LinuxPeer, PeerResult
from interop.our_peer import start_on_path
from interop.payload import expected_sha256
from interop.topology import Path, Topology, skip_reason, stack_and_peer

MB100 = 100_000_000


def _skip(tools: tuple[str, ...] = ("ip", "nft")) -> None:
    reason = skip_reason(tun=True, tools=tools)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def topo() -> Iterator[Topology]:
    _skip()
    with Topology() as t:
        yield t


def _port() -> int:
    return 20000 + secrets.randbelow(20000)


def _snmp_tcp(path: Path) -> dict[str, int]:
    out = subprocess.run(["ip", "netns", "exec", path.stack_ns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split()[1:] for line in out.splitlines() if line.startswith("Tcp:")]
    return dict(zip(rows[0], (int(x) for x in rows[1]), strict=True))


def _duplex(path: Path, *, ours_role: str, nbytes: int, timeout: float,
            extra: tuple[str, ...] = (), pcap: str | None = None, offload: bool = True,
            port: int | None = None, kernel_mptcp: bool = False,
            ) -> tuple[PeerResult, PeerResult, dict[str, Any]]:
    """``nbytes`` each way at once between our stack and the kernel; returns (ours, kernel,
    our raw done event)."""
    port = port or _port()
    seed_ours, seed_kernel = 11, 22
    if ours_role == "client":
        with LinuxPeer.start(path.peer_ns, "server", host=path.peer_addr, port=port,
                             mode="duplex", nbytes=nbytes, seed=seed_kernel,
                             timeout=timeout, mptcp=kernel_mptcp) as k:
            k.wait_listening()
            with start_on_path(path, "client", port=port, mode="duplex", nbytes=nbytes,
                               seed=seed_ours, timeout=timeout, extra=extra, pcap=pcap,
                               offload=offload) as o:
                ours = o.result(timeout + 30)
                done = o.done_event or {}
            kernel = k.result(timeout + 30)
    else:
        with start_on_path(path, "server", port=port, mode="duplex", nbytes=nbytes,
                           seed=seed_ours, timeout=timeout, extra=extra, pcap=pcap,
                           offload=offload) as o:
            o.wait_listening(30.0)
            with LinuxPeer.start(path.peer_ns, "client", host=path.stack_addr, port=port,
                                 mode="duplex", nbytes=nbytes, seed=seed_kernel,
                                 timeout=timeout, mptcp=kernel_mptcp) as k:
                kernel = k.result(timeout + 30)
            ours = o.result(timeout + 30)
            done = o.done_event or {}
    assert ours.error is None, (ours.error, ours.stderr[-2000:])
    assert kernel.error is None, (kernel.error, kernel.stderr[-2000:])
    assert ours.bytes_sent == kernel.bytes_received == nbytes
    assert kernel.bytes_sent == ours.bytes_received == nbytes
    assert kernel.sha256_received == ours.sha256_sent == expected_sha256(seed_ours, nbytes)
    assert ours.sha256_received == kernel.sha256_sent == expected_sha256(seed_kernel, nbytes)
    return ours, kernel, done


# ------------------------------------------------------------------------------ clean -----
@pytest.mark.rfc("9293", "3.10")
@pytest.mark.parametrize("driver", ["tun", "raw"])
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_100mb_each_way_with_the_kernel(topo: Topology, driver: str, ours_role: str) -> None:
    path = stack_and_peer(topo, driver=driver)  # type: ignore[arg-type]
    _, _, done = _duplex(path, ours_role=ours_role, nbytes=MB100, timeout=120)
    assert done["mib"].get("TcpInCsumErrors", 0) == 0
    if driver == "raw":
        # RFC 9293 §3.10.7.1 would have the kernel of S reset every segment of ours: the
        # driver's nftables set keeps it away, so it sent no RST at all
        assert _snmp_tcp(path)["OutRsts"] == 0
        assert done["mib"].get("TcpExtTCPAbortOnData", 0) == 0
        assert "Reset" not in str(done.get("error"))


# ------------------------------------------------------------------------------ loss ------
@pytest.mark.rfc("9293", "3.8.1")
@pytest.mark.parametrize("driver", ["tun", "raw"])
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_100mb_each_way_with_1pct_loss(topo: Topology, driver: str, ours_role: str) -> None:
    path = stack_and_peer(topo, driver=driver)  # type: ignore[arg-type]
    for ns, dev in ((path.stack_ns, path.stack_dev), (path.peer_ns, path.peer_dev)):
        topo.offloads(ns, dev, tso=False, gso=False)  # one drop = one wire packet
        topo.nft_loss(ns, dev, 1.0)
    _, _, done = _duplex(path, ours_role=ours_role, nbytes=MB100, timeout=240,
                            extra=("--gso-size", "0"))
    mib = done["mib"]
    assert mib.get("TcpRetransSegs", 0) > 0  # losses really happened and were repaired
    for ns in (path.stack_ns, path.peer_ns):
        out = topo.run(ns, ["nft", "list", "ruleset"]).stdout
        rule = out.split("numgen", 1)[1].split("\n")[0]  # "... counter packets N bytes M drop"
        assert "drop" in rule and int(rule.split("packets ")[1].split()[0]) > 100, rule


# ------------------------------------------------------------------------------ shaping ---
@pytest.mark.rfc("9293", "3.8.6")
@pytest.mark.parametrize("driver", ["tun", "raw"])
@pytest.mark.parametrize("ours_role", ["client", "server"])
def test_100mb_each_way_through_10mbit_tbf(topo: Topology, driver: str, ours_role: str
                                           ) -> None:
    if shutil.which("tc") is None:
        pytest.skip("needs tc (iproute2)")
    path = stack_and_peer(topo, driver=driver)  # type: ignore[arg-type]
    for ns, dev in ((path.stack_ns, path.stack_dev), (path.peer_ns, path.peer_dev)):
        topo.tbf(ns, dev, 10_000_000, latency=0.05)
    ours, kernel, _ = _duplex(path, ours_role=ours_role, nbytes=MB100, timeout=240)
    # The shaper sets the pace: at most 10 Mbit/s each way (80 s for 100 MB).  Duplex through
    # two full drop-tail queues costs some of it (each side's ACKs wait behind its data: one
    # way alone reaches 9.5 of 10 Mbit/s in both directions; duplex 6.7-9.5), hence the floor.
    each_way = MB100 * 8 / ours.seconds
    assert 5e6 < each_way < 10.5e6, each_way
    assert 5e6 < MB100 * 8 / kernel.seconds < 10.5e6


# ------------------------------------------------------------------------------ pcap ------
@pytest.mark.tshark
@pytest.mark.parametrize("driver", ["tun", "raw"])
def test_stack_pcap_reads_cleanly_in_tshark(topo: Topology, driver: str,
                                            tmp_path: Any) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    path = stack_and_peer(topo, driver=driver)  # type: ignore[arg-type]
    pcap = str(tmp_path / "ours.pcap")
    port = _port()
    _duplex(path, ours_role="client", nbytes=3_000_000, timeout=60, pcap=pcap, port=port)
    assert os.path.getsize(pcap) > 6_000_000
    # only IP and TCP are judged: the payload (random bytes) is decoded as plain data, or
    # heuristic dissectors (e.g. Thrift) would report "errors" in bytes that are no protocol
    only_tcp = ["-d", f"tcp.port=={port},data"]
    fields = subprocess.run(
        ["tshark", "-n", "-r", pcap, *only_tcp, "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-e", "frame.number",
         "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "_ws.malformed",
         "-e", "_ws.expert.severity", "-e", "tcp.len"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(fields) > 100
    tcp_bytes = 0
    for line in fields:
        _, tstat, istat, malformed, severity, tlen = (line.split("\t") + [""] * 6)[:6]
        assert malformed == "", line
        # error-level expert info (checksum errors, malformed) has severity 8388608
        assert "8388608" not in severity, line
        if not tlen:
            continue  # not TCP (the TUN's ICMPv6 router solicitation)
        assert tstat == "1", line  # 0 = bad, 1 = good, 2 = unverified
        assert istat in ("", "1"), line  # IPv6 has no header checksum
        tcp_bytes += int(tlen)
    assert tcp_bytes >= 6_000_000  # every payload byte in and out is in the file


def test_namespaces_are_removed_when_a_test_body_fails() -> None:
    _skip()
    names: list[str] = []
    with pytest.raises(RuntimeError), Topology() as t:
        path = stack_and_peer(t, driver="tun")
        names += [path.stack_ns, path.peer_ns]
        raise RuntimeError("boom")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert names and not any(n in listed for n in names)



