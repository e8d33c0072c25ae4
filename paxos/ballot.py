"""Ballots: the proposal numbers of Paxos, totally ordered and unique per proposer.

Lamport ("Paxos Made Simple", §2.2) asks for proposal numbers drawn from a totally ordered
set in which "different proposers choose their numbers from disjoint sets". The classic way
to get both properties is a pair compared lexicographically::

    Ballot(round, proposer)      (3, "c1") < (3, "c2") < (4, "c0")

Two proposers never build the same ballot because the ``proposer`` component differs; one
proposer never reuses a ballot because it only ever moves its ``round`` forward. That last
sentence is a promise the *caller* must keep across restarts: a proposer id names one
incarnation of one client (see :class:`paxos.register.MetaStoreClient`), because a restarted
client that forgot its rounds and kept its id could send two different values under one
ballot -- and P2c's "the value of the highest-numbered proposal" would then be ambiguous.

:data:`ZERO` is the bottom ballot: smaller than every ballot a proposer can build. An acceptor
that has promised nothing has promised ``ZERO``; one that has accepted nothing has accepted at
``ZERO``. Using a real bottom element instead of ``None`` keeps every comparison total.
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.codec import message


@message("paxos.ballot")
@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A proposal number: ``round`` first, ``proposer`` to break ties (field order = sort order)."""

    round: int
    proposer: str

    def __post_init__(self) -> None:
        # ValueError (not assert): the codec turns it into a DecodeError for a peer's bad ballot.
        if self.round < 0:
            raise ValueError(f"ballot round must be >= 0, got {self.round}")
        if (self.round == 0) != (self.proposer == ""):
            raise ValueError("only the bottom ballot ZERO has round 0, and it has no proposer")

    @property
    def is_zero(self) -> bool:
        return self.round == 0

    def __str__(self) -> str:
        return f"{self.round}.{self.proposer}" if self.round else "0"

    def as_trace(self) -> tuple[int, str]:
        """The compact form used in trace events (a TLA+ tuple ``<<round, proposer>>``)."""
        return (self.round, self.proposer)


#: The bottom ballot: no promise, nothing accepted.
ZERO = Ballot(0, "")


def next_ballot(proposer: str, last_round: int, highest_seen: Ballot = ZERO) -> Ballot:
    """The smallest ballot of ``proposer`` above both its own last round and any ballot seen.

    Jumping over ``highest_seen`` (learned from a rejection) is what lets a preempted proposer
    win the next round instead of climbing one step at a time behind a rival.
    """
    assert proposer, "next_ballot: a proposer id is required (ballots are unique per proposer)"
    assert last_round >= 0, "next_ballot: rounds are non-negative"
    ballot = Ballot(max(last_round, highest_seen.round) + 1, proposer)
    assert ballot > highest_seen, "next_ballot: the new ballot exceeds every ballot seen"
    return ballot
