"""Multipath MPTCP between our stack and the Linux kernel over two paths (root).

Topology (:func:`interop.topology.two_paths`, TUN mode): our stack (``mptcp-lab --mptcp``, a
subprocess) in namespace S behind one TUN device with addresses 10.0.2.2 (path 1) and 10.0.3.2
(path 2); the kernel peer (:mod:`interop.linux_peer`) in P with 10.0.1.2 (path 1, veth0) and
10.0.11.2 (path 2, veth1); S routes by our source address, so a subflow's path is the path
of our address.  Each veth direction is shaped to 100 Mbit/s (tbf), so one path cannot carry
a transfer alone and the scripted actions happen mid-transfer.  The kernel's path manager is
configured with :mod:`interop.linux_pm`.

Every test moves 50 MB each way at once (duplex) with SHA-256 checked at both ends, and checks
that both paths carried data: our per-subflow counters (``done["subflows"]``) and the kernel's
(``MPTCP_FULL_INFO``), plus both MIBs (ours in the ``done`` event, the kernel's in P's
``/proc/net/netstat``):

- (a) our client joins the kernel server's second address (``--at 0:join=``; RFC 8684 §3.2),
  or opens a subflow from our second address (``--endpoint ADDR,subflow``);
- (b) the kernel server announces its second address (``signal`` endpoint, with and without
  a port; §3.4.1) and we join it;
- (c) the kernel client opens a subflow from a ``subflow`` endpoint and our server accepts it;
- (d) our server announces its second address (``--endpoint ADDR,signal`` or ``--at
  announce=``) and the kernel client joins it;
- (e) MP_PRIO (§3.3.8) and REMOVE_ADDR (§3.4.2) from us to the kernel and from the kernel to us;
- failover (§3.3.6): one path black-holed (nftables drop) mid-transfer -- the transfer
  completes, the time from the black hole to resumed progress is printed (``pytest -s``);
  also with the surviving path a backup subflow.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from interop import linux_pm as lpm
from interop.linux_peer import LinuxPeer, PeerError, PeerResult
from interop.our_peer import OurPeer, start_on_two_paths
from interop.payload import expected_sha256
from interop.topology import Topology, TwoPaths, progress_stall, skip_reason, two_paths
from tests.interop.test_kernel_mptcp import _netstat

RATE = 100_000_000  # bit/s per path and direction
MB = 1_000_000
NBYTES = 50 * MB
PORT = 5400
SEED_OURS, SEED_KERNEL = 11, 22
WINDOW_WORKAROUND: tuple[str, ...] = ()
"""Extra options for our side (none needed since our sender keeps to the peer's data-level
window, RFC 8684 §3.3.4)."""


@pytest.fixture
def topo() -> Iterator[Topology]:
    reason = skip_reason(tun=True, tools=("ip", "nft", "tc", "sysctl"))
    if reason:
        pytest.skip(reason)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        pytest.skip("needs pyroute2 (the kernel path manager)")
    with Topology() as t:
        yield t


def _paths(topo: Topology, *, subflows: int = 2, add_addr_accepted: int = 2,
           window_workaround: bool = False, ipv6: bool = False) -> TwoPaths:
    tp = two_paths(topo, rate_bit=RATE, ipv6=ipv6)
    topo.sysctl(tp.peer_ns, "net.mptcp.enabled", 1)
    if window_workaround:  # see WINDOW_WORKAROUND
        topo.sysctl(tp.peer_ns, "net.ipv4.tcp_rmem", "4096 8388608 16777216")
    lpm.limits(tp.peer_ns, subflows=subflows, add_addr_accepted=add_addr_accepted)
    return tp


@dataclasses.dataclass
class Run:
    """What both ends reported."""

    ours: PeerResult
    done: dict[str, Any]
    our_events: list[dict[str, Any]]
    kernel: PeerResult
    kernel_events: list[dict[str, Any]]
    mib_kernel: dict[str, int]
    """The kernel namespace's MPTcpExt counters: the change over the run."""

    @property
    def mib(self) -> dict[str, int]:
        m: dict[str, int] = self.done.get("mib", {})
        return m

    def our(self, name: str) -> int:
        return int(self.mib.get(f"MPTcpExt{name}", 0))

    def actions(self) -> list[dict[str, Any]]:
        return [ev for ev in self.our_events if ev.get("event") == "action"]


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def _transfer(tp: TwoPaths, *, ours_role: str, extra: tuple[str, ...] = (),
              nbytes: int = NBYTES, kernel_host: str | None = None,
              progress: float | None = None, during: Callable[[OurPeer, LinuxPeer], None]
              | None = None, timeout: float = 30.0, workaround: bool = True,
              wait: float | None = None) -> Run:
    """``nbytes`` each way at once between our stack and the kernel; the kernel server
    listens on ``kernel_host`` (default its path-1 address), the kernel client connects to
    our path-1 address.  ``during(ours, kernel)`` runs while the transfer is under way;
    ``wait``: how long to wait for each result (default ``timeout`` + 30 s)."""
    wait = timeout + 30 if wait is None else wait
    before = _netstat(tp.peer_ns)
    more = list(extra) + (["--progress-interval", str(progress)] if progress else [])
    if workaround:
        more = [*WINDOW_WORKAROUND, *more]
    kw: dict[str, Any] = {"mode": "duplex", "nbytes": nbytes, "mptcp": True,
                          "timeout": timeout, "progress_interval": progress}
    o: OurPeer
    if ours_role == "client":
        with LinuxPeer.start(tp.peer_ns, "server", host=kernel_host or tp.peer_addrs[0],
                             port=PORT, seed=SEED_KERNEL, **kw) as k:
            k.wait_listening()
            o = start_on_two_paths(tp, "client", port=PORT, mode="duplex", nbytes=nbytes,
                                   seed=SEED_OURS, timeout=timeout, extra=more)
            with o:
                if during is not None:
                    during(o, k)
                ours = _result(o, o, k, wait, tp.peer_ns)
            kernel = _result(k, o, k, wait, tp.peer_ns)
    else:
        o = start_on_two_paths(tp, "server", port=PORT, mode="duplex", nbytes=nbytes,
                               seed=SEED_OURS, timeout=timeout, extra=more)
        with o:
            o.wait_listening(30.0)
            with LinuxPeer.start(tp.peer_ns, "client", host=tp.stack_addrs[0], port=PORT,
                                 seed=SEED_KERNEL, **kw) as k:
                if during is not None:
                    during(o, k)
                kernel = _result(k, o, k, wait, tp.peer_ns)
            ours = _result(o, o, k, wait, tp.peer_ns)
    run = Run(ours, o.done_event or {}, list(o.events), kernel, list(k.events),
              _delta(before, _netstat(tp.peer_ns)))
    assert ours.error is None, (ours.error, ours.stderr[-3000:])
    assert kernel.error is None, (kernel.error, kernel.stderr[-3000:])
    assert ours.bytes_sent == kernel.bytes_received == nbytes
    assert kernel.bytes_sent == ours.bytes_received == nbytes
    assert kernel.sha256_received == ours.sha256_sent == expected_sha256(SEED_OURS, nbytes)
    assert ours.sha256_received == kernel.sha256_sent == expected_sha256(SEED_KERNEL, nbytes)
    mp = run.done.get("mptcp") or {}
    assert mp.get("mptcp") and mp.get("fallback") is None, mp
    assert kernel.mptcp is not None and kernel.mptcp.get("is_mptcp"), kernel.mptcp
    for act in run.actions():
        assert act["error"] is None, act
    return run


def _result(peer: OurPeer | LinuxPeer, o: OurPeer, k: LinuxPeer, wait: float,
            ns: str) -> PeerResult:
    """``peer.result(wait)``; on a time-out, with where both ends' progress last stood and
    the kernel's sockets (``ss``) and MPTCP counters in namespace ``ns``."""
    try:
        return peer.result(wait)
    except PeerError as e:
        last = [next((ev for ev in reversed(list(p.events)) if ev.get("event") == "progress"),
                     None) for p in (o, k)]
        ss = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tinmM"], capture_output=True,
                            text=True, timeout=10).stdout
        mib = {k: v for k, v in _netstat(ns).items() if v}
        raise PeerError(f"{e}; our last progress: {last[0]}; the kernel's: {last[1]}; "
                        f"kernel sockets:\n{ss}\nkernel MPTCP MIB: {mib}") from None


def _split(tp: TwoPaths, subflows: list[dict[str, Any]], field: str, side: str,
           by: str = "ours") -> dict[int, int]:
    """Bytes per path (1, 2) of a per-subflow report.  ``side``: whose report ("ours" or
    "kernel"); ``by``: which end's address decides the path (normally ours: S routes by
    it)."""
    split = {1: 0, 2: 0}
    key = "local" if (side == "ours") == (by == "ours") else "remote"
    for sf in subflows:
        host = sf[key].rsplit(":", 1)[0].strip("[]")
        if by == "ours":
            path = tp.path_of(host)
        else:
            path = 1 + tp.peer_addrs.index(host) if host in tp.peer_addrs else None
        assert path is not None, (sf, key)
        split[path] += int(sf[field])
    return split


def _both_paths(tp: TwoPaths, run: Run, *, by: str = "ours", min_bytes: int = 2 * MB,
                directions: tuple[str, ...] = ("sent", "received")) -> dict[str, Any]:
    """Both paths carried at least ``min_bytes`` in each of ``directions`` according to our
    per-subflow counters and the kernel's; returns the splits (printed)."""
    ours = run.done.get("subflows") or []
    kern = run.kernel.subflows_seen or []
    splits = {
        "ours_sent": _split(tp, ours, "bytes_sent", "ours", by),
        "ours_received": _split(tp, ours, "bytes_received", "ours", by),
        "kernel_acked": _split(tp, kern, "bytes_acked", "kernel", by),
        "kernel_received": _split(tp, kern, "bytes_received", "kernel", by),
    }
    for path in (1, 2):
        if "sent" in directions:
            assert splits["ours_sent"][path] >= min_bytes, splits
            assert splits["kernel_received"][path] >= min_bytes, splits
        if "received" in directions:
            assert splits["ours_received"][path] >= min_bytes, splits
            assert splits["kernel_acked"][path] >= min_bytes, splits
    print(f"\nper-path bytes: {splits}")
    return splits


def _subflow_summary(run: Run) -> str:
    return "; ".join(f"{sf['local']}->{sf['remote']} lid {sf['local_id']} rid {sf['remote_id']}"
                     f" {sf['state']} sent {sf['bytes_sent']} rcvd {sf['bytes_received']}"
                     f" backup {sf['backup']}/{sf['peer_backup']} {sf['reason'] or ''}"
                     for sf in run.done.get("subflows") or [])


# -- (a) our client joins a second subflow -------------------------------------------------

@pytest.mark.rfc("8684", "3.2")
@pytest.mark.parametrize("how", ["join-second-address", "join-second-address-v6",
                                 "subflow-endpoint"])
def test_a_our_client_joins_second_path(topo: Topology, how: str) -> None:
    tp = _paths(topo, ipv6=how.endswith("v6"))
    if how.startswith("join-second-address"):  # our path-2 address to the kernel's path-2 one
        extra: tuple[str, ...] = ("--at", f"0:join={tp.stack_addrs[1]},{tp.peer_addrs[1]}")
        host = "::" if tp.ipv6 else "0.0.0.0"  # the kernel accepts joins on every address
    else:  # the PM: from our path-2 address to the kernel's initial address
        extra = ("--endpoint", f"{tp.stack_addrs[1]},subflow")
        host = tp.peer_addrs[0]
    run = _transfer(tp, ours_role="client", extra=extra, kernel_host=host)
    print(_subflow_summary(run))
    _both_paths(tp, run)
    # (received counters may exceed 1: a fresh namespace can lose a first SYN/ACK or ACK)
    assert run.our("MPJoinSynTx") == 1 and run.our("MPJoinSynAckRx") >= 1, run.mib
    assert run.mib_kernel.get("MPJoinSynRx", 0) >= 1, run.mib_kernel
    assert run.mib_kernel.get("MPJoinAckRx", 0) >= 1, run.mib_kernel
    assert run.kernel.subflows_max == 2
    remotes = {sf["remote"].rsplit(":", 1)[0].strip("[]") for sf in run.done["subflows"]}
    want = tp.peer_addrs[1] if how.startswith("join") else tp.peer_addrs[0]
    assert want in remotes, remotes


@pytest.mark.rfc("8684", "3.3.5")
def test_data_level_window_is_respected(topo: Topology) -> None:
    """Our default buffers (8 MB), the kernel's default receive buffer: the same transfer as
    (a) without :data:`WINDOW_WORKAROUND`."""
    tp = _paths(topo, window_workaround=False)
    run = _transfer(tp, ours_role="client", workaround=False, timeout=5, wait=12,
                    extra=("--at", f"0:join={tp.stack_addrs[1]},{tp.peer_addrs[1]}"),
                    kernel_host="0.0.0.0")
    assert run.mib_kernel.get("NoDSSInWindow", 0) == 0, run.mib_kernel
    _both_paths(tp, run)


# -- (b) the kernel server announces its second address; we join it ---------------------------

@pytest.mark.rfc("8684", "3.4.1")
@pytest.mark.parametrize("port", [None, 5499], ids=["same-port", "own-port"])
def test_b_kernel_signals_second_address_we_join(topo: Topology, port: int | None) -> None:
    tp = _paths(topo)
    lpm.endpoint_add(tp.peer_ns, tp.peer_addrs[1], id=7, flags={"signal"}, port=port)
    run = _transfer(tp, ours_role="client",
                    extra=("--limits", "2,2", "--pm-route", f"10.0.11.0/24={tp.stack_addrs[1]}"),
                    kernel_host="0.0.0.0" if port is None else tp.peer_addrs[0])
    print(_subflow_summary(run))
    _both_paths(tp, run)
    announced = [ev for ev in run.done["mptcp_events"] if ev["name"] == "AddressAnnounced"]
    assert [(ev["address_id"], ev["address"], ev["port"]) for ev in announced] == \
        [(7, tp.peer_addrs[1], port)], announced
    assert run.done["remote_addrs"] == {"7": [tp.peer_addrs[1], port]}, run.done["remote_addrs"]
    joined = [sf for sf in run.done["subflows"] if sf["join"]]
    assert len(joined) == 1 and joined[0]["remote_id"] == 7, joined
    assert joined[0]["local"].startswith(f"{tp.stack_addrs[1]}:")
    assert joined[0]["remote"] == f"{tp.peer_addrs[1]}:{port or PORT}", joined
    assert run.our("AddAddr") == 1 and run.our("EchoAddTx") == 1, run.mib
    assert run.our("MPJoinSynTx") == 1 and run.our("MPJoinSynAckRx") >= 1, run.mib
    k = run.mib_kernel
    assert k.get("AddAddrTx", 0) >= 1 and k.get("EchoAdd", 0) == 1, k
    assert k.get("MPJoinSynRx", 0) >= 1 and k.get("MPJoinAckRx", 0) >= 1, k
    if port is not None:
        assert k.get("MPJoinPortSynRx", 0) >= 1 and k.get("MPJoinPortAckRx", 0) >= 1, k


# -- (c) the kernel client opens a subflow from a subflow endpoint; we accept it --------------

def _route_by_kernel_address(topo: Topology, tp: TwoPaths) -> None:
    """Make P's path-2 address decide the path of a subflow to our path-1 address (both
    directions on veth1): the kernel's ``subflow`` endpoints connect to our initial address,
    so without this every such subflow would share path 1."""
    s, p = tp.stack_ns, tp.peer_ns
    net1 = f"{tp.paths[0].stack_addr4.rsplit('.', 1)[0]}.0/24"
    net_p2 = f"{tp.paths[1].peer_addr4.rsplit('.', 1)[0]}.0/24"
    topo.ip(s, "rule", "add", "pref", "100", "from", net1, "to", net_p2,
            "table", str(tp.paths[1].table))
    topo.ip(p, "route", "add", net1, "via", tp.paths[1].veth_addr4, "dev", tp.peer_devs[1],
            "table", "200")
    topo.ip(p, "rule", "add", "pref", "100", "from", tp.paths[1].peer_addr4, "table", "200")


@pytest.mark.rfc("8684", "3.2")
def test_c_kernel_client_subflow_endpoint_we_accept(topo: Topology) -> None:
    tp = _paths(topo)
    _route_by_kernel_address(topo, tp)
    lpm.endpoint_add(tp.peer_ns, tp.peer_addrs[1], dev=tp.peer_devs[1], flags={"subflow"})
    tx0 = {d: _tx_bytes(topo, tp.peer_ns, d) for d in tp.peer_devs}
    run = _transfer(tp, ours_role="server")
    tx = {d: _tx_bytes(topo, tp.peer_ns, d) - v for d, v in tx0.items()}
    print(_subflow_summary(run), f"\nP veth tx bytes {tx}")
    _both_paths(tp, run, by="kernel")
    assert all(v >= 2 * MB for v in tx.values()), tx  # really two paths
    joined = [sf for sf in run.done["subflows"] if sf["join"]]
    assert len(joined) == 1 and joined[0]["remote"].startswith(f"{tp.peer_addrs[1]}:"), joined
    assert joined[0]["local"].startswith(f"{tp.stack_addrs[0]}:{PORT}"), joined
    assert run.our("MPJoinSynRx") >= 1 and run.our("MPJoinAckRx") >= 1, run.mib
    k = run.mib_kernel
    assert k.get("MPJoinSynTx", 0) == 1 and k.get("MPJoinSynAckRx", 0) >= 1, k


def _tx_bytes(topo: Topology, ns: str, dev: str) -> int:
    return int(topo.run(ns, ["cat", f"/sys/class/net/{dev}/statistics/tx_bytes"]).stdout)


# -- (d) we announce our second address; the kernel client joins it --------------------------

@pytest.mark.rfc("8684", "3.4.1")
@pytest.mark.parametrize("how", ["signal-endpoint", "announce-with-port"])
def test_d_we_announce_kernel_joins(topo: Topology, how: str) -> None:
    tp = _paths(topo)
    port = 5498 if how == "announce-with-port" else None
    extra = (("--endpoint", f"{tp.stack_addrs[1]},signal,id=5") if port is None else
             ("--at", f"0.1:announce=5,{tp.stack_addrs[1]},{port}"))
    run = _transfer(tp, ours_role="server", extra=extra)
    print(_subflow_summary(run))
    _both_paths(tp, run)
    joined = [sf for sf in run.done["subflows"] if sf["join"]]
    assert len(joined) == 1, joined
    assert joined[0]["local"] == f"{tp.stack_addrs[1]}:{port or PORT}", joined
    assert run.our("AddAddrTx") >= 1 and run.our("EchoAdd") == 1, run.mib
    assert run.our("MPJoinSynRx") >= 1 and run.our("MPJoinAckRx") >= 1, run.mib
    k = run.mib_kernel
    assert k.get("AddAddr", 0) == 1 and k.get("EchoAddTx", 0) == 1, k
    assert k.get("MPJoinSynTx", 0) == 1 and k.get("MPJoinSynAckRx", 0) >= 1, k
    if port is not None:
        assert k.get("PortAdd", 0) == 1 and k.get("MPJoinPortSynAckRx", 0) >= 1, k
    assert joined[0]["local_id"] == 5, joined  # the ID we announced the address with


# -- (e) MP_PRIO and REMOVE_ADDR in both directions --------------------------------------------

T_PRIO, T_REMOVE = 0.8, 2.0


def _growth(run: Run, path_of: Callable[[str], int | None], field: str, t0: float,
            t1: float) -> dict[int, int]:
    """How much our per-subflow ``field`` grew per path between instants t0 and t1 (from our
    progress events)."""
    prog = [ev for ev in run.our_events if ev.get("event") == "progress"]

    def at(t: float) -> dict[int, int]:
        ev = max((e for e in prog if e["t"] <= t), key=lambda e: e["t"], default=None)
        out = {1: 0, 2: 0}
        for sf in (ev or {}).get("subflow_bytes", []):
            path = path_of(sf["local"].rsplit(":", 1)[0])
            if path is not None:
                out[path] += sf[field]
        return out

    a, b = at(t0), at(t1)
    return {p: b[p] - a[p] for p in (1, 2)}


def _quiet_tail(run: Run, path_of: Callable[[str], int | None], field: str, t0: float,
                t1: float, path: int) -> float:
    """How long before ``t1`` our per-subflow ``field`` on ``path`` last grew, looking no
    further back than ``t0`` (``t1 - t0`` when it never grew in between)."""
    prog = sorted((ev for ev in run.our_events if ev.get("event") == "progress"
                   and ev["t"] <= t1), key=lambda e: e["t"])
    last, prev = t0, None
    for ev in prog:
        v = sum(sf[field] for sf in ev.get("subflow_bytes", [])
                if path_of(sf["local"].rsplit(":", 1)[0]) == path)
        if prev is not None and v != prev and ev["t"] > t0:
            last = ev["t"]
        prev = v
    return t1 - last


@pytest.mark.rfc("8684", "3.3.8")
def test_e_we_send_mp_prio_and_remove_addr(topo: Topology) -> None:
    tp = _paths(topo)
    run = _transfer(tp, ours_role="client", progress=0.05, extra=(
        "--endpoint", f"{tp.stack_addrs[1]},subflow,id=3",
        "--at", f"{T_PRIO}:backup={tp.stack_addrs[1]},on", "--at", f"{T_REMOVE}:remove=3"))
    print(_subflow_summary(run))
    _both_paths(tp, run)
    acts = {a["action"].split(":", 1)[1].split("=")[0]: a["t"] for a in run.actions()}
    assert set(acts) == {"backup", "remove"}
    moved = _growth(run, tp.path_of, "bytes_received", acts["backup"] + 0.2, acts["remove"])
    quiet = _quiet_tail(run, tp.path_of, "bytes_received", acts["backup"], acts["remove"], 2)
    print(f"received per path after our MP_PRIO, before REMOVE_ADDR: {moved}; nothing more "
          f"on path 2 for the last {quiet:.2f} s")
    # the kernel obeyed: what it had queued on path 2 before our MP_PRIO reached it may
    # still arrive for a while (longer when this machine is busy and our stack lags), then
    # path 2 falls silent while path 1 carries the data
    assert moved[1] > MB // 2 and moved[2] < moved[1] // 3, moved
    assert quiet >= 0.4, (quiet, moved)
    sent = _growth(run, tp.path_of, "bytes_sent", acts["backup"] + 0.2, acts["remove"])
    assert sent[2] < sent[1] // 10, sent  # and so did our scheduler
    sf2 = next(sf for sf in run.done["subflows"] if sf["local_id"] == 3)
    assert sf2["backup"] and sf2["reason"] == "local address 3 removed", sf2
    assert run.our("MPPrioTx") >= 1 and run.our("RmAddrTx") >= 1, run.mib
    assert run.our("RmSubflow") == 1, run.mib
    k = run.mib_kernel
    assert k.get("MPPrioRx", 0) >= 1 and k.get("RmAddr", 0) == 1, k
    assert {tp.path_of(sf["remote"]) for sf in run.kernel.subflows or []} == {1}, \
        run.kernel.subflows  # the kernel closed the subflow of the removed address


@pytest.mark.rfc("8684", "3.4.2")
def test_e_kernel_sends_mp_prio_and_remove_addr(topo: Topology) -> None:
    tp = _paths(topo)
    lpm.endpoint_add(tp.peer_ns, tp.peer_addrs[1], id=7, flags={"signal"})
    marks: dict[str, float] = {}

    def change(ours: OurPeer, kernel: LinuxPeer) -> None:
        _wait_busy(tp, ours, both_paths=True)
        lpm.endpoint_set_backup(tp.peer_ns, 7, True)
        marks["backup"] = time.monotonic()
        time.sleep(T_REMOVE - T_PRIO)
        lpm.endpoint_del(tp.peer_ns, 7)
        marks["remove"] = time.monotonic()

    run = _transfer(tp, ours_role="client", progress=0.05, during=change, kernel_host="0.0.0.0",
                    extra=("--limits", "2,2", "--pm-route",
                           f"10.0.11.0/24={tp.stack_addrs[1]}"))
    print(_subflow_summary(run))
    _both_paths(tp, run)
    names = [(ev["name"], ev.get("backup"), ev.get("address_id"))
             for ev in run.done["mptcp_events"]]
    assert ("PriorityChanged", True, None) in names and ("AddressRemoved", None, 7) in names, \
        names
    sent = _growth(run, tp.path_of, "bytes_sent", marks["backup"] + 0.2, marks["remove"])
    print(f"sent per path after the kernel's MP_PRIO, before its REMOVE_ADDR: {sent}")
    assert sent[1] > 1 * MB and sent[2] < sent[1] // 10, sent  # our scheduler obeyed
    sf2 = next(sf for sf in run.done["subflows"] if sf["join"])
    assert sf2["peer_backup"] and sf2["closed"], sf2
    assert run.our("MPPrioRx") >= 1 and run.our("RmAddr") == 1, run.mib
    k = run.mib_kernel
    assert k.get("MPPrioTx", 0) >= 1 and k.get("RmAddrTx", 0) >= 1, k
    assert run.done["remote_addrs"] == {}, run.done["remote_addrs"]


def _wait_busy(tp: TwoPaths, ours: OurPeer, *, both_paths: bool = False,
               min_bytes: int = 10 * MB) -> dict[str, Any]:
    """Wait (our progress events) until the transfer is well under way: ``min_bytes`` sent
    and acknowledged, with ``both_paths`` at least 2 MB sent on each path."""
    def busy(ev: dict[str, Any]) -> bool:
        if ev["bytes_out"] < min_bytes:
            return False
        if not both_paths:
            return True
        per = {1: 0, 2: 0}
        for sf in ev.get("subflow_bytes", []):
            per[tp.path_of(sf["local"].rsplit(":", 1)[0]) or 1] += sf["bytes_sent"]
        return min(per.values()) >= 2 * MB

    return ours.wait_event("progress", 20.0, busy)


# -- failover: one path black-holed mid-transfer ----------------------------------------------

def _failover(topo: Topology, tp: TwoPaths, extra: tuple[str, ...], cut: int,
              backup: bool = False) -> None:
    marks: dict[str, float] = {}

    def blackhole(ours: OurPeer, kernel: LinuxPeer) -> None:
        _wait_busy(tp, ours, both_paths=not backup)
        marks["t"] = topo.blackhole(tp.stack_ns, tp.stack_devs[cut - 1])

    run = _transfer(tp, ours_role="client", progress=0.02, during=blackhole, extra=extra,
                    timeout=30)
    t_cut = marks["t"]
    to_kernel = progress_stall(run.kernel_events, t_cut, "bytes_in")  # our failover
    to_us = progress_stall(run.our_events, t_cut, "bytes_in")  # the kernel's failover
    before = _growth(run, tp.path_of, "bytes_sent", 0.0, t_cut)
    after = _growth(run, tp.path_of, "bytes_sent", t_cut, float("inf"))
    before_rx = _growth(run, tp.path_of, "bytes_received", 0.0, t_cut)
    after_rx = _growth(run, tp.path_of, "bytes_received", t_cut, float("inf"))
    print(_subflow_summary(run))
    print(f"path {cut} black-holed at {to_kernel.at_since / MB:.1f} MB to the kernel / "
          f"{to_us.at_since / MB:.1f} MB to us; progress resumed after: to the kernel "
          f"{to_kernel.resumed_after} s (longest gap {to_kernel.longest_gap:.3f} s, "
          f"{to_kernel.rate_before * 8e-6:.0f} -> {to_kernel.rate_after * 8e-6:.0f} Mbit/s), "
          f"to us {to_us.resumed_after} s (longest gap {to_us.longest_gap:.3f} s, "
          f"{to_us.rate_before * 8e-6:.0f} -> {to_us.rate_after * 8e-6:.0f} Mbit/s); our "
          f"bytes sent per path before {before}, after {after}; received before {before_rx}, "
          f"after {after_rx}; our MIB "
          f"{ {k: v for k, v in run.mib.items() if k.startswith('MPTcpExt')} }; kernel MIB "
          f"{run.mib_kernel}")
    for st in (to_kernel, to_us):
        assert 0 < st.at_since < 45 * MB, st  # cut mid-transfer
        assert st.final == NBYTES and st.resumed_after is not None, st
        assert st.resumed_after < 10.0, st
    other = 3 - cut
    assert after[other] >= to_kernel.final - to_kernel.at_since - 2 * MB, after
    if backup:  # the backup path idle until the cut
        assert before[2] < before[1] // 20, before


@pytest.mark.rfc("8684", "3.3.6")
def test_failover_path_blackholed_mid_transfer(topo: Topology) -> None:
    tp = _paths(topo)
    _failover(topo, tp, ("--endpoint", f"{tp.stack_addrs[1]},subflow"), cut=2)


@pytest.mark.rfc("8684", "3.3.8")
def test_failover_to_backup_subflow(topo: Topology) -> None:
    """Path 2 is a backup subflow (MP_JOIN flag B): unused until path 1 goes dark, then it
    carries the rest of the transfer both ways."""
    tp = _paths(topo)
    _failover(topo, tp, ("--endpoint", f"{tp.stack_addrs[1]},subflow,backup"), cut=1,
              backup=True)
