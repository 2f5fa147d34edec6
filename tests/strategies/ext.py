"""Hypothesis strategies for the extension option codecs: TCP-ENO (RFC 8547) and AccECN
(RFC 9768).

Every strategy yields values whose ``to_bytes()`` is a valid encoding that parses back to the
same value.  ``max_len`` bounds the whole option (kind and length included); the default 40 is
the TCP option space, so the values fit a real segment (the tshark oracle test needs that).
"""

from __future__ import annotations

from hypothesis import strategies as st

from accecn.option import ACCECN0_KIND, ACCECN1_KIND, AccEcnOption
from tcpinc.eno_option import (
    ENO_KIND,
    EnoOpaque,
    EnoOption,
    GlobalSuboption,
    Suboption,
    Tep,
    TepFraming,
)

__all__ = [
    "global_suboptions", "teps", "eno_suboption_lists", "eno_options", "eno_opaque_options",
    "accecn_options", "accecn_kinds", "prefixed_option_bytes", "TCP_OPTION_SPACE",
]

TCP_OPTION_SPACE = 40


def global_suboptions(*, conforming: bool = False) -> st.SearchStrategy[GlobalSuboption]:
    """Global suboption bytes 0x00-0x1f; ``conforming`` keeps the z bits zero (§4.2)."""
    if conforming:
        return st.sampled_from([GlobalSuboption(v) for v in (0, 1, 2, 3)])
    return st.integers(0, 0x1F).map(GlobalSuboption)


_TEP_IDS = st.integers(0x20, 0x7F)


def teps(framing: TepFraming | None = None, *, max_data: int = 32) -> st.SearchStrategy[Tep]:
    """TEP suboptions of one framing (or any): bare, length-prefixed 1..32, or to-the-end."""
    bare = _TEP_IDS.map(Tep)
    length = st.builds(
        Tep, _TEP_IDS, st.binary(min_size=1, max_size=min(32, max(1, max_data))),
        st.just(TepFraming.LENGTH),
    )
    to_end = st.builds(Tep, _TEP_IDS, st.binary(max_size=max_data), st.just(TepFraming.TO_END))
    if framing == TepFraming.BARE:
        return bare
    if framing == TepFraming.LENGTH:
        return length
    if framing == TepFraming.TO_END:
        return to_end
    return st.one_of(bare, length, to_end)


def _size(sub: Suboption) -> int:
    if type(sub) is GlobalSuboption:
        return 1
    assert type(sub) is Tep
    if sub.framing == TepFraming.BARE:
        return 1
    return len(sub.data) + (2 if sub.framing == TepFraming.LENGTH else 1)


@st.composite
def eno_suboption_lists(
    draw: st.DrawFn, max_contents: int = TCP_OPTION_SPACE - 2
) -> tuple[Suboption, ...]:
    """A SYN-form suboption list whose encoding is at most ``max_contents`` bytes: globals,
    bare and length-prefixed TEPs in any order, optionally a to-the-end TEP last (§4.4)."""
    middle = st.one_of(
        global_suboptions(), teps(TepFraming.BARE), teps(TepFraming.LENGTH)
    )
    out: list[Suboption] = []
    used = 0
    for sub in draw(st.lists(middle, max_size=max_contents)):
        size = _size(sub)
        if used + size > max_contents:
            break
        out.append(sub)
        used += size
    room = max_contents - used
    if room >= 1 and draw(st.booleans()):
        out.append(draw(teps(TepFraming.TO_END, max_data=room - 1)))
    return tuple(out)


@st.composite
def eno_options(
    draw: st.DrawFn, kinds: tuple[int, ...] = (ENO_KIND, 253, 254), max_len: int = TCP_OPTION_SPACE
) -> EnoOption:
    """Well-formed ENO options (:class:`EnoOption`), in kind 69 or the ExID 0x454E framing."""
    kind = draw(st.sampled_from(kinds))
    head = 2 if kind == ENO_KIND else 4
    return EnoOption(draw(eno_suboption_lists(max_contents=max_len - head)), kind)


@st.composite
def eno_opaque_options(
    draw: st.DrawFn, kinds: tuple[int, ...] = (ENO_KIND, 253, 254), max_len: int = TCP_OPTION_SPACE
) -> EnoOpaque:
    """ENO options whose contents break the SYN-form syntax (§4.4 rules 1 and 2): valid
    suboptions, then a length byte that runs past the end or is followed by 0x00-0x9f."""
    kind = draw(st.sampled_from(kinds))
    head = 2 if kind == ENO_KIND else 4
    room = max_len - head
    prefix_subs = draw(eno_suboption_lists(max_contents=max(0, room - 3)))
    prefix = b"".join(s.to_bytes() for s in prefix_subs if not _is_to_end(s))
    left = room - len(prefix)
    nnnnn = draw(st.integers(0, 31))
    how = draw(st.sampled_from(["last", "bad-next", "short"]))
    if how == "last" or left < 2:
        tail = bytes((0x80 | nnnnn,))
    elif how == "bad-next":
        bad = draw(st.integers(0x00, 0x9F))
        rest = draw(st.binary(max_size=left - 2))
        tail = bytes((0x80 | nnnnn, bad)) + rest
    else:
        # A valid TEP byte with v = 1 but fewer than nnnnn + 1 data bytes before the end.
        have = draw(st.integers(0, min(nnnnn, left - 2)))
        tail = bytes((0x80 | nnnnn, draw(st.integers(0xA0, 0xFF)))) + draw(
            st.binary(min_size=have, max_size=have)
        )
    return EnoOpaque(prefix + tail, kind)


def _is_to_end(sub: Suboption) -> bool:
    return type(sub) is Tep and sub.framing == TepFraming.TO_END


_FIELD = st.integers(0, (1 << 24) - 1)


@st.composite
def accecn_options(
    draw: st.DrawFn,
    order: int | None = None,
    nfields: int | None = None,
    *,
    experimental: bool | None = False,
    canonical: bool | None = True,
    max_len: int = TCP_OPTION_SPACE,
) -> AccEcnOption:
    """AccECN Options of the given order (0/1) and number of fields (0..3), or any.

    ``experimental``: False = kinds 172/174, True = kind 253/254 + ExID 0xACC0/0xACC1, None =
    either.  ``canonical``: True = lengths 2/5/8/11 (+2 experimental), False = with padding
    (§3.2.3 forward compatibility), None = either.
    """
    o = draw(st.sampled_from((0, 1))) if order is None else order
    n = draw(st.integers(0, 3)) if nfields is None else nfields
    exp = draw(st.booleans()) if experimental is None else experimental
    exp_kind = draw(st.sampled_from((253, 254))) if exp else 0
    padded = (not draw(st.booleans())) if canonical is None else not canonical
    fields = [draw(_FIELD) for _ in range(n)] + [None] * (3 - n)
    padding = b""
    if padded:
        room = max_len - (4 if exp else 2) - 3 * n
        limit = min(room, 2 if n < 3 else room)
        if limit >= 1:
            padding = draw(st.binary(min_size=1, max_size=limit))
    return AccEcnOption(o, fields[0], fields[1], fields[2], padding, exp_kind)


def accecn_kinds() -> st.SearchStrategy[int]:
    """The two assigned AccECN option kinds."""
    return st.sampled_from((ACCECN0_KIND, ACCECN1_KIND))


def prefixed_option_bytes(
    kind: int, exid: int | None = None, *, max_len: int = 255
) -> st.SearchStrategy[bytes]:
    """Arbitrary option bodies behind a valid kind / length (/ ExID) prefix, so a fuzzer gets
    past the option list straight into one codec."""
    head = 2 if exid is None else 4
    ex = b"" if exid is None else exid.to_bytes(2, "big")
    return st.binary(max_size=max_len - head).map(
        lambda body: bytes((kind, head + len(body))) + ex + body
    )

