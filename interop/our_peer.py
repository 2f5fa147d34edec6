"""Our userspace TCP as a test/benchmark endpoint: ``mptcp-lab connect|serve`` run in a network
namespace (``ip netns exec NS python -m interop.cli ...``), controlled like the kernel peer.

The CLI prints the same JSON-lines events as :mod:`interop.linux_peer` (``listening``,
``connected``, ``done`` with ``bytes_*``, ``sha256_*``, ``seconds``, ``goodput_bps``,
``cpu_seconds``, ``error``), so :class:`OurPeer` reuses :class:`~interop.linux_peer.LinuxPeer`'s
process handling and :class:`~interop.linux_peer.PeerResult`; the stack's MIB counters and
connection info are in the raw ``done`` event (:attr:`OurPeer.done_event`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from interop.linux_peer import LinuxPeer, PeerError

__all__ = ["OurPeer", "start_on_path", "start_on_two_paths"]


class OurPeer(LinuxPeer):
    """``mptcp-lab connect`` / ``serve`` in a subprocess (see the module docstring)."""

    module = "interop.cli"

    @classmethod
    def start_ours(
        cls,
        netns: str | None,
        role: str,
        *,
        driver: str,
        local: str,
        port: int,
        host: str | None = None,
        mode: str = "sink",
        nbytes: int = 0,
        seed: int = 0,
        hash: bool = True,
        tun_addr: str | None = None,
        ifname: str | None = None,
        offload: bool = True,
        pcap: str | None = None,
        timeout: float = 60.0,
        extra: Sequence[str] = (),
    ) -> OurPeer:
        """Start ``mptcp-lab connect HOST PORT`` (role "client") or ``serve PORT --count 1``
        (role "server") with JSON output."""
        if role == "client":
            if host is None:
                raise PeerError("a client needs host")
            argv = ["connect", host, str(port)]
        elif role == "server":
            argv = ["serve", str(port), "--count", "1"]
        else:
            raise PeerError(f"role {role!r}")
        argv += ["--driver", driver, "--local", local, "--mode", mode, "--bytes", str(nbytes),
                 "--seed", str(seed), "--timeout", str(timeout), "--json", "--quiet"]
        if tun_addr:
            argv += ["--tun-addr", tun_addr]
        if ifname:
            argv += ["--ifname", ifname]
        if not offload:
            argv.append("--no-offload")
        if not hash:
            argv.append("--no-hash")
        if pcap:
            argv += ["--pcap", pcap]
        argv += list(extra)
        return cls(argv, netns)

    def wait_event(self, event: str, timeout: float = 30.0,
                   pred: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The first event named ``event`` (and matching ``pred``), already received or the
        next to arrive (e.g. ``"connected"``: the transfer starts; ``"progress"`` with
        enough bytes).  PeerError on timeout or if the process ends without it."""
        def match(ev: dict[str, Any]) -> bool:
            return ev.get("event") == event and (pred is None or pred(ev))

        for ev in self.events:
            if match(ev):
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev2 = self._next_event(deadline)
            if ev2 is None or (ev2.get("event") == "done" and event != "done"):
                raise PeerError(f"no {event!r} event from our endpoint (ended: "
                                f"{(ev2 or {}).get('error')}); stderr: {self.stderr[-2000:]}")
            if match(ev2):
                return ev2

    @property
    def done_event(self) -> dict[str, Any] | None:
        """The raw ``done`` event (with ``mib``, ``tcp``, ``runner``) once it arrived."""
        for ev in self.events:
            if ev.get("event") == "done":
                return ev
        return None


def start_on_path(path: Any, role: str, *, port: int, mode: str, nbytes: int = 0,
                  seed: int = 0, hash: bool = True, offload: bool = True,
                  pcap: str | None = None, timeout: float = 60.0,
                  extra: Sequence[str] = ()) -> OurPeer:
    """Our endpoint on an :class:`interop.topology.Path` (TUN or raw, as the path was built):
    a client connects to the kernel peer's address, a server listens on the stack's."""
    kw: dict[str, Any] = {}
    if path.driver == "tun":
        plen = 64 if ":" in path.tun_kernel_addr else 24
        kw["tun_addr"] = f"{path.tun_kernel_addr}/{plen}"
    else:
        kw["ifname"] = path.stack_dev
    return OurPeer.start_ours(
        path.stack_ns, role, driver=path.driver, local=path.stack_addr, port=port,
        host=path.peer_addr if role == "client" else None, mode=mode, nbytes=nbytes, seed=seed,
        hash=hash, offload=offload, pcap=pcap, timeout=timeout, extra=extra, **kw)


def start_on_two_paths(tp: Any, role: str, *, port: int, mode: str, nbytes: int = 0,
                       seed: int = 0, hash: bool = True, offload: bool = True,
                       pcap: str | None = None, timeout: float = 60.0, host: str | None = None,
                       extra: Sequence[str] = ()) -> OurPeer:
    """Our MPTCP endpoint on an :class:`interop.topology.TwoPaths` (TUN mode): one TUN device
    with both kernel-side addresses, the stack owning both path addresses (path 1's first: the
    initial subflow's); a client connects to ``host`` (default the kernel's path-1 address).
    ``extra`` carries the multipath options (``--endpoint``, ``--at``...)."""
    if tp.kernel_both:
        raise PeerError("a kernel_both topology has no place for our stack")
    tun = [f"{a}/{plen}" for a, plen in tp.tun_addresses]
    more: list[str] = ["--mptcp", "--ifname", tp.tun_dev]
    for a in tp.stack_addrs[1:]:
        more += ["--local", a]
    for t in tun[1:]:
        more += ["--tun-addr", t]
    return OurPeer.start_ours(
        tp.stack_ns, role, driver="tun", local=tp.stack_addrs[0], port=port,
        host=(host or tp.peer_addrs[0]) if role == "client" else None, mode=mode,
        nbytes=nbytes, seed=seed, hash=hash, tun_addr=tun[0], offload=offload, pcap=pcap,
        timeout=timeout, extra=[*more, *extra])
