"""The multipath options of ``mptcp-lab connect|serve --mptcp`` (RFC 8684 §3.2 MP_JOIN subflows,
§3.3.8 MP_PRIO, §3.4.1 ADD_ADDR, §3.4.2 REMOVE_ADDR; the path manager model is Linux's
``ip mptcp endpoint`` / ``limits``, see :mod:`mptcp.pm`).

- ``--endpoint ADDR[,signal][,subflow][,backup][,fullmesh][,port=P][,id=N]`` (repeatable),
  ``--limits SUBFLOWS,ADD_ADDR_ACCEPTED``, ``--pm-route NET/LEN=LOCAL`` (the source address of
  joins to announced addresses in NET): a :class:`~mptcp.pm.FullMeshPM`;
- ``--scheduler NAME`` (:data:`mptcp.sched.SCHEDULERS`), ``--no-join-initial`` (flag C in our
  MP_CAPABLE, RFC 8684 §3.1);
- ``--at SECONDS:ACTION`` (repeatable): scripted path-manager commands, SECONDS after the
  connection is established (each waits until it is *fully* established): ``announce=ID,ADDR
  [,PORT]`` (ADD_ADDR), ``remove=ID`` (REMOVE_ADDR, closing our subflows from that address ID),
  ``backup=LOCALADDR,on|off`` (MP_PRIO on our subflows from LOCALADDR), ``join=LOCALADDR,
  REMOTEADDR[,PORT]`` (a new subflow; PORT defaults to the connection's remote port).  Each
  prints an ``action`` JSON event (``t`` CLOCK_MONOTONIC, ``at``, ``action``, ``error``).

Every address the endpoints, routes and actions use as ours is owned by the stack
(:func:`owned_addresses`); with ``--driver tun`` the kernel side needs a ``--tun-addr`` on each
of their subnets so that it routes them into the TUN device.

:class:`EventLog` is the runner's tracer: it prints the MPTCP events of the connections
(``SubflowEstablished``, ``AddressAnnounced``, ``PriorityChanged``...) as ``mptcp_event`` JSON
lines and keeps them for the ``done`` event, and passes everything on to a ``--trace`` tracer.
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from mptcp.pm import Endpoint, FullMeshPM, Limits, PathManager, PmError
from mptcp.sched import SCHEDULERS

__all__ = [
    "Action", "parse_action", "parse_limits", "parse_route", "add_multipath_args",
    "build_pm", "owned_addresses", "run_actions", "EventLog", "subflow_bytes",
    "datalevel_state",
]

_ACTIONS = ("announce", "remove", "backup", "join")
MPTCP_EVENTS = frozenset({
    "MptcpConnected", "FallbackToTcp", "SubflowEstablished", "SubflowClosed",
    "AddressAnnounced", "AddressRemoved", "PriorityChanged", "MpFailSent", "MpFailReceived",
    "ChecksumError", "FastCloseReceived", "FastCloseSent", "MptcpReset",
})
"""The events :class:`EventLog` reports (not the per-segment data ones)."""


def _addr(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad address {text!r}") from None


def _int(text: str, lo: int, hi: int, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad {what} {text!r}") from None
    if not lo <= n <= hi:
        raise argparse.ArgumentTypeError(f"{what} {n} not in {lo}..{hi}")
    return n


@dataclass(frozen=True)
class Action:
    """One ``--at SECONDS:ACTION``."""

    at: float
    kind: str
    args: tuple[str, ...]
    text: str

    @property
    def local_address(self) -> str | None:
        """The address of ours the action needs (announce: the announced one; join: the
        source)."""
        if self.kind == "announce":
            return self.args[1]
        if self.kind == "join":
            return self.args[0]
        return None


def parse_action(text: str) -> Action:
    """``SECONDS:ACTION`` (see the module docstring); ArgumentTypeError if malformed."""
    when, sep, action = text.partition(":")
    try:
        at = float(when)
    except ValueError:
        at = -1.0
    if not sep or at < 0:
        raise argparse.ArgumentTypeError(f"--at {text!r}: expected SECONDS:ACTION")
    kind, _, rest = action.partition("=")
    parts = [p.strip() for p in rest.split(",")] if rest else []
    if kind not in _ACTIONS:
        raise argparse.ArgumentTypeError(f"--at {text!r}: unknown action {kind!r} "
                                         f"(one of {', '.join(_ACTIONS)})")
    if kind == "announce" and len(parts) in (2, 3):
        args = [str(_int(parts[0], 0, 255, "address id")), _addr(parts[1])]
        if len(parts) == 3:
            args.append(str(_int(parts[2], 1, 65535, "port")))
    elif kind == "remove" and len(parts) == 1:
        args = [str(_int(parts[0], 0, 255, "address id"))]
    elif kind == "backup" and len(parts) == 2 and parts[1] in ("on", "off"):
        args = [_addr(parts[0]), parts[1]]
    elif kind == "join" and len(parts) in (2, 3):
        args = [_addr(parts[0]), _addr(parts[1])]
        if len(parts) == 3:
            args.append(str(_int(parts[2], 1, 65535, "port")))
    else:
        usage = {"announce": "announce=ID,ADDR[,PORT]", "remove": "remove=ID",
                 "backup": "backup=LOCALADDR,on|off",
                 "join": "join=LOCALADDR,REMOTEADDR[,PORT]"}[kind]
        raise argparse.ArgumentTypeError(f"--at {text!r}: expected {usage}")
    return Action(at, kind, tuple(args), text)


def parse_limits(text: str) -> Limits:
    """``SUBFLOWS,ADD_ADDR_ACCEPTED``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"--limits {text!r}: expected SUBFLOWS,ADD_ADDR_ACCEPTED")
    return Limits(_int(parts[0], 0, 255, "subflows"),
                  _int(parts[1], 0, 255, "add_addr_accepted"))


def parse_route(text: str) -> tuple[str, str]:
    """``NET/LEN=LOCAL``: joins to announced addresses in NET start from LOCAL."""
    net, sep, local = text.partition("=")
    try:
        network = ipaddress.ip_network(net.strip(), strict=False)
    except ValueError:
        network = None
    if not sep or network is None:
        raise argparse.ArgumentTypeError(f"--pm-route {text!r}: expected NET/LEN=LOCAL")
    addr = _addr(local)
    if ipaddress.ip_address(addr).version != network.version:
        raise argparse.ArgumentTypeError(f"--pm-route {text!r}: mixed address families")
    return str(network), addr


def add_multipath_args(p: argparse.ArgumentParser) -> None:
    """The multipath options (they need ``--mptcp``)."""
    g = p.add_argument_group("multipath MPTCP (with --mptcp)")
    g.add_argument("--endpoint", action="append", default=[],
                   metavar="ADDR[,signal][,subflow][,backup][,fullmesh][,port=P][,id=N]",
                   help="a path-manager endpoint, like `ip mptcp endpoint add` (repeatable; "
                        "ids default to 1, 2, ...)")
    g.add_argument("--limits", type=parse_limits, metavar="SUBFLOWS,ADD_ADDR_ACCEPTED",
                   help="path-manager limits (default 2,0 like Linux)")
    g.add_argument("--pm-route", action="append", default=[], type=parse_route,
                   metavar="NET/LEN=LOCAL",
                   help="join announced addresses in NET from our address LOCAL (repeatable; "
                        "default: the initial subflow's address)")
    g.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="minrtt",
                   help="packet scheduler")
    g.add_argument("--no-join-initial", action="store_true",
                   help="flag C in our MP_CAPABLE: no joins to our initial address/port")
    g.add_argument("--at", action="append", default=[], type=parse_action,
                   metavar="SECONDS:ACTION",
                   help="after the connection is established: announce=ID,ADDR[,PORT] | "
                        "remove=ID | backup=LOCALADDR,on|off | join=LOCALADDR,REMOTEADDR[,PORT] "
                        "(repeatable)")


def _has_id(text: str) -> bool:
    return any(p.strip().startswith("id=") for p in text.split(",")[1:])


def _endpoints(texts: list[str]) -> list[Endpoint]:
    """Parse ``--endpoint`` values; those without ``id=`` get the lowest free ids from 1."""
    taken = {Endpoint.parse(t, 1).id for t in texts if _has_id(t)}
    out: list[Endpoint] = []
    next_id = 1
    for t in texts:
        if _has_id(t):
            out.append(Endpoint.parse(t, 1))
            continue
        while next_id in taken:
            next_id += 1
        taken.add(next_id)
        out.append(Endpoint.parse(t, next_id))
    return out


def build_pm(args: argparse.Namespace) -> PathManager | None:
    """The path manager ``args`` ask for (None: the stack's default, a FullMeshPM without
    endpoints and Linux's default limits).  PmError if the configuration is bad."""
    if not (args.endpoint or args.limits or args.pm_route):
        return None
    try:
        endpoints = _endpoints(args.endpoint)
    except ValueError as e:
        raise PmError(str(e)) from None
    return FullMeshPM(endpoints, args.limits, routes=list(args.pm_route))


def owned_addresses(args: argparse.Namespace) -> list[str]:
    """``--local`` plus every other address of ours the options use (endpoints, route
    sources, announced and join-source addresses), without duplicates, ``--local`` first."""
    extra: list[str] = list(args.local)
    if getattr(args, "mptcp", False):
        extra += [Endpoint.parse(t, 1).address for t in args.endpoint]
        extra += [local for _, local in args.pm_route]
        extra += [a.local_address for a in args.at if a.local_address]
    out: list[str] = []
    for a in extra:
        a = _addr(a)
        if a not in out:
            out.append(a)
    return out


def subflow_bytes(conn: Any) -> list[dict[str, Any]] | None:
    """Per-subflow byte counters for progress events (None for plain TCP)."""
    info = getattr(conn, "subflows_info", None)
    if info is None:
        return None
    return [{k: sf[k] for k in ("id", "local", "remote", "backup", "peer_backup", "closed",
                                "state", "usable", "stale", "bytes_sent", "bytes_received")}
            for sf in info()]


def datalevel_state(conn: Any) -> dict[str, Any] | None:
    """The data-level send state for progress events (offsets from our IDSN), so a stalled
    transfer shows where it stands: what is DATA_ACKed, sent, written, the peer's window
    edge, the reinjection queue, the retransmission timer, and per subflow the bytes queued
    and the peer's window (None for plain TCP)."""
    sb = getattr(conn, "sendbuf", None)
    if sb is None or not hasattr(conn, "subs"):
        return None
    mask = (1 << 64) - 1

    def rel(dsn: int | None) -> int | None:
        return None if dsn is None else (dsn - sb.idsn) & mask

    return {
        "una": rel(sb.una), "nxt": rel(sb.nxt), "end": rel(sb.end), "edge": rel(conn.peer_edge),
        "reinject": [(rel(d), n, o) for d, n, o in list(conn.reinject)[:4]],
        "data_rto": conn.data_rto, "timeouts": conn.mib["MPTcpExtDataRtxTimeout"],
        "retrans": conn.mib["MPTcpExtMPTCPRetrans"],
        "subflows": [{"id": sf.sid, "queued": sf.conn.sendbuf.end - sf.conn.snd_una,
                      "wnd": sf.conn.snd_wnd, "retries": sf.conn.retries,
                      "room": sf.room} for sf in conn.subs],
    }


def _subflows_from(conn: Any, local: str) -> list[Any]:
    want = ipaddress.ip_address(local).packed
    return [sf for sf in conn.subs
            if not sf.closed and not sf.closing and sf.conn.local[0] == want]


def _execute(conn: Any, act: Action) -> str:
    """Run one action on the MptcpConnection ``conn``; a short description of what it did.
    ValueError if it cannot."""
    a = act.args
    if act.kind == "announce":
        conn.announce(int(a[0]), a[1], int(a[2]) if len(a) > 2 else None)
        return f"ADD_ADDR id {a[0]} {a[1]}" + (f" port {a[2]}" if len(a) > 2 else "")
    if act.kind == "remove":
        conn.remove_addr(int(a[0]))
        return f"REMOVE_ADDR id {a[0]}"
    if act.kind == "backup":
        subs = _subflows_from(conn, a[0])
        if not subs:
            raise ValueError(f"no open subflow from {a[0]}")
        for sf in subs:
            conn.set_backup(sf, a[1] == "on")
        return f"MP_PRIO backup={a[1]} on {', '.join(sf.name for sf in subs)}"
    port = int(a[2]) if len(a) > 2 else conn.remote[1]
    sf = conn.create_subflow((a[0], 0), (a[1], port))
    return f"MP_JOIN subflow {sf.name}"


async def run_actions(conn: Any, poke: Callable[[], None], actions: list[Action],
                      emit: Callable[[dict[str, Any]], None], timeout: float) -> None:
    """Run ``actions`` on ``conn`` at their times (seconds from now, the connection being
    established); each waits for the connection to be fully established (at most
    ``timeout`` s).  Results go out as ``action`` events."""
    t0 = trio.current_time()
    for act in sorted(actions, key=lambda x: x.at):
        await trio.sleep_until(t0 + act.at)
        error: str | None = None
        detail: str | None = None
        if not hasattr(conn, "create_subflow"):
            error = "not an MPTCP connection"
        else:
            with trio.move_on_after(timeout):
                while not conn.fully_established and conn.failed is None \
                        and conn.fallback is None:
                    await trio.sleep(0.005)
            if not conn.fully_established or conn.fallback is not None:
                error = f"not a fully established MPTCP connection (fallback: {conn.fallback})"
            else:
                try:
                    detail = _execute(conn, act)
                except (ValueError, OSError) as e:
                    error = f"{type(e).__name__}: {e}"
                poke()
        emit({"event": "action", "t": time.monotonic(), "at": act.at, "action": act.text,
              "detail": detail, "error": error})


class EventLog:
    """A runner tracer: MPTCP events as ``mptcp_event`` JSON lines (and kept per connection),
    everything passed on to ``inner`` (the ``--trace`` tracer) if any."""

    def __init__(self, inner: Any, emit: Callable[[dict[str, Any]], None]) -> None:
        self.inner = inner
        self.emit = emit
        self.events: dict[str, list[dict[str, Any]]] = {}

    def event(self, now: float, name: str, **fields: Any) -> None:
        if self.inner is not None:
            self.inner.event(now, name, **fields)
        if name in MPTCP_EVENTS:
            ev = {"event": "mptcp_event", "t": time.monotonic(), "name": name, **fields}
            self.events.setdefault(str(fields.get("conn")), []).append(ev)
            self.emit(ev)

    def of(self, conn_name: str) -> list[dict[str, Any]]:
        """The events of the connection named ``conn_name`` (its handle's name)."""
        return [{k: v for k, v in ev.items() if k not in ("event", "conn")}
                for ev in self.events.get(conn_name, [])]
