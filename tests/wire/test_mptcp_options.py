"""MPTCP option codecs, kind 30 (RFC 8684 §3, Appendix A; RFC 6824 §3.3.8 for MP_PRIO/4).

Conformance tests build the expected bytes independently from the RFC figures with
``struct``; properties check every codec's round trip and that arbitrary bytes either parse
(and then re-serialize byte-exact: every MPTCP layout here is canonical) or raise WireError.
"""

from __future__ import annotations

import json
import struct
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.wire.errors import WireError
from mptcp.wire.mptcp_handshake import (
    MPC_FLAG_CHECKSUM,
    MPC_FLAG_HMAC_SHA256,
    MPC_FLAG_NO_JOIN,
    MpCapable,
    MpJoinAck,
    MpJoinSyn,
    MpJoinSynAck,
)
from mptcp.wire.mptcp_options import (
    MPTCP_OPTION_CLASSES,
    AddAddr,
    Dss,
    MpExperimental,
    MpFail,
    MpFastClose,
    MpPrio,
    MptcpOption,
    MpTcpRst,
    MptcpRstReason,
    MptcpUnknown,
    RemoveAddr,
    parse_mptcp_option,
)
from mptcp.wire.options import NOP, parse_options, registered_kinds, serialize_options
from tests.strategies import mptcp as sm

K1 = 0x0102030405060708
K2 = 0x1112131415161718


def _parse(raw: bytes) -> MptcpOption:
    return parse_mptcp_option(raw, 0)


def _assert_wire_error(raw: bytes, off: int = 0) -> WireError:
    with pytest.raises(WireError) as ei:
        parse_mptcp_option(raw, off)
    assert off <= ei.value.offset < off + max(len(raw), 2)
    return ei.value


# --- properties, one codec each ------------------------------------------------------------


@pytest.mark.codec_fuzz
@pytest.mark.parametrize("name", sorted(sm.STRATEGIES))
@given(data=st.data())
def test_roundtrip_each_codec(name: str, data: st.DataObject) -> None:
    value = data.draw(sm.STRATEGIES[name])
    raw = value.to_bytes()
    assert raw[0] == 30 and raw[1] == len(raw) <= 40
    assert parse_mptcp_option(raw, 0) == value
    assert parse_options(raw) == (value,)
    assert type(value) in MPTCP_OPTION_CLASSES


# subtype byte -> the codec it reaches; the arbitrary-bytes property is run per subtype
_SUBTYPES = {
    "mp_capable": 0x0, "mp_join": 0x1, "dss": 0x2, "add_addr": 0x3, "remove_addr": 0x4,
    "mp_prio": 0x5, "mp_fail": 0x6, "mp_fastclose": 0x7, "mp_tcprst": 0x8,
    "unknown": 0x9, "mp_experimental": 0xF,
}


@pytest.mark.codec_fuzz
@pytest.mark.rfc("8684", "3")
@pytest.mark.parametrize("name", sorted(_SUBTYPES))
@given(nibble=st.integers(0, 15), body=st.binary(max_size=37), unknown=st.integers(0x9, 0xE))
def test_arbitrary_body_behind_valid_prefix(
    name: str, nibble: int, body: bytes, unknown: int
) -> None:
    """Any body behind kind 30, a consistent length and the subtype: parses and re-serializes
    byte-exact, or raises WireError (never another exception)."""
    subtype = unknown if name == "unknown" else _SUBTYPES[name]
    raw = bytes((30, 3 + len(body), (subtype << 4) | nibble)) + body
    try:
        value = parse_mptcp_option(raw, 0)
    except WireError as e:
        assert e.offset == 1  # every MPTCP length problem is reported at the length byte
        return
    assert value.to_bytes() == raw
    json.dumps(value.to_json())


@pytest.mark.codec_fuzz
@pytest.mark.rfc("8684", "3")
@given(length=st.integers(0, 255), body=st.binary(max_size=40))
def test_arbitrary_bytes_in_an_option_list(length: int, body: bytes) -> None:
    raw = bytes((30, length)) + body
    try:
        opts = parse_options(raw)
    except WireError as e:
        assert 0 <= e.offset <= len(raw)
        return
    assert serialize_options(opts) == raw


@pytest.mark.codec_fuzz
@pytest.mark.parametrize("name", sorted(sm.STRATEGIES))
@given(data=st.data())
def test_to_json_is_json(name: str, data: st.DataObject) -> None:
    value = data.draw(sm.STRATEGIES[name])
    doc = value.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert isinstance(doc["subtype"], str)


def test_kind_30_is_registered() -> None:
    assert 30 in registered_kinds()


def test_wire_error_offset_is_in_the_callers_buffer() -> None:
    buf = b"\x01\x01\x1e\x05\x20\x00\x00"  # NOP NOP, DSS with length 5
    with pytest.raises(WireError) as ei:
        parse_options(buf, base=20)
    assert ei.value.offset == 20 + 2 + 1


def test_mptcp_option_without_subtype_byte() -> None:
    _assert_wire_error(b"\x1e\x02", off=7)
    with pytest.raises(WireError):
        parse_options(b"\x1e\x02\x01\x01")


# --- MP_CAPABLE (RFC 8684 §3.1) ------------------------------------------------------------


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_every_length() -> None:
    hdr = bytes((0x1E, 0, 0x01, 0x81))
    syn = bytes((0x1E, 4, 0x01, 0x81))
    assert _parse(syn) == MpCapable(1, 0x81)
    synack = bytes((0x1E, 12)) + hdr[2:] + struct.pack("!Q", K1)
    assert _parse(synack) == MpCapable(1, 0x81, K1)
    ack = bytes((0x1E, 20)) + hdr[2:] + struct.pack("!QQ", K1, K2)
    assert _parse(ack) == MpCapable(1, 0x81, K1, K2)
    data = bytes((0x1E, 22)) + hdr[2:] + struct.pack("!QQH", K1, K2, 1460)
    assert _parse(data) == MpCapable(1, 0x81, K1, K2, 1460)
    csum = bytes((0x1E, 24)) + hdr[2:] + struct.pack("!QQHH", K1, K2, 1460, 0xBEEF)
    v = _parse(csum)
    assert v == MpCapable(1, 0x81, K1, K2, 1460, 0xBEEF)
    for raw in (syn, synack, ack, data, csum):
        assert _parse(raw).to_bytes() == raw


@pytest.mark.rfc("8684", "3.1")
@pytest.mark.parametrize("length", [3, 5, 8, 11, 13, 16, 19, 21, 23, 25, 28, 40])
def test_mp_capable_wrong_length(length: int) -> None:
    raw = bytes((0x1E, length, 0x01, 0x01)) + bytes(max(0, length - 4))
    _assert_wire_error(raw[:length])


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_seen_from_linux() -> None:
    """SPEC_NOTES: this kernel's SYN option is 1e040101, its SYN/ACK 1e0c0101 + key."""
    v = _parse(bytes.fromhex("1e040101"))
    assert isinstance(v, MpCapable)
    assert v.version == 1 and v.hmac_sha256 and not v.checksum_required and v.sender_key is None
    v = _parse(bytes.fromhex("1e0c0101") + struct.pack("!Q", K2))
    assert isinstance(v, MpCapable) and v.sender_key == K2 and v.receiver_key is None


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_flags_and_version() -> None:
    v = _parse(bytes((0x1E, 4, 0x00, 0xE1)))  # version 0, A B C H
    assert isinstance(v, MpCapable)
    assert v.version == 0 and v.flags == 0xE1
    assert v.checksum_required and v.extensibility and v.no_join and v.hmac_sha256
    v = _parse(bytes((0x1E, 4, 0x0F, 0x1E)))  # D..G only, no H: kept raw
    assert isinstance(v, MpCapable) and v.version == 15 and v.flags == 0x1E and not v.hmac_sha256
    assert v.to_bytes() == bytes((0x1E, 4, 0x0F, 0x1E))
    assert MpCapable().to_bytes() == bytes((0x1E, 4, 0x01, MPC_FLAG_HMAC_SHA256))
    flags = MPC_FLAG_CHECKSUM | MPC_FLAG_NO_JOIN | MPC_FLAG_HMAC_SHA256
    assert MpCapable(1, flags).to_bytes()[3] == 0xA1


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_inconsistent_values_refuse_to_encode() -> None:
    for bad in (
        MpCapable(1, 1, None, K2), MpCapable(1, 1, K1, None, 5), MpCapable(1, 1, K1, K2, None, 3),
        MpCapable(1, 1, 1 << 64), MpCapable(1, 256),
    ):
        with pytest.raises(ValueError):
            bad.to_bytes()


@pytest.mark.rfc("8684", "3.1")
def test_mp_capable_json() -> None:
    assert MpCapable(1, 0x81, K1, K2, 100, 7).to_json() == {
        "subtype": "MP_CAPABLE", "version": 1, "flags": 0x81, "sender_key": K1,
        "receiver_key": K2, "data_level_length": 100, "checksum": 7,
    }
    assert MpCapable().to_json() == {"subtype": "MP_CAPABLE", "version": 1, "flags": 1}


# --- MP_JOIN (RFC 8684 §3.2) ---------------------------------------------------------------


@pytest.mark.rfc("8684", "3.2")
def test_mp_join_three_forms() -> None:
    syn = struct.pack("!BBBBII", 0x1E, 12, 0x11, 5, 0xDEADBEEF, 0x01020304)
    assert _parse(syn) == MpJoinSyn(5, 0xDEADBEEF, 0x01020304, backup=True)
    mac8 = bytes(range(8))
    synack = struct.pack("!BBBB", 0x1E, 16, 0x10, 9) + mac8 + struct.pack("!I", 77)
    assert _parse(synack) == MpJoinSynAck(9, mac8, 77, backup=False)
    mac20 = bytes(range(100, 120))
    ack = bytes((0x1E, 24, 0x10, 0x00)) + mac20
    assert _parse(ack) == MpJoinAck(mac20)
    for raw in (syn, synack, ack):
        assert _parse(raw).to_bytes() == raw


@pytest.mark.rfc("8684", "3.2")
@pytest.mark.parametrize("length", [3, 4, 8, 11, 13, 15, 17, 20, 23, 25, 30])
def test_mp_join_wrong_length(length: int) -> None:
    raw = (bytes((0x1E, length, 0x10, 0x01)) + bytes(40))[:length]
    _assert_wire_error(raw)


@pytest.mark.rfc("8684", "3.2")
def test_mp_join_reserved_bits_kept() -> None:
    raw = struct.pack("!BBBBII", 0x1E, 12, 0x1F, 5, 1, 2)
    v = _parse(raw)
    assert isinstance(v, MpJoinSyn) and v.backup and v.reserved == 0x0E and v.flags == 0xF
    assert v.to_bytes() == raw
    raw = bytes((0x1E, 24, 0x1A, 0xBC)) + bytes(20)
    v = _parse(raw)
    assert isinstance(v, MpJoinAck) and v.reserved == 0xABC and v.to_bytes() == raw


@pytest.mark.rfc("8684", "3.2")
def test_mp_join_json() -> None:
    assert MpJoinSyn(5, 6, 7, True).to_json() == {
        "subtype": "MP_JOIN", "flags": 1, "backup": True, "address_id": 5,
        "receiver_token": 6, "sender_random": 7,
    }
    assert MpJoinSynAck(5, b"\x01" * 8, 7).to_json() == {
        "subtype": "MP_JOIN", "flags": 0, "backup": False, "address_id": 5,
        "sender_hmac": "01" * 8, "sender_random": 7,
    }
    assert MpJoinAck(b"\xab" * 20).to_json() == {"subtype": "MP_JOIN", "sender_hmac": "ab" * 20}
    with pytest.raises(ValueError):
        MpJoinSynAck(5, b"\x01" * 7, 7).to_bytes()
    with pytest.raises(ValueError):
        MpJoinAck(b"\x01" * 8).to_bytes()


# --- DSS (RFC 8684 §3.3) -------------------------------------------------------------------


def _dss_reference(flags: int, ack: int, dsn: int, ssn: int, dll: int, csum: int | None) -> bytes:
    """Figure 9 restated: A=1 a=2 M=4 m=8 F=0x10; fields in order, widths from a and m."""
    body = b""
    if flags & 1:
        body += struct.pack("!Q" if flags & 2 else "!I", ack)
    if flags & 4:
        body += struct.pack("!Q" if flags & 8 else "!I", dsn) + struct.pack("!IH", ssn, dll)
        if csum is not None:
            body += struct.pack("!H", csum)
    return bytes((0x1E, 4 + len(body), 0x20, flags)) + body


@pytest.mark.rfc("8684", "3.3")
@pytest.mark.parametrize("flags", range(32))
@pytest.mark.parametrize("with_csum", [False, True])
def test_dss_every_flag_combination(flags: int, with_csum: bool) -> None:
    ack, dsn, ssn, dll, cs = 0xA1A2A3A4, 0xB1B2B3B4, 0xC1C2C3C4, 0xD1D2, 0xE1E2
    if flags & 2:
        ack |= 0x0F0E0D0C << 32
    if flags & 8:
        dsn |= 0x0A0B0C0D << 32
    csum = cs if with_csum and flags & 4 else None
    raw = _dss_reference(flags, ack, dsn, ssn, dll, csum)
    v = _parse(raw)
    assert isinstance(v, Dss)
    assert v.data_ack == (ack if flags & 1 else None)
    assert v.dsn == (dsn if flags & 4 else None)
    assert v.ssn == (ssn if flags & 4 else None)
    assert v.data_level_length == (dll if flags & 4 else None)
    assert v.checksum == csum
    assert v.data_fin == bool(flags & 0x10)
    assert v.flags == flags
    assert v.to_bytes() == raw
    assert len(raw) <= 28  # "The maximum length of this option, with all flags set, is 28"


@pytest.mark.rfc("8684", "3.3")
@pytest.mark.parametrize("flags", range(16))
def test_dss_length_must_match_flags(flags: int) -> None:
    good = len(_dss_reference(flags, 0, 0, 0, 0, None))
    allowed = {good, good + 2} if flags & 4 else {good}
    for length in range(3, 34):
        if length in allowed:
            continue
        raw = (bytes((0x1E, length, 0x20, flags)) + bytes(40))[:length]
        _assert_wire_error(raw)


@pytest.mark.rfc("8684", "3.3")
def test_dss_checksum_presence_from_length() -> None:
    """"The presence of the checksum can be inferred from the length of the option"."""
    base = bytes((0x1E, 26, 0x20, 0x0F)) + bytes(range(1, 23))
    v = _parse(base)
    assert isinstance(v, Dss) and v.checksum is None
    with_cs = bytes((0x1E, 28, 0x20, 0x0F)) + bytes(range(1, 23)) + b"\x12\x34"
    v = _parse(with_cs)
    assert isinstance(v, Dss) and v.checksum == 0x1234
    # seen from this kernel with checksums on: a 28-byte DSS
    assert len(v.to_bytes()) == 28


@pytest.mark.rfc("8684", "3.3")
def test_dss_reserved_bits_and_ignored_widths_kept() -> None:
    # reserved nibble 0x5, reserved flag bits 0xA0, 'a' and 'm' without A/M
    raw = bytes((0x1E, 4, 0x25, 0xAA))
    v = _parse(raw)
    assert isinstance(v, Dss)
    assert v.data_ack is None and v.dsn is None and v.ack64 and v.dsn64
    assert v.reserved == 0x5A0 and v.flags == 0xAA
    assert v.to_bytes() == raw


@pytest.mark.rfc("8684", "3.3.1")
def test_dss_infinite_mapping_and_linux_data_fin() -> None:
    v = Dss(data_ack=1, dsn=2, ssn=3, data_level_length=0, checksum=0, ack64=True, dsn64=True)
    assert v.is_infinite_mapping and _parse(v.to_bytes()) == v
    # SPEC_NOTES: Linux sends a DATA_FIN without data with SSN 0 and length 1
    fin = Dss(dsn=10, ssn=0, data_level_length=1, data_fin=True, dsn64=True)
    raw = fin.to_bytes()
    assert raw[3] == 0x1C and len(raw) == 18 and _parse(raw) == fin
    assert not fin.is_infinite_mapping and fin.has_mapping


@pytest.mark.rfc("8684", "3.3")
def test_dss_layout_cache_needs_the_length_byte() -> None:
    """Decoded layouts are cached by the first four bytes; a buffer whose length byte is not
    its length, a bytearray or a memoryview still decodes by its actual length."""
    v = Dss(data_ack=1, dsn=2, ssn=3, data_level_length=4, ack64=True, dsn64=True)
    raw = v.to_bytes()
    assert parse_mptcp_option(raw, 0) == v  # cached now
    assert parse_mptcp_option(cast(bytes, bytearray(raw)), 0) == v
    assert parse_mptcp_option(cast(bytes, memoryview(raw)), 0) == v
    assert parse_mptcp_option(raw[:1] + bytes((40,)) + raw[2:], 0) == v
    assert parse_mptcp_option(b"\x00" + raw[1:], 0) == v
    _assert_wire_error(raw[:-1])
    _assert_wire_error(raw + b"\x00")


@pytest.mark.rfc("8684", "3.3")
def test_dss_inconsistent_values_refuse_to_encode() -> None:
    for bad in (
        Dss(checksum=1), Dss(ssn=1), Dss(dsn=1), Dss(data_ack=1 << 32),
        Dss(dsn=1 << 32, ssn=0, data_level_length=0),
    ):
        with pytest.raises(ValueError):
            bad.to_bytes()


@pytest.mark.rfc("8684", "3.3")
def test_dss_json() -> None:
    v = Dss(1, 2, 3, 4, 5, True, True, False)
    assert v.to_json() == {
        "subtype": "DSS", "flags": 0x17, "data_ack": 1, "dsn": 2, "ssn": 3,
        "data_level_length": 4, "checksum": 5, "data_fin": True,
    }
    assert Dss(data_ack=9).to_json() == {
        "subtype": "DSS", "flags": 1, "data_ack": 9, "data_fin": False,
    }


# --- ADD_ADDR / REMOVE_ADDR (RFC 8684 §3.4) ------------------------------------------------


@pytest.mark.rfc("8684", "3.4.1")
@pytest.mark.parametrize("family", [4, 16])
@pytest.mark.parametrize("port", [None, 8080])
@pytest.mark.parametrize("mac", [None, bytes(range(8))])
@pytest.mark.parametrize("echo", [False, True])
def test_add_addr_layouts(family: int, port: int | None, mac: bytes | None, echo: bool) -> None:
    addr = bytes(range(10, 10 + family))
    raw = bytes((0x1E, 0, 0x31 if echo else 0x30, 7)) + addr
    if port is not None:
        raw += struct.pack("!H", port)
    if mac is not None:
        raw += mac
    raw = raw[:1] + bytes((len(raw),)) + raw[2:]
    assert len(raw) in (8, 10, 16, 18, 20, 22, 28, 30)
    v = _parse(raw)
    assert v == AddAddr(7, addr, port, mac, echo)
    assert isinstance(v, AddAddr) and v.to_bytes() == raw


@pytest.mark.rfc("8684", "3.4.1")
def test_add_addr_wrong_lengths() -> None:
    for length in set(range(3, 41)) - {8, 10, 16, 18, 20, 22, 28, 30}:
        _assert_wire_error((bytes((0x1E, length, 0x30, 1)) + bytes(40))[:length])


@pytest.mark.rfc("8684", "3.4.1")
def test_add_addr_json_and_reserved() -> None:
    v = AddAddr(3, bytes([192, 0, 2, 1]), 443, b"\xff" * 8)
    assert v.to_json() == {
        "subtype": "ADD_ADDR", "flags": 0, "echo": False, "address_id": 3,
        "address": "192.0.2.1", "port": 443, "hmac": "ff" * 8,
    }
    v6 = AddAddr(4, bytes(15) + b"\x01", echo=True)
    assert v6.to_json()["address"] == "::1" and "hmac" not in v6.to_json()
    assert "port" not in v6.to_json()
    # MPTCP v0 (RFC 6824) put the IP version in the nibble: kept in reserved
    raw = bytes((0x1E, 8, 0x34, 1, 10, 0, 0, 1))
    v0 = _parse(raw)
    assert isinstance(v0, AddAddr) and v0.reserved == 0x4 and not v0.echo
    assert v0.to_bytes() == raw
    with pytest.raises(ValueError):
        AddAddr(1, bytes(5)).to_bytes()
    with pytest.raises(ValueError):
        AddAddr(1, bytes(4), hmac=bytes(4)).to_bytes()


@pytest.mark.rfc("8684", "3.4.2")
def test_remove_addr() -> None:
    assert _parse(bytes((0x1E, 4, 0x40, 9))) == RemoveAddr((9,))
    raw = bytes((0x1E, 6, 0x40, 1, 2, 3))
    assert _parse(raw) == RemoveAddr((1, 2, 3))
    assert RemoveAddr((1, 2, 3)).to_bytes() == raw
    assert RemoveAddr((1, 2)).to_json() == {"subtype": "REMOVE_ADDR", "address_ids": [1, 2]}
    _assert_wire_error(bytes((0x1E, 3, 0x40)))  # n >= 1
    with pytest.raises(ValueError):
        RemoveAddr(()).to_bytes()
    raw = bytes((0x1E, 4, 0x4F, 9))
    v = _parse(raw)
    assert isinstance(v, RemoveAddr) and v.reserved == 0xF and v.to_bytes() == raw


# --- MP_PRIO, MP_FAIL, MP_FASTCLOSE, MP_TCPRST ---------------------------------------------


@pytest.mark.rfc("8684", "3.3.8")
def test_mp_prio_forms() -> None:
    assert _parse(bytes((0x1E, 3, 0x51))) == MpPrio(backup=True)
    assert _parse(bytes((0x1E, 3, 0x50))) == MpPrio(backup=False)
    # RFC 6824 §3.3.8: optional trailing Address ID (length 4)
    raw = bytes((0x1E, 4, 0x51, 6))
    assert _parse(raw) == MpPrio(True, 6)
    assert MpPrio(True, 6).to_bytes() == raw
    # Linux: length 3 followed by a NOP in the option list
    assert parse_options(bytes((0x1E, 3, 0x50, 0x01))) == (MpPrio(False), NOP)
    for length in (2, 5, 6, 12):
        if length > 2:
            _assert_wire_error((bytes((0x1E, length, 0x51)) + bytes(20))[:length])
    assert MpPrio(True, 6).to_json() == {
        "subtype": "MP_PRIO", "flags": 1, "backup": True, "address_id": 6,
    }
    assert MpPrio().to_json() == {"subtype": "MP_PRIO", "flags": 0, "backup": False}


@pytest.mark.rfc("8684", "3.7")
def test_mp_fail() -> None:
    raw = struct.pack("!BBHQ", 0x1E, 12, 0x6000, K1)
    assert _parse(raw) == MpFail(K1)
    assert MpFail(K1).to_bytes() == raw
    assert MpFail(K1).to_json() == {"subtype": "MP_FAIL", "dsn": K1}
    for length in (3, 4, 11, 13, 20):
        _assert_wire_error((raw + bytes(20))[:1] + bytes((length,)) + (raw + bytes(20))[2:length])


@pytest.mark.rfc("8684", "3.5")
def test_mp_fastclose() -> None:
    raw = struct.pack("!BBHQ", 0x1E, 12, 0x7ABC, K2)
    v = _parse(raw)
    assert v == MpFastClose(K2, 0xABC)
    assert isinstance(v, MpFastClose) and v.to_bytes() == raw
    assert MpFastClose(K2).to_json() == {"subtype": "MP_FASTCLOSE", "receiver_key": K2}
    _assert_wire_error(raw[:1] + b"\x0b" + raw[2:11])


@pytest.mark.rfc("8684", "3.6")
def test_mp_tcprst() -> None:
    v = _parse(bytes((0x1E, 4, 0x81, 0x06)))
    assert isinstance(v, MpTcpRst)
    assert v.transient and v.reason is MptcpRstReason.MIDDLEBOX_INTERFERENCE
    assert v.to_json() == {"subtype": "MP_TCPRST", "flags": 1, "transient": True, "reason": 6}
    assert [int(r) for r in MptcpRstReason] == list(range(7))
    v = _parse(bytes((0x1E, 4, 0x8E, 0x99)))  # U V W set, unknown reason kept as int
    assert isinstance(v, MpTcpRst) and not v.transient and v.reserved == 0xE
    assert v.reason == 0x99 and type(v.reason) is int
    assert v.to_bytes() == bytes((0x1E, 4, 0x8E, 0x99))
    assert MpTcpRst(MptcpRstReason.MPTCP_SPECIFIC).to_bytes() == bytes((0x1E, 4, 0x80, 1))
    for length in (3, 5, 8):
        _assert_wire_error((bytes((0x1E, length, 0x80)) + bytes(10))[:length])


# --- unassigned and experimental subtypes (RFC 8684 §7) ------------------------------------


@pytest.mark.rfc("8684", "7")
def test_unknown_and_experimental_kept() -> None:
    for sub in range(0x9, 0xF):
        raw = bytes((0x1E, 6, (sub << 4) | 0x3, 1, 2, 3))
        v = _parse(raw)
        assert v == MptcpUnknown(sub, 3, b"\x01\x02\x03")
        assert isinstance(v, MptcpUnknown) and v.to_bytes() == raw
    raw = bytes((0x1E, 3, 0xF7))
    assert _parse(raw) == MpExperimental(7, b"")
    assert MpExperimental(7, b"ab").to_bytes() == bytes((0x1E, 5, 0xF7)) + b"ab"
    assert MpExperimental(1, b"\xaa").to_json() == {
        "subtype": "MP_EXPERIMENTAL", "nibble": 1, "data": "aa",
    }
