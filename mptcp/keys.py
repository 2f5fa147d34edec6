"""MPTCP keys and the host's token table.

Implements RFC 8684 §3.1 (each host picks a 64-bit key that "MUST be hard to guess" and
"MUST be unique for the sending host across all its current MPTCP connections"; connections
are indexed at each host by the token, a one-way hash of the key, and an implementation
"SHOULD check its list of connection tokens to ensure that there is no collision before
sending its key, and if there is, then it should generate a new key") and the lookup side of
§3.2 (an MP_JOIN SYN names the connection by the receiver's token).  Token and IDSN are the
most significant 32 bits and the least significant 64 bits of SHA-256(key)
(:mod:`mptcp.wire.mptcp_crypto`).

Randomness (Sans-IO rule, DESIGN.md): nothing here touches global randomness.  The caller
injects a source with ``getrandbits``; tests and the simulator pass a seeded
``random.Random`` so a run replays from its seed, production callers MUST pass
``random.SystemRandom()`` (or another CSPRNG-backed source): keys and tokens must be hard
to guess (RFC 8684 §3.1, citing RFC 4086); an off-path attacker who can predict a token can
open half-open MP_JOINs against it (RFC 7430 §3), one who predicts a key can forge the
HMACs and MP_FASTCLOSE (RFC 8684 §5).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mptcp.wire.mptcp_crypto import token_and_idsn

__all__ = [
    "RandomSource", "TokenError", "TokenExhaustedError", "TokenTableStats", "TokenTable",
    "peer_token_idsn", "KEY_BITS", "MAX_KEY", "MAX_TOKEN", "DEFAULT_MAX_ATTEMPTS",
]

KEY_BITS = 64
MAX_KEY = (1 << 64) - 1
MAX_TOKEN = (1 << 32) - 1
# Give up after this many keys in a row whose token is taken (or that are 0).  With a sane
# source, k attempts fail with probability (n / 2**32)**k: never in practice.  A bounded
# loop turns a broken source (a stub repeating one key) into a typed error, not a hang;
# Linux likewise retries a few times and then falls back to TCP (MPFallbackTokenInit).
DEFAULT_MAX_ATTEMPTS = 64

T = TypeVar("T")


class RandomSource(Protocol):
    """What a key source must offer: ``random.Random``, ``random.SystemRandom``..."""

    def getrandbits(self, k: int, /) -> int: ...


class TokenError(ValueError):
    """Bad token-table use: a duplicate or out-of-range token, an out-of-range key."""


class TokenExhaustedError(TokenError):
    """No key with a free token was found within the attempt budget (RFC 8684 §3.1): the
    caller should fall back to regular TCP (count ``MPTcpExtMPFallbackTokenInit``)."""


@dataclass(slots=True)
class TokenTableStats:
    """Counters of one table: ``generated`` keys handed out by :meth:`TokenTable.new_key`,
    ``collisions`` candidate keys rejected because their token was already registered,
    ``zero_keys`` candidates rejected for being 0, ``exhausted`` calls that gave up."""

    generated: int = 0
    collisions: int = 0
    zero_keys: int = 0
    exhausted: int = 0


def _check_token(tok: object) -> int:
    if type(tok) is not int or not 0 <= tok <= MAX_TOKEN:
        raise TokenError(f"token must be a 32-bit unsigned int, got {tok!r}")
    return tok


def peer_token_idsn(key: int) -> tuple[int, int]:
    """``(token, idsn)`` of a key, e.g. the peer's key from its MP_CAPABLE (RFC 8684 §3.1:
    token = most significant 32 bits, IDSN = least significant 64 bits of SHA-256(key),
    the key hashed in network byte order).  Raises :class:`TokenError` unless ``key`` is
    a 64-bit unsigned int."""
    if type(key) is not int or not 0 <= key <= MAX_KEY:
        raise TokenError(f"key must be a 64-bit unsigned int, got {key!r}")
    return token_and_idsn(key)


class TokenTable(Generic[T]):
    """The host's local tokens -> the objects that own them (connections, usually).

    One table per host / ``Stack`` (RFC 8684 §3.1: keys are unique "across all its current
    MPTCP connections"); the Stack looks an MP_JOIN SYN's token up here (§3.2).
    :meth:`new_key` only picks a key whose token is free; :meth:`register` claims it (or
    pass ``owner=`` to :meth:`new_key` to do both at once, so that two keys drawn before
    either is registered cannot share a token).
    """

    __slots__ = ("_owners", "max_attempts", "stats")

    def __init__(self, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise TokenError(f"max_attempts must be >= 1, got {max_attempts}")
        self._owners: dict[int, T] = {}
        self.max_attempts = max_attempts
        self.stats = TokenTableStats()

    def new_key(self, rng: RandomSource, owner: T | None = None) -> tuple[int, int, int]:
        """A fresh ``(key, token, idsn)``: a 64-bit key from ``rng``, never 0, whose token is
        not in the table (RFC 8684 §3.1: on a collision, generate a new key).

        With ``owner`` the token is registered to it before returning.  Raises
        :class:`TokenExhaustedError` after :attr:`max_attempts` rejected candidates (the
        table is unchanged), :class:`TokenError` if ``rng`` returns a value that is not a
        64-bit unsigned int.
        """
        owners = self._owners
        stats = self.stats
        for _ in range(self.max_attempts):
            key = rng.getrandbits(KEY_BITS)
            if type(key) is not int or not 0 <= key <= MAX_KEY:
                raise TokenError(f"random source returned {key!r}, not a 64-bit value")
            if key == 0:
                stats.zero_keys += 1
                continue
            tok, isn = token_and_idsn(key)
            if tok in owners:
                stats.collisions += 1
                continue
            stats.generated += 1
            if owner is not None:
                owners[tok] = owner
            return key, tok, isn
        stats.exhausted += 1
        raise TokenExhaustedError(
            f"no key with a free token after {self.max_attempts} attempts "
            f"({len(owners)} tokens in use)"
        )

    def register(self, token: int, owner: T) -> None:
        """Claim ``token`` for ``owner``; :class:`TokenError` if it is taken or invalid."""
        tok = _check_token(token)
        if tok in self._owners:
            raise TokenError(f"token {tok:#010x} is already registered")
        self._owners[tok] = owner

    def lookup(self, token: int) -> T | None:
        """The owner of ``token``, or None (RFC 8684 §3.2: an MP_JOIN for an unknown token
        is refused, ``MPTcpExtMPJoinNoTokenFound``)."""
        return self._owners.get(token)

    def unregister(self, token: int, owner: T | None = None) -> T | None:
        """Release ``token`` and return its owner; None (table unchanged) when the token is
        not registered, or, if ``owner`` is given, registered to another object (a stale
        owner releasing twice never frees a token re-used by a newer connection)."""
        owners = self._owners
        cur = owners.get(token)
        if cur is None or (owner is not None and cur is not owner):
            return None
        del owners[token]
        return cur

    def __len__(self) -> int:
        return len(self._owners)

    def __contains__(self, token: object) -> bool:
        return token in self._owners

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._owners))

    def __repr__(self) -> str:
        return f"TokenTable({len(self._owners)} tokens, {self.stats})"
