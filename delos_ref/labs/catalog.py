"""The labs: for each, the rule it removes, where the rule lives, and how it is graded.

Pure data. Each lab names the module(s) whose marked regions (``# lab: NAME begin/end``,
:mod:`delos_ref.labs.regions`) hold the rule, one TODO text per region (the rule as the
student must write it), the simulator workload that exercises it under faults, and the TLA+
specs whose Python transcriptions (:mod:`delos_ref.tracecheck`) validate its traces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lab:
    name: str
    title: str
    paper: str  # where the rule is stated (OSDI'20 section or Lamport)
    module: str  # the module holding the marked regions (dotted)
    todos: tuple[str, ...]  # one per region, in order: the rule, as a TODO
    workload: str  # the simulator workload of the sweep
    specs: tuple[str, ...]  # the specs the traces are checked against (may be empty)
    seeds: int = 20  # the sweep's seeds by default: a check in about a minute on a laptop

    @property
    def path(self) -> str:
        """The module's file, relative to the project root (and to a lab's WORK)."""
        return self.module.replace(".", "/") + ".py"


LABS: tuple[Lab, ...] = (
    Lab(
        "acceptor",
        "the Paxos acceptor: phase 1b and phase 2b",
        "Lamport, Paxos Made Simple §2.2 (P1a); OSDI'20 §4.1 (the MetaStore)",
        "paxos.acceptor",
        (
            """Phase 1b. A Prepare whose ballot is below the slot's promise is refused: emit
  "RejectPrepare" and answer Nack(instance, ballot, slot.promised, register) (P1a).
Otherwise promise: the slot keeps its accepted ballot and value, its promise becomes the
  ballot. Persist it (self._store) BEFORE answering Promise(instance, ballot,
  accepted_ballot, accepted_value, self.top_of(register), register), and emit "Promise".
Helpers: self.slot, self._store, self._emit, self._answer; count self.stats["promises"].""",
            """Phase 2b. An Accept whose ballot is below the slot's promise is refused: emit
  "RejectAccept" and answer Nack (accepting would break the promise: P1a).
The same ballot with a different value is refused with Fail(req.src, req.rid,
  "ballot_reused", ...): one ballot carries one value.
Otherwise accept: the slot becomes Slot(ballot, ballot, value); persist it (self._store)
  BEFORE answering Accepted(instance, ballot, self.top_of(register), register); emit
  "Accepted"; count self.stats["accepts"].""",
        ),
        "metastore",
        ("MetaStorePaxos",),
    ),
    Lab(
        "proposer",
        "the Paxos proposer: choose the highest accepted value (P2c)",
        "Lamport, Paxos Made Simple §2.2 (P2c)",
        "paxos.proposer",
        (
            """P2c, part 1: among the promises of phase 1, remember the accepted value with the
  HIGHEST accepted ballot (msg.accepted_ballot, msg.accepted_value; None: nothing
  accepted) in self._adopt_ballot and self._adopt_value.""",
            """P2c, part 2: the value to propose in phase 2, and whether it was adopted.
  If a promise reported an accepted value, propose the one with the highest ballot
  (adopted=True); else our own self.value (adopted=False; it may be None).
  Keep the teaching bug switch: with self.ignore_accepted and our own value, propose ours.""",
        ),
        "metastore",
        ("MetaStorePaxos",),
    ),
    Lab(
        "register",
        "the versioned register's write_if",
        "OSDI'20 §3.2 (the MetaStore's conditional write) and §4.1",
        "paxos.register",
        (
            """write_if(expected, update): version expected + 1 is written with our update iff the
  register is at `expected`. Versions are gapless single-decree instances:
  * while expected > self._known_version: settle instance `expected` (self._decide(expected,
    None, _Exposure())); if nothing is chosen there, read (self._read()) and return
    Conflict(version, _data(current)) unless the version read is `expected`;
  * if expected < self._known_version: instance expected + 1 is taken: return
    await self._conflict(exposure);
  * decide instance expected + 1 with our update; Written(expected + 1) only if the chosen
    value IS our update, else await self._conflict(exposure).""",
        ),
        "metastore",
        ("MetaStorePaxos",),
    ),
    Lab(
        "logserver",
        "the LogServer: the seal rule and the store rule",
        "OSDI'20 §5 (NativeLoglet: seal bits on the LogServers)",
        "delos_ref.loglet.native.logserver",
        (
            """The store rule of a sealed LogServer: "once set, the LogServer rejects appends".
  If st.sealed (and BUG_ACCEPT_AFTER_SEAL is not in self.bugs), store nothing: count
  self.stats["refused_sealed"], emit "StoreRefused" {loglet, reason: "sealed", local_tail},
  and Send Stored(loglet_id, st.local_tail, True, False, self._known[loglet_id]) so the
  sequencer can count the seal.""",
            """The seal rule: set the seal bit, durably, once. Sealing twice changes nothing
  (return []). Otherwise set st.sealed, drop the entries held for later (self._held), count
  self.stats["seals"], and return Persist((layout.write_meta(loglet_id, st),)) and an Emit
  "Seal" {loglet, local_tail}: the reply leaves only after the bit is on disk.""",
        ),
        "loglet",
        ("NativeLoglet",),
    ),
    Lab(
        "sequencer",
        "the sequencer's commit rule",
        "OSDI'20 §5 (NativeLoglet append: a majority of LogServers)",
        "delos_ref.loglet.native.sequencer",
        (
            """The commit rule: a position is committed once a MAJORITY of the loglet's
  LogServers stored it. LogServers are gapless, so lg.tails (server -> local tail) says
  which prefix each holds; return the global tail, the greatest position p such that
  lg.config.majority servers hold [0, p). (BUG_ACK_BEFORE_MAJORITY: the greatest tail.)""",
        ),
        "loglet",
        ("NativeLoglet",),
    ),
    Lab(
        "check_tail",
        "the NativeLoglet's check_tail when a seal is seen, with repair",
        "OSDI'20 §5 (check_tail: the three cases)",
        "delos_ref.loglet.native.client",
        (
            """check_tail, when some probe reports sealed (the "some sealed" and "all sealed"
  cases): if only some are sealed, finish the seal (probes = await self._seal_quorum(deadline)).
  The tail is the greatest local tail among the (sealing) probes; repair it
  (await self._repair(tail, probes, deadline)) so a majority holds [0, tail) before it is
  returned; emit "CheckTail" {case, tail, sealed, probes} and return Tail(tail, True).
  Keep the bug switches BUG_HIDE_SEAL and BUG_CHECK_TAIL_LAZY.""",
            """Repair: copy [their local tail, tail) onto LogServers lacking it (self._repair_one),
  answered probes first, then the silent ones, until a majority holds [0, tail); else
  raise LogletUnavailable.""",
        ),
        "loglet",
        ("NativeLoglet",),
    ),
    Lab(
        "reconfigure",
        "the VirtualLog's reconfiguration: seal, sealed tail, conditional write",
        "OSDI'20 §3.2 (reconfig_extend)",
        "delos_ref.virtuallog.client",
        (
            """reconfig_extend: refresh the chain and note its version and active segment;
  1. seal the active segment's loglet (self.registry.loglet(seg).seal());
  2. check_tail it: the sealed tail (raise LogletContractBroken if it reports unsealed);
  3. extend the chain at seg.to_virtual(tail) with (kind, params) and install it with a
     conditional write on the version read (self._install(version, new)), which also
  4. fetches the winner. Return whether ours was installed.""",
        ),
        "log",
        ("MetaStorePaxos", "NativeLoglet", "VirtualLog"),
        8,  # a log run is three times a metastore run
    ),
    Lab(
        "roll_forward",
        "roll-forward: finish a reconfiguration that stalled after its seal",
        "OSDI'20 §3.2 (roll-forward)",
        "delos_ref.virtuallog.client",
        (
            """Wait for a successor of the sealed segment `seg`: until
  self.options.roll_forward_s has passed, refresh the chain (every self.options.poll_s);
  return once its active segment is no longer seg's loglet. If none appears, roll forward:
  count self.stats["roll_forwards"] and reconfig_extend_raw onto a clone of seg's config
  (self.registry.clone(seg, self.fresh_loglet_id())).""",
        ),
        "log",
        ("MetaStorePaxos", "NativeLoglet", "VirtualLog"),
        8,  # a log run is three times a metastore run
    ),
    Lab(
        "sync_read",
        "the database's linearizable read: sync",
        "OSDI'20 §3.4 (a linearizable read: check_tail, then play to that tail)",
        "delos_ref.db.replica",
        (
            """A sync round for the readers of `batch`: learn the log's tail with a linearizable
  check_tail (await self.vlog.check_tail()), then wait until the table has applied every
  entry below it (await self.wait_applied(tail)); count self.stats["syncs"].""",
        ),
        "kv",
        (),
        8,  # a kv run is three times a metastore run
    ),
)

BY_NAME: dict[str, Lab] = {lab.name: lab for lab in LABS}

#: Every module a lab can replace: what the import overlay may load from a lab's WORK.
LAB_MODULES: frozenset[str] = frozenset(lab.module for lab in LABS)

#: A sweep's violations that the linearizability part grades (the rest: the sweep part).
LINEARIZABILITY_PREFIXES = ("history ", "check_tail by ", "check_tail went back")
