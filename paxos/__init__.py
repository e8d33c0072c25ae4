"""From-scratch Paxos, and the MetaStore built on it (docs/design.md §3; OSDI'20 §3.2, §4.1).

Read in this order:

* :mod:`paxos.ballot`   -- proposal numbers: totally ordered, unique per proposer;
* :mod:`paxos.messages` -- the wire messages (phase 1a/1b/2a/2b, nack, query/status) and the
  acceptor's durable record;
* :mod:`paxos.acceptor` -- the acceptor, a pure core: promise, accept, persist before reply;
* :mod:`paxos.proposer` -- the proposer's bookkeeping, pure: quorums and the P2c rule;
* :mod:`paxos.storage`  -- where acceptor state lives in storage and how a restart finds it;
* :mod:`paxos.register` -- the MetaStore client: ``read`` and ``write_if`` as a sequence of
  single-decree instances, one per version, and ``learn`` to read older versions (the async
  driver; the only module here that uses trio).

One set of acceptors holds many independent registers, by name: the MetaStore's chain is
register ``""``, and each bootstrap loglet (:mod:`delos_ref.loglet.bootstrap`) keeps its
entries in a register of its own.

Every module except :mod:`paxos.register` is pure: no trio, time, random, socket, lmdb,
cbor2 or rich (``tests/test_paxos_acceptor.py`` scans the imports).

**Trace vocabulary.** Each protocol step emits one event (:mod:`delos_ref.trace`), named so
that a TLA+ spec of Paxos (Lamport's ``Paxos.tla``: ``maxBal``, ``maxVBal``, ``maxVal``) can
match it. Ballots are ``[round, proposer]``; ``ZERO`` is ``[0, ""]``; values are
``{"writer", "seq", "data"}`` or null. Every event also carries ``register`` (``""`` for the
MetaStore's chain): instances are numbered per register, so a checker of one register
filters on it.

==================  ==========  ===========================================================
event               role        fields
==================  ==========  ===========================================================
``Promise``         acceptor    instance, ballot, promised, accepted_ballot, accepted_value
                                (Phase1b; the acceptor's state for the instance *after* it)
``RejectPrepare``   acceptor    same fields; state unchanged (a Prepare below the promise)
``Accepted``        acceptor    same fields (Phase2b: accepted_ballot = ballot)
``RejectAccept``    acceptor    same fields; state unchanged (an Accept below the promise)
``Query``           acceptor    top, accepted_ballot, accepted_value (a read's Query: the
                                highest instance holding an accepted value, and that value)
``Propose``         metastore   proposer, instance, ballot, value, adopted (Phase2a; adopted:
                                the value came from a promise, P2c)
``Chosen``          metastore   proposer, instance, ballot, value (a majority accepted it)
``ReadDone``        metastore   proposer, version, value (a read returned)
``WriteDone``       metastore   proposer, expected_version, seq, outcome
                                (``["written", v]`` or ``["conflict", v]``)
==================  ==========  ===========================================================

Acceptor events are emitted after the state change they report has been handed to storage
(the runtime syncs it before the reply leaves). A duplicate request emits its event again
with unchanged state: a stuttering step.

**Teaching bug switches** (default off; the simulator's ``metastore`` workload catches both):
``Acceptor(forget_promise=True)`` never persists, so a restart forgets promises and
acceptances; ``MetaStoreClient(ignore_accepted=True)`` proposes its own value even when
phase 1 reported an accepted one, breaking P2c.
"""
