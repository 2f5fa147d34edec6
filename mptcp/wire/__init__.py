"""Wire codecs: bytes <-> typed values, no state (DESIGN.md "Wire codecs").

Importing this package registers the MPTCP option codec (kind 30, RFC 8684 §3) into the
generic option list; ``tcpinc`` and ``accecn`` register theirs when imported.
"""

from mptcp.wire import mptcp_options as mptcp_options  # registers kind 30
