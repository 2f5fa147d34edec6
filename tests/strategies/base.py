"""Hypothesis strategies for IP/TCP headers, the base TCP options and whole segments.

Other packages' strategies (``tests.strategies.mptcp``, ``tests.strategies.ext``) produce
option values that :func:`option_lists` can mix in under the 40-byte option budget.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mptcp.wire.ip import IPv4Header, IPv6Header
from mptcp.wire.options import (
    NOP,
    Eol,
    Experimental,
    FastOpen,
    Mss,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
    registered_exids,
    registered_kinds,
)
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import TcpHeader

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

mss = st.builds(Mss, u16)
window_scale = st.builds(WindowScale, u8)
sack_permitted = st.just(SackPermitted())
sack = st.builds(Sack, st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(tuple))
timestamps = st.builds(Timestamps, u32, u32)
fast_open = st.builds(FastOpen, st.one_of(st.just(b""), st.binary(min_size=4, max_size=16)))
# ExIDs nobody registered (0x454E is TCP-ENO's, 0xACC0/1 AccECN's, when imported)
experimental = st.builds(
    Experimental, st.sampled_from((253, 254)), u16.filter(lambda x: x not in registered_exids()),
    st.binary(max_size=36),
)
unknown = st.builds(
    UnknownOption,
    st.integers(2, 252).filter(lambda k: k not in registered_kinds() and k not in (0, 1)),
    st.binary(max_size=38),
)
nop = st.just(NOP)

base_option = st.one_of(
    mss, window_scale, sack_permitted, sack, timestamps, fast_open, experimental, unknown, nop
)


# options that scapy re-serializes unchanged (it rewrites some unknown kinds)
scapy_safe_option = st.one_of(mss, window_scale, sack_permitted, sack, timestamps, nop)


@st.composite
def option_lists(
    draw: Any, extra: Any = None, budget: int = 40, pool: Any = None
) -> tuple[TcpOption, ...]:
    """Options that fit ``budget`` bytes, from ``pool`` (the base options by default) and
    ``extra``; sometimes an EOL with zero padding to the next 32-bit boundary at the end."""
    pool = base_option if pool is None else pool
    pool = pool if extra is None else st.one_of(pool, extra)
    opts: list[TcpOption] = []
    used = 0
    for _ in range(draw(st.integers(0, 8))):
        opt = draw(pool)
        size = len(opt.to_bytes())
        if used + size > budget:
            continue
        opts.append(opt)
        used += size
    if used % 4 and draw(st.booleans()):
        opts.append(Eol(bytes(3 - used % 4)))
        used += 4 - used % 4
    if used % 4:  # keep the list 32-bit aligned so it round-trips as a list
        pad = 4 - used % 4
        opts.extend([NOP] * pad)
    return tuple(opts)


flags12 = st.integers(0, 0xFFF)


@st.composite
def tcp_headers(draw: Any, extra: Any = None, pool: Any = None) -> TcpHeader:
    return TcpHeader(
        draw(u16), draw(u16), draw(u32), draw(u32), draw(flags12), draw(u16), 0, draw(u16),
        draw(option_lists(extra, pool=pool)),
    )


ipv4_headers = st.builds(
    IPv4Header,
    tos=u8, total_length=st.just(0), ident=u16,
    flags_frag=st.sampled_from((0x0000, 0x4000, 0x8000, 0xC000)),
    ttl=u8, proto=st.just(6), checksum=st.just(0),
    src=st.binary(min_size=4, max_size=4), dst=st.binary(min_size=4, max_size=4),
    options=st.integers(0, 10).map(lambda n: bytes([1] * (4 * n - 1) + [0]) if n else b""),
)
ipv6_headers = st.builds(
    IPv6Header,
    traffic_class=u8, flow_label=st.integers(0, 0xFFFFF), payload_length=st.just(0),
    next_header=st.just(6), hop_limit=u8, ext=st.just(b""), proto=st.just(6),
    src=st.binary(min_size=16, max_size=16), dst=st.binary(min_size=16, max_size=16),
)


@st.composite
def segments(
    draw: Any, extra: Any = None, max_payload: int = 1500, pool: Any = None
) -> Segment:
    """Valid segments over IPv4 or IPv6; ``extra`` adds option strategies of other packages."""
    ip = draw(st.one_of(ipv4_headers, ipv6_headers))
    return Segment(ip, draw(tcp_headers(extra, pool)), draw(st.binary(max_size=max_payload)))
