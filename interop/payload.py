"""The deterministic test payload both ends of an interop run send, and its checker.

The byte stream for a seed is one 1 MiB block from ``random.Random(seed).randbytes`` repeated
forever; a transfer of N bytes is the first N bytes of that stream, so either side (our stack,
the kernel peer of :mod:`interop.linux_peer`) can produce it and verify it by SHA-256 without
exchanging it.  Built for multi-Gbit/s: the block is generated once per seed, senders get
``memoryview`` windows of it (no per-chunk copy), and :class:`Hasher` can count bytes only when
hashing would cap the rate (a benchmark's kernel<->kernel baseline).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator

__all__ = ["BLOCK_SIZE", "pattern_block", "PatternSource", "Hasher", "expected_sha256"]

BLOCK_SIZE = 1 << 20
"""Length of the repeated block (1 MiB)."""


@functools.lru_cache(maxsize=8)
def pattern_block(seed: int) -> bytes:
    """The 1 MiB block the stream for ``seed`` repeats (``random.Random(seed).randbytes``)."""
    return random.Random(seed).randbytes(BLOCK_SIZE)


@functools.lru_cache(maxsize=8)
def _double_block(seed: int) -> bytes:
    """Two copies of the block back to back: any offset starts a contiguous 1 MiB window."""
    b = pattern_block(seed)
    return b + b


@functools.lru_cache(maxsize=64)
def expected_sha256(seed: int, size: int) -> str:
    """Hex SHA-256 of the first ``size`` bytes of the stream for ``seed`` (cached)."""
    if size < 0:
        raise ValueError(f"negative size {size}")
    h = hashlib.sha256()
    block = pattern_block(seed)
    full, rest = divmod(size, BLOCK_SIZE)
    for _ in range(full):
        h.update(block)
    h.update(memoryview(block)[:rest])
    return h.hexdigest()


class PatternSource:
    """The first ``size`` bytes of the stream for ``seed``, as zero-copy ``memoryview`` chunks.

    Iterating yields consecutive chunks of at most ``chunk`` bytes (default: one block), each a
    view into the cached block.  :meth:`window` gives a view of up to 1 MiB starting at any
    stream offset, for senders that resume after a partial ``send``.
    """

    __slots__ = ("_double", "_view", "chunk", "seed", "size")

    def __init__(self, seed: int, size: int, chunk: int = BLOCK_SIZE) -> None:
        if size < 0:
            raise ValueError(f"negative size {size}")
        if not 0 < chunk <= BLOCK_SIZE:
            raise ValueError(f"chunk {chunk} not in 1..{BLOCK_SIZE}")
        self.seed = seed
        self.size = size
        self.chunk = chunk
        self._double = _double_block(seed)
        self._view = memoryview(self._double)

    def window(self, offset: int, length: int = BLOCK_SIZE) -> memoryview:
        """Stream bytes ``[offset, offset + length)``, ``length`` capped at 1 MiB and at the end
        of the source (an empty view past the end)."""
        length = min(length, BLOCK_SIZE, self.size - offset)
        if length <= 0:
            return self._view[:0]
        start = offset % BLOCK_SIZE
        return self._view[start : start + length]

    def __iter__(self) -> Iterator[memoryview]:
        pos = 0
        size = self.size
        chunk = self.chunk
        view = self._view
        while pos < size:
            n = min(chunk, size - pos)
            start = pos % BLOCK_SIZE
            yield view[start : start + n]
            pos += n

    def __len__(self) -> int:
        return self.size

    def expected_sha256(self) -> str:
        """Hex SHA-256 of the whole source."""
        return expected_sha256(self.seed, self.size)


class Hasher:
    """SHA-256 and byte count of what passed through :meth:`update`.

    With ``hash=False`` only bytes are counted (``hexdigest()`` returns None): hashing costs
    about 1 s of CPU per 1.5-2 GB and would cap a multi-Gbit/s benchmark.
    """

    __slots__ = ("_h", "count")

    def __init__(self, hash: bool = True) -> None:
        self._h = hashlib.sha256() if hash else None
        self.count = 0

    @property
    def hashing(self) -> bool:
        return self._h is not None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.count += len(data)
        if self._h is not None:
            self._h.update(data)

    def hexdigest(self) -> str | None:
        return None if self._h is None else self._h.hexdigest()
