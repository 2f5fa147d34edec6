"""One MPTCP subflow: the TCP extension that speaks MP_CAPABLE and DSS on a
:class:`~mptcp.tcp.connection.TcpConnection` for its :class:`~mptcp.connection.MptcpConnection`.

- RFC 8684 §3.1 MP_CAPABLE (v1): SYN (4 bytes, flags A/H), SYN/ACK (12, the listener's key),
  third ACK (20, both keys), and the first data segment (22, both keys + data-level length;
  24 with a checksum) -- the client repeats its keys on ACKs and uses the keyed form on the
  first data until the peer shows it has them (any DSS from the peer), so the handshake
  survives a lost third ACK.
- RFC 8684 §3.3 DSS: every segment after the handshake carries a DATA_ACK (8 bytes, like
  Linux); every data segment carries a mapping of its own bytes (8-byte DSN, relative SSN,
  data-level length), so a mapping never spans two segments the engine cut differently; the
  DATA_FIN rides on the segment carrying the last data byte or on a data-less DSS (SSN 0,
  data-level length 1, as Linux sends it) -- §3.3.3.
- RFC 8684 §3.3.1 receive side: mappings go to :class:`~mptcp.mapping.RecvMappings`; the
  connection moves in-order subflow bytes to the data level through them.
- RFC 8684 §3.7 fallback decisions that belong to one segment: no MP_CAPABLE on the SYN/ACK,
  a third ACK / first data without MPTCP options.

The data-level logic (buffers, DATA_ACK processing, states) is the connection's; this class
only translates between options and the connection's calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mptcp import multipath
from mptcp.dsn import expand
from mptcp.join import JOIN_ACK_LEN, JOIN_SYN_LEN, JOIN_SYNACK_LEN
from mptcp.mapping import Mapping, MappingError, RecvMappings
from mptcp.tcp.hooks import OutHeader, SegmentKind, TcpExtension, Verdict
from mptcp.wire.mptcp_crypto import dss_checksum
from mptcp.wire.mptcp_handshake import (
    MPC_FLAG_CHECKSUM,
    MPC_FLAG_EXTENSIBILITY,
    MPC_FLAG_HMAC_SHA256,
    MPC_FLAG_NO_JOIN,
    MpCapable,
    MpJoinAck,
    MpJoinSynAck,
)
from mptcp.wire.mptcp_options import (
    AddAddr,
    Dss,
    MpFail,
    MpFastClose,
    MpPrio,
    MpTcpRst,
    RemoveAddr,
)

if TYPE_CHECKING:
    from mptcp.connection import MptcpConnection
    from mptcp.join import JoinState
    from mptcp.multipath import Subflow
    from mptcp.tcp.connection import TcpConnection
    from mptcp.wire.options import TcpOption
    from mptcp.wire.segment import Segment

__all__ = ["SubflowExt"]

_MASK64 = (1 << 64) - 1
_DSS_ACK = 12  # kind, len, flags word + 8-byte DATA_ACK
_DSS_MAP = 14  # 8-byte DSN + SSN + data-level length
_MAX_DLL = 0xFFFF  # the data-level length is 16 bits


class SubflowExt(TcpExtension):
    """MP_CAPABLE / DSS for one subflow of ``mc`` (see the module docstring)."""

    def __init__(self, mc: MptcpConnection, *, client: bool,
                 join: JoinState | None = None) -> None:
        self.mc = mc
        self.client = client
        self.join = join  # a joined subflow's MP_JOIN handshake (RFC 8684 §3.2)
        self.is_join = join is not None
        self.sf: Subflow | None = None
        self.tcprst_reason: int | None = None  # this subflow's own MP_TCPRST reason
        self.bytes_mapped = 0
        self.conn: TcpConnection | None = None
        # the peer sent a DSS: it has our keys (client side; a join needs no MP_CAPABLE)
        self.peer_dss_seen = join is not None
        self.data_ack_seen = False  # the peer DATA_ACKed something (it speaks DSS)
        self.keys_sent = False  # client: the third ACK with both keys left
        self.mpc_confirmed = False  # server: the client's key arrived (third ACK / data)
        self.recv_maps = RecvMappings()
        self.read_ssn = 1  # next subflow byte (relative SSN) to move to the data level
        self.send_maps: list[tuple[int, int, int]] = []  # (ssn, dsn, length), ascending
        # the mappings we announce: one per unit of data handed to the subflow, at most
        # 65534 bytes, never merged (ssn, dsn, length, DSS checksum without DATA_FIN or
        # None); every segment of a unit repeats its mapping, as Linux does (RFC 8684 §3.3.1)
        self.units: list[tuple[int, int, int, int | None]] = []
        self.checked_first_segment = False
        # checksummed mappings by their first SSN: (dsn, length, fin, checksum) -- verified
        # whole before their bytes reach the data level (RFC 8684 §3.3.1)
        self.csum_maps: dict[int, tuple[int, int, bool, int]] = {}
        self.held = b""  # a failed mapping's bytes, kept until the infinite mapping (§3.7)
        self.staged = b""  # verified checksummed bytes waiting for data-level room
        self.staged_dsn = 0

    def attach(self, conn: TcpConnection) -> None:
        self.conn = conn
        conn.seg_boundary = self.boundary

    def boundary(self, ssn: int) -> int:
        """Bytes from relative SSN ``ssn`` to the end of its send run, at most the 16-bit
        data-level length: the engine cuts new-data segments there, so every segment's bytes
        have one mapping (RFC 8684 §3.3.1)."""
        if self.mc.fallback is not None and self.mc.infinite_send is None:
            return 1 << 30  # plain TCP: no mappings any more
        u = self._unit_at(ssn)
        if u is None:
            return _MAX_DLL  # not mapped yet
        return u[0] + u[2] - ssn

    def _unit_at(self, ssn: int) -> tuple[int, int, int, int | None] | None:
        units = self.units
        for i in range(len(units) - 1, -1, -1):
            u = units[i]
            if u[0] <= ssn:
                return u if ssn < u[0] + u[2] else None
        return None

    # ------------------------------------------------------------------ send mappings -------
    def map_sent(self, ssn: int, dsn: int, length: int,
                 data: bytes | None = None) -> None:
        """The connection wrote data-level bytes [dsn, dsn+length) to this subflow at
        relative SSN ``ssn`` (``data``: those bytes, for the DSS checksum when in use)."""
        self.bytes_mapped += length
        units = self.units
        off = 0
        while off < length:  # units of at most the 16-bit data-level length (less 1: FIN)
            n = min(length - off, _MAX_DLL - 1)
            csum = None
            if data is not None:
                csum = dss_checksum((dsn + off) & _MASK64, (ssn + off) & 0xFFFFFFFF, n,
                                    data[off:off + n])
            units.append((ssn + off, (dsn + off) & _MASK64, n, csum))
            off += n
        maps = self.send_maps
        if maps:
            s, d, n = maps[-1]
            if s + n == ssn and (d + n) & _MASK64 == dsn:
                maps[-1] = (s, d, n + length)  # contiguous: one run with one offset
                return
        maps.append((ssn, dsn, length))

    def _dsn_of(self, ssn: int, length: int) -> int | None:
        """The DSN of subflow byte ``ssn`` if [ssn, ssn+length) lies in one send run."""
        maps = self.send_maps
        for i in range(len(maps) - 1, -1, -1):
            s, d, n = maps[i]
            if s <= ssn:
                if ssn + length <= s + n:
                    return (d + ssn - s) & _MASK64
                return None
        return None

    def forget_acked(self, snd_una: int, data_una: int) -> None:
        """Drop send runs and units the subflow has acknowledged (``snd_una`` relative)
        whose bytes are DATA_ACKed too (``data_una``): nothing can need them again."""
        for maps in (self.send_maps, self.units):
            k = 0
            while k < len(maps) - 1:
                s, d, n = maps[k][:3]
                if s + n > snd_una or (data_una - (d + n)) & _MASK64 >= (1 << 63):
                    break
                k += 1
            if k:
                del maps[:k]

    def ready_for_data(self) -> bool:
        """The subflow may carry data: a joined one only after the fourth ACK (§3.2)."""
        return self.join is None or self.join.confirmed

    # ------------------------------------------------------------------ outgoing options ----
    def option_space(self, conn: TcpConnection, kind: SegmentKind) -> int:
        mc = self.mc
        join = self.join
        if join is not None and not join.confirmed:
            if kind is SegmentKind.SYN:
                return JOIN_SYN_LEN
            if kind is SegmentKind.SYN_ACK:
                return JOIN_SYNACK_LEN
            if kind is SegmentKind.RST:
                return 4
            if join.initiator_side and kind in (SegmentKind.ACK, SegmentKind.DATA):
                return JOIN_ACK_LEN
            return 0
        extra = 0
        if kind is SegmentKind.ACK and self.sf is not None and mc.fallback is None:
            extra += multipath.control_space(mc, self.sf)
        if kind in (SegmentKind.ACK, SegmentKind.DATA):
            if mc.mp_fail_send is not None:
                extra += 12
            if mc.infinite_send is not None:
                extra += _DSS_ACK + _DSS_MAP + 2
        if mc.fallback is not None or kind is SegmentKind.RST:
            return extra
        return min(40, extra + self._regular_space(conn, kind))

    def _regular_space(self, conn: TcpConnection, kind: SegmentKind) -> int:
        mc = self.mc
        if kind is SegmentKind.SYN:
            if conn.syn_retransmits >= mc.stack.mptcp_config.blackhole_retries:
                mc.syn_blackhole()  # this retransmission leaves without MP_CAPABLE
                return 0
            return 4
        if kind is SegmentKind.SYN_ACK:
            return 12
        csum = 2 if mc.checksums else 0
        if self.client and not self.peer_dss_seen:
            if kind is SegmentKind.DATA:  # MP_CAPABLE with data (first byte) or a DSS
                return _DSS_ACK + _DSS_MAP + csum
            return 20
        if mc.remote_key is None:
            return 0  # server before the client's key arrived: nothing to acknowledge yet
        if kind is SegmentKind.DATA:
            return _DSS_ACK + _DSS_MAP + csum
        return _DSS_ACK + (_DSS_MAP + csum if mc.data_fin_due() else 0)

    def write_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                      hdr: OutHeader) -> Sequence[TcpOption]:
        mc = self.mc
        join = self.join
        if join is not None and not join.confirmed:
            return self._join_options(kind, space)
        head: Sequence[TcpOption] = ()
        if kind is SegmentKind.ACK and self.sf is not None and mc.fallback is None \
                and (self.sf.prio_pending or mc.control_wanted()):
            # RFC 8684 §3.4: ADD_ADDR / REMOVE_ADDR / MP_PRIO on a pure ACK; the DATA_ACK
            # follows only if it still fits (Linux drops it from such an ACK too)
            head = tuple(multipath.control_options(mc, self.sf, space))
            space -= sum(len(o.to_bytes()) for o in head)
        if (mc.infinite_send is not None or mc.mp_fail_send is not None) and kind in (
                SegmentKind.ACK, SegmentKind.DATA):
            fail = self._fail_options(space, hdr if kind is SegmentKind.DATA else None)
            space -= sum(len(o.to_bytes()) for o in fail)
            head = (*head, *fail)
        if mc.fallback is not None:
            return head
        if kind is SegmentKind.RST:
            return self._rst_options(space)
        return (*head, *self._regular_options(conn, kind, space, hdr))

    def _join_options(self, kind: SegmentKind, space: int) -> Sequence[TcpOption]:
        """RFC 8684 §3.2: MP_JOIN on the SYN, SYN/ACK and third ACK (repeated on our ACKs
        until the fourth ACK arrives)."""
        mc, join = self.mc, self.join
        assert join is not None
        if kind is SegmentKind.SYN and mc.remote_token is not None and space >= JOIN_SYN_LEN:
            return (join.syn_option(mc.remote_token),)
        if kind is SegmentKind.SYN_ACK and mc.remote_key is not None \
                and space >= JOIN_SYNACK_LEN:
            return (join.synack_option(mc.local_key, mc.remote_key),)
        if kind is SegmentKind.RST:
            return self._rst_options(space)
        if join.initiator_side and join.verified and mc.remote_key is not None \
                and kind in (SegmentKind.ACK, SegmentKind.DATA) and space >= JOIN_ACK_LEN:
            return (join.ack_option(mc.local_key, mc.remote_key),)
        return ()

    def _regular_options(self, conn: TcpConnection, kind: SegmentKind, space: int,
                         hdr: OutHeader) -> Sequence[TcpOption]:
        mc = self.mc
        flags = MPC_FLAG_HMAC_SHA256 | (MPC_FLAG_CHECKSUM if mc.config.checksums else 0)
        if kind is SegmentKind.SYN:
            mc.mib.incr("MPTcpExtMPCapableSYNTX")
            return (MpCapable(flags=flags),)
        if kind is SegmentKind.SYN_ACK:
            if mc.config.no_join_to_initial:
                flags |= MPC_FLAG_NO_JOIN  # RFC 8684 §3.1 flag C
            return (MpCapable(flags=flags, sender_key=mc.local_key),)
        if self.client and not self.peer_dss_seen:
            if mc.remote_key is None:
                return ()
            u = self._unit_at(1) if hdr.seq == 1 else None
            if kind is SegmentKind.DATA and u is not None and hdr.length and space >= 22:
                # RFC 8684 §3.1: MP_CAPABLE with data (implicit DSN = IDSN + 1), mapping the
                # first unit
                dll = u[2]
                csum = u[3] if mc.checksums and space >= 24 else None
                self.keys_sent = True
                return (MpCapable(flags=flags, sender_key=mc.local_key,
                                  receiver_key=mc.remote_key, data_level_length=dll,
                                  checksum=csum),)
            if kind is SegmentKind.ACK and space >= 20:
                self.keys_sent = True
                return (MpCapable(flags=flags, sender_key=mc.local_key,
                                  receiver_key=mc.remote_key),)
            if kind is not SegmentKind.DATA:
                return ()
            # data past the first byte before the peer's DSS: a DSS mapping (below)
        if mc.remote_key is None or space < _DSS_ACK:
            return ()
        ack = mc.data_ack()
        fin_dsn = mc.data_fin_dsn()
        if kind is SegmentKind.DATA and hdr.length and space >= _DSS_ACK + _DSS_MAP:
            u = self._unit_at(hdr.seq)
            if u is not None and hdr.seq + hdr.length <= u[0] + u[2]:
                return self._unit_dss(u, ack, fin_dsn, space)
            dsn = self._dsn_of(hdr.seq, hdr.length)
            if dsn is None:
                mc.mib.incr("MPTcpExtDSSNoMatchTCP")
                return (Dss(data_ack=ack, ack64=True),)
            dll = hdr.length
            fin = fin_dsn is not None and (dsn + dll) & _MASK64 == fin_dsn
            csum = None
            if mc.checksums:
                if space < _DSS_ACK + _DSS_MAP + 2:
                    return (Dss(data_ack=ack, ack64=True),)
                csum = self._checksum(conn, dsn, hdr.seq, dll + fin, hdr)
            if fin:
                mc.note_data_fin_sent()
            return (Dss(data_ack=ack, dsn=dsn, ssn=hdr.seq & 0xFFFFFFFF,
                        data_level_length=dll + fin, checksum=csum, data_fin=fin,
                        ack64=True, dsn64=True),)
        if fin_dsn is not None and mc.data_fin_due() and space >= _DSS_ACK + _DSS_MAP + (
                2 if mc.checksums else 0):
            # RFC 8684 §3.3.3: a DATA_FIN without data: SSN 0, data-level length 1
            csum = dss_checksum(fin_dsn, 0, 1, b"") if mc.checksums else None
            mc.note_data_fin_sent()
            return (Dss(data_ack=ack, dsn=fin_dsn, ssn=0, data_level_length=1, checksum=csum,
                        data_fin=True, ack64=True, dsn64=True),)
        return (Dss(data_ack=ack, ack64=True),)

    def _unit_dss(self, u: tuple[int, int, int, int | None], ack: int, fin_dsn: int | None,
                  space: int) -> Sequence[TcpOption]:
        """The DSS mapping a whole unit (RFC 8684 §3.3.1), with the DATA_FIN when the unit
        ends the stream (§3.3.3) and its checksum (§3.3.1: over the whole mapping)."""
        mc = self.mc
        ssn, dsn, n, csum = u
        fin = fin_dsn is not None and (dsn + n) & _MASK64 == fin_dsn
        if mc.checksums:
            if space < _DSS_ACK + _DSS_MAP + 2 or csum is None:
                return (Dss(data_ack=ack, ack64=True),)
            if fin:
                # the data-level length counts the DATA_FIN: one more in the pseudo-header
                s = (~csum & 0xFFFF) + 1
                csum = ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF
        else:
            csum = None
        if fin:
            mc.note_data_fin_sent()
        return (Dss(data_ack=ack, dsn=dsn, ssn=ssn & 0xFFFFFFFF, data_level_length=n + fin,
                    checksum=csum, data_fin=fin, ack64=True, dsn64=True),)

    def _infinite_point(self, hdr: OutHeader | None) -> tuple[int, int] | None:
        """(DSN, SSN) of ``hdr``'s first byte if it starts a unit or lies past them all."""
        if hdr is None or not hdr.length:
            return None
        units = self.units
        for i in range(len(units) - 1, -1, -1):
            s, d, n, _c = units[i]
            if s == hdr.seq:
                return d, s
            if s < hdr.seq:
                if hdr.seq >= s + n and i == len(units) - 1:
                    return (d + n + hdr.seq - s - n) & _MASK64, hdr.seq
                return None
        return None

    def _fail_options(self, space: int, hdr: OutHeader | None = None) -> Sequence[TcpOption]:
        """RFC 8684 §3.7, one subflow: MP_FAIL (the DSN of the failed mapping) on our ACKs
        until the peer's infinite mapping arrives; and our own infinite mapping (data-level
        length 0, starting at the last DATA_ACKed byte, acting retroactively) once, on the
        next segment -- after it no MPTCP option is sent (fallback)."""
        mc = self.mc
        out: list[TcpOption] = []
        if mc.mp_fail_send is not None and space >= 12:
            out.append(MpFail(mc.mp_fail_send))
            space -= 12
            mc.mib.incr("MPTcpExtMPFailTx")
            if mc.fallback is not None:
                mc.mp_fail_send = None  # a reply: once is enough
        inf = mc.infinite_send
        if inf is not None and space >= _DSS_ACK + _DSS_MAP + (2 if mc.checksums else 0):
            dsn, ssn = inf
            # Linux takes a new mapping only where the previous one ended: the infinite
            # mapping rides on the first data segment that starts a unit (or follows the
            # last one), from that segment's first byte
            own = self._infinite_point(hdr)
            conn = self.conn
            if own is not None:
                dsn, ssn = own
            elif conn is not None and conn.snd_nxt < conn.sendbuf.end:
                return out  # new data will come: wait for its unit start
            # else nothing new to send: from the last DATA_ACKed byte, on this segment
            out.append(Dss(data_ack=mc.data_ack(), dsn=dsn, ssn=ssn & 0xFFFFFFFF,
                           data_level_length=0, checksum=0 if mc.checksums else None,
                           ack64=True, dsn64=True))
            mc.infinite_send = None
            mc.mib.incr("MPTcpExtInfiniteMapTx")
        return out

    def ssn_of(self, dsn: int) -> int | None:
        """Our relative SSN that carried data-level byte ``dsn`` (send runs)."""
        for s, d, n in self.send_maps:
            off = (dsn - d) & _MASK64
            if off <= n:
                return s + off
        return None

    def _rst_options(self, space: int) -> Sequence[TcpOption]:
        """RFC 8684 §3.5 option R (MP_FASTCLOSE on the RST, the peer's key) and §3.6 MP_TCPRST
        with our reason on every RST this subflow sends once MPTCP is up."""
        mc = self.mc
        out: list[TcpOption] = []
        if mc.fastclose_pending and mc.remote_key is not None and space >= 12 \
                and self.tcprst_reason is None:
            out.append(MpFastClose(mc.remote_key))
            space -= 12
            mc.mib.incr("MPTcpExtMPFastcloseTx")
        if mc.remote_key is not None and space >= 4:
            reason = self.tcprst_reason if self.tcprst_reason is not None else mc.tcprst_reason
            out.append(MpTcpRst(reason=reason, transient=mc.tcprst_transient))
            mc.mib.incr("MPTcpExtMPRstTx")
        return out

    def _checksum(self, conn: TcpConnection, dsn: int, ssn: int, dll: int,
                  hdr: OutHeader) -> int:
        """RFC 8684 §3.3.1 DSS checksum over the segment's payload (read back from the
        subflow's send buffer: the option hook sees offsets, not bytes)."""
        payload = conn.sendbuf.peek(hdr.seq, hdr.length) if hdr.length else b""
        return dss_checksum(dsn, ssn, dll, payload)

    # ------------------------------------------------------------------ incoming ------------
    def on_segment(self, conn: TcpConnection, seg: Segment, now: float) -> Verdict:
        mc = self.mc
        if mc.fallback is not None:
            if mc.awaiting_peer_infinite:
                for opt in seg.tcp.options:
                    if type(opt) is Dss and opt.data_level_length == 0 and opt.dsn is not None:
                        # the peer's infinite mapping, after its MP_FAIL answer (§3.7)
                        mc.awaiting_peer_infinite = False
                        mc.mib.incr("MPTcpExtInfiniteMapRx")
            return Verdict.ACCEPT
        mpc: MpCapable | None = None
        dss: Dss | None = None
        flags = seg.tcp.flags
        fastclose: MpFastClose | None = None
        any_mptcp = False
        jopt: object = None
        for opt in seg.tcp.options:
            t = type(opt)
            if t is Dss:
                dss = opt  # type: ignore[assignment]
            elif t is MpCapable:
                mpc = opt  # type: ignore[assignment]
            elif t is MpJoinSynAck or t is MpJoinAck:
                jopt = opt
            elif t is AddAddr:
                any_mptcp = True
                if not flags & 0x04:
                    mc.on_add_addr(self, opt)  # type: ignore[arg-type]
            elif t is RemoveAddr:
                any_mptcp = True
                if not flags & 0x04:
                    mc.on_remove_addr(tuple(opt.address_ids))  # type: ignore[attr-defined]
            elif t is MpPrio:
                any_mptcp = True
                if not flags & 0x04:
                    mc.on_mp_prio(self, opt)  # type: ignore[arg-type]
            elif t is MpFastClose:
                fastclose = opt  # type: ignore[assignment]
            elif t is MpFail:
                mc.on_mp_fail(self, opt.dsn)  # type: ignore[attr-defined]
            elif t is MpTcpRst:
                if flags & 0x04:  # RFC 8684 §3.6: only meaningful on a RST
                    mc.on_tcprst(int(opt.reason), bool(opt.transient))  # type: ignore[attr-defined]
                else:
                    mc.mib.incr("MPTcpExtTcpRstIgnoredNoRst")
        if fastclose is not None and mc.on_fastclose(fastclose.receiver_key, bool(flags & 0x04)):
            # option R (on a RST): the engine applies the RST; option A (on an ACK): answer
            # with a RST (RFC 8684 §3.5)
            return Verdict.ACCEPT if flags & 0x04 else Verdict.RESET
        if flags & 0x04:
            return Verdict.ACCEPT  # the engine checks and applies the RST
        if self.join is not None:
            v = self._join_segment(conn, seg, jopt)
            if v is not None:
                return v
        if flags & 0x02:  # SYN (/ACK): the client learns the server's key
            return self._on_synack(mpc) if self.client else Verdict.ACCEPT
        if mpc is not None and not self.client:
            if mc.remote_key is None and not self._server_keys(mpc):
                return Verdict.ACCEPT
            if mpc.data_level_length is not None and seg.payload \
                    and mpc.sender_key == mc.remote_key:
                # RFC 8684 §3.1: MP_CAPABLE with data maps the first bytes (DSN = IDSN + 1)
                self._add_map(Mapping(1, (mc.remote_idsn + 1) & _MASK64,
                                      mpc.data_level_length, False), mpc.checksum, seg)
        if dss is not None:
            self.peer_dss_seen = True
            if not self.client and mc.remote_key is None:
                mc.set_fallback("DSS before the client's key", "MPTcpExtMPCapableFallbackACK")
                return Verdict.ACCEPT
            if dss.data_ack is not None:
                self.data_ack_seen = True
                dack = expand(dss.data_ack, 64 if dss.ack64 else 32, mc.snd_una())
                # RFC 8684 §3.3.4: the window field is relative to the DATA_ACK
                mc.on_data_ack(dack, now, seg.tcp.window << conn.snd_wscale)
            if dss.dsn is not None:
                self._on_mapping(dss, seg)
        elif seg.payload and mpc is None and mc.remote_key is not None \
                and self.recv_maps.lookup(expand((seg.tcp.seq - (conn.irs or 0)) & 0xFFFFFFFF,
                                                 32, self.read_ssn)) is None:
            # RFC 8684 §3.7: data that no mapping covers, without any MPTCP option: the path
            # strips them.  Plain TCP from here if the byte streams still line up (nothing
            # reinjected, identity offsets); else this subflow cannot go on (reason 6)
            mc.mib.incr("MPTcpExtDSSNoMatchTCP")
            if self.is_join or mc.subflow_count() > 1:
                # RFC 8684 §3.7: on a joined subflow (or with several): reset this subflow
                mc.mib.incr("MPTcpExtSubflowResetNoDss")
                mc.reset_subflow(self, "MPTCP options stripped on a subflow", tcprst=6)
                return Verdict.ACCEPT
            if mc.fallback_safe():
                mc.set_fallback("data without DSS", "MPTcpExtFallbackNoDss")
            else:
                mc.fail("MPTCP options stripped after data was mapped", reset=True, tcprst=6)
            return Verdict.ACCEPT
        elif not self.checked_first_segment and seg.payload and mc.remote_key is None:
            mc.set_fallback("data without DSS", "MPTcpExtMPCapableFallbackACK")
            return Verdict.ACCEPT
        elif mpc is None and not any_mptcp and flags & 0x10 and not seg.payload \
                and not self.is_join and mc.subflow_count() <= 1 \
                and (seg.tcp.ack - conn.iss - 1) & 0xFFFFFFFF < 0x7FFFFFFF \
                and (seg.tcp.ack - conn.iss - 1) & 0xFFFFFFFF > 0 and mc.remote_key is not None:
            # RFC 8684 §3.7: our data acknowledged at the TCP level without a DATA_ACK: the
            # peer (or the path) is not doing MPTCP any more -- Linux falls back like this
            # after a checksum failure on the first data.  Plain TCP if the streams still
            # line up (nothing DATA_ACKed yet), else the subflow cannot go on.
            if not mc.fallback_safe():
                mc.fail("data acknowledged without DATA_ACK after data was mapped",
                        reset=True, tcprst=6)
                return Verdict.ACCEPT
            mc.set_fallback("data acknowledged without DATA_ACK", "MPTcpExtFallbackNoDss")
            return Verdict.ACCEPT
        if seg.payload:
            self.checked_first_segment = True
        if not self.client and mc.remote_key is None and not flags & 0x04 \
                and conn.state.value == "SYN-RECEIVED" and mpc is None and dss is None:
            # the third ACK without MP_CAPABLE: options stripped after the SYN/ACK
            mc.set_fallback("third ACK without MP_CAPABLE", "MPTcpExtMPCapableFallbackACK")
        mc.touch()
        return Verdict.ACCEPT

    def _join_segment(self, conn: TcpConnection, seg: Segment, jopt: object) -> Verdict | None:
        """RFC 8684 §3.2 on a joined subflow: the SYN/ACK's HMAC (A), the third ACK's HMAC
        (B), the fourth ACK (A).  A verdict ends the segment's MPTCP processing."""
        mc, join = self.mc, self.join
        assert join is not None
        flags = seg.tcp.flags
        lk, rk = mc.local_key, mc.remote_key
        if rk is None:
            return Verdict.RESET
        if flags & 0x02:  # the SYN/ACK (we are A)
            if not self.client or flags & 0x10 == 0:
                return Verdict.ACCEPT
            if type(jopt) is not MpJoinSynAck:
                mc.mib.incr("MPTcpExtMPJoinNoJoinSynAck")
                self.tcprst_reason = 1
                return Verdict.RESET
            mc.mib.incr("MPTcpExtMPJoinSynAckRx")
            if jopt.backup:
                mc.mib.incr("MPTcpExtMPJoinSynAckBackupRx")
            if not join.check_synack(jopt, lk, rk):
                mc.mib.incr("MPTcpExtMPJoinSynAckHMacFailure")
                self.tcprst_reason = 1  # MPTCP-specific error (Linux: MPTCP_RST_EMPTCP)
                if self.sf is not None:
                    self.sf.reason = "MP_JOIN SYN/ACK with a wrong HMAC"
                return Verdict.RESET
            if self.sf is not None:
                self.sf.peer_backup = join.peer_backup
                self.sf.remote_id = jopt.address_id
            conn.ack_now = True
            return Verdict.ACCEPT
        if join.initiator_side:
            if not join.confirmed and join.verified and flags & 0x10:
                join.confirmed = True  # the fourth ACK: data may flow (§3.2)
                mc.touch()
            return None
        if not join.confirmed:  # we are B: the third ACK must carry A's HMAC
            if type(jopt) is not MpJoinAck:
                mc.mib.incr("MPTcpExtMPJoinAckMissing")
                mc.mib.incr("MPTcpExtMPJoinAckHMacFailure")
                self.tcprst_reason = 3
                return Verdict.RESET
            mc.mib.incr("MPTcpExtMPJoinAckRx")
            if not join.check_ack(jopt, lk, rk):
                mc.mib.incr("MPTcpExtMPJoinAckHMacFailure")
                self.tcprst_reason = 3  # administratively prohibited (Linux: EPROHIBIT)
                if self.sf is not None:
                    self.sf.reason = "MP_JOIN third ACK with a wrong HMAC"
                return Verdict.RESET
            conn.ack_now = True  # the fourth ACK, at once (§3.2)
            mc.touch()
            return Verdict.ACCEPT
        return None

    def _on_synack(self, mpc: MpCapable | None) -> Verdict:
        mc = self.mc
        if mpc is None or mpc.sender_key is None:
            mc.set_fallback("SYN/ACK without MP_CAPABLE", "MPTcpExtMPCapableFallbackSYNACK")
            return Verdict.ACCEPT
        if mpc.version != 1 or not mpc.flags & MPC_FLAG_HMAC_SHA256:
            mc.set_fallback(f"MP_CAPABLE version {mpc.version}", "MPTcpExtMpcVersionMismatch")
            return Verdict.ACCEPT
        mc.mib.incr("MPTcpExtMPCapableSYNACKRX")
        mc.peer_no_join = bool(mpc.flags & MPC_FLAG_NO_JOIN)
        mc.set_remote_key(mpc.sender_key, bool(mpc.flags & MPC_FLAG_CHECKSUM))
        return Verdict.ACCEPT

    def _server_keys(self, mpc: MpCapable) -> bool:
        mc = self.mc
        if mpc.sender_key is None or mpc.receiver_key != mc.local_key:
            mc.mib.incr("MPTcpExtMPCapableFallbackACK")
            return False
        mc.mib.incr("MPTcpExtMPCapableACKRX")
        mc.set_remote_key(mpc.sender_key, bool(mpc.flags & MPC_FLAG_CHECKSUM))
        self.mpc_confirmed = True
        return True

    def _on_mapping(self, dss: Dss, seg: Segment) -> None:
        mc = self.mc
        assert dss.dsn is not None and dss.ssn is not None and dss.data_level_length is not None
        dsn = expand(dss.dsn, 64 if dss.dsn64 else 32, mc.rcv_nxt())
        dll = dss.data_level_length
        if dll == 0:
            mc.on_infinite_mapping(self, dsn, dss.ssn)
            return
        if dss.data_fin and dll == 1 and dss.ssn == 0:
            mc.on_data_fin(dsn)  # a DATA_FIN without data (RFC 8684 §3.3.3)
            return
        length = dll - (1 if dss.data_fin else 0)
        conn = self.conn
        assert conn is not None
        # the 32-bit relative SSN, expanded next to the bytes being read
        ssn = expand(dss.ssn, 32, self.read_ssn)
        self._add_map(Mapping(ssn, dsn, length, dss.data_fin), dss.checksum, seg)

    def _add_map(self, m: Mapping, checksum: int | None, seg: Segment) -> None:
        mc = self.mc
        try:
            self.recv_maps.add(m)
        except MappingError as e:
            mc.mib.incr("MPTcpExtDSSNotMatching")
            mc.on_bad_mapping(self, str(e))
            return
        if m.fin:
            mc.on_data_fin((m.dsn + m.length) & _MASK64)
        if mc.checksums:
            if checksum is None:
                mc.mib.incr("MPTcpExtMappingChecksumMissing")
            elif m.length:
                self.csum_maps.setdefault(m.ssn, (m.dsn, m.length, m.fin, checksum))
        _ = seg

    # ------------------------------------------------------------------ helpers -------------
    @staticmethod
    def mpc_flags_ok(mpc: MpCapable) -> bool:
        """RFC 8684 §3.1: B must be 0, H must be 1 for v1."""
        return not mpc.flags & MPC_FLAG_EXTENSIBILITY and bool(mpc.flags & MPC_FLAG_HMAC_SHA256)
