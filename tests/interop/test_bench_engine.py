"""`mptcp-lab bench engine`: the transfers complete, deliver the same bytes, and the JSON
carries the numbers the issue asks for (tiny transfers: this checks the harness, not the
speed)."""

from __future__ import annotations

import json

import pytest

from interop.bench_engine import BenchError, Pattern, quic_transfer, tcp_transfer
from interop.cli import main


@pytest.mark.parametrize("gso", [False, True])
@pytest.mark.parametrize("wire", [False, True])
def test_tcp_transfers_complete(gso: bool, wire: bool) -> None:
    pattern = Pattern(300_000)
    t = tcp_transfer(pattern, gso=gso, wire=wire, clock="virtual")
    assert t.payload_bytes == 300_000 and t.seconds > 0
    mss_payload = 1448
    assert t.data_packets >= 300_000 // (65_483 if gso else mss_payload)
    if not gso:
        assert t.reverse_packets >= t.data_packets // 2 - 1  # an ACK per two segments


def test_a_corrupted_stream_is_detected() -> None:
    pattern = Pattern(50_000)
    pattern.digest = bytes(32)  # as if the sender had sent something else
    with pytest.raises(BenchError):
        tcp_transfer(pattern, clock="virtual")


def test_pattern_chunks_cover_the_stream() -> None:
    p = Pattern(3 * (1 << 20) + 5)
    pos = 0
    sizes = []
    while pos < p.total:
        chunk = p.chunk(pos, 700_000)
        sizes.append(len(chunk))
        pos += len(chunk)
    assert pos == p.total and max(sizes) <= 700_000 and sizes[-1] == 5


def test_quic_transfer_completes() -> None:
    pytest.importorskip("aioquic")
    t = quic_transfer(Pattern(200_000), datagram_size=1472)
    assert t.payload_bytes == 200_000 and t.data_packets >= 200_000 // 1472


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("aioquic")
    assert main(["bench", "engine", "--json", "--bytes", "200000", "--runs", "1",
                 "--no-quic-1200"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("segments_per_s", "mbit_per_s", "aioquic_packets_per_s", "aioquic_mbit_per_s",
                "ratio", "mss1460_mbit_per_s", "mss1460_ratio", "mss1460_objects_mbit_per_s",
                "gso_mbit_per_s", "gso_ratio"):
        assert out[key] > 0, key
    head = out["headline"]
    assert head in ("mss1460", "gso")
    assert (head == "mss1460") == (out["mss1460_ratio"] >= 2)
    assert out["ratio"] == out[f"{head}_ratio"]
    assert out["mbit_per_s"] == out[f"{head}_mbit_per_s"]
    assert out["mss1460_ratio"] == pytest.approx(
        out["mss1460_mbit_per_s"] / out["aioquic_mbit_per_s"], rel=1e-2)


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("aioquic")
    assert main(["bench", "engine", "--bytes", "100000", "--runs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MSS 1460" in out and "aioquic, 1472" in out and "headline" in out
