"""Namespace topologies (interop.topology): creation and guaranteed teardown, address guard,
shaping (tbf) and nftables impairment rules, the canonical stack/peer path."""

from __future__ import annotations

import errno
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from interop.topology import (
    Topology,
    TopologyError,
    check_address,
    skip_reason,
    stack_and_peer,
)
from mptcp.io.driver import Driver
from mptcp.io.netns import in_netns


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def need_root() -> None:
    reason = skip_reason(tools=("ip", "nft", "tc", "sysctl"))
    if reason:
        pytest.skip(reason)


@pytest.fixture
def topo(need_root: None) -> Iterator[Topology]:
    with Topology() as t:
        yield t


@pytest.mark.parametrize("addr", ["10.0.1.1", "10.255.0.0/16", "fd00:1::1", "fd12::/64",
                                  "10.0.1.1/24"])
def test_guard_accepts_test_ranges(addr: str) -> None:
    assert check_address(addr) == addr


@pytest.mark.parametrize("addr", ["8.8.8.8", "192.168.1.1", "10.0.0.0/7", "11.0.0.1",
                                  "2001:db8::1", "fe80::1", "::1", "127.0.0.1", "junk"])
def test_guard_refuses_everything_else(addr: str) -> None:
    with pytest.raises(TopologyError):
        check_address(addr)


def test_namespaces_live_only_inside_the_block(need_root: None) -> None:
    with Topology() as topo:
        a = topo.add_ns("a")
        b = topo.add_ns("b")
        assert a.startswith("mlab-a-") and b.startswith("mlab-b-") and a != b
        listed = netns_list()
        assert a in listed and b in listed
        proc = topo.popen(a, ["sleep", "60"])
    listed = netns_list()
    assert a not in listed and b not in listed
    assert proc.poll() is not None, "the process we started was ended"


def test_teardown_when_the_body_raises(need_root: None) -> None:
    names: list[str] = []
    with pytest.raises(ZeroDivisionError), Topology() as topo:
        names.append(topo.add_ns("x"))
        topo.veth(names[0], topo.add_ns("y"), "10.0.1.1", "10.0.1.2")
        1 / 0  # noqa: B018
    assert names[0] not in netns_list()
    assert topo.namespaces == []
    with pytest.raises(TopologyError, match="torn down"):
        topo.add_ns("z")


def test_guard_applies_to_primitives(topo: Topology) -> None:
    a, b = topo.add_ns("a"), topo.add_ns("b")
    with pytest.raises(TopologyError, match="outside"):
        topo.veth(a, b, "8.8.8.8", "10.0.1.2")
    assert "veth0" not in topo.ip(a, "link", "show"), "refused before anything was created"
    topo.veth(a, b, "10.0.1.1", "10.0.1.2")
    with pytest.raises(TopologyError, match="outside"):
        topo.route(a, "8.8.8.0/24", "10.0.1.2")
    with pytest.raises(TopologyError, match="outside"):
        topo.route(a, "10.0.5.0/24", "192.168.0.1")
    with pytest.raises(TopologyError, match="not created by this topology"):
        topo.ip("some-other-ns", "link", "show")
    with pytest.raises(TopologyError, match="net"):
        topo.sysctl(a, "kernel.panic", 1)
    with pytest.raises(TopologyError, match="role"):
        topo.add_ns("Bad Role")


def test_veth_route_sysctl(topo: Topology) -> None:
    a, b, c = topo.add_ns("a"), topo.add_ns("b"), topo.add_ns("c")
    topo.veth(a, b, "10.0.1.1", "10.0.1.2", 24, "va", "vb", mtu=1400)
    topo.veth(b, c, "10.0.2.1", "10.0.2.2", 24, "vb2", "vc", mtu=1400)
    assert "mtu 1400" in topo.ip(a, "link", "show", "va")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    topo.sysctl(b, "net.ipv4.ip_forward", 1)
    assert topo.run(b, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward, "host untouched"
    topo.route(a, "10.0.2.0/24", "10.0.1.2")
    topo.route(c, "default", "10.0.2.1")
    # a kernel TCP connection across the router b
    with in_netns(c):
        srv = socket.create_server(("10.0.2.2", 7000))
    with in_netns(a):
        cli = socket.create_connection(("10.0.2.2", 7000), timeout=5)
    conn, peer = srv.accept()
    assert peer[0] == "10.0.1.1"
    for s in (cli, conn, srv):
        s.close()


def test_tbf_and_nft_rules_are_installed(topo: Topology) -> None:
    a, b = topo.add_ns("a"), topo.add_ns("b")
    topo.veth(a, b, "10.0.1.1", "10.0.1.2")
    topo.tbf(a, "veth0", 20_000_000, latency=0.02)
    qdisc = topo.run(a, ["tc", "qdisc", "show", "dev", "veth0"]).stdout
    assert "tbf" in qdisc and "20Mbit" in qdisc
    topo.nft_loss(a, "veth0", 5)
    topo.nft_ce(a, "veth0", 2.5)
    rules = topo.run(a, ["nft", "list", "ruleset"]).stdout
    assert "hook egress" in rules and 'device "veth0"' in rules
    assert "numgen random mod 10000 < 500" in rules and "drop" in rules
    assert "numgen random mod 10000 < 250" in rules and "ecn set ce" in rules
    topo.nft_loss(a, "veth0", 7)  # replaces, does not add a second rule
    rules = topo.run(a, ["nft", "list", "ruleset"]).stdout
    assert "< 700" in rules and "< 500" not in rules
    topo.nft_loss(a, "veth0", 0)
    topo.nft_ce(a, "veth0", 0)
    assert "numgen" not in topo.run(a, ["nft", "list", "ruleset"]).stdout
    with pytest.raises(TopologyError):
        topo.nft_loss(a, "veth0", 101)
    with pytest.raises(TopologyError):
        topo.tbf(a, "veth0", 0)


def test_full_loss_blocks_and_no_loss_passes(topo: Topology) -> None:
    a, b = topo.add_ns("a"), topo.add_ns("b")
    topo.veth(a, b, "10.0.1.1", "10.0.1.2")
    with in_netns(b):
        srv = socket.create_server(("10.0.1.2", 7001))
    with in_netns(a):  # resolves the neighbour while nothing is lost
        socket.create_connection(("10.0.1.2", 7001), timeout=5).close()
    srv.accept()[0].close()
    topo.nft_loss(a, "veth0", 100)
    with in_netns(a):
        cli = socket.socket()
    cli.setblocking(False)
    assert cli.connect_ex(("10.0.1.2", 7001)) == errno.EINPROGRESS
    time.sleep(0.3)
    assert cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    with pytest.raises(BlockingIOError):
        srv.setblocking(False)
        srv.accept()
    assert "packets 0 " not in topo.run(a, ["nft", "list", "ruleset"]).stdout
    cli.close()
    topo.nft_loss(a, "veth0", 0)
    with in_netns(a):
        cli = socket.create_connection(("10.0.1.2", 7001), timeout=5)
    cli.close()
    srv.close()


@pytest.mark.parametrize("driver", ["tun", "raw"])
@pytest.mark.parametrize("ipv6", [False, True], ids=["v4", "v6"])
def test_stack_and_peer(topo: Topology, driver: str, ipv6: bool) -> None:
    path = stack_and_peer(topo, driver=driver, ipv6=ipv6)  # type: ignore[arg-type]
    assert path.stack_ns in topo.namespaces and path.peer_ns in topo.namespaces
    assert "10.0.1.1/24" in topo.ip(path.stack_ns, "addr", "show", "veth0")
    assert "10.0.1.2/24" in topo.ip(path.peer_ns, "addr", "show", "veth0")
    if driver == "tun":
        assert (path.stack_addr, path.tun_kernel_addr) == (
            ("fd00:2::2", "fd00:2::1") if ipv6 else ("10.0.2.2", "10.0.2.1"))
        assert "10.0.2.0/24 via 10.0.1.1" in topo.ip(path.peer_ns, "route", "show")
        fwd = topo.run(path.stack_ns, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout
        assert fwd.strip() == "1"
    else:
        assert path.stack_addr == ("fd00:1::1" if ipv6 else "10.0.1.1")
        assert path.tun_kernel_addr is None
    assert path.peer_addr == ("fd00:1::2" if ipv6 else "10.0.1.2")
    if ipv6:
        assert "fd00:1::2/64" in topo.ip(path.peer_ns, "addr", "show", "veth0")
    with path.make_driver() as drv:
        assert isinstance(drv, Driver)
        assert drv.mtu == 1500
        if driver == "tun":
            assert path.tun_dev in topo.ip(path.stack_ns, "link", "show")
    # the veth carries kernel TCP between S and P
    fam = socket.AF_INET6 if ipv6 else socket.AF_INET
    s_addr = path.stack_addr6 if ipv6 else path.stack_addr4
    if driver == "tun":
        s_addr = "fd00:1::1" if ipv6 else "10.0.1.1"
    with in_netns(path.stack_ns):
        srv = socket.create_server((s_addr, 7002), family=fam)
    with in_netns(path.peer_ns):
        cli = socket.create_connection((s_addr, 7002), timeout=5)
    srv.accept()[0].close()
    cli.close()
    srv.close()


def test_offloads(topo: Topology) -> None:
    from pyroute2.ethtool import Ethtool

    a, b = topo.add_ns("a"), topo.add_ns("b")
    topo.veth(a, b, "10.0.1.1", "10.0.1.2")
    with in_netns(a):
        eth = Ethtool()
    try:
        assert eth.get_features("veth0").features["tx-tcp-segmentation"].enable
        topo.offloads(a, "veth0", tso=False, gso=False)
        feats = eth.get_features("veth0").features
        assert not feats["tx-tcp-segmentation"].enable
        assert not feats["tx-generic-segmentation"].enable
    finally:
        eth.close()
    with pytest.raises(TopologyError):
        topo.offloads(a, "nosuchdev", tso=False)
