"""The two-path interop infrastructure, proven with Linux MPTCP on both ends (root).

``two_paths(kernel_both=True)``: namespaces S and P joined by two veth pairs (path 1 veth0
10.0.1.0/24, path 2 veth1 10.0.11.0/24, each direction shaped to 100 Mbit/s so that one path
cannot carry the transfer alone); a kernel MPTCP client (``interop.linux_peer``) in S, a kernel
MPTCP server in P; the in-kernel path managers driven by ``interop.linux_pm``.  Checked:

- (a) a ``subflow`` endpoint on S's path-2 address: two subflows, both carry data (per-subflow
  ``MPTCP_FULL_INFO`` report of both ends, and the veth byte counters), IPv4 and IPv6
  (RFC 8684 §3.2);
- (b) a ``signal`` endpoint on P's path-2 address, with and without a port: the client learns
  it (ADD_ADDR, §3.4.1) and joins it;
- (c) path 2 black-holed mid-transfer: the transfer completes; the progress events give the
  time from the black hole to resumed progress (printed; ``pytest -s``) (§3.3.6);
- (d) ``endpoint_set_backup`` makes the kernel send MP_PRIO (§3.3.8) and ``endpoint_del``
  REMOVE_ADDR (§3.4.2): the MIB counters of both namespaces (``/proc/net/netstat``
  ``MPTcpExt``) say so.

Plus the path-manager API, the routing of both modes of ``two_paths`` (in TUN mode with our
stack's TCP end to end: the path is the one of our address), ``Topology.blackhole`` and the
stall analysis (``progress_stall``, no privileges needed).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from interop import linux_pm as pm
from interop.linux_peer import LinuxPeer, PeerResult
from interop.topology import (
    Topology,
    TopologyError,
    TwoPaths,
    progress_stall,
    skip_reason,
    two_paths,
)
from mptcp.io.netns import in_netns
from tests.interop.test_kernel_mptcp import _netstat

RATE = 100_000_000  # bit/s per path and direction
MB = 1_000_000


@pytest.fixture
def topo() -> Iterator[Topology]:
    reason = skip_reason(tools=("ip", "nft", "tc", "sysctl"))
    if reason:
        pytest.skip(reason)
    with Topology() as t:
        yield t


def _kernel_pair(topo: Topology, *, ipv6: bool = False) -> TwoPaths:
    tp = two_paths(topo, ipv6=ipv6, kernel_both=True, rate_bit=RATE)
    for ns in (tp.stack_ns, tp.peer_ns):
        topo.sysctl(ns, "net.mptcp.enabled", 1)
        pm.limits(ns, subflows=2, add_addr_accepted=2)
    return tp


def _transfer(tp: TwoPaths, *, nbytes: int = 0, duration: float | None = None,
              progress: float | None = None, during: Any = None, wildcard: bool = False,
              ) -> tuple[LinuxPeer, PeerResult, LinuxPeer, PeerResult]:
    """A kernel MPTCP client in S sends to a kernel MPTCP sink in P (its path-1 address;
    ``wildcard``: the server listens on all addresses); ``during(client, server)`` runs while
    the transfer is under way."""
    host = tp.peer_addrs[0]
    listen = ("::" if tp.ipv6 else "0.0.0.0") if wildcard else host
    with LinuxPeer.start(tp.peer_ns, "server", host=listen, port=0, mode="sink", mptcp=True,
                         timeout=20, progress_interval=progress) as srv:
        port = srv.wait_listening()
        with LinuxPeer.start(tp.stack_ns, "client", host=host, port=port, mode="source",
                             nbytes=nbytes, duration=duration, seed=11, mptcp=True, timeout=20,
                             progress_interval=progress) as cli:
            if during is not None:
                during(cli, srv)
            rc = cli.result(25)
            rs = srv.result(25)
    for r in (rc, rs):
        assert r.error is None and r.exit_code == 0, (r.error, r.stderr[-2000:])
        assert r.mptcp is not None and r.mptcp["is_mptcp"] and not r.mptcp["fallback"]
    assert rs.bytes_received == rc.bytes_sent > 0
    assert rs.sha256_received == rc.sha256_sent
    if nbytes:
        assert rs.bytes_received == nbytes
    return cli, rc, srv, rs


def _tx_bytes(topo: Topology, ns: str, dev: str) -> int:
    return int(topo.run(ns, ["cat", f"/sys/class/net/{dev}/statistics/tx_bytes"]).stdout)


def _split(tp: TwoPaths, subflows: list[dict[str, Any]], field: str, *, ours: str = "local"
           ) -> dict[int, int]:
    """Bytes per path (1, 2) of a per-subflow report; the path is S's address of the subflow
    (``ours``: "local" for S's report, "remote" for P's)."""
    split = {1: 0, 2: 0}
    for sf in subflows:
        path = tp.path_of(sf[ours])
        assert path is not None, sf
        split[path] += sf[field]
    return split


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


# -- (a) a subflow endpoint: two subflows, both carry data -------------------------------------

@pytest.mark.rfc("8684", "3.2")
@pytest.mark.parametrize("ipv6", [False, True], ids=["v4", "v6"])
def test_subflow_endpoint_uses_both_paths(topo: Topology, ipv6: bool) -> None:
    tp = _kernel_pair(topo, ipv6=ipv6)
    ep = pm.endpoint_add(tp.stack_ns, tp.stack_addrs[1], dev=tp.stack_devs[1],
                         flags={"subflow"})
    assert [(e.id, set(e.flags)) for e in pm.endpoints(tp.stack_ns)] == [(ep, {"subflow"})]
    tx0 = [_tx_bytes(topo, tp.stack_ns, d) for d in tp.stack_devs]
    _, rc, _, rs = _transfer(tp, nbytes=20 * MB)
    tx = [_tx_bytes(topo, tp.stack_ns, d) - b for d, b in zip(tp.stack_devs, tx0, strict=True)]
    assert rc.subflows is not None and rs.subflows is not None, (rc.subflows_error,
                                                                 rs.subflows_error)
    assert rc.subflows_max == 2 and rs.subflows_max == 2
    assert len(rc.subflows) == len(rs.subflows) == 2
    assert {tp.path_of(sf["local"]) for sf in rc.subflows} == {1, 2}
    sent = _split(tp, rc.subflows, "bytes_sent")
    received = _split(tp, rs.subflows, "bytes_received", ours="remote")
    print(f"\nper-path bytes ({'v6' if ipv6 else 'v4'}): client sent {sent}, server received "
          f"{received}, veth tx {tx}")
    for path in (1, 2):
        assert sent[path] >= 2 * MB and received[path] >= 2 * MB, (sent, received)
        assert tx[path - 1] >= received[path], tx  # what the subflow carried crossed its veth
    assert sum(received.values()) >= 20 * MB  # plus SYN/FIN sequence space


# -- (b) a signal endpoint: the client joins P's announced address -----------------------------

@pytest.mark.rfc("8684", "3.4.1")
@pytest.mark.parametrize("port", [None, 10099], ids=["same-port", "own-port"])
def test_signal_endpoint_is_joined(topo: Topology, port: int | None) -> None:
    tp = _kernel_pair(topo)
    pm.endpoint_add(tp.peer_ns, tp.peer_addrs[1], flags={"signal"}, port=port)
    before = [_netstat(ns) for ns in (tp.stack_ns, tp.peer_ns)]
    # the join goes to the server's port on P's path-2 address (without an own port): the
    # listening socket must accept there too, so it listens on the wildcard address
    _, rc, _, _ = _transfer(tp, nbytes=20 * MB, wildcard=port is None)
    ds, dp = (_delta(b, _netstat(ns)) for b, ns in zip(before, (tp.stack_ns, tp.peer_ns),
                                                       strict=True))
    assert rc.subflows_max == 2 and rc.subflows is not None, (rc.subflows, rc.subflows_error)
    remotes = {sf["remote"] for sf in rc.subflows}
    joined = [sf for sf in rc.subflows if sf["remote"].startswith(f"{tp.peer_addrs[1]}:")]
    assert len(joined) == 1, remotes
    if port is not None:
        assert joined[0]["remote"] == f"{tp.peer_addrs[1]}:{port}"
        assert dp.get("MPJoinPortSynRx", 0) >= 1 and ds.get("PortAdd", 0) >= 1, (ds, dp)
    assert dp.get("AddAddrTx", 0) >= 1 and ds.get("AddAddr", 0) >= 1, (ds, dp)
    assert dp.get("MPJoinSynRx", 0) >= 1 and ds.get("MPJoinSynAckRx", 0) >= 1, (ds, dp)
    assert joined[0]["bytes_sent"] >= MB
    assert rc.mptcp is not None and rc.mptcp["add_addr_accepted"] == 1
    print(f"\nsubflows: {[(sf['local'], sf['remote'], sf['bytes_sent']) for sf in rc.subflows]}")


# -- (c) black-holing path 2 mid-transfer ------------------------------------------------------

@pytest.mark.rfc("8684", "3.3.6")
def test_blackholed_path_transfer_completes_and_stall_is_measured(topo: Topology) -> None:
    tp = _kernel_pair(topo)
    pm.endpoint_add(tp.stack_ns, tp.stack_addrs[1], dev=tp.stack_devs[1], flags={"subflow"})
    marks: dict[str, float] = {}

    def cut_path_2(cli: LinuxPeer, srv: LinuxPeer) -> None:
        time.sleep(0.8)  # both subflows busy by now (checked below)
        marks["t"] = topo.blackhole(tp.stack_ns, tp.stack_devs[1])

    cli, rc, srv, _ = _transfer(tp, nbytes=50 * MB, progress=0.02, during=cut_path_2)
    t_cut = marks["t"]
    rx = progress_stall(srv.events, t_cut, "bytes_in")
    tx = progress_stall(cli.events, t_cut, "bytes_out")
    at_cut = [ev for ev in srv.progress() if ev["t"] <= t_cut]
    assert at_cut and at_cut[-1]["subflows"] == 2, at_cut[-1:]
    assert 0 < rx.at_since < 40 * MB, rx
    assert rx.final > rx.at_since and rx.resumed_after is not None, rx
    assert rx.resumed_after < 10.0 and rx.rate_after > 0.25 * rx.rate_before, rx
    seen = {tp.path_of(sf["local"]): sf for sf in rc.subflows_seen or []}
    assert seen[2]["total_retrans"] >= 1 or seen[2]["state_name"] != "ESTABLISHED", seen[2]
    sent = _split(tp, rc.subflows_seen or [], "bytes_acked")
    print(f"\nblack hole on path 2 at {rx.at_since / MB:.1f} MB: receiver progress resumed "
          f"after {rx.resumed_after:.3f} s (longest gap {rx.longest_gap:.3f} s; "
          f"{rx.rate_before * 8e-6:.0f} -> {rx.rate_after * 8e-6:.0f} Mbit/s); sender acked "
          f"progress resumed after {tx.resumed_after or 0:.3f} s; bytes acked per path {sent}; "
          f"transfer {rc.seconds:.2f} s; S MIB {_delta({}, _netstat(tp.stack_ns))}")


# -- (d) MP_PRIO and REMOVE_ADDR from endpoint changes -----------------------------------------

@pytest.mark.rfc("8684", "3.4.2")
def test_backup_change_sends_mp_prio_and_delete_sends_remove_addr(topo: Topology) -> None:
    tp = _kernel_pair(topo)
    ep = pm.endpoint_add(tp.stack_ns, tp.stack_addrs[1], dev=tp.stack_devs[1],
                         flags={"subflow"})
    before = [_netstat(ns) for ns in (tp.stack_ns, tp.peer_ns)]
    steps: dict[str, Any] = {}

    def change(cli: LinuxPeer, srv: LinuxPeer) -> None:
        time.sleep(0.6)
        steps["backup"] = pm.endpoint_set_backup(tp.stack_ns, ep, True)
        time.sleep(0.1)
        steps["prio"] = [_delta(b, _netstat(ns))
                         for b, ns in zip(before, (tp.stack_ns, tp.peer_ns), strict=True)]
        time.sleep(0.5)
        pm.endpoint_del(tp.stack_ns, ep)

    _, rc, _, _ = _transfer(tp, duration=2.0, during=change)
    ds, dp = (_delta(b, _netstat(ns)) for b, ns in zip(before, (tp.stack_ns, tp.peer_ns),
                                                       strict=True))
    print(f"\nS MIB delta {ds}\nP MIB delta {dp}")
    assert "backup" in steps["backup"].flags
    prio_s, prio_p = steps["prio"]
    assert prio_s.get("MPPrioTx", 0) >= 1 and prio_p.get("MPPrioRx", 0) >= 1, steps["prio"]
    assert ds.get("RmAddrTx", 0) >= 1 and ds.get("RmSubflow", 0) >= 1, ds  # S closes its own
    assert dp.get("RmAddr", 0) >= 1, dp
    assert pm.endpoints(tp.stack_ns) == []
    assert rc.subflows_max == 2 and rc.subflows is not None
    assert {tp.path_of(sf["local"]) for sf in rc.subflows} == {1}, rc.subflows  # path 2 gone
    assert {tp.path_of(sf["local"]) for sf in rc.subflows_seen or []} == {1, 2}


# -- the pieces ---------------------------------------------------------------------------------

def test_path_manager_api(topo: Topology) -> None:
    tp = two_paths(topo, ipv6=True, kernel_both=True)
    s = tp.stack_ns
    assert pm.limits(s, subflows=3, add_addr_accepted=4) == pm.Limits(3, 4)
    assert pm.limits(s) == pm.Limits(3, 4)
    a = pm.endpoint_add(s, "10.0.11.1", dev="veth1", flags={"subflow", "backup"})
    b = pm.endpoint_add(s, "fd00:11::1", flags={"signal"}, port=4000)
    c = pm.endpoint_add(s, "10.0.1.1", id=42, flags={"subflow", "fullmesh"})
    assert c == 42 and len({a, b, c}) == 3
    eps = {e.id: e for e in pm.endpoints(s)}
    with in_netns(s):
        veth1 = socket.if_nametoindex("veth1")
    assert eps[a].addr == "10.0.11.1" and eps[a].flags == {"subflow", "backup"}
    assert eps[a].ifindex == veth1
    assert eps[b].addr == "fd00:11::1" and eps[b].port == 4000 and eps[b].flags == {"signal"}
    assert "10.0.11.1 id" in topo.ip(s, "mptcp", "endpoint", "show")  # ip(8) agrees
    assert pm.endpoint_set_backup(s, "10.0.11.1", False).flags == {"subflow"}
    assert pm.endpoint_set_flags(s, 42, backup=True).flags == {"subflow", "fullmesh", "backup"}
    assert pm.endpoint_set_flags(s, 42, fullmesh=False).flags == {"subflow", "backup"}
    pm.endpoint_del(s, "fd00:11::1")
    assert sorted(e.id for e in pm.endpoints(s)) == sorted([a, 42])
    with pytest.raises(pm.LinuxPmError) as err:
        pm.endpoint_add(s, "10.0.1.1", flags={"subflow"})  # already there
    assert err.value.errno is not None
    with pytest.raises(pm.LinuxPmError):
        pm.endpoint_del(s, 99)
    with pytest.raises(pm.LinuxPmError, match="flag"):
        pm.endpoint_add(s, "10.0.11.1", flags={"bogus"})
    with pytest.raises(pm.LinuxPmError):
        pm.endpoints("mlab-no-such-namespace")
    pm.flush(s)
    assert pm.endpoints(s) == []
    assert pm.limits(tp.peer_ns) != pm.Limits(3, 4)  # P untouched by S's calls
    assert "subflow" not in topo.ip(tp.peer_ns, "mptcp", "endpoint", "show")


def test_two_paths_routing_and_blackhole(topo: Topology) -> None:
    tun = two_paths(topo, ipv6=True)
    s, p = tun.stack_ns, tun.peer_ns
    assert tun.stack_addrs == ("fd00:2::2", "fd00:3::2")
    assert tun.paths[1].stack_addr4 == "10.0.3.2" and tun.paths[1].peer_addr4 == "10.0.11.2"
    assert set(tun.tun_addresses) == {("10.0.2.1", 24), ("fd00:2::1", 64),
                                      ("10.0.3.1", 24), ("fd00:3::1", 64)}
    with tun.make_driver() as drv:  # the TUN device exists while the routes are checked
        assert drv.mtu == 1500
        for src, dst, dev in (("10.0.3.2", "10.0.1.2", "veth1"),
                              ("10.0.2.2", "10.0.11.2", "veth0"),
                              ("fd00:3::2", "fd00:1::2", "veth1")):
            route = topo.ip(s, "route", "get", dst, "from", src, "iif", tun.tun_dev)
            assert f"dev {dev}" in route, route  # path decided by our (source) address
        for dst, dev in (("10.0.3.2", "veth1"), ("10.0.2.2", "veth0"), ("fd00:3::2", "veth1")):
            assert f"dev {dev}" in topo.ip(p, "route", "get", dst), dst
    assert tun.path_of("10.0.3.2:5000") == 2 and tun.path_of("[fd00:2::2]:1") == 1
    assert tun.path_of("10.0.1.2") is None
    assert tun.as_path(2).stack_addr == "fd00:3::2" and tun.as_path(2).driver == "tun"

    kb = two_paths(topo, kernel_both=True)
    with pytest.raises(TopologyError, match="TUN"):
        kb.make_driver()
    with in_netns(kb.peer_ns):
        srv = socket.create_server(("10.0.1.2", 7100))
    srv.settimeout(2)

    def connect(src: str) -> bool:
        with in_netns(kb.stack_ns):
            c = socket.socket()
        with c:
            c.settimeout(0.5)
            c.bind((src, 0))
            try:
                c.connect(("10.0.1.2", 7100))
            except OSError:
                return False
            srv.accept()[0].close()
            return True

    with srv:
        assert connect("10.0.1.1") and connect("10.0.11.1")
        topo.blackhole(kb.stack_ns, "veth1")
        topo.blackhole(kb.stack_ns, "veth1")  # idempotent
        rules = topo.run(kb.stack_ns, ["nft", "list", "ruleset"]).stdout
        assert "hook egress" in rules and "hook ingress" in rules
        assert connect("10.0.1.1") and not connect("10.0.11.1")  # only path 2 is dark
        topo.unblackhole(kb.stack_ns, "veth1")
        assert connect("10.0.11.1")
        topo.unblackhole(kb.stack_ns, "veth1")  # no-op


def _ev(t: float, v: int) -> dict[str, Any]:
    return {"event": "progress", "t": t, "bytes_in": v, "bytes_out": v}


def test_progress_stall_analysis() -> None:
    # 10 MB/s, cut at t=1.0, progress carries on 0.1 s, a trickle until 1.6, then 5 MB/s
    evs: list[dict[str, Any]] = []
    v = 0
    for i in range(1, 301):
        t = i * 0.01
        if t <= 1.1:
            v += 100_000
        elif t < 1.6:
            v += 10_000 if i % 20 == 0 else 0
        elif t <= 2.5:
            v += 50_000
        evs.append(_ev(t, v))
    evs.append({"event": "done"})
    st = progress_stall(evs, 1.0)
    assert st.at_since == 10_000_000 and st.final == v
    assert st.resumed_after == pytest.approx(0.6, abs=0.02), st
    assert st.longest_gap == pytest.approx(0.2, abs=0.02)
    assert st.rate_before == pytest.approx(10e6, rel=0.05)
    assert st.rate_after == pytest.approx(5e6, rel=0.05)
    smooth = [_ev(i * 0.01, i * 1000) for i in range(1, 200)]
    assert progress_stall(smooth, 1.0).resumed_after == 0.0  # never stalled
    dead = [_ev(i * 0.01, min(i, 100) * 1000) for i in range(1, 200)]
    assert progress_stall(dead, 1.0).resumed_after is None
    assert progress_stall([], 1.0).resumed_after is None


@pytest.mark.rfc("9293", "3.10")
@pytest.mark.parametrize("ipv6", [False, True], ids=["v4", "v6"])
def test_tun_mode_our_tcp_takes_the_path_of_its_address(topo: Topology, ipv6: bool) -> None:
    """TUN mode end to end with our stack's (single-path) TCP: from our path-2 address to P's
    path-1 address, both directions cross veth1 and nothing of it veth0."""
    import dataclasses

    from tests.interop.test_kernel_tcp import _duplex

    if skip_reason(tun=True):
        pytest.skip(str(skip_reason(tun=True)))
    tp = two_paths(topo, ipv6=ipv6)
    cross = dataclasses.replace(tp.as_path(2), peer_addr=tp.peer_addrs[0])
    tx0 = {(ns, d): _tx_bytes(topo, ns, d) for ns in (tp.stack_ns, tp.peer_ns)
           for d in ("veth0", "veth1")}
    _duplex(cross, ours_role="client", nbytes=5 * MB, timeout=20)
    tx = {k: _tx_bytes(topo, *k) - v for k, v in tx0.items()}
    assert tx[(tp.stack_ns, "veth1")] > 5 * MB and tx[(tp.peer_ns, "veth1")] > 5 * MB, tx
    assert tx[(tp.stack_ns, "veth0")] < 100_000 and tx[(tp.peer_ns, "veth0")] < 100_000, tx
