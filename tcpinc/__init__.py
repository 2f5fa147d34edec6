"""tcpinc: TCP-ENO (RFC 8547) and tcpcrypt (RFC 8548).

Importing the package registers the ENO option codec (kind 69, and kind 253/254 with ExID
0x454E) with the generic option list (:mod:`mptcp.wire.options`).
"""

from tcpinc import eno_option as eno_option
