"""The data paths of an MPTCP connection (functions bound as methods of
:class:`~mptcp.connection.MptcpConnection`).

- RFC 8684 §3.3.1: receive -- subflow bytes move to the data level through the peer's
  mappings, within the data-level window (§3.3.4); with checksums a mapping is taken whole,
  verified, and staged for data-level room.
- RFC 8684 §3.3 / §3.3.4 / §3.3.6: send -- new data goes to the subflows the scheduler picks
  (one path: the whole send buffer; several: about a congestion window each), never beyond
  the peer's data-level window (DATA_ACK + window); a failed or stale subflow's data goes
  again on another one (reinjection).
- RFC 8684 §3.3.6: the data-level retransmission timer -- data a subflow delivered but the
  peer never DATA_ACKed (its receiver dropped it, or the subflow it went on died) is sent
  again, as Linux's MPTCP-level retransmission does, on a subflow with nothing outstanding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mptcp.tcp.events import DataReceived
from mptcp.tcp.state import TcpState
from mptcp.wire.mptcp_crypto import dss_checksum_ok

if TYPE_CHECKING:
    from mptcp.connection import MptcpConnection
    from mptcp.datalevel import DataReceiveBuffer
    from mptcp.multipath import Subflow

__all__ = ["pump_receive", "receive_from", "receive_checked", "send_chunk", "allowance",
           "usable", "pump_send", "pump_reinject", "data_rtx_deadline", "data_rtx_timer"]

_MASK64 = (1 << 64) - 1
S = TcpState
_OPEN = (S.ESTABLISHED, S.CLOSE_WAIT)


def pump_receive(mc: MptcpConnection) -> None:
    rb = mc.recvbuf
    assert rb is not None
    new = 0
    for sf in mc.subs:
        new += mc._receive_from(sf, rb)
    if new:
        mc.events.append(DataReceived(new))
        mc.ack_now = True
        mc.last_progress = mc._now
    if rb.fin_received and not mc._fin_counted:
        mc._fin_counted = True
        mc.mib.incr("MPTcpExtDataFinRx")
    if not mc.fully_established and (new or rb.fin_received):
        mc._established()


def receive_from(mc: MptcpConnection, sf: Subflow, rb: DataReceiveBuffer) -> int:
    sub, ext = sf.conn, sf.ext
    new = 0
    if mc.checksums:
        while not mc.awaiting_infinite:
            got = mc._receive_checked(sf)
            if got < 0:
                break
            new += got
        return new
    while True:
        avail = sub.readable
        if avail <= 0 or mc.awaiting_infinite:
            break
        hit = ext.recv_maps.lookup(ext.read_ssn)
        if hit is None:
            break  # the mapping has not arrived yet
        dsn, contiguous = hit
        room = rb.room_at(dsn)
        if room <= 0:
            break  # beyond the data-level window: leave it in the subflow (§3.3.4)
        n = min(avail, contiguous, room)
        data = sub.read(n)
        if not data:
            break
        new += rb.insert(dsn, data)
        ext.read_ssn += len(data)
        ext.recv_maps.consume(ext.read_ssn)
    return new

def receive_checked(mc: MptcpConnection, sf: Subflow) -> int:
    """RFC 8684 §3.3.1 with checksums: a mapping's bytes are taken from the subflow once
    all have arrived and verified together (the checksum covers the mapping); verified
    bytes wait in ``ext.staged`` for data-level room (§3.3.4) -- so a mapping larger
    than the data-level window still moves.  Returns new in-order bytes, -1 when
    nothing can move now."""
    sub, ext, rb = sf.conn, sf.ext, mc.recvbuf
    assert rb is not None
    if ext.staged:
        dsn = ext.staged_dsn
        k = min(rb.room_at(dsn), len(ext.staged))
        if k <= 0:
            return -1  # the application must read first
        new = rb.insert(dsn, ext.staged[:k])
        ext.staged = ext.staged[k:]
        ext.staged_dsn = (dsn + k) & _MASK64
        return new
    entry = ext.csum_maps.get(ext.read_ssn)
    if entry is None:
        return -1  # the mapping has not arrived yet
    dsn, length, fin, csum = entry
    if sub.readable < length:
        return -1
    data = sub.read(length)
    if len(data) != length:
        return -1
    del ext.csum_maps[ext.read_ssn]
    if not dss_checksum_ok(dsn, ext.read_ssn & 0xFFFFFFFF, length + fin, data, csum):
        mc.on_checksum_failure(ext, dsn, data)
        return -1
    ext.read_ssn += length
    ext.recv_maps.consume(ext.read_ssn)
    ext.staged = data
    ext.staged_dsn = dsn
    return 0

def send_chunk(mc: MptcpConnection, sf: Subflow, dsn: int, data: bytes) -> int:
    sub = sf.conn
    ssn = sub.sendbuf.end  # relative SSN of the chunk's first byte
    taken = sub.send(data)
    if taken:
        sf.ext.map_sent(ssn, dsn, taken,
                        (data if taken == len(data) else data[:taken])
                        if mc.checksums else None)
    return taken

def allowance(mc: MptcpConnection) -> int:
    """New data-level bytes the peer's window admits now (RFC 8684 §3.3.4)."""
    edge = mc.peer_edge
    if edge is None:
        return 1 << 62  # no DATA_ACK with a window yet: the subflow windows govern
    room = (edge - mc.sendbuf.nxt) & _MASK64
    return 0 if room >= (1 << 63) else room

def usable(mc: MptcpConnection) -> list[Subflow]:
    return [sf for sf in mc.subs if sf.usable and not sf.stale and not sf.closing
            and sf.conn.state in _OPEN]

def pump_send(mc: MptcpConnection) -> None:
    sb = mc.sendbuf
    cands = mc._usable()
    if not cands:
        return
    if mc.reinject:
        mc._pump_reinject(cands)
    if len(cands) == 1 and mc.sched.name != "redundant":
        sf = cands[0]
        unit = sf.unit
        while True:  # one path: fill its send buffer (the fast path)
            space = min(sf.conn.send_space, mc._allowance())
            if space <= 0:
                break
            got = sb.take(min(space, unit))
            if got is None:
                break
            dsn, data = got
            taken = mc._send_chunk(sf, dsn, data)
            if taken != len(data):  # cannot happen: we asked for at most send_space
                sb.rewind((dsn + taken) & _MASK64)
    else:
        while sb.nxt != sb.end:
            picks = mc.sched.select(cands)
            if not picks:
                break
            n = min(min(p.room for p in picks), min(p.unit for p in picks),
                    mc._allowance())
            if n <= 0:
                break
            got = sb.take(n)
            if got is None:
                break
            dsn, data = got
            took = [mc._send_chunk(p, dsn, data) for p in picks]  # type: ignore[arg-type]
            if max(took) != len(data):
                sb.rewind((dsn + max(took)) & _MASK64)
                break
    if mc.data_fin_due():
        sf = cands[0]
        sf.conn.ack_now = True  # a segment must carry the DATA_FIN
        if sf.conn.wake is not None:
            sf.conn.wake(sf.conn)

def pump_reinject(mc: MptcpConnection, cands: list[Subflow]) -> None:
    """RFC 8684 §3.3.6: data-level bytes of a failed/stale subflow, on another one (never
    back on the one it came from: its own retransmissions cover it there)."""
    sb = mc.sendbuf
    while mc.reinject:
        dsn, n, origin = mc.reinject[0]
        skip = (sb.una - dsn) & _MASK64
        if skip < (1 << 63):  # (part of) it is DATA_ACKed already
            if skip >= n:
                mc.reinject.popleft()
                continue
            dsn, n = sb.una, n - skip
        # never past what was handed out (a rewind may have moved nxt back) nor the data
        limit = min((sb.nxt - dsn) & _MASK64, (sb.end - dsn) & _MASK64)
        if limit >= (1 << 63) or limit == 0:
            mc.reinject.popleft()
            continue
        n = min(n, limit)
        others = [s for s in cands if s.sid != origin]
        if not others:
            mc.reinject.popleft()  # only the original subflow is left: TCP repairs it
            continue
        best = min(others, key=lambda s: (s.is_backup, s.srtt))
        room = min(best.room, best.unit)
        if room <= 0:
            return
        k = min(n, room)
        data = sb.peek(dsn, k)
        taken = mc._send_chunk(best, dsn, data)
        if taken:
            mc.mib.incr("MPTcpExtMPTCPRetrans")  # data-level retransmission (§3.3.6)
        if taken < n:
            mc.reinject[0] = ((dsn + taken) & _MASK64, n - taken, origin)
        else:
            mc.reinject.popleft()
        if taken < k or taken == 0:
            return


# --- the data-level retransmission timer (RFC 8684 §3.3.6) ----------------------------------
_DATA_RTO_MIN = 0.2  # Linux's TCP_RTO_MIN, its MPTCP timer's floor
_DATA_RTO_MAX = 60.0


def _data_rto(mc: MptcpConnection) -> float:
    """The timeout in effect: backed off after a retransmission, else the largest subflow
    RTO (Linux's ``mptcp_set_timeout``), at least 200 ms."""
    if mc.data_rto:
        return mc.data_rto
    rtos = [sf.conn.rtt.rto for sf in mc.subs if sf.conn.state in _OPEN]
    return min(max(max(rtos, default=1.0), _DATA_RTO_MIN), _DATA_RTO_MAX)


def data_rtx_deadline(mc: MptcpConnection) -> float | None:
    """When the data-level retransmission timer fires (None: nothing outstanding)."""
    sb = mc.sendbuf
    if sb.una == sb.nxt or mc.dack_at is None or mc.fallback is not None \
            or mc.failed is not None:
        return None
    return mc.dack_at + _data_rto(mc)


def data_rtx_timer(mc: MptcpConnection, now: float) -> None:
    """Run the timer: armed while data is outstanding, restarted by DATA_ACK progress
    (:meth:`~mptcp.connection.MptcpConnection.on_data_ack`).  On expiry the first
    un-DATA_ACKed bytes (one mapping's worth) go again on a usable subflow whose own queue is
    empty -- the subflow acknowledged everything it carried, so only the data level can repair
    the hole (Linux's ``__mptcp_retrans`` picks subflows the same way) -- and the timeout
    doubles until DATA_ACK progress; with no such subflow it is only re-armed."""
    sb = mc.sendbuf
    if sb.una == sb.nxt:
        mc.dack_at = None  # disarmed: re-armed from the next new data
        return
    if mc.dack_at is None:
        mc.dack_at = now
        return
    deadline = data_rtx_deadline(mc)
    if deadline is None or now < deadline:
        return
    timeout = _data_rto(mc)
    mc.dack_at = now
    idle = [sf for sf in mc._usable() if sf.conn.sendbuf.end == sf.conn.snd_una]
    if not idle:
        return
    mc.mib.incr("MPTcpExtDataRtxTimeout")
    best = min(idle, key=lambda s: (s.is_backup, s.srtt))
    n = min((sb.nxt - sb.una) & _MASK64, best.unit, max(best.room, 0))
    if n <= 0:
        return
    taken = mc._send_chunk(best, sb.una, sb.peek(sb.una, n))
    if taken:
        mc.mib.incr("MPTcpExtMPTCPRetrans")
        mc.data_rto = min(2 * timeout, _DATA_RTO_MAX)
