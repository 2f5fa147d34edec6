"""A seeded discrete-event network simulator running Sans-IO stacks in virtual time.

Hosts (one Sans-IO stack each, interfaces with IPv4/IPv6 addresses) are joined by
point-to-point links whose directions model delay, jitter, rate, a drop-tail queue with an
ECN-marking AQM (RFC 3168 §5), random and burst loss, duplication, reordering and flaps, and
carry chains of middleboxes (option stripping, payload rewriting, splitting, coalescing, NAT,
sequence-number shifting).  Typical use::

    sim = Simulator(seed=1)
    c = sim.add_host("client", client_stack)
    s = sim.add_host("server", server_stack)
    link = sim.add_link(c.add_interface("eth0", "10.0.0.1"),
                        s.add_interface("eth0", "10.0.0.2"),
                        LinkParams(delay=0.01, rate=10e6, queue_packets=100))
    sim.flap(link, at=1.0, duration=0.5)
    result = sim.run(until=10.0)
"""

from interop.netsim.clock import EventQueue
from interop.netsim.errors import NetsimError
from interop.netsim.host import Host, Interface, SansIOStack
from interop.netsim.link import ChannelState, Dir, DropReason, Link, LinkDirection, LinkStats
from interop.netsim.middlebox import (
    BASE_KINDS,
    Middlebox,
    OptionStrip,
    PayloadRewrite,
    SegmentMiddlebox,
    StripMode,
    StripScope,
)
from interop.netsim.params import GilbertElliott, LinkParams
from interop.netsim.reshape import CoalesceOptions, Coalescer, SplitOptions, Splitter
from interop.netsim.sim import RunResult, Simulator, StopReason
from interop.netsim.trace import TraceHook, TraceRecord, TraceRecorder, pcap_hook
from interop.netsim.translate import Nat, SeqShift

__all__ = [
    "BASE_KINDS", "ChannelState", "CoalesceOptions", "Coalescer", "Dir", "DropReason",
    "EventQueue", "GilbertElliott", "Host", "Interface", "Link", "LinkDirection", "LinkParams",
    "LinkStats", "Middlebox", "Nat", "NetsimError", "OptionStrip", "PayloadRewrite",
    "RunResult", "SansIOStack", "SegmentMiddlebox", "SeqShift", "Simulator", "SplitOptions",
    "Splitter", "StopReason", "StripMode", "StripScope", "TraceHook", "TraceRecord",
    "TraceRecorder", "pcap_hook",
]
