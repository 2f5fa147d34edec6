"""`mptcp-lab demo` (the README's main job) runs without root and its checks hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from interop.cli import main
from interop.decode import decode_pcap


@pytest.mark.rfc("8684", "3.2")
def test_demo_runs_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / "demo.pcap"
    assert main(["demo", "--wire", "--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out
    records = decode_pcap(pcap)
    subtypes = [o["subtype"] for r in records for o in r["mptcp"]]
    for needed in ("MP_CAPABLE", "DSS", "ADD_ADDR", "MP_JOIN"):
        assert needed in subtypes
    assert any(r["accecn"] for r in records)
    assert not any("error" in r for r in records)
