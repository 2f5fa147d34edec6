"""The trio stream API over MPTCP (RFC 8684; API shape after RFC 6897): open_mptcp_stream /
serve_mptcp between two MptcpStacks over the in-memory link, with mptcp_info."""

from __future__ import annotations

import functools
import hashlib
import random

import pytest
import trio

from mptcp.io.memory import MemoryLink
from mptcp.io.runner import StackRunner
from mptcp.io.stream import TcpStream, open_mptcp_stream, serve_mptcp
from mptcp.stack import MptcpStack
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.stack import Stack


@pytest.mark.rfc("8684", "3.1")
def test_mptcp_streams_over_the_memory_link() -> None:
    data = random.Random(9).randbytes(2_000_000)
    got: dict[str, object] = {}

    async def main() -> None:
        da, db = MemoryLink.pair()
        cfg = TcpConfig(send_buffer=1 << 20, recv_buffer=1 << 20)
        sa = MptcpStack(["10.0.0.1"], random.Random(1), config=cfg)
        sb = MptcpStack(["10.0.0.2"], random.Random(2), config=cfg)
        async with StackRunner(sa, da) as ra, StackRunner(sb, db) as rb:
            done = trio.Event()

            async def handler(stream: TcpStream) -> None:
                h = hashlib.sha256()
                while chunk := await stream.receive_some():
                    h.update(chunk)
                got["sha"] = h.hexdigest()
                got["server_info"] = stream.mptcp_info
                await stream.aclose()
                done.set()

            async with trio.open_nursery() as n:
                await n.start(functools.partial(serve_mptcp, handler, 80, stack=rb))
                s = await open_mptcp_stream("10.0.0.2", 80, stack=ra)
                got["client_info"] = s.mptcp_info
                await s.send_all(data)
                await s.send_eof()
                assert await s.receive_some() == b""
                await s.aclose()
                await done.wait()
                n.cancel_scope.cancel()
        da.close()
        db.close()

    trio.run(main)
    assert got["sha"] == hashlib.sha256(data).hexdigest()
    for key in ("client_info", "server_info"):
        info = got[key]
        assert isinstance(info, dict) and info["mptcp"] and info["fallback"] is None
        assert isinstance(info["counters"], dict) and info["counters"]["MPTcpExtMPCurrEstab"]


def test_mptcp_stream_api_needs_an_mptcp_stack() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        async with StackRunner(Stack(["10.0.0.1"], random.Random(1)), da) as ra:
            with pytest.raises(TypeError):
                await open_mptcp_stream("10.0.0.2", 80, stack=ra)
        da.close()
        db.close()

    trio.run(main)
