"""TCP Fast Open cookies, RFC 7413.

- Server side (§4.1.2): :class:`TfoServer` makes and checks cookies.  The cookie is the RFC's
  example implementation: AES-128 of the client's IP address (IPv4 zero-padded to one block,
  IPv6 is one block) truncated to 64 bits.  Keys rotate with :meth:`TfoServer.rotate`; the
  previous key stays valid (§4.1.2 item 5, "rolling key updates").  ``pending_limit`` is
  PendingFastOpenRequests' bound (§4.2).
- Client side (§4.1.3): :class:`TfoClientCache` keeps the latest cookie and the server's MSS
  per (client IP, server IP) and the negative responses (§4.1.3.1) per path (addresses and the
  server port), which disable TFO on that path until they expire.

No clocks: expiry times are compared with the ``now`` the caller passes.
"""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "COOKIE_LEN", "TfoError", "TfoServer", "TfoClientCache", "CachedCookie", "syn_data_limit",
]

COOKIE_LEN = 8  # bytes: "truncate to 64 bits" (RFC 7413 §4.1.2)


class TfoError(ValueError):
    """Bad key or address given to the TFO API."""


def _block(ip: bytes) -> bytes:
    if len(ip) == 4:
        return ip + bytes(12)
    if len(ip) == 16:
        return ip
    raise TfoError(f"address of {len(ip)} bytes")


class TfoServer:
    """GetCookie / IsCookieValid of RFC 7413 §4.1.2, with one previous key kept valid."""

    __slots__ = ("_keys", "pending", "pending_limit")

    def __init__(self, key: bytes, *, pending_limit: int = 256) -> None:
        if len(key) != 16:
            raise TfoError("TFO key must be 16 bytes (AES-128)")
        self._keys: list[bytes] = [key]
        self.pending = 0  # PendingFastOpenRequests (§4.2)
        self.pending_limit = pending_limit

    @classmethod
    def from_rng(cls, rng: random.Random, **kw: int) -> TfoServer:
        return cls(rng.getrandbits(128).to_bytes(16, "big"), **kw)

    def rotate(self, key: bytes) -> None:
        """Start using ``key``; cookies of the previous key stay valid until the next rotation."""
        if len(key) != 16:
            raise TfoError("TFO key must be 16 bytes (AES-128)")
        self._keys = [key, self._keys[0]]

    @staticmethod
    def _mac(key: bytes, ip: bytes) -> bytes:
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return (enc.update(_block(ip)) + enc.finalize())[:COOKIE_LEN]

    def cookie(self, client_ip: bytes) -> bytes:
        """GetCookie(IP_Address): the current cookie for ``client_ip``."""
        return self._mac(self._keys[0], client_ip)

    def valid(self, client_ip: bytes, cookie: bytes) -> bool:
        """IsCookieValid(IP_Address, Cookie), constant-time per key."""
        if len(cookie) != COOKIE_LEN:
            return False
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(self._mac(key, client_ip), cookie)
        return ok

    def may_accept(self) -> bool:
        """§4.2 step 2: TFO is off while PendingFastOpenRequests is at its limit."""
        return self.pending < self.pending_limit


@dataclass(frozen=True, slots=True)
class CachedCookie:
    cookie: bytes
    mss: int | None


def syn_data_limit(cached_mss: int | None, ipv6: bool) -> int:
    """How much data fits a Fast Open SYN (§4.1.3): the cached MSS, capped at 1460 / 1440,
    else the default 536 (IPv4) / 1220 (IPv6)."""
    if cached_mss is None:
        return 1220 if ipv6 else 536
    return min(cached_mss, 1440 if ipv6 else 1460)


class TfoClientCache:
    """Client cookie cache (§4.1.3) and negative-response cache (§4.1.3.1)."""

    __slots__ = ("_cookies", "_negative", "negative_hold")

    def __init__(self, negative_hold: float = 3600.0) -> None:
        self._cookies: dict[tuple[bytes, bytes], CachedCookie] = {}
        self._negative: dict[tuple[bytes, bytes, int], float] = {}
        self.negative_hold = negative_hold

    def get(self, local_ip: bytes, server_ip: bytes) -> CachedCookie | None:
        return self._cookies.get((local_ip, server_ip))

    def put(self, local_ip: bytes, server_ip: bytes, cookie: bytes | None, mss: int | None
            ) -> None:
        """Record what a SYN-ACK said (§4.2.2 "Client: Receiving SYN-ACK" step 1): a new
        cookie replaces the old one; an MSS alone updates the cached MSS."""
        key = (local_ip, server_ip)
        old = self._cookies.get(key)
        if cookie:
            self._cookies[key] = CachedCookie(cookie, mss if mss is not None else
                                              (old.mss if old else None))
        elif old is not None and mss is not None:
            self._cookies[key] = CachedCookie(old.cookie, mss)

    def forget(self, local_ip: bytes, server_ip: bytes) -> None:
        self._cookies.pop((local_ip, server_ip), None)

    def negative(self, local_ip: bytes, server_ip: bytes, port: int, now: float) -> None:
        """A negative response on this path (§4.1.3.1): no TFO there for ``negative_hold``."""
        self._negative[(local_ip, server_ip, port)] = now + self.negative_hold

    def allowed(self, local_ip: bytes, server_ip: bytes, port: int, now: float) -> bool:
        """Whether TFO may be tried on this path now."""
        until = self._negative.get((local_ip, server_ip, port))
        if until is None:
            return True
        if now >= until:
            del self._negative[(local_ip, server_ip, port)]
            return True
        return False
