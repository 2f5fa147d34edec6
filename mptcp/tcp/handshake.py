"""Connection opening: SYN options, negotiation, LISTEN and SYN-SENT processing, TFO.

- RFC 9293 §3.5 (three-way handshake, simultaneous open), §3.10.1 (OPEN), §3.10.7.2 (LISTEN:
  a SYN creates the connection in SYN-RECEIVED), §3.10.7.3 (SYN-SENT), §3.7.1 (MSS option;
  536 / 1220 when absent).
- RFC 7323 §2.2-§2.3 (window scale only if both SYNs carry it; shift > 14 used as 14; the
  window field of a SYN is never scaled), §3.2 (timestamps only if both SYNs carry them).
- RFC 2018 §2 (SACK-permitted in both SYNs), RFC 3168 §6.1.1 (ECN-setup SYN = ECE|CWR,
  ECN-setup SYN-ACK = ECE).
- RFC 7413 §4.1-§4.2 (TFO): cookie request, cookie + data in the SYN, server validation,
  the SYN-ACK acknowledging the data only with a valid cookie, retransmitted SYNs without
  data or cookie, negative caching.

Option layout follows Linux: SYN = MSS, SACK_PERM, TS, NOP, WS (then the TFO cookie, then
extension options); see hooks.DROP_ORDER_SYN for what makes room for extensions.

Choice: data in a SYN without a valid TFO cookie is not acknowledged (dropped; the client
sends it again after the handshake), as Linux does; RFC 9293 §3.10.7.2 allows queueing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mptcp.tcp import input as tcp_input
from mptcp.tcp import output, recovery, timers
from mptcp.tcp.events import Connected, DataReceived
from mptcp.tcp.hooks import DROP_ORDER_SYN, MAX_OPTION_SPACE, SegmentKind
from mptcp.tcp.scoreboard import Scoreboard
from mptcp.tcp.seqnum import SeqSpace
from mptcp.tcp.state import TcpState, Trigger
from mptcp.tcp.tfo import syn_data_limit
from mptcp.wire.options import (
    NOP,
    SACK_PERMITTED,
    FastOpen,
    Mss,
    SackPermitted,
    TcpOption,
    Timestamps,
    WindowScale,
)
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, CWR, ECE, RST, SYN

if TYPE_CHECKING:
    from mptcp.tcp.connection import TcpConnection

__all__ = [
    "SynOptions", "parse_syn_options", "active_open", "passive_open", "syn_sent_arrives",
    "build_syn", "establish",
]


class SynOptions:
    """What a SYN / SYN-ACK offered."""

    __slots__ = ("mss", "sack", "tfo", "ts", "wscale")

    def __init__(self) -> None:
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack = False
        self.ts: Timestamps | None = None
        self.tfo: bytes | None = None  # b"" = cookie request


def parse_syn_options(options: tuple[TcpOption, ...]) -> SynOptions:
    """The handshake options of a SYN / SYN-ACK (the first of each kind counts)."""
    so = SynOptions()
    for opt in options:
        t = type(opt)
        if t is Mss and so.mss is None:
            so.mss = opt.mss  # type: ignore[attr-defined]
        elif t is WindowScale and so.wscale is None:
            so.wscale = opt.shift  # type: ignore[attr-defined]
        elif t is SackPermitted:
            so.sack = True
        elif t is Timestamps and so.ts is None:
            so.ts = opt  # type: ignore[assignment]
        elif t is FastOpen and so.tfo is None:
            so.tfo = opt.cookie  # type: ignore[attr-defined]
    return so


def _negotiate(c: TcpConnection, so: SynOptions, now: float, we_offered: dict[str, bool]
               ) -> None:
    """Record what both SYNs agreed on (we_offered: what our SYN carried, for SYN-SENT;
    for a passive open: what the configuration enables)."""
    cfg = c.config
    if so.mss is not None:
        c.peer_mss = max(so.mss, 64)
    c.ws_ok = bool(we_offered.get("ws")) and so.wscale is not None
    if c.ws_ok:
        c.snd_wscale = min(so.wscale or 0, 14)  # RFC 7323 §2.3
        c.rcv_wscale = cfg.our_wscale
    else:
        c.snd_wscale = 0
        c.rcv_wscale = 0
    c.sack_ok = bool(we_offered.get("sack")) and so.sack
    c.recvbuf.dsack = cfg.dsack and c.sack_ok  # no D-SACK (nor its counters) without SACK
    c.ts_ok = bool(we_offered.get("ts")) and so.ts is not None
    if c.ts_ok and so.ts is not None:
        c.ts_recent = so.ts.tsval
        c.ts_recent_time = now
    c.sb = Scoreboard(max(c.snd_una, 1), c.smss, dup_thresh=cfg.dupthresh, counters=c.mib)
    if c.snd_nxt > 1:
        c.sb.on_transmit(1, c.snd_nxt)  # TFO data in our SYN
    c.cc.set_mss(c.smss, now)


def active_open(c: TcpConnection, now: float) -> None:
    """OPEN call, active (RFC 9293 §3.10.1): SYN-SENT, the SYN is due."""
    c.set_state(Trigger.ACTIVE_OPEN)
    c.mib.incr("TcpActiveOpens")
    c.need_syn = True
    cfg = c.config
    cache = c.tfo_cache
    if cfg.tfo_client and cache is not None \
            and cache.allowed(c.local[0], c.remote[0], c.remote[1], now):
        cached = cache.get(c.local[0], c.remote[0])
        if cached is not None:
            c.tfo_cookie = cached.cookie
            if cached.mss is not None:
                c.peer_mss = cached.mss
        else:
            c.tfo_request = True


def passive_open(c: TcpConnection, seg: Segment, now: float) -> None:
    """A SYN reached a listener (RFC 9293 §3.10.7.2): SYN-RECEIVED with a SYN-ACK due."""
    cfg = c.config
    tcp = seg.tcp
    c.passive = True
    c.set_state(Trigger.PASSIVE_OPEN)
    c.set_state(Trigger.RCV_SYN)
    c.mib.incr("TcpPassiveOpens")
    c.irs = tcp.seq
    c.rcv = SeqSpace(tcp.seq)
    so = parse_syn_options(tcp.options)
    offered = {"ws": cfg.window_scaling, "sack": cfg.sack, "ts": cfg.timestamps}
    _negotiate(c, so, now, offered)
    # The SYN's window is never scaled (RFC 7323 §2.2).
    c.snd_wnd = tcp.window
    c.max_snd_wnd = tcp.window
    c.snd_wl1 = 0
    c.snd_wl2 = 0
    # RFC 3168 §6.1.1: ECN-setup SYN has ECE and CWR (AccECN, which adds AE, is an extension's).
    if cfg.ecn and not c.ext_ecn and tcp.flags & (ECE | CWR) == (ECE | CWR):
        c.ecn_ok = True
        c.mib.incr("TcpExtTCPECNNegotiated")
    # RFC 7413 §4.2.2 "Server: Receiving SYN"
    if so.tfo is not None and cfg.tfo_server and c.tfo_server is not None:
        srv = c.tfo_server
        client_ip = c.remote[0]
        if not so.tfo:
            c.mib.incr("TcpExtTCPFastOpenCookieReqd")
            c.tfo_send_cookie = srv.cookie(client_ip)
        elif srv.may_accept() and srv.valid(client_ip, so.tfo):
            c.tfo_fast_opened = True
            srv.pending += 1
            if seg.payload:
                c.recvbuf.accept(1, seg.payload)
                c.mib.incr("TcpExtTCPFastOpenPassive")
                c.emit(DataReceived(len(seg.payload)))
        else:
            c.mib.incr("TcpExtTCPFastOpenPassiveFail")
            c.tfo_send_cookie = srv.cookie(client_ip)
    c.need_syn = True
    c.rcv_adv = c.recvbuf.right_edge


def build_syn(c: TcpConnection, now: float) -> Segment:
    """Our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), first transmission or retransmission
    (RFC 7413 §4.2.2: retransmissions carry neither TFO data nor cookie)."""
    cfg = c.config
    synack = c.state is TcpState.SYN_RECEIVED
    kind = SegmentKind.SYN_ACK if synack else SegmentKind.SYN
    rtx = c.syn_time is not None
    if synack:
        want = {"ts": c.ts_ok, "sack": c.sack_ok, "ws": c.ws_ok}
    else:
        want = {"ts": cfg.timestamps, "sack": cfg.sack, "ws": cfg.window_scaling}
    cookie: bytes | None = None
    if not rtx:
        if synack:
            cookie = c.tfo_send_cookie
        elif c.tfo_cookie is not None:
            cookie = c.tfo_cookie
        elif c.tfo_request:
            cookie = b""
    reserve = sum(e.option_space(c, kind) for e in c.ext_opts) if c.ext_opts else 0
    tsval = c.tsval(now)
    tsecr = c.ts_recent if synack else 0
    opts, size = _syn_layout(c, want, cookie, tsval, tsecr)
    for name in DROP_ORDER_SYN:
        if MAX_OPTION_SPACE - size >= reserve:
            break
        key = {"timestamps": "ts", "sack_permitted": "sack", "window_scale": "ws"}[name]
        if want[key]:
            want[key] = False
            opts, size = _syn_layout(c, want, cookie, tsval, tsecr)
    if not synack:
        c.syn_options_sent = dict(want)
    else:
        # What we left out is not negotiated.
        c.ts_ok, c.sack_ok = want["ts"], want["sack"]
        c.recvbuf.dsack = cfg.dsack and c.sack_ok
        if not want["ws"]:
            c.ws_ok = False
            c.snd_wscale = c.rcv_wscale = 0
    flags = SYN | (ACK if synack else 0)
    if c.config.ecn and not c.ext_ecn:
        if not synack:
            flags |= ECE | CWR
        elif c.ecn_ok:
            flags |= ECE
    payload = b""
    if not synack and not rtx and c.tfo_cookie and c.sendbuf.buffered:
        limit = min(syn_data_limit(c.peer_mss, c.ipv6), c.config.mss)
        payload = c.sendbuf.peek(1, max(0, limit - size))
        c.tfo_syn_data = len(payload)
        c.mib.incr("TcpExtTCPFastOpenActive")
    elif not synack and not rtx and c.tfo_request:
        c.mib.incr("TcpExtTCPFastOpenCookieReqd")
    seg = output.assemble(c, kind, 0, flags, opts, size, payload, rtx, now,
                          window=min(c.recvbuf.window, 0xFFFF))
    if rtx:
        c.syn_retransmits += 1
        c.mib.incr("TcpExtTCPSynRetrans")
        c.mib.incr("TcpRetransSegs")
    else:
        c.syn_time = now
        c.mib.incr("TcpOutSegs")
    end = 1 + len(payload)
    if end > c.snd_nxt:
        c.snd_nxt = end
        if payload:
            c.sb.on_transmit(1, end)
            c.rec.on_transmit(1, end, now, False)
    c.need_syn = False
    timers.arm_rto_if_stopped(c, now)
    return seg


def _syn_layout(c: TcpConnection, want: dict[str, bool], cookie: bytes | None, tsval: int,
                tsecr: int) -> tuple[list[TcpOption], int]:
    opts: list[TcpOption] = [Mss(c.config.mss if c.config.path_mss is None
                                 else min(c.config.mss, c.config.path_mss))]
    size = 4
    if want["ts"] and want["sack"]:
        opts += [SACK_PERMITTED, Timestamps(tsval, tsecr)]
        size += 12
    elif want["ts"]:
        opts += [NOP, NOP, Timestamps(tsval, tsecr)]
        size += 12
    elif want["sack"]:
        opts += [NOP, NOP, SACK_PERMITTED]
        size += 4
    if want["ws"]:
        opts += [NOP, WindowScale(c.config.our_wscale)]
        size += 4
    if cookie is not None:
        opt = FastOpen(cookie)
        n = 2 + len(cookie)
        pad = -n & 3
        opts += [NOP] * pad + [opt]
        size += n + pad
    return opts, size


def syn_sent_arrives(c: TcpConnection, seg: Segment, now: float) -> None:
    """RFC 9293 §3.10.7.3: a segment arrives in SYN-SENT."""
    tcp = seg.tcp
    flags = tcp.flags
    ack_ok = False
    ack = 0
    if flags & ACK:
        ack = c.snd.offset(tcp.ack, c.snd_una)
        # SEG.ACK =< ISS or SEG.ACK > SND.NXT: not acceptable
        if ack <= 0 or ack > c.snd_nxt:
            if not flags & RST:
                output.queue_rst(c, tcp.ack, None, seg)
            return
        ack_ok = True
    if flags & RST:
        if ack_ok:  # RFC 5961 §3.2 keeps this rule for SYN-SENT
            c.mib.incr("TcpInRsts")
            c.fail("refused")
        return
    if not flags & SYN:
        return
    c.irs = tcp.seq
    c.rcv = SeqSpace(tcp.seq)
    so = parse_syn_options(tcp.options)
    _negotiate(c, so, now, c.syn_options_sent)
    if ack_ok:
        _tfo_client_synack(c, so, ack, now)
        c.snd_una = ack
        c.sendbuf.ack_to(max(ack, 1))
        c.sb.on_ack(max(ack, 1))
        if c.config.ecn and not c.ext_ecn and flags & (ECE | CWR) == ECE:
            c.ecn_ok = True  # RFC 3168 §6.1.1
            c.mib.incr("TcpExtTCPECNNegotiated")
        c.snd_wnd = tcp.window  # a SYN-ACK's window is never scaled (RFC 7323 §2.2)
        c.max_snd_wnd = tcp.window
        c.snd_wl1 = 0
        c.snd_wl2 = ack
        c.rcv_adv = c.recvbuf.right_edge
        recovery.handshake_rtt(c, seg, now)
        establish(c, now, Trigger.RCV_SYN_ACK, so)
        c.ack_now = True
        if seg.payload or tcp.flags & 0x1:
            tcp_input.process_text_and_fin(c, seg, 1, now)
    else:
        # Simultaneous open (§3.5 Figure 8): SYN-RECEIVED, send SYN,ACK.
        c.snd_wnd = tcp.window
        c.max_snd_wnd = tcp.window
        c.set_state(Trigger.RCV_SYN)
        c.syn_time = None  # the SYN-ACK is a new transmission of our SYN
        c.need_syn = True
        c.rcv_adv = c.recvbuf.right_edge


def _tfo_client_synack(c: TcpConnection, so: SynOptions, ack: int, now: float) -> None:
    """RFC 7413 §4.2.2 "Client: Receiving SYN-ACK" and §4.1.3.1 negative caching."""
    cache = c.tfo_cache
    if cache is None or not c.config.tfo_client:
        return
    if so.tfo:
        cache.put(c.local[0], c.remote[0], so.tfo, so.mss)
    elif so.mss is not None and c.tfo_cookie is not None:
        cache.put(c.local[0], c.remote[0], None, so.mss)
    if c.tfo_syn_data:
        if ack >= 1 + c.tfo_syn_data and c.syn_retransmits == 0:
            c.tfo_fast_opened = True
        else:
            c.mib.incr("TcpExtTCPFastOpenActiveFail")
            cache.negative(c.local[0], c.remote[0], c.remote[1], now)
            if ack < 1 + c.tfo_syn_data:
                # Send the data again after the handshake (§4.2.2 step 2).
                c.snd_nxt = ack
                c.sb = Scoreboard(ack, c.smss, dup_thresh=c.config.dupthresh, counters=c.mib)
                c.rec.reset(ack)
    elif c.tfo_cookie is not None and c.syn_retransmits:
        cache.negative(c.local[0], c.remote[0], c.remote[1], now)


def establish(c: TcpConnection, now: float, trigger: Trigger, so: SynOptions | None) -> None:
    """The handshake completed: ESTABLISHED, Connected, RTO and cwnd set up for data
    (RFC 6298 §5.7, RFC 5681 §3.1 after a lost SYN)."""
    c.set_state(trigger)
    c.rtt.handshake_complete(syn_timed_out=c.syn_retransmits > 0, now=now)
    if c.syn_retransmits:
        c.cc.on_handshake_retransmitted(now)
    c.retries = 0
    c.t_rto = None
    if c.snd_nxt > c.snd_una:
        timers.arm_rto(c, now)
    c.rec.tlp_init()
    c.emit(Connected(c.tfo_fast_opened))
    if c.tfo_server is not None and c.tfo_fast_opened and c.passive:
        c.tfo_server.pending = max(0, c.tfo_server.pending - 1)
    if c.config.keepalive:
        timers.arm_keepalive(c, now)
    if c.close_pending:
        c.close_pending = False
        c.write_shut = False
        c.shutdown_write()
    recovery.after_establish(c)
