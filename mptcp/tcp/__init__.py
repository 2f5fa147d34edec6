"""Sans-IO TCP engine (RFC 9293) for one connection or MPTCP subflow.

Modules of this package are independent building blocks (RTT/RTO estimation, congestion
control, loss recovery, buffers, the state machine, extension hooks); this package file imports
none of them so that each can be used and tested on its own.
"""
