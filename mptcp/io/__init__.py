"""trio I/O for the Sans-IO engines: drivers (TUN, raw sockets), middlewares (pcap,
impairment, tracer), the runner that drives a ``Stack``, and the stream API."""
