"""accecn: Accurate ECN feedback (RFC 9768).

Importing the package registers the AccECN Option codecs (kinds 172 and 174, and the early
experimental ExIDs 0xACC0 / 0xACC1) with the generic option list (:mod:`mptcp.wire.options`).
"""

from accecn import option as option
