"""The multipath options of ``mptcp-lab connect|serve`` (:mod:`interop.lab_multipath`): parsing,
the path manager they build (RFC 8684 §3.2-§3.4 via :mod:`mptcp.pm`), the addresses the stack
must own, and the refusal without ``--mptcp`` (no privileges needed; the kernel interop runs
are in ``test_kernel_multipath.py``)."""

from __future__ import annotations

import argparse
import json

import pytest

from interop.cli import build_parser, main
from interop.lab_multipath import (
    EventLog,
    build_pm,
    owned_addresses,
    parse_action,
    parse_limits,
    parse_route,
)
from mptcp.pm import FullMeshPM, Limits, PmError


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["connect", "10.0.1.2", "5201", "--local", "10.0.2.2",
                                      *argv])


def test_parse_actions() -> None:
    a = parse_action("1.5:announce=5,10.0.3.2,6000")
    assert (a.at, a.kind, a.args, a.local_address) == (1.5, "announce", ("5", "10.0.3.2",
                                                                          "6000"), "10.0.3.2")
    assert parse_action("0:remove=5").args == ("5",)
    assert parse_action("2:backup=10.0.3.2,off").args == ("10.0.3.2", "off")
    j = parse_action("0:join=fd00:3::2,fd00:11::2")
    assert j.args == ("fd00:3::2", "fd00:11::2") and j.local_address == "fd00:3::2"
    for bad in ("x:remove=1", "-1:remove=1", "1:remove=256", "1:backup=10.0.3.2,maybe",
                "1:join=10.0.3.2", "1:announce=1,nowhere", "1:bogus=1", "remove=1",
                "1:announce=1,10.0.3.2,0"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_action(bad)


def test_parse_limits_and_routes() -> None:
    assert parse_limits("4,2") == Limits(4, 2)
    for bad in ("4", "4,x", "4,2,1", "300,1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_limits(bad)
    assert parse_route("10.0.11.7/24=10.0.3.2") == ("10.0.11.0/24", "10.0.3.2")
    for bad in ("10.0.11.0/24", "10.0.11.0/24=fd00::1", "nonsense=10.0.3.2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_route(bad)


def test_path_manager_from_options() -> None:
    assert build_pm(_args("--mptcp")) is None  # the stack's default
    args = _args("--mptcp", "--endpoint", "10.0.3.2,subflow,backup", "--endpoint",
                 "10.0.4.2,signal,port=7000,id=1", "--endpoint", "10.0.5.2,fullmesh",
                 "--limits", "3,2", "--pm-route", "10.0.11.0/24=10.0.3.2")
    pm = build_pm(args)
    assert isinstance(pm, FullMeshPM)
    eps = {e.address: e for e in pm.endpoints}
    # ids without id= take the lowest free ones
    assert [(e.address, e.id) for e in pm.endpoints] == [("10.0.3.2", 2), ("10.0.4.2", 1),
                                                         ("10.0.5.2", 3)]
    assert eps["10.0.3.2"].subflow and eps["10.0.3.2"].backup
    assert eps["10.0.4.2"].signal and eps["10.0.4.2"].port == 7000
    assert eps["10.0.5.2"].fullmesh
    assert pm.limits == Limits(3, 2)
    assert len(pm.routes) == 1
    with pytest.raises(PmError):
        build_pm(_args("--mptcp", "--endpoint", "10.0.3.2,id=1", "--endpoint", "10.0.4.2,id=1"))
    with pytest.raises(PmError):
        build_pm(_args("--mptcp", "--endpoint", "10.0.3.2,sideways"))


def test_owned_addresses() -> None:
    args = _args("--mptcp", "--local", "10.0.3.2", "--endpoint", "10.0.4.2,signal",
                 "--pm-route", "10.0.11.0/24=10.0.5.2", "--at", "1:announce=9,10.0.6.2",
                 "--at", "1:join=10.0.7.2,10.0.11.2", "--at", "1:backup=10.0.3.2,on")
    assert owned_addresses(args) == ["10.0.2.2", "10.0.3.2", "10.0.4.2", "10.0.5.2",
                                     "10.0.6.2", "10.0.7.2"]
    assert owned_addresses(_args("--local", "10.0.2.2")) == ["10.0.2.2"]


def test_multipath_options_need_mptcp(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["connect", "10.0.1.2", "5201", "--local", "10.0.2.2", "--json",
               "--endpoint", "10.0.3.2,subflow", "--scheduler", "roundrobin"])
    assert rc == 2
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert done["event"] == "done" and "only with --mptcp" in done["error"]
    assert "--endpoint" in done["error"] and "--scheduler" in done["error"]
    rc = main(["connect", "10.0.1.2", "5201", "--local", "10.0.2.2", "--json", "--mptcp",
               "--endpoint", "10.0.3.2,id=1", "--endpoint", "10.0.4.2,id=1"])
    assert rc == 2
    assert "path manager" in json.loads(capsys.readouterr().out.strip())["error"]


def test_event_log_keeps_mptcp_events_and_forwards() -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    emitted: list[dict[str, object]] = []

    class Inner:
        def event(self, now: float, name: str, **fields: object) -> None:
            seen.append((name, fields))

    log = EventLog(Inner(), emitted.append)
    log.event(1.0, "DataReceived", conn="a", length=5)
    log.event(1.0, "PriorityChanged", conn="a", subflow="1:x-y", backup=True)
    log.event(1.0, "AddressRemoved", conn="b", address_id=3)
    assert [n for n, _ in seen] == ["DataReceived", "PriorityChanged", "AddressRemoved"]
    assert [e["name"] for e in emitted] == ["PriorityChanged", "AddressRemoved"]
    assert emitted[0]["event"] == "mptcp_event"
    got = log.of("a")
    assert len(got) == 1 and got[0]["name"] == "PriorityChanged" and got[0]["backup"] is True
    assert "conn" not in got[0] and log.of("nobody") == []
