"""The Sans-IO MPTCP host: a TCP :class:`~mptcp.tcp.stack.Stack` for the subflows, the token
table, MPTCP listeners, and the pump that runs the connections' data-level logic.

:class:`MptcpStack` has the ``Stack`` interface (``receive`` / ``packets_to_send(_gso)`` /
``get_timer`` / ``handle_timer`` / ``connect`` / ``listen`` / ``unlisten`` / ``accept``), so
the trio :class:`~mptcp.io.runner.StackRunner` and the stream API drive it unchanged; its
connections are :class:`~mptcp.connection.MptcpConnection` objects.

- RFC 8684 §3.1 passive side: a listener hook claims every SYN to an MPTCP port; with
  MP_CAPABLE the subflow answers with our key, without it the connection is plain TCP from
  the start (fallback, ``MPTcpExtMPCapableFallbackACK`` is not counted for a peer that never
  asked).  A flag-B SYN is answered without MP_CAPABLE (RFC 8684 §3.1: "MUST fall back").
- The pump: after packets are received, timers run, or the application called in, every
  connection that something happened to moves data between its data level and its subflow
  (``MptcpConnection.pump``) before the subflows' packets are collected.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from mptcp import multipath
from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.join import JoinState
from mptcp.keys import TokenTable
from mptcp.mib import MptcpMib
from mptcp.pm import FullMeshPM, PathManager
from mptcp.subflow import SubflowExt
from mptcp.tcp import output
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection, normalize_endpoint
from mptcp.tcp.stack import ListenerHook, Stack, StackError
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_handshake import MPC_FLAG_EXTENSIBILITY, MpCapable, MpJoinSyn
from mptcp.wire.mptcp_options import MpTcpRst
from mptcp.wire.segment import Segment

__all__ = ["MptcpStack", "MptcpListener"]


@dataclass
class MptcpListener:
    port: int
    config: TcpConfig
    backlog: int
    address: bytes | None = None
    pending: set[MptcpConnection] = field(default_factory=set)
    ready: deque[MptcpConnection] = field(default_factory=deque)


class _Hook(ListenerHook):
    def __init__(self, host: MptcpStack) -> None:
        self.host = host

    def on_syn(self, stack: Stack, seg: Segment, now: float
               ) -> TcpConnection | Literal[False] | None:
        return self.host._on_syn(seg, now)


class MptcpStack:
    """A host speaking MPTCP v1 (see the module docstring)."""

    def __init__(self, addresses: Iterable[bytes | str], rng: random.Random, *,
                 config: TcpConfig | None = None, mptcp: MptcpConfig | None = None,
                 verify_checksums: bool = True, csum_offload: bool = False,
                 pm: PathManager | None = None) -> None:
        self.tcp = Stack(addresses, rng, config=config, verify_checksums=verify_checksums,
                         csum_offload=csum_offload)
        self.rng = rng
        self.config = self.tcp.config
        self.mptcp_config = mptcp if mptcp is not None else MptcpConfig()
        self.csum_offload = csum_offload
        self.mib = MptcpMib()
        self.tokens: TokenTable[MptcpConnection] = TokenTable()
        self.blackholed: dict[bytes, float] = {}
        """Destinations whose MP_CAPABLE SYNs went unanswered, until when (RFC 8684 §3.7)."""
        self.listeners: dict[tuple[bytes | None, int], MptcpListener] = {}
        self.connections: dict[TcpConnection, MptcpConnection] = {}
        self._dirty: dict[MptcpConnection, None] = {}
        self._owner: dict[MptcpConnection, MptcpListener] = {}
        self.pm: PathManager = pm if pm is not None else FullMeshPM()
        """The path manager of every connection (RFC 8684 §3.4; :mod:`mptcp.pm`)."""
        self._next_local_id = 100
        self._local_ids: dict[bytes, int] = {}
        self.tcp.add_listener_hook(_Hook(self))

    @property
    def addresses(self) -> set[bytes]:
        return self.tcp.addresses

    # ------------------------------------------------------------------ connections ---------
    def _new(self, client: bool, tcp_config: TcpConfig, now: float) -> MptcpConnection:
        mc = MptcpConnection(self, client=client, config=self.mptcp_config,
                             tcp_config=tcp_config, now=now)
        mc.wake = self._wake
        mc.pm = self.pm
        return mc

    def register_subflow(self, mc: MptcpConnection, conn: TcpConnection) -> None:
        """``conn`` is a subflow of ``mc`` (the pump follows it)."""
        self.connections[conn] = mc
        self._dirty[mc] = None

    def add_address(self, address: bytes | str) -> None:
        """Another local address (subflows may use it)."""
        self.tcp.add_address(address)

    def local_address_id(self, address: bytes | str) -> int:
        """Our address ID for ``address`` (RFC 8684 §3.4.1): the path manager's endpoint
        ID, else a stable ID of our own (100 and up)."""
        addr = normalize_endpoint((address, 0))[0]
        pid = self.pm.local_id(addr)
        if pid is not None:
            return pid
        lid = self._local_ids.get(addr)
        if lid is None:
            lid = self._local_ids[addr] = self._next_local_id
            self._next_local_id = min(self._next_local_id + 1, 255)
        return lid

    def connect(self, remote: tuple[bytes | str, int], *,
                local: tuple[bytes | str, int] | None = None, config: TcpConfig | None = None,
                now: float = 0.0) -> MptcpConnection:
        """Active open with MP_CAPABLE (RFC 8684 §3.1)."""
        cfg = config or self.config
        mc = self._new(True, cfg, now)
        sub = self.tcp.connect(remote, local=local, config=cfg, now=now)
        mc.attach_subflow(sub, SubflowExt(mc, client=True))
        until = self.blackholed.get(sub.remote[0])
        if until is not None:
            if now < until:
                mc._now = now
                mc.set_fallback("destination remembered as an MPTCP blackhole",
                                "MPTcpExtMPCapableSYNTXDisabled")
            else:
                del self.blackholed[sub.remote[0]]
        self.connections[sub] = mc
        self._dirty[mc] = None
        return mc

    def listen(self, port: int, config: TcpConfig | None = None, *, backlog: int = 128,
               address: bytes | str | None = None) -> MptcpListener:
        addr = normalize_endpoint((address, 0))[0] if address is not None else None
        key = (addr, port)
        if key in self.listeners:
            raise StackError(f"port {port} already listening")
        lst = MptcpListener(port, config or self.config, backlog, addr)
        self.listeners[key] = lst
        return lst

    def unlisten(self, port: int, address: bytes | str | None = None) -> None:
        addr = normalize_endpoint((address, 0))[0] if address is not None else None
        self.listeners.pop((addr, port), None)

    def accept(self, port: int | None = None) -> MptcpConnection | None:
        for lst in self.listeners.values():
            if (port is None or lst.port == port) and lst.ready:
                mc = lst.ready.popleft()
                self._owner.pop(mc, None)
                return mc
        return None

    def __iter__(self) -> Iterator[MptcpConnection]:
        return iter(list(dict.fromkeys(self.connections.values())))

    def _on_syn(self, seg: Segment, now: float) -> TcpConnection | Literal[False] | None:
        join = next((o for o in seg.tcp.options if type(o) is MpJoinSyn), None)
        if join is not None:
            return self._on_join(seg, join, now)
        dst = bytes(seg.ip.dst)
        lst = self.listeners.get((dst, seg.tcp.dport)) or \
            self.listeners.get((None, seg.tcp.dport))
        if lst is None:
            return None  # not ours: plain TCP listeners / RST
        if len(lst.pending) + len(lst.ready) >= lst.backlog:
            self.tcp.mib["TcpExtListenOverflows"] += 1
            return False
        mpc = next((o for o in seg.tcp.options if type(o) is MpCapable), None)
        sub = TcpConnection.accept_syn(seg, lst.config, self.rng, now, mib=self.tcp.mib,
                                       isn_gen=self.tcp.isn_gen)
        mc = self._new(False, lst.config, now)
        ext = SubflowExt(mc, client=False)
        mc.attach_subflow(sub, ext)
        if mpc is None or mpc.flags & MPC_FLAG_EXTENSIBILITY or mpc.version != 1:
            mc.fallback = "SYN without MP_CAPABLE" if mpc is None else \
                f"MP_CAPABLE version {mpc.version} / flag B"
            if mpc is not None:
                self.mib.incr("MPTcpExtMpcVersionMismatch")
        else:
            self.mib.incr("MPTcpExtMPCapableSYNRX")
            if mpc.checksum_required:
                mc.checksums = True
        self.connections[sub] = mc
        lst.pending.add(mc)
        self._owner[mc] = lst
        self._dirty[mc] = None
        return sub

    def _on_join(self, seg: Segment, join: MpJoinSyn, now: float
                 ) -> TcpConnection | Literal[False]:
        """RFC 8684 §3.2: an MP_JOIN SYN, on any port: route it by the token."""
        self.mib.incr("MPTcpExtMPJoinSynRx")
        if join.backup:
            self.mib.incr("MPTcpExtMPJoinSynBackupRx")
        mc = self.tokens.lookup(join.receiver_token)
        if mc is None:
            self.mib.incr("MPTcpExtMPJoinNoTokenFound")
            self._refuse(seg, 1)  # Linux: RST with MP_TCPRST "MPTCP-specific error"
            return False
        dst = bytes(seg.ip.dst)
        if mc.fallback is not None or mc.failed is not None or mc.remote_key is None \
                or not mc.fully_established or mc.subflow_closing \
                or not self.pm.accept_join(mc, join, dst) \
                or (self.mptcp_config.no_join_to_initial
                    and (dst, seg.tcp.dport) == mc.initial_local):
            self.mib.incr("MPTcpExtMPJoinRejected")
            self._refuse(seg, 3)  # administratively prohibited
            return False
        sub = TcpConnection.accept_syn(seg, mc.tcp_config, self.rng, now, mib=self.tcp.mib,
                                       isn_gen=self.tcp.isn_gen)
        ext = SubflowExt(mc, client=False,
                         join=JoinState.responder(self.rng, join, mc.local_id_of(dst)))
        mc._now = now
        sf = multipath.add_subflow(mc, sub, ext, local_id=ext.join.local_id,  # type: ignore[union-attr]
                                   remote_id=join.address_id, join=True)
        sf.peer_backup = bool(join.backup)
        return sub

    def _refuse(self, seg: Segment, reason: int) -> None:
        """A RST with MP_TCPRST ``reason`` answering a SYN we will not take (§3.6)."""
        rst = output.rst_for(seg)
        if rst is None:
            return
        tcp = rst.tcp._replace(options=(*rst.tcp.options, MpTcpRst(reason=reason)))
        self.tcp.mib["TcpOutRsts"] += 1
        self.mib.incr("MPTcpExtMPRstTx")
        self.tcp._out.append(rst._replace(tcp=tcp).to_bytes(self.csum_offload))

    # ------------------------------------------------------------------ Sans-IO -------------
    def _wake(self, mc: MptcpConnection) -> None:
        self._dirty[mc] = None

    def receive(self, packet: bytes, now: float, csum_ok: bool = False) -> None:
        self.tcp.receive(packet, now, csum_ok)

    def _pump(self, now: float) -> None:
        # every connection whose subflow was touched by the TCP stack is dirty there
        for touched in list(self.tcp._dirty):
            owner = self.connections.get(touched)
            if owner is not None:
                self._dirty[owner] = None
        while self._dirty:
            batch = list(self._dirty)
            self._dirty.clear()
            for mc in batch:
                mc.pump(now)
                for sf in mc.subs:
                    self.tcp._dirty[sf.conn] = None
                self._after(mc)

    def _after(self, mc: MptcpConnection) -> None:
        lst = self._owner.get(mc)
        if lst is not None and mc in lst.pending and mc.connected_reported:
            lst.pending.discard(mc)
            lst.ready.append(mc)
        if not mc.subs:
            return
        for sf in mc.subs:
            if sf.conn.state is TcpState.CLOSED:
                self.connections.pop(sf.conn, None)
        if all(sf.conn.state is TcpState.CLOSED for sf in mc.subs):
            if lst is not None:
                lst.pending.discard(mc)
                self._owner.pop(mc, None)
            if self.tokens.lookup(mc.local_token) is mc:
                self.tokens.unregister(mc.local_token, mc)
                self.pm.forget(mc)

    def packets_to_send(self, now: float) -> list[bytes]:
        self._pump(now)
        out = self.tcp.packets_to_send(now)
        self._pump_after(now)
        return out

    def packets_to_send_gso(self, now: float) -> list[tuple[bytes, int]]:
        self._pump(now)
        out = self.tcp.packets_to_send_gso(now)
        self._pump_after(now)
        return out

    def _pump_after(self, now: float) -> None:
        """Connections whose subflow sent something may now hand it more (send space)."""
        seen: set[MptcpConnection] = set()
        for mc in list(self.connections.values()):
            if mc in seen:
                continue
            seen.add(mc)
            if (mc.sendbuf.nxt != mc.sendbuf.end or mc.reinject) and any(
                    sf.usable and sf.conn.send_space for sf in mc.subs):
                self._dirty[mc] = None
            self._after(mc)

    def get_timer(self) -> float | None:
        t = self.tcp.get_timer()
        for mc in dict.fromkeys(self.connections.values()):
            for f in mc.timers():
                if t is None or f < t:
                    t = f
        return t

    def handle_timer(self, now: float) -> None:
        self.tcp.handle_timer(now)
        for mc in dict.fromkeys(self.connections.values()):
            if any(f <= now for f in mc.timers()):
                self._dirty[mc] = None
        self._pump(now)

    def with_config(self, **kw: object) -> TcpConfig:
        return replace(self.config, **kw)  # type: ignore[arg-type]
