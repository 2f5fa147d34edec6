"""The one error type raised by every wire codec of the stack (DESIGN.md "Wire codecs").

Any malformed input -- truncated, bad length, reserved value, checksum mismatch when asked to
verify -- raises :class:`WireError` with the byte offset (relative to the buffer the caller
handed in) and a human-readable reason.  Codecs never leak ``IndexError``, ``struct.error``
or ``ValueError`` from deep inside.
"""

from __future__ import annotations


class WireError(Exception):
    """Malformed bytes on the wire.

    ``offset`` is the byte position (in the caller's buffer) where the problem was found;
    ``reason`` says what was wrong.
    """

    __slots__ = ("offset", "reason")

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason

    def shifted(self, delta: int) -> WireError:
        """The same error with its offset moved by ``delta`` (for nested codecs)."""
        return WireError(self.offset + delta, self.reason)
