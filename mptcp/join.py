"""The MP_JOIN handshake of one joined subflow (RFC 8684 §3.2, Figures 5-7).

Host A (initiator) sends a SYN with MP_JOIN (B's token, A's 32-bit random R_A, A's address
ID, backup flag B); host B answers with a SYN/ACK carrying the leftmost 64 bits of
HMAC(Key-B ‖ Key-A, R_B ‖ R_A), R_B and its address ID; A's third ACK carries the leftmost 160
bits of HMAC(Key-A ‖ Key-B, R_A ‖ R_B).  A wrong HMAC resets the subflow (MP_TCPRST, Linux
counts ``MPJoinSynAckHMacFailure`` / ``MPJoinAckHMacFailure``).  The initiator repeats the
MP_JOIN ACK until B acknowledges it (the "fourth ACK", §3.2: "A MUST NOT send data ... until
it has received [it]"), B sends that ACK at once.

:class:`JoinState` holds the nonces and builds/checks the options; the
:class:`~mptcp.subflow.SubflowExt` of a joined subflow calls it.
"""

from __future__ import annotations

import hmac as _hmac
from dataclasses import dataclass

from mptcp.keys import RandomSource
from mptcp.wire.mptcp_crypto import join_ack_hmac, join_synack_hmac
from mptcp.wire.mptcp_handshake import MpJoinAck, MpJoinSyn, MpJoinSynAck

__all__ = ["JoinState", "JOIN_SYN_LEN", "JOIN_SYNACK_LEN", "JOIN_ACK_LEN"]

JOIN_SYN_LEN = 12
JOIN_SYNACK_LEN = 16
JOIN_ACK_LEN = 24


@dataclass
class JoinState:
    """Nonces and progress of one MP_JOIN handshake (``initiator``: we are host A)."""

    initiator_side: bool
    local_nonce: int
    local_id: int
    backup: bool
    remote_nonce: int | None = None
    remote_id: int | None = None
    peer_backup: bool = False
    verified: bool = False  # the peer's HMAC checked (SYN/ACK for A, third ACK for B)
    confirmed: bool = False  # A: the fourth ACK arrived; B: the third ACK was valid

    @classmethod
    def initiator(cls, rng: RandomSource, local_id: int, backup: bool) -> JoinState:
        return cls(True, rng.getrandbits(32), local_id, backup)

    @classmethod
    def responder(cls, rng: RandomSource, syn: MpJoinSyn, local_id: int) -> JoinState:
        return cls(False, rng.getrandbits(32), local_id, False, remote_nonce=syn.sender_random,
                   remote_id=syn.address_id, peer_backup=bool(syn.backup))

    # --- options we send ------------------------------------------------------------------
    def syn_option(self, remote_token: int) -> MpJoinSyn:
        return MpJoinSyn(address_id=self.local_id, receiver_token=remote_token,
                         sender_random=self.local_nonce, backup=self.backup)

    def synack_option(self, local_key: int, remote_key: int) -> MpJoinSynAck:
        assert self.remote_nonce is not None
        mac = join_synack_hmac(local_key, remote_key, self.local_nonce, self.remote_nonce)
        return MpJoinSynAck(address_id=self.local_id, sender_hmac=mac,
                            sender_random=self.local_nonce, backup=self.backup)

    def ack_option(self, local_key: int, remote_key: int) -> MpJoinAck:
        assert self.remote_nonce is not None
        return MpJoinAck(sender_hmac=join_ack_hmac(local_key, remote_key, self.local_nonce,
                                                   self.remote_nonce))

    # --- options we check -----------------------------------------------------------------
    def check_synack(self, opt: MpJoinSynAck, local_key: int, remote_key: int) -> bool:
        """A: the SYN/ACK's truncated HMAC is B's (RFC 8684 §3.2)."""
        want = join_synack_hmac(remote_key, local_key, opt.sender_random, self.local_nonce)
        self.remote_nonce = opt.sender_random
        self.remote_id = opt.address_id
        self.peer_backup = bool(opt.backup)
        self.verified = _hmac.compare_digest(want, bytes(opt.sender_hmac))
        return self.verified

    def check_ack(self, opt: MpJoinAck, local_key: int, remote_key: int) -> bool:
        """B: the third ACK's HMAC is A's (RFC 8684 §3.2)."""
        assert self.remote_nonce is not None
        want = join_ack_hmac(remote_key, local_key, self.remote_nonce, self.local_nonce)
        self.verified = _hmac.compare_digest(want, bytes(opt.sender_hmac))
        if self.verified:
            self.confirmed = True
        return self.verified
