"""TCP connection states and the RFC 9293 state transition table as data.

RFC 9293 §3.3.2 (Figure 6) and the event processing of §3.10: every state change of the engine
goes through :func:`transition` with a :class:`Trigger`; a (state, trigger) pair missing from
:data:`TRANSITIONS` is a programming error (:class:`InvalidTransition`).  :func:`validate_table`
checks the table's shape (every state reachable from CLOSED, CLOSED reachable from every state,
only the synchronized states carry data ...) and runs at import.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "TcpState", "Trigger", "TRANSITIONS", "InvalidTransition", "transition", "validate_table",
    "SYNCHRONIZED", "CAN_SEND", "CAN_RECEIVE",
]


class TcpState(enum.Enum):
    """RFC 9293 §3.3.2 connection states."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class Trigger(enum.Enum):
    """What makes a connection change state (RFC 9293 §3.3.2 Figure 6 arcs, §3.10)."""

    PASSIVE_OPEN = "passive OPEN"
    ACTIVE_OPEN = "active OPEN (send SYN)"
    RCV_SYN = "rcv SYN (send SYN,ACK)"
    RCV_SYN_ACK = "rcv SYN,ACK (send ACK)"
    RCV_ACK_OF_SYN = "rcv ACK of SYN"
    CLOSE = "CLOSE (send FIN)"
    RCV_FIN = "rcv FIN (send ACK)"
    RCV_ACK_OF_FIN = "rcv ACK of FIN"
    RCV_FIN_ACK_OF_FIN = "rcv FIN + ACK of our FIN"
    TIMEOUT_2MSL = "2 MSL timeout"
    RCV_RST = "rcv RST"
    ABORT = "ABORT (send RST) / give up"
    DELETE = "CLOSE without connection state"


S = TcpState
T = Trigger

_TABLE: dict[tuple[TcpState, Trigger], TcpState] = {
    (S.CLOSED, T.PASSIVE_OPEN): S.LISTEN,
    (S.CLOSED, T.ACTIVE_OPEN): S.SYN_SENT,
    (S.LISTEN, T.RCV_SYN): S.SYN_RECEIVED,
    (S.LISTEN, T.ACTIVE_OPEN): S.SYN_SENT,  # SEND on a listening connection (§3.10.2)
    (S.LISTEN, T.CLOSE): S.CLOSED,
    (S.LISTEN, T.ABORT): S.CLOSED,
    (S.SYN_SENT, T.RCV_SYN): S.SYN_RECEIVED,  # simultaneous open
    (S.SYN_SENT, T.RCV_SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, T.CLOSE): S.CLOSED,
    (S.SYN_SENT, T.RCV_RST): S.CLOSED,
    (S.SYN_SENT, T.ABORT): S.CLOSED,
    (S.SYN_RECEIVED, T.RCV_ACK_OF_SYN): S.ESTABLISHED,
    (S.SYN_RECEIVED, T.CLOSE): S.FIN_WAIT_1,
    (S.SYN_RECEIVED, T.RCV_FIN): S.CLOSE_WAIT,  # §3.10.7.4 eighth: FIN acking our SYN
    (S.SYN_RECEIVED, T.RCV_RST): S.CLOSED,  # passive: "return to LISTEN" = the listener
    (S.SYN_RECEIVED, T.ABORT): S.CLOSED,
    (S.ESTABLISHED, T.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, T.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, T.RCV_RST): S.CLOSED,
    (S.ESTABLISHED, T.ABORT): S.CLOSED,
    (S.FIN_WAIT_1, T.RCV_ACK_OF_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, T.RCV_FIN): S.CLOSING,
    (S.FIN_WAIT_1, T.RCV_FIN_ACK_OF_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_1, T.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_1, T.ABORT): S.CLOSED,
    (S.FIN_WAIT_2, T.RCV_FIN): S.TIME_WAIT,
    (S.FIN_WAIT_2, T.RCV_RST): S.CLOSED,
    (S.FIN_WAIT_2, T.ABORT): S.CLOSED,
    (S.CLOSE_WAIT, T.CLOSE): S.LAST_ACK,
    (S.CLOSE_WAIT, T.RCV_RST): S.CLOSED,
    (S.CLOSE_WAIT, T.ABORT): S.CLOSED,
    (S.CLOSING, T.RCV_ACK_OF_FIN): S.TIME_WAIT,
    (S.CLOSING, T.RCV_RST): S.CLOSED,
    (S.CLOSING, T.ABORT): S.CLOSED,
    (S.LAST_ACK, T.RCV_ACK_OF_FIN): S.CLOSED,
    (S.LAST_ACK, T.RCV_RST): S.CLOSED,
    (S.LAST_ACK, T.ABORT): S.CLOSED,
    (S.TIME_WAIT, T.TIMEOUT_2MSL): S.CLOSED,
    (S.TIME_WAIT, T.RCV_RST): S.CLOSED,  # RFC 9293 §3.10.7.4 (RFC 1337 lets one ignore it)
    (S.TIME_WAIT, T.ABORT): S.CLOSED,
    (S.TIME_WAIT, T.DELETE): S.CLOSED,  # reopened by a new SYN (§3.6.1 / RFC 6191)
}

TRANSITIONS: Mapping[tuple[TcpState, Trigger], TcpState] = MappingProxyType(_TABLE)
"""(state, trigger) -> next state: the only state changes the engine performs."""

SYNCHRONIZED = frozenset({
    S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT,
})
"""RFC 9293 §3.5: the states after the three-way handshake completed."""

CAN_SEND = frozenset({S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT})
"""States in which the application may still queue data (§3.10.2)."""

CAN_RECEIVE = frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
"""States in which segment text is accepted (§3.10.7.4 seventh)."""


class InvalidTransition(RuntimeError):
    """The engine asked for a (state, trigger) pair that RFC 9293 does not allow."""


def transition(state: TcpState, trigger: Trigger) -> TcpState:
    """The next state, or :class:`InvalidTransition`."""
    try:
        return _TABLE[(state, trigger)]
    except KeyError:
        raise InvalidTransition(f"{trigger.value!r} in {state.value}") from None


def validate_table(table: Mapping[tuple[TcpState, Trigger], TcpState] = TRANSITIONS) -> None:
    """Check the table's shape; raise :class:`ValueError` on the first problem.

    - every state is reachable from CLOSED, and CLOSED is reachable from every state;
    - every state but CLOSED can be aborted (ABORT leads to CLOSED);
    - TIME-WAIT is left only towards CLOSED;
    - only the SYN-SENT arcs lead to SYN-RECEIVED or ESTABLISHED without an ACK of our SYN.
    """
    succ: dict[TcpState, set[TcpState]] = {s: set() for s in TcpState}
    for (src, trig), dst in table.items():
        succ[src].add(dst)
        if trig is Trigger.ABORT and dst is not TcpState.CLOSED:
            raise ValueError(f"ABORT from {src} does not close")
        if src is TcpState.TIME_WAIT and dst is not TcpState.CLOSED:
            raise ValueError("TIME-WAIT may only lead to CLOSED")
        if dst is TcpState.ESTABLISHED and trig not in (Trigger.RCV_SYN_ACK,
                                                        Trigger.RCV_ACK_OF_SYN):
            raise ValueError(f"{src} reaches ESTABLISHED on {trig}")

    def reach(start: TcpState, nxt: Mapping[TcpState, set[TcpState]]) -> set[TcpState]:
        seen = {start}
        todo = [start]
        while todo:
            for d in nxt[todo.pop()]:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    missing = set(TcpState) - reach(TcpState.CLOSED, succ)
    if missing:
        raise ValueError(f"unreachable from CLOSED: {sorted(s.value for s in missing)}")
    pred: dict[TcpState, set[TcpState]] = {s: set() for s in TcpState}
    for src, dsts in succ.items():
        for d in dsts:
            pred[d].add(src)
    stuck = set(TcpState) - reach(TcpState.CLOSED, pred)
    if stuck:
        raise ValueError(f"cannot reach CLOSED from: {sorted(s.value for s in stuck)}")
    for s in TcpState:
        if s is not TcpState.CLOSED and (s, Trigger.ABORT) not in table:
            raise ValueError(f"{s.value} cannot be aborted")


validate_table()
