"""MPTCP v1 cryptographic helpers: token, IDSN, HMACs and the DSS checksum.

Implements RFC 8684 §3.1 (token = most significant 32 bits and IDSN = least significant
64 bits of SHA-256 of the 64-bit key, hashed in network byte order), §3.2 (MP_JOIN HMAC:
HMAC-SHA256 keyed with the sender's key followed by the receiver's key over the sender's
nonce followed by the receiver's nonce; the SYN/ACK carries the leftmost 64 bits, the third
ACK the leftmost 160 bits), §3.4.1 (ADD_ADDR HMAC: the rightmost 64 bits of HMAC-SHA256 keyed
with K_sender ‖ K_receiver over Address ID ‖ address ‖ 2-byte port, the port being zero
when the option carries none) and §3.3.1 (the DSS checksum: the TCP checksum over the
pseudo-header {64-bit DSN, 32-bit relative SSN, 16-bit data-level length, 16 zero bits}
followed by the data the mapping covers).

SHA-256 and HMAC come from the standard library (``hashlib``/``hmac``, OpenSSL underneath);
nothing here hand-rolls a hash.  Keys and nonces are Python ints, big-endian on the wire.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac

from mptcp.wire.checksum import internet_checksum, verify

__all__ = [
    "key_bytes", "token", "idsn", "token_and_idsn", "mptcp_hmac", "join_hmac",
    "join_synack_hmac", "join_ack_hmac", "add_addr_hmac", "dss_pseudo_sum", "dss_checksum",
    "dss_checksum_ok",
]

_sha256 = hashlib.sha256
_digest = _hmac.digest
_from_bytes = int.from_bytes
_MASK64 = (1 << 64) - 1


def key_bytes(key: int) -> bytes:
    """A 64-bit key in network byte order (RFC 8684 §3.1: "hashed in network byte order")."""
    return key.to_bytes(8, "big")


def token(key: int) -> int:
    """RFC 8684 §3.1/§3.2: the 32-bit token, the most significant 32 bits of SHA-256(key)."""
    return _from_bytes(_sha256(key.to_bytes(8, "big")).digest()[:4], "big")


def idsn(key: int) -> int:
    """RFC 8684 §3.1/§3.3.1: the initial data sequence number, the least significant
    (rightmost) 64 bits of SHA-256(key)."""
    return _from_bytes(_sha256(key.to_bytes(8, "big")).digest()[24:], "big")


def token_and_idsn(key: int) -> tuple[int, int]:
    """``(token(key), idsn(key))`` with one hash computation."""
    d = _sha256(key.to_bytes(8, "big")).digest()
    return _from_bytes(d[:4], "big"), _from_bytes(d[24:], "big")


def mptcp_hmac(key1: int, key2: int, message: bytes) -> bytes:
    """RFC 8684 §3.2: the full 32-byte HMAC-SHA256 keyed with ``key1 ‖ key2`` (16 bytes)."""
    return _digest(key1.to_bytes(8, "big") + key2.to_bytes(8, "big"), message, "sha256")


def join_hmac(sender_key: int, receiver_key: int, sender_nonce: int, receiver_nonce: int) -> bytes:
    """RFC 8684 §3.2: the full MP_JOIN HMAC computed by the host that sends it.

    Key = the sender's key followed by the receiver's key; message = the sender's 32-bit
    random number followed by the receiver's ("HMAC-A = HMAC(Key-A + Key-B, R-A + R-B)").
    """
    return _digest(
        sender_key.to_bytes(8, "big") + receiver_key.to_bytes(8, "big"),
        sender_nonce.to_bytes(4, "big") + receiver_nonce.to_bytes(4, "big"),
        "sha256",
    )


def join_synack_hmac(key_b: int, key_a: int, nonce_b: int, nonce_a: int) -> bytes:
    """RFC 8684 §3.2, Figure 6: the 8 bytes host B (the listener) puts in its MP_JOIN
    SYN/ACK, the leftmost 64 bits of HMAC(Key-B ‖ Key-A, R-B ‖ R-A)."""
    return join_hmac(key_b, key_a, nonce_b, nonce_a)[:8]


def join_ack_hmac(key_a: int, key_b: int, nonce_a: int, nonce_b: int) -> bytes:
    """RFC 8684 §3.2, Figure 7: the 20 bytes host A (the subflow initiator) puts in its
    MP_JOIN third ACK, the leftmost 160 bits of HMAC(Key-A ‖ Key-B, R-A ‖ R-B)."""
    return join_hmac(key_a, key_b, nonce_a, nonce_b)[:20]


def add_addr_hmac(
    sender_key: int, receiver_key: int, address_id: int, address: bytes, port: int | None
) -> bytes:
    """RFC 8684 §3.4.1: the ADD_ADDR truncated HMAC, the rightmost 64 bits of
    HMAC(K_sender ‖ K_receiver, Address ID ‖ address ‖ port).

    ``address`` is the 4- or 16-byte address as on the wire; the port is 2 bytes, zero when
    the option carries no port ("the HMAC message will nevertheless include 2 octets of value
    zero").
    """
    msg = bytes((address_id,)) + address + (port or 0).to_bytes(2, "big")
    return _digest(
        sender_key.to_bytes(8, "big") + receiver_key.to_bytes(8, "big"), msg, "sha256"
    )[24:]


def dss_pseudo_sum(dsn: int, ssn: int, data_level_length: int) -> int:
    """Unreduced 16-bit-word sum of the DSS checksum pseudo-header (RFC 8684 §3.3.1,
    Figure 10): 64-bit DSN, 32-bit relative subflow sequence number, 16-bit data-level
    length, 16 zero bits.  Because 2**16 = 1 (mod 0xFFFF), each field's integer value is
    congruent to the sum of its 16-bit words, so the fields can simply be added."""
    return (dsn & _MASK64) + (ssn & 0xFFFFFFFF) + (data_level_length & 0xFFFF)


def dss_checksum(
    dsn: int, ssn: int, data_level_length: int, payload: bytes | bytearray | memoryview
) -> int:
    """RFC 8684 §3.3.1: the DSS (or MP_CAPABLE-with-data) checksum field value.

    ``dsn`` must be the full 64-bit data sequence number even when the option carries only
    the low 32 bits; ``ssn`` is the subflow sequence number relative to the subflow's ISN;
    ``payload`` is all the data the mapping covers (it may span several segments).
    """
    return internet_checksum(payload, dss_pseudo_sum(dsn, ssn, data_level_length))


def dss_checksum_ok(
    dsn: int,
    ssn: int,
    data_level_length: int,
    payload: bytes | bytearray | memoryview,
    checksum: int,
) -> bool:
    """True when ``checksum`` (as received) matches the mapping's data (RFC 8684 §3.3.1):
    pseudo-header, data and checksum fold to 0xFFFF, so both encodings of a zero sum
    (0x0000 and 0xFFFF) are accepted, as a receiver verifying the TCP way does."""
    return verify(payload, dss_pseudo_sum(dsn, ssn, data_level_length) + (checksum & 0xFFFF))
