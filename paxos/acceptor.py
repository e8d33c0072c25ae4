"""The Paxos acceptor: the memory of consensus, one promise at a time.

An acceptor is the simplest role in Paxos and the one whose every line matters. For each
instance it keeps three things (Lamport's ``maxBal``, ``maxVBal``, ``maxVal``): the highest
ballot it has *promised*, and the ballot and value it last *accepted*. Two rules, from
"Paxos Made Simple" §2.2-2.3, govern everything it does:

* **Phase 1b (P1a).** "If an acceptor receives a prepare request with number n greater than
  that of any prepare request to which it has already responded, then it responds with a
  promise not to accept any more proposals numbered less than n and with the
  highest-numbered proposal (if any) that it has accepted." We answer a Prepare whose ballot
  *equals* the promise too: it can only be a duplicate of the proposer's own request (ballots
  are unique per proposer), and answering it again changes nothing.
* **Phase 2b (P1a).** "An acceptor can accept a proposal numbered n iff it has not responded
  to a prepare request having a number greater than n." Accepting also raises the promise to
  n, so that a later Prepare below n is refused.

Everything else an acceptor does is plumbing around those two sentences:

* **Persist before replying** (§2.5): a state change is returned as a
  :class:`~delos_ref.effects.Persist` effect placed *before* the reply; the runtime syncs it
  before any reply leaves. A request that changes nothing (a duplicate) persists nothing.
* **Refusals are answered** with a :class:`~paxos.messages.Nack` naming the promise, so a
  preempted proposer can jump above it instead of timing out.
* **Duplicates are harmless**: every handler is idempotent, as the network and the RPC
  layer's resends require.
* **Queries** (for linearizable reads, :mod:`paxos.register`) report ``top``, the highest
  instance holding an accepted value, and what is accepted there. They change nothing.

**Many registers.** Every request names a ``register`` (:mod:`paxos.messages`); the acceptor
keeps its slots by ``(register, instance)`` and a ``top`` per register, and runs the two
rules above for each slot independently. The MetaStore's chain is register ``""``; each
bootstrap loglet is a register of its own (:mod:`delos_ref.loglet.bootstrap`). ``Learn``
reports the accepted values of a range of instances, for reading a register's history.

The acceptor keeps one :class:`~paxos.messages.Slot` per instance ever touched. The chain
register creates one instance per version and versions change only on reconfiguration
(docs/design.md §3), so it stays small; a bootstrap loglet's register grows by one slot per
entry and is never trimmed here (the bootstrap loglet is meant for a cluster's first
moments, before it is hot-swapped to a NativeLoglet). A production MetaStore would forget
slots below a chosen, trimmed prefix.

Teaching switch ``forget_promise``: the acceptor never persists, so a restarted acceptor has
forgotten every promise and acceptance -- the bug §2.5 warns about. The simulator's
``metastore`` workload must catch it (two values chosen for one version).
"""

from __future__ import annotations

from typing import Any, Mapping

from delos_ref.effects import Effect, Emit, Fail, Incoming, Persist, Reply
from delos_ref.storage import Storage
from paxos.messages import (
    CHAIN_REGISTER,
    EMPTY_SLOT,
    Accept,
    Accepted,
    Learn,
    Learned,
    Nack,
    Prepare,
    Promise,
    Query,
    Slot,
    Status,
)
from paxos.storage import SlotId, load_slots, slot_write

#: Bound on the accepted values' bytes in one ``Learned`` (the frame bound is 4 MiB).
LEARN_BYTES = 1 << 20


class Acceptor:
    """A pure RoleRunner core: ``handle(Incoming)`` returns effects, replying to the request."""

    handles = (Prepare, Accept, Query, Learn)

    def __init__(self, slots: Mapping[SlotId, Slot] | None = None, *, forget_promise: bool = False) -> None:
        self._slots: dict[SlotId, Slot] = dict(slots or {})
        assert all(i >= 1 for _, i in self._slots), "Acceptor: instances are numbered from 1"
        self._tops: dict[str, int] = {}  # per register: the highest instance holding an accepted value
        for (register, instance), slot in self._slots.items():
            if slot.accepted_value is not None and instance > self._tops.get(register, 0):
                self._tops[register] = instance
        self.forget_promise = forget_promise
        self.stats = {"promises": 0, "reject_prepare": 0, "accepts": 0, "reject_accept": 0, "queries": 0, "learns": 0, "refused": 0}

    @classmethod
    def recover(cls, storage: Storage, *, forget_promise: bool = False) -> "Acceptor":
        """An acceptor restarted from what ``storage`` holds (empty storage: a fresh one)."""
        return cls(load_slots(storage), forget_promise=forget_promise)

    # ------------------------------------------------------------------ inspection

    @property
    def top(self) -> int:
        """The highest instance of the chain register in which this acceptor holds an
        accepted value (0: none)."""
        return self.top_of(CHAIN_REGISTER)

    def top_of(self, register: str) -> int:
        """The highest instance of ``register`` holding an accepted value here (0: none)."""
        return self._tops.get(register, 0)

    def slot(self, instance: int, register: str = CHAIN_REGISTER) -> Slot:
        return self._slots.get((register, instance), EMPTY_SLOT)

    def statistics(self) -> dict[str, Any]:
        return dict(self.stats, instances=len(self._slots), registers=len(self._tops), top=self.top)

    # ---------------------------------------------------------------------- inputs

    def handle(self, item: Any) -> list[Effect]:
        if type(item) is not Incoming:
            return []  # an acceptor sets no timers: it only ever answers
        msg = item.msg
        if type(msg) is Prepare:
            return self.on_prepare(item, msg)
        if type(msg) is Accept:
            return self.on_accept(item, msg)
        if type(msg) is Query:
            return self.on_query(item, msg)
        if type(msg) is Learn:
            return self.on_learn(item, msg)
        raise AssertionError(f"Acceptor: routed a message it does not handle: {type(msg).__name__}")

    def on_prepare(self, req: Incoming, msg: Prepare) -> list[Effect]:
        """Phase 1b."""
        reg = msg.register
        # lab: acceptor begin
        slot = self.slot(msg.instance, reg)
        if msg.ballot < slot.promised:
            # P1a: we promised not to take part in ballots below slot.promised.
            self.stats["reject_prepare"] += 1
            return [self._emit("RejectPrepare", reg, msg.instance, msg.ballot, slot)] + self._answer(
                req, Nack(msg.instance, msg.ballot, slot.promised, reg)
            )
        promised = Slot(msg.ballot, slot.accepted_ballot, slot.accepted_value)
        self.stats["promises"] += 1
        promise = Promise(msg.instance, msg.ballot, slot.accepted_ballot, slot.accepted_value, self.top_of(reg), reg)
        persist = self._store(reg, msg.instance, promised)
        return persist + [self._emit("Promise", reg, msg.instance, msg.ballot, promised)] + self._answer(req, promise)
        # lab: acceptor end

    def on_accept(self, req: Incoming, msg: Accept) -> list[Effect]:
        """Phase 2b."""
        reg = msg.register
        # lab: acceptor begin
        slot = self.slot(msg.instance, reg)
        if msg.ballot < slot.promised:
            # P1a: accepting would break the promise made to a higher ballot.
            self.stats["reject_accept"] += 1
            return [self._emit("RejectAccept", reg, msg.instance, msg.ballot, slot)] + self._answer(
                req, Nack(msg.instance, msg.ballot, slot.promised, reg)
            )
        if msg.ballot == slot.accepted_ballot and msg.value != slot.accepted_value:
            # One ballot carries one value. A proposer that reuses a ballot for another value
            # breaks the protocol (an id reused across restarts?): refuse, never overwrite.
            self.stats["refused"] += 1
            return [Fail(req.src, req.rid, "ballot_reused", f"register {reg!r} instance {msg.instance} ballot {msg.ballot}")]
        accepted = Slot(msg.ballot, msg.ballot, msg.value)
        persist = self._store(reg, msg.instance, accepted)
        self.stats["accepts"] += 1
        reply = Accepted(msg.instance, msg.ballot, self.top_of(reg), reg)
        return persist + [self._emit("Accepted", reg, msg.instance, msg.ballot, accepted)] + self._answer(req, reply)
        # lab: acceptor end

    def on_query(self, req: Incoming, msg: Query) -> list[Effect]:
        """Read step 1: report ``top`` and its accepted value. Read-only, so nothing to persist."""
        self.stats["queries"] += 1
        top = self.top_of(msg.register)
        slot = self.slot(top, msg.register) if top else EMPTY_SLOT
        assert (top == 0) == (slot.accepted_value is None), "Acceptor.top: holds an accepted value"
        value = slot.accepted_value.as_trace() if slot.accepted_value is not None else None
        query = Emit("Query", {"register": msg.register, "top": top, "accepted_ballot": slot.accepted_ballot.as_trace(), "accepted_value": value})
        return [query] + self._answer(req, Status(top, slot.accepted_ballot, slot.accepted_value, msg.register))

    def on_learn(self, req: Incoming, msg: Learn) -> list[Effect]:
        """Report what is accepted in ``msg.lo .. msg.hi - 1`` (read-only), stopping early
        once the values reach :data:`LEARN_BYTES` (always at least one instance)."""
        self.stats["learns"] += 1
        accepted: list[tuple[Any, Any]] = []
        size = 0
        for instance in range(msg.lo, msg.hi):
            slot = self.slot(instance, msg.register)
            value = slot.accepted_value
            size += len(value.data) if value is not None else 0
            if accepted and size > LEARN_BYTES:
                break
            accepted.append((slot.accepted_ballot, value))
        return self._answer(req, Learned(msg.register, msg.lo, tuple(accepted), self.top_of(msg.register)))

    # --------------------------------------------------------------------- helpers

    def _store(self, register: str, instance: int, slot: Slot) -> list[Effect]:
        """Adopt ``slot`` for ``instance`` of ``register``; the Persist effect that must
        precede the reply."""
        old = self.slot(instance, register)
        assert slot.promised >= old.promised, "Acceptor: promises only rise"
        assert slot.accepted_ballot >= old.accepted_ballot, "Acceptor: accepted ballots only rise"
        if slot.accepted_value is not None and instance > self.top_of(register):
            self._tops[register] = instance
        if slot == old:
            return []  # a duplicate: already durable, nothing to write
        self._slots[(register, instance)] = slot
        if self.forget_promise:
            return []  # teaching bug: nothing reaches the disk, a restart forgets it all
        return [Persist((slot_write(instance, slot, register),))]

    @staticmethod
    def _answer(req: Incoming, msg: Any) -> list[Effect]:
        # A one-way copy of a request has nobody waiting: its state change is all it brings.
        return [Reply(req.src, req.rid, msg)] if req.wants_reply else []

    @staticmethod
    def _emit(event: str, register: str, instance: int, ballot: Any, slot: Slot) -> Emit:
        """A trace event with the acceptor's state for ``instance`` after the step."""
        value = slot.accepted_value.as_trace() if slot.accepted_value is not None else None
        return Emit(
            event,
            {
                "register": register,
                "instance": instance,
                "ballot": ballot.as_trace(),
                "promised": slot.promised.as_trace(),
                "accepted_ballot": slot.accepted_ballot.as_trace(),
                "accepted_value": value,
            },
        )

