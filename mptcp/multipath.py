"""Several subflows per MPTCP connection (functions bound as methods of
:class:`~mptcp.connection.MptcpConnection`, and the :class:`Subflow` record).

- RFC 8684 §3.2: joining subflows (:func:`create_subflow` opens one with MP_JOIN; the stack's
  listener hook hands us joins for our token, :func:`accept_join`), limits on subflows and the
  path manager's say; a joined subflow carries data only once the peer's fourth ACK arrived.
- RFC 8684 §3.3.6 / §3.3.8: reinjection -- the data a dead or stale subflow did not get
  acknowledged at the data level is sent again on the others; backup subflows (our B flag or
  the peer's, MP_JOIN B / MP_PRIO) carry data only when no regular subflow is usable.
- RFC 8684 §3.4: address management -- ADD_ADDR with its HMAC, retransmitted until echoed
  (Linux: every ``add_addr_timeout``, a few times), echoes of the peer's ADD_ADDR, REMOVE_ADDR
  (closing our subflows that use a removed address), MP_PRIO (§3.3.8).  The options go out on
  a pure ACK of some established subflow (Linux drops the DSS from that ACK when the option
  needs the room).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mptcp.events import (
    AddressAnnounced,
    AddressRemoved,
    PriorityChanged,
    SubflowClosed,
    SubflowEstablished,
)
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_crypto import add_addr_hmac
from mptcp.wire.mptcp_options import AddAddr, MpPrio, RemoveAddr

if TYPE_CHECKING:
    from mptcp.connection import MptcpConnection
    from mptcp.subflow import SubflowExt
    from mptcp.tcp.connection import TcpConnection
    from mptcp.wire.options import TcpOption

__all__ = [
    "Subflow", "Announcement", "create_subflow", "add_subflow", "reset_subflow",
    "close_subflow", "set_backup", "announce", "remove_addr", "on_add_addr", "on_remove_addr",
    "on_mp_prio", "control_space", "control_options", "subflow_count", "check_subflows",
    "reinject_from", "subflows_info",
]

_MASK64 = (1 << 64) - 1
S = TcpState
_OPEN = (S.ESTABLISHED, S.CLOSE_WAIT)


class Subflow:
    """One subflow of a connection: the TCP connection, its MPTCP extension, the address IDs
    (RFC 8684 §3.2, §3.4.1) and the scheduling state."""

    __slots__ = (
        "backup",
        "closed",
        "closing",
        "conn",
        "created",
        "endpoint",
        "ext",
        "join",
        "limit_queue",
        "local_id",
        "peer_backup",
        "prio_pending",
        "reason",
        "remote_id",
        "reported",
        "sid",
        "stale",
        "usable",
    )

    def __init__(self, conn: TcpConnection, ext: SubflowExt, sid: int, *, local_id: int,
                 remote_id: int, join: bool, backup: bool, now: float) -> None:
        self.conn = conn
        self.ext = ext
        self.sid = sid
        self.local_id = local_id
        self.remote_id = remote_id
        self.join = join
        self.backup = backup  # ours: we asked the peer not to use it (B flag / MP_PRIO)
        self.peer_backup = False  # the peer's B flag / MP_PRIO
        self.usable = False  # established (a join: after the fourth ACK)
        self.stale = False
        self.closing = False
        self.closed = False
        self.reason: str | None = None
        self.created = now
        self.prio_pending = False
        self.limit_queue = False
        self.reported = False  # SubflowEstablished was reported
        self.endpoint: object = None  # the path manager's tag (e.g. the endpoint it came from)

    # --- SubflowView (mptcp.sched) ----------------------------------------------------------
    @property
    def is_backup(self) -> bool:
        return self.backup or self.peer_backup

    @property
    def srtt(self) -> float:
        r = self.conn.rtt
        return r.srtt if r.srtt is not None else r.rto

    @property
    def room(self) -> int:
        c = self.conn
        space = c.send_space
        if not self.limit_queue or space <= 0:
            return space
        # several subflows: queue about a congestion window, so the scheduler decides late
        queued = c.sendbuf.end - c.snd_una
        return max(0, min(space, c.cc.cwnd + 4 * c.smss - queued))

    @property
    def unit(self) -> int:
        """Bytes per chunk handed to the subflow: whole segments up to the 16-bit
        data-level length less one (each chunk is one mapping, RFC 8684 §3.3.1)."""
        c = self.conn
        mss = c.gso_mss or max(1, c.smss - 28)
        cap = 65534
        if c.max_snd_wnd:  # a mapping must fit the peer's subflow buffer to be verified
            cap = min(cap, max(mss, c.max_snd_wnd // 2))
        return max(1, (cap // mss) * mss)

    @property
    def name(self) -> str:
        c = self.conn
        return f"{self.sid}:{_fmt(c.local)}-{_fmt(c.remote)}"

    def __repr__(self) -> str:
        return f"<Subflow {self.name} {self.conn.state.value}>"


@dataclass
class Announcement:
    """One of our ADD_ADDRs (RFC 8684 §3.4.1) until the peer echoes it."""

    address_id: int
    address: bytes
    port: int | None
    echoed: bool = False
    due: bool = True
    retx_at: float | None = None
    tries: int = 0


def _fmt(ep: tuple[bytes, int]) -> str:
    a = ipaddress.ip_address(ep[0])
    return f"[{a}]:{ep[1]}" if a.version == 6 else f"{a}:{ep[1]}"


# --- subflows -------------------------------------------------------------------------------
def add_subflow(mc: MptcpConnection, conn: TcpConnection, ext: SubflowExt, *, local_id: int,
                remote_id: int, join: bool, backup: bool = False) -> Subflow:
    sf = Subflow(conn, ext, mc.next_sid, local_id=local_id, remote_id=remote_id, join=join,
                 backup=backup, now=mc._now)
    mc.next_sid += 1
    ext.sf = sf
    conn.add_extension(ext)
    mc.subs.append(sf)
    mc.stack.register_subflow(mc, conn)
    return sf


def create_subflow(mc: MptcpConnection, local: tuple[bytes | str, int],
                   remote: tuple[bytes | str, int], *, backup: bool = False,
                   local_id: int | None = None, endpoint: object = None) -> Subflow:
    """Open a subflow with MP_JOIN from ``local`` (port 0: ephemeral) to ``remote``
    (RFC 8684 §3.2).  Raises ``ValueError`` when the connection cannot take one."""
    from mptcp.join import JoinState
    from mptcp.subflow import SubflowExt
    if mc.fallback is not None or mc.failed is not None or mc.remote_key is None \
            or not mc.fully_established:
        raise ValueError("the connection is not a fully established MPTCP connection")
    if mc.write_shut and mc.sendbuf.fin_acked:
        raise ValueError("the connection is closing")
    if mc.peer_no_join and _same_ep(remote, mc.initial_remote):
        raise ValueError("the peer set flag C: no joins to its initial address (§3.1)")
    lid = local_id if local_id is not None else mc.local_id_of(local[0])
    conn = mc.stack.tcp.connect(remote, local=local, config=mc.tcp_config, now=mc._now)
    ext = SubflowExt(mc, client=True,
                     join=JoinState.initiator(mc.stack.rng, lid, backup))
    sf = add_subflow(mc, conn, ext, local_id=lid, remote_id=mc.remote_id_of(conn.remote),
                     join=True, backup=backup)
    sf.endpoint = endpoint
    mc.mib.incr("MPTcpExtMPJoinSynTx")
    mc.touch()
    return sf


def _same_ep(a: tuple[bytes | str, int], b: tuple[bytes, int] | None) -> bool:
    if b is None:
        return False
    aa = ipaddress.ip_address(a[0]).packed if isinstance(a[0], str) else a[0]
    return aa == b[0] and a[1] == b[1]


def subflow_count(mc: MptcpConnection) -> int:
    """Subflows not closed (nor closing)."""
    return sum(1 for sf in mc.subs if not sf.closed and not sf.closing)


def reset_subflow(mc: MptcpConnection, ext: SubflowExt, reason: str, *, tcprst: int) -> None:
    """RST one subflow with MP_TCPRST ``tcprst`` (RFC 8684 §3.6); its data goes on others."""
    sf = ext.sf
    if sf is None:
        return
    if subflow_count(mc) <= 1 and not sf.join and mc.failed is None:
        mc.fail(reason, reset=True, tcprst=tcprst)
        return
    ext.tcprst_reason = tcprst
    sf.reason = reason
    sf.closing = True
    sf.usable = False
    reinject_from(mc, sf)
    if sf.conn.state is not S.CLOSED:
        sf.conn.abort()
    mc.touch()


def close_subflow(mc: MptcpConnection, sf: Subflow, *, reset: bool = False,
                  reason: str = "closed by the path manager") -> None:
    """Take ``sf`` out of use: reinject its unacknowledged data, then FIN (or RST)."""
    if sf.closed or sf.closing:
        return
    sf.closing = True
    sf.usable = False
    sf.reason = reason
    reinject_from(mc, sf)
    c = sf.conn
    if reset:
        if c.state is not S.CLOSED:
            c.abort()
    elif c.state in (S.ESTABLISHED, S.CLOSE_WAIT, S.SYN_RECEIVED):
        if c.readable:
            c.read()
        c.close()
    elif c.state is S.SYN_SENT:
        c.abort()
    mc.touch()


def set_backup(mc: MptcpConnection, sf: Subflow, backup: bool) -> None:
    """Ask the peer to treat ``sf`` as a backup (or no longer): MP_PRIO on it (§3.3.8)."""
    sf.backup = backup
    sf.prio_pending = True
    _pure_ack(sf)
    mc.touch()


def _pure_ack(sf: Subflow) -> None:
    c = sf.conn
    c.pure_ack = True
    if c.wake is not None:
        c.wake(c)


def _carrier(mc: MptcpConnection) -> Subflow | None:
    for sf in mc.subs:
        if sf.usable and sf.conn.state in _OPEN:
            return sf
    for sf in mc.subs:
        if sf.conn.state in _OPEN and not sf.closing:
            return sf
    return None


def _kick_control(mc: MptcpConnection) -> None:
    sf = _carrier(mc)
    if sf is not None:
        _pure_ack(sf)


# --- address management (RFC 8684 §3.4) -----------------------------------------------------
def announce(mc: MptcpConnection, address_id: int, address: bytes | str,
             port: int | None = None) -> None:
    """ADD_ADDR ``address`` [``port``] as ``address_id`` (RFC 8684 §3.4.1)."""
    addr = ipaddress.ip_address(address).packed if isinstance(address, str) else address
    if not 0 <= address_id <= 255 or len(addr) not in (4, 16):
        raise ValueError("bad address id or address")
    mc.announced[address_id] = Announcement(address_id, addr, port)
    _kick_control(mc)
    mc.touch()


def remove_addr(mc: MptcpConnection, address_id: int) -> None:
    """REMOVE_ADDR ``address_id`` (RFC 8684 §3.4.2) and close our subflows using it."""
    mc.announced.pop(address_id, None)
    if address_id not in mc.rm_pending:
        mc.rm_pending.append(address_id)
    for sf in mc.subs:
        if sf.local_id == address_id and not sf.closed:
            mc.mib.incr("MPTcpExtRmSubflow")
            close_subflow(mc, sf, reason=f"local address {address_id} removed")
    _kick_control(mc)
    mc.touch()


def control_space(mc: MptcpConnection, sf: Subflow) -> int:
    """Option bytes our pending control options want on a pure ACK of ``sf``."""
    n = 0
    if sf.prio_pending:
        n += 4
    if mc.rm_pending:
        n += 3 + len(mc.rm_pending)
    for ann in mc.announced.values():
        if ann.due:
            n += _add_addr_len(ann.address, ann.port, True)
            break
    if mc.echo_pending:
        a, p = mc.echo_pending[0][1:]
        n += _add_addr_len(a, p, False)
    return n


def _add_addr_len(addr: bytes, port: int | None, hmac: bool) -> int:
    return 4 + len(addr) + (2 if port is not None else 0) + (8 if hmac else 0)


def control_options(mc: MptcpConnection, sf: Subflow, space: int) -> list[TcpOption]:
    """Our pending ADD_ADDR / echo / REMOVE_ADDR / MP_PRIO that fit in ``space``."""
    out: list[TcpOption] = []
    if sf.prio_pending and space >= 3:
        out.append(MpPrio(backup=sf.backup))
        space -= 3
        sf.prio_pending = False
        mc.mib.incr("MPTcpExtMPPrioTx")
    if mc.rm_pending and space >= 3 + len(mc.rm_pending):
        out.append(RemoveAddr(tuple(mc.rm_pending)))
        space -= 3 + len(mc.rm_pending)
        mc.rm_pending.clear()
        mc.mib.incr("MPTcpExtRmAddrTx")
    if mc.echo_pending:
        aid, addr, port = mc.echo_pending[0]
        n = _add_addr_len(addr, port, False)
        if space >= n:
            out.append(AddAddr(aid, addr, port, echo=True))
            space -= n
            mc.echo_pending.pop(0)
            mc.mib.incr("MPTcpExtEchoAddTx")
    for ann in mc.announced.values():
        if not ann.due:
            continue
        n = _add_addr_len(ann.address, ann.port, True)
        if space < n or mc.remote_key is None:
            mc.mib.incr("MPTcpExtAddAddrTxDrop")
            break
        mac = add_addr_hmac(mc.local_key, mc.remote_key, ann.address_id, ann.address, ann.port)
        out.append(AddAddr(ann.address_id, ann.address, ann.port, hmac=mac))
        space -= n
        ann.due = False
        ann.tries += 1
        ann.retx_at = mc._now + mc.config.add_addr_timeout
        mc.mib.incr("MPTcpExtAddAddrTx")
        break  # one per segment
    if mc.control_wanted():
        _pure_ack(sf)  # more to send: another pure ACK
    return out


def control_timers(mc: MptcpConnection, now: float) -> None:
    """ADD_ADDR retransmission until echoed (Linux: ``add_addr_timeout``, a few tries)."""
    for ann in list(mc.announced.values()):
        if ann.echoed or ann.due or ann.retx_at is None or now < ann.retx_at:
            continue
        if ann.tries > mc.config.add_addr_retries:
            ann.retx_at = None  # give up (the peer may simply ignore it)
            continue
        ann.due = True
        _kick_control(mc)


def on_add_addr(mc: MptcpConnection, ext: SubflowExt, opt: AddAddr) -> None:
    """RFC 8684 §3.4.1: an echo confirms our ADD_ADDR; a new one (HMAC checked) is
    echoed and given to the path manager."""
    if opt.echo:
        mc.mib.incr("MPTcpExtEchoAdd")
        ann = mc.announced.get(opt.address_id)
        if ann is not None and ann.address == opt.address:
            ann.echoed = True
            ann.retx_at = None
        return
    if mc.remote_key is None or opt.hmac is None or opt.hmac != add_addr_hmac(
            mc.remote_key, mc.local_key, opt.address_id, opt.address, opt.port):
        mc.mib.incr("MPTcpExtAddAddrDrop")  # RFC 8684 §3.4.1: the HMAC authenticates it
        mc.mib.incr("MPTcpExtAddAddrBadHmac")
        return
    mc.mib.incr("MPTcpExtAddAddr")
    mc.echo_pending.append((opt.address_id, opt.address, opt.port))
    if ext.sf is not None:
        _pure_ack(ext.sf)
    new = mc.remote_addrs.get(opt.address_id) != (opt.address, opt.port)
    mc.remote_addrs[opt.address_id] = (opt.address, opt.port)
    if new:
        ev = AddressAnnounced(opt.address_id, str(opt.ip), opt.port)
        mc.events.append(ev)
        mc.pm_event(ev)
    mc.touch()


def on_remove_addr(mc: MptcpConnection, ids: tuple[int, ...]) -> None:
    """RFC 8684 §3.4.2: close the subflows to the removed addresses (their data goes on
    the others)."""
    mc.mib.incr("MPTcpExtRmAddr")
    for aid in ids:
        known = mc.remote_addrs.pop(aid, None)
        hit = False
        for sf in mc.subs:
            if sf.remote_id == aid and not sf.closed and not sf.closing:
                hit = True
                mc.mib.incr("MPTcpExtRmSubflow")
                close_subflow(mc, sf, reset=True, reason=f"peer removed address {aid}")
        if known is None and not hit:
            mc.mib.incr("MPTcpExtRmAddrDrop")
        ev = AddressRemoved(aid)
        mc.events.append(ev)
        mc.pm_event(ev)
    mc.touch()


def on_mp_prio(mc: MptcpConnection, ext: SubflowExt, opt: MpPrio) -> None:
    """RFC 8684 §3.3.8: the peer (un)marks the subflow it arrived on as backup."""
    mc.mib.incr("MPTcpExtMPPrioRx")
    sf = ext.sf
    if sf is None:
        return
    if opt.address_id is not None and opt.address_id != sf.remote_id:
        # the RFC 6824 form names an address: apply to every subflow to it
        targets = [s for s in mc.subs if s.remote_id == opt.address_id]
    else:
        targets = [sf]
    for s in targets:
        s.peer_backup = bool(opt.backup)
        ev = PriorityChanged(s.name, bool(opt.backup))
        mc.events.append(ev)
        mc.pm_event(ev)
    mc.touch()


# --- liveness and reinjection (RFC 8684 §3.3.6) ---------------------------------------------
def reinject_from(mc: MptcpConnection, sf: Subflow) -> None:
    """Queue the data-level bytes ``sf`` carried that are not DATA_ACKed yet for sending on
    the other subflows (the peer's reassembly drops whatever arrives twice)."""
    una = mc.sendbuf.una
    for _ssn, dsn, n in sf.ext.send_maps:
        lo = dsn
        if (una - dsn) & _MASK64 < n:  # una inside the run
            lo = una
        elif (dsn - una) & _MASK64 > (1 << 63):  # run entirely below una
            continue
        end = (dsn + n) & _MASK64
        length = (end - lo) & _MASK64
        if 0 < length <= n:
            mc.reinject.append((lo, length, sf.sid))


def check_subflows(mc: MptcpConnection, now: float) -> None:
    """Per pump: subflows coming up (RFC 8684 §3.2), going stale or recovering (Linux's
    ``stale_loss_cnt``: that many RTOs in a row), and closing."""
    data_una = mc.sendbuf.una
    for sf in mc.subs:
        c = sf.conn
        if sf.closed:
            continue
        sf.ext.forget_acked(c.snd_una, data_una)
        st = c.state
        if not sf.usable and not sf.closing and st in _OPEN and sf.ext.ready_for_data():
            sf.usable = True
            if not sf.reported:
                sf.reported = True
                if sf.join:
                    mc.mib.incr("MPTcpExtMPJoinEstab")
                ev = SubflowEstablished(sf.name)
                mc.events.append(ev)
                mc.pm_event(ev)
        if sf.usable:
            if c.retries >= mc.config.stale_after_rtos and not sf.stale:
                sf.stale = True
                mc.mib.incr("MPTcpExtSubflowStale")
                reinject_from(mc, sf)
            elif sf.stale and c.retries == 0:
                sf.stale = False
                mc.mib.incr("MPTcpExtSubflowRecover")
        if st is S.CLOSED or (st is S.TIME_WAIT and sf.closing):
            sf.closed = True
            sf.usable = False
            if sf.reason is None:
                sf.reason = "closed"
            reinject_from(mc, sf)
            ev2 = SubflowClosed(sf.name, sf.reason)
            mc.events.append(ev2)
            mc.pm_event(ev2)
    multi = sum(1 for sf in mc.subs if sf.usable) > 1  # after this pump's changes
    for sf in mc.subs:
        sf.limit_queue = multi


def subflows_info(mc: MptcpConnection) -> list[dict[str, object]]:
    """Per-subflow counters and state (``mptcp-lab`` prints them; tests check both paths
    carried data)."""
    out: list[dict[str, object]] = []
    for sf in mc.subs:
        c = sf.conn
        out.append({
            "id": sf.sid, "local": _fmt(c.local), "remote": _fmt(c.remote),
            "local_id": sf.local_id, "remote_id": sf.remote_id, "join": sf.join,
            "backup": sf.backup, "peer_backup": sf.peer_backup, "state": c.state.value,
            "usable": sf.usable, "stale": sf.stale, "closed": sf.closed, "reason": sf.reason,
            "bytes_sent": max(0, c.snd_una - 1), "bytes_received": max(0, sf.ext.read_ssn - 1),
            "bytes_mapped": sf.ext.bytes_mapped, "srtt": c.rtt.srtt,
        })
    return out
