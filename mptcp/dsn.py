"""64-bit data sequence number (DSN) arithmetic for MPTCP.

Implements RFC 8684 §3.3.1 ("Data sequence numbers are always 64-bit quantities and MUST be
maintained as such in implementations ... Implementations MUST accept a 32-bit DSN and
implicitly promote it to a 64-bit quantity by incrementing the upper 32 bits of the sequence
number each time the lower 32 bits wrap. A sanity check MUST be implemented to ensure that a
wrap occurs at an expected time ... and is not triggered by out-of-order packets") and
§3.3.2 (a DATA_ACK may also be sent as its lower 32 bits).

:func:`expand` does the promotion by choosing, among the 64-bit values whose low 32 bits are
the received ones, the one closest to an expected value (RCV.NXT at the data level for a
DSN, the oldest unacknowledged DSN for a DATA_ACK): a wrap is inferred only when the expected
value is near it, never because a packet is out of order by less than 2**31 bytes.

Comparisons use the serial-number arithmetic of RFC 1982 §3.1 and §3.2 with
SERIAL_BITS = 64.  Two values exactly 2**63 apart are unordered: ``dsn_lt`` and ``dsn_gt``
are both false and :func:`dsn_sub` returns ``-2**63``.  Every function reduces its DSN
arguments modulo 2**64.
"""

from __future__ import annotations

__all__ = [
    "DSN_MOD", "DSN_MASK", "DSN_HALF", "DsnError",
    "expand", "dsn_add", "dsn_sub", "dsn_diff", "dsn_lt", "dsn_le", "dsn_gt", "dsn_ge",
]

DSN_MOD = 1 << 64
DSN_MASK = DSN_MOD - 1
DSN_HALF = 1 << 63

_MOD32 = 1 << 32
_MASK32 = _MOD32 - 1
_HALF32 = 1 << 31


class DsnError(ValueError):
    """A wire value that does not fit the width it is declared with, or a bad width."""


def expand(low: int, bits: int, near: int) -> int:
    """The 64-bit DSN / DATA_ACK that a ``bits``-wide wire value stands for.

    ``bits`` = 64: ``low`` is the full value and is returned unchanged.  ``bits`` = 32
    (RFC 8684 §3.3.1): the value congruent to ``low`` modulo 2**32 that is closest to the
    64-bit reference ``near`` (our expected value), modulo 2**64; values up to 2**31 - 1
    after and 2**31 before ``near`` come out right, across both the 2**32 and the 2**64 wrap.
    A value exactly 2**31 away resolves to the one before ``near``.
    """
    if bits == 64:
        if not 0 <= low <= DSN_MASK:
            raise DsnError(f"64-bit value {low} out of range")
        return low
    if bits != 32:
        raise DsnError(f"a DSN or DATA_ACK is 32 or 64 bits wide, not {bits}")
    if not 0 <= low <= _MASK32:
        raise DsnError(f"32-bit value {low} out of range")
    # RFC 8684 §3.3.1: infer the upper 32 bits from the signed 32-bit distance to ``near``.
    return (near + (((low - near + _HALF32) & _MASK32) - _HALF32)) & DSN_MASK


def dsn_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**64 (RFC 1982 §3.1; ``n`` may be negative)."""
    return (a + n) & DSN_MASK


def dsn_sub(a: int, b: int) -> int:
    """Signed distance ``a - b`` of two DSNs, in ``[-2**63, 2**63)``: positive when ``a``
    comes after ``b``.  (To step a DSN back by a count, use ``dsn_add(a, -n)``.)"""
    return ((a - b + DSN_HALF) & DSN_MASK) - DSN_HALF


dsn_diff = dsn_sub  # the name mptcp.tcp.seqnum uses for the signed 32-bit distance


def dsn_lt(a: int, b: int) -> bool:
    """``a < b`` in 64-bit sequence space (RFC 1982 §3.2)."""
    return 0 < ((b - a) & DSN_MASK) < DSN_HALF


def dsn_le(a: int, b: int) -> bool:
    """``a =< b`` in 64-bit sequence space."""
    return ((b - a) & DSN_MASK) < DSN_HALF


def dsn_gt(a: int, b: int) -> bool:
    """``a > b`` in 64-bit sequence space."""
    return 0 < ((a - b) & DSN_MASK) < DSN_HALF


def dsn_ge(a: int, b: int) -> bool:
    """``a >= b`` in 64-bit sequence space."""
    return ((a - b) & DSN_MASK) < DSN_HALF
