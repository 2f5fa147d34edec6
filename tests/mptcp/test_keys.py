"""Keys and the token table (RFC 8684 §3.1, §3.2)."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.keys import (
    MAX_KEY,
    TokenError,
    TokenExhaustedError,
    TokenTable,
    peer_token_idsn,
)


def _ref(key: int) -> tuple[int, int]:
    """RFC 8684 §3.1 derivation straight from hashlib: SHA-256 of the 8-byte big-endian key;
    token = top 32 bits, IDSN = low 64 bits."""
    d = hashlib.sha256(key.to_bytes(8, "big")).digest()
    return int.from_bytes(d[:4], "big"), int.from_bytes(d[-8:], "big")


class Scripted:
    """An rng stub returning the given values in turn (then repeating the last one)."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.calls = 0

    def getrandbits(self, k: int, /) -> int:
        assert k == 64
        v = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return v


@pytest.mark.rfc("8684", "3.1")
@given(st.integers(min_value=0, max_value=MAX_KEY))
def test_peer_token_idsn_matches_hashlib(key: int) -> None:
    assert peer_token_idsn(key) == _ref(key)


@pytest.mark.rfc("8684", "3.1")
def test_new_key_derivation_matches_hashlib() -> None:
    table: TokenTable[str] = TokenTable()
    rng = random.Random(1)
    for _ in range(200):
        key, tok, isn = table.new_key(rng)
        assert 0 < key <= MAX_KEY
        assert (tok, isn) == _ref(key)


def test_known_vector() -> None:
    # Independent check of the byte order: key 1 is hashed as 00 00 00 00 00 00 00 01.
    d = hashlib.sha256(bytes(7) + b"\x01").hexdigest()
    tok, isn = peer_token_idsn(1)
    assert f"{tok:08x}" == d[:8]
    assert f"{isn:016x}" == d[-16:]


def test_deterministic_from_seed() -> None:
    a: TokenTable[int] = TokenTable()
    b: TokenTable[int] = TokenTable()
    ra, rb = random.Random(42), random.Random(42)
    assert [a.new_key(ra) for _ in range(20)] == [b.new_key(rb) for _ in range(20)]


def test_system_random_works() -> None:
    table: TokenTable[object] = TokenTable()
    key, tok, isn = table.new_key(random.SystemRandom())
    assert (tok, isn) == _ref(key)


@pytest.mark.rfc("8684", "3.1")
def test_collision_regenerates() -> None:
    table: TokenTable[str] = TokenTable()
    k1, t1, _ = table.new_key(Scripted(5), owner="c1")
    assert table.lookup(t1) == "c1"
    # The stub repeats key 5 (token taken) twice, then offers key 6.
    rng = Scripted(5, 5, 6)
    k2, t2, i2 = table.new_key(rng)
    assert k2 == 6 and k1 == 5
    assert t2 != t1
    assert (t2, i2) == _ref(6)
    assert rng.calls == 3
    assert table.stats.collisions == 2
    assert table.stats.generated == 2


@pytest.mark.rfc("8684", "3.1")
def test_forced_collisions_under_many_keys() -> None:
    """An rng that keeps offering already-used keys: every key handed out still has a
    token not in the table."""
    table: TokenTable[int] = TokenTable(max_attempts=5000)
    base = random.Random(7)
    pool = [base.getrandbits(64) | 1 for _ in range(50)]

    class Repeating:
        def __init__(self) -> None:
            self.r = random.Random(3)

        def getrandbits(self, k: int, /) -> int:
            return self.r.choice(pool)

    rng = Repeating()
    tokens = set()
    for i in range(50):
        _key, tok, _ = table.new_key(rng, owner=i)
        assert tok not in tokens
        tokens.add(tok)
    assert len(table) == 50
    assert set(table) == tokens
    assert table.stats.collisions > 0
    # The pool is used up: every candidate now collides.
    with pytest.raises(TokenExhaustedError):
        table.new_key(rng)
    assert len(table) == 50
    assert table.stats.exhausted == 1


def test_never_key_zero() -> None:
    table: TokenTable[str] = TokenTable()
    key, _, _ = table.new_key(Scripted(0, 0, 9))
    assert key == 9
    assert table.stats.zero_keys == 2
    with pytest.raises(TokenExhaustedError):
        TokenTable[str](max_attempts=3).new_key(Scripted(0))


def test_exhaustion_leaves_table_unchanged() -> None:
    table: TokenTable[str] = TokenTable(max_attempts=4)
    _, tok, _ = table.new_key(Scripted(11), owner="a")
    with pytest.raises(TokenExhaustedError) as ei:
        table.new_key(Scripted(11), owner="b")
    assert isinstance(ei.value, TokenError) and isinstance(ei.value, ValueError)
    assert len(table) == 1 and table.lookup(tok) == "a"
    assert table.stats.collisions == 4


@pytest.mark.parametrize("bad", [-1, 1 << 64, "x"])
def test_bad_rng_output(bad: object) -> None:
    class Bad:
        def getrandbits(self, k: int, /) -> int:
            return bad  # type: ignore[return-value]

    table: TokenTable[str] = TokenTable()
    with pytest.raises(TokenError):
        table.new_key(Bad())
    assert len(table) == 0


def test_register_lookup_unregister() -> None:
    table: TokenTable[str] = TokenTable()
    table.register(0x1234, "a")
    assert 0x1234 in table and 0x99 not in table
    assert table.lookup(0x1234) == "a"
    assert table.lookup(0x99) is None
    with pytest.raises(TokenError):
        table.register(0x1234, "b")
    assert table.lookup(0x1234) == "a"
    assert table.unregister(0x1234) == "a"
    assert table.unregister(0x1234) is None
    assert len(table) == 0
    table.register(0x1234, "b")
    assert table.lookup(0x1234) == "b"


def test_unregister_checks_owner() -> None:
    table: TokenTable[object] = TokenTable()
    old, new = object(), object()
    table.register(7, new)
    assert table.unregister(7, old) is None
    assert table.lookup(7) is new
    assert table.unregister(7, new) is new
    assert 7 not in table


@pytest.mark.parametrize("bad", [-1, 1 << 32, "1", 1.0, True])
def test_register_rejects_bad_token(bad: object) -> None:
    table: TokenTable[str] = TokenTable()
    with pytest.raises(TokenError):
        table.register(bad, "a")  # type: ignore[arg-type]
    assert len(table) == 0


@pytest.mark.parametrize("bad", [-1, 1 << 64, "1", None])
def test_peer_token_rejects_bad_key(bad: object) -> None:
    with pytest.raises(TokenError):
        peer_token_idsn(bad)  # type: ignore[arg-type]


def test_bad_max_attempts() -> None:
    with pytest.raises(TokenError):
        TokenTable[str](max_attempts=0)


def test_new_key_registered_owner_blocks_reuse() -> None:
    table: TokenTable[str] = TokenTable()
    _, tok, _ = table.new_key(Scripted(77), owner="x")
    with pytest.raises(TokenError):
        table.register(tok, "y")
