"""Initial sequence numbers, RFC 6528 §3 (and RFC 9293 §3.4.1).

    ISN = M + F(localip, localport, remoteip, remoteport, secretkey)

M is a timer ticking every 4 microseconds (RFC 9293 §3.4.1), read from the engine's ``now``
(Sans-IO: no clock here).  F is a keyed pseudorandom function: RFC 6528 §3 suggests MD5 and
"SHOULD NOT be computable from the outside"; we use keyed BLAKE2s (stdlib ``hashlib``), the
first 32 bits of its digest.  The secret comes from the injected ``random.Random`` (RFC 6528
§3: "a secret ... that is not known to the attacker"), so simulations are reproducible.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["IsnGenerator", "new_secret", "isn_offset"]

_TICKS_PER_SECOND = 250_000  # one tick every 4 us, RFC 9293 §3.4.1
_MASK = 0xFFFFFFFF


def new_secret(rng: random.Random, size: int = 32) -> bytes:
    """A fresh key of ``size`` bytes drawn from ``rng``."""
    return rng.getrandbits(8 * size).to_bytes(size, "big")


def isn_offset(secret: bytes, local: tuple[bytes, int], remote: tuple[bytes, int]) -> int:
    """F(localip, localport, remoteip, remoteport, secretkey) of RFC 6528 §3: 32 bits."""
    h = hashlib.blake2s(key=secret[:32], digest_size=4)
    h.update(local[0])
    h.update(local[1].to_bytes(2, "big"))
    h.update(remote[0])
    h.update(remote[1].to_bytes(2, "big"))
    return int.from_bytes(h.digest(), "big")


class IsnGenerator:
    """ISNs for a host (a ``Stack``) or one connection: one secret, a 4 us clock."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not 16 <= len(secret) <= 32:
            raise ValueError("ISN secret must be 16..32 bytes")
        self._secret = secret

    @classmethod
    def from_rng(cls, rng: random.Random) -> IsnGenerator:
        return cls(new_secret(rng))

    def isn(self, local: tuple[bytes, int], remote: tuple[bytes, int], now: float) -> int:
        """The ISN for the 4-tuple at virtual time ``now`` (seconds)."""
        m = int(now * _TICKS_PER_SECOND)
        return (m + isn_offset(self._secret, local, remote)) & _MASK
