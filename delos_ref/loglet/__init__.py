"""Loglets: the data plane of virtual consensus (Delos, OSDI 2020, §3-§4.2).

The VirtualLog chains *loglets* into one log. A loglet is a shared log with a fixed
configuration that only has to do two things well: store appends in order, fast; and offer a
``seal`` that survives failures, after which ``check_tail`` reports a tail that no later
append can cross. Everything hard about reconfiguration -- electing who goes next, agreeing
on where the old segment stops -- lives one layer up, in the VirtualLog and its MetaStore.
That is why a loglet can be as simple as a sequencer handing out positions to a few dumb
LogServers, with no leader election at all.

Contents:

* :mod:`delos_ref.loglet.api` -- the :class:`Loglet` interface and its named errors
  (:class:`SealedError`, :class:`LogletUnavailable`, :class:`TrimmedError`);
* :mod:`delos_ref.loglet.memory` -- :class:`MemoryLoglet`, the contract in one object;
* :mod:`delos_ref.loglet.native` -- the NativeLoglet (§4.2.1): a pure sequencer core, a pure
  LogServer core over LMDB or simulated storage, and the client operations;
* :mod:`delos_ref.loglet.bootstrap` -- the bootstrap loglet (our ZKLoglet, §4.2): entries
  stored as versions of a register of the Paxos acceptors; slow, simple, fault-tolerant, and
  what a cluster can start on before it is hot-swapped to a NativeLoglet;
* :mod:`delos_ref.loglet.striped` -- the StripedLoglet (§4.2.2): one loglet over N inner
  loglets, logical position ``l*N + k`` at position ``l`` of stripe ``k``; a rotating
  sequencer (N NativeLoglets on the same LogServers) or sharding (disjoint LogServers);
* :mod:`delos_ref.loglet.cold` -- the cold loglet (§3.2 reconfigModify, §6): a read-only
  loglet for sealed segments over immutable, SHA-256-checked files in a cold store (its pure
  format in :mod:`delos_ref.loglet.cold_format`); :mod:`delos_ref.loglet.skip` -- a sealed
  segment's loglet with poison entries read as skip markers (§7).

Trace events (``node``, ``role`` and ``t`` are added by the sink; client events, role
``loglet``, also carry the loglet's ``logservers``). The field names are the
variables a TLA+ spec of the NativeLoglet uses: per server ``local_tail`` and the seal bit,
the sequencer's ``next_pos`` and ``known_tail``, a client's returned ``tail``.

==================  ============  ======================================================
event               role          fields
==================  ============  ======================================================
``Activate``        sequencer     loglet, logservers
``Append``          sequencer     loglet, first, count, client -- positions assigned
``Store``           logserver     loglet, lo, hi, local_tail -- [lo, hi) written (synced
                                  before any answer)
``StoreRefused``    logserver     loglet, reason ("sealed"), local_tail
``Stored``          sequencer     loglet, server, local_tail, sealed -- an acknowledgement
``Commit``          sequencer     loglet, known_tail -- the global tail advanced; appends
                                  below it are acknowledged, in position order
``SequencerSealed`` sequencer     loglet, known_tail, next_pos, failed -- a majority said
                                  sealed; uncommitted appends failed
``Seal``            logserver     loglet, local_tail -- the seal bit was set
``SealReturned``    loglet        loglet, tails -- a client's seal() completed
``CheckTail``       loglet        loglet, case (all_sealed | some_sealed | none_sealed),
                                  tail, sealed, probes
``Repair``          logserver     loglet, lo, hi, local_tail, sealed -- repair written
``Repair``          loglet        loglet, target, lo, hi, tail -- a client repaired a target
``Trim``            logserver     loglet, trim_point, local_tail
``StripedAppend``   loglet        loglet, stripes, stripe, stripe_pos, pos -- landed in a
                                  stripe, not yet acknowledged
``StripedAck``      loglet        loglet, stripes, pos -- every earlier position filled
``StripedFill``     loglet        loglet, stripes, stripe, stripe_pos -- a filler entry
``StripedSeal``     loglet        loglet, stripes, partial -- a client's seal() completed
``StripedCheckTail`` loglet       loglet, stripes, tails, tail, sealed
``ColdRead``        loglet        loglet, file, lo, hi -- a cold file served (checked)
``ColdCorrupt``     loglet        loglet, file, reason -- a cold file failed its SHA-256
==================  ============  ======================================================

The migration to cold storage (``delos_ref/migrate.py``) logs role ``migrate``:
``ColdWrite``, ``ColdVerified``, ``ColdInstalled``, ``ColdLostRace``, ``ColdDropped``,
``Skip``.
"""

from delos_ref.loglet.api import (
    MAX_APPEND_MANY,
    MAX_ENTRY_BYTES,
    MAX_READ_ENTRIES,
    Diagnosis,
    Loglet,
    LogletError,
    LogletUnavailable,
    Membership,
    SealedError,
    Tail,
    TrimmedError,
)
from delos_ref.loglet.memory import MemoryLoglet
from delos_ref.loglet.striped import STRIPED_BUGS, StripedLoglet, StripedLogletConfig, StripedOptions

__all__ = [
    "MAX_APPEND_MANY",
    "MAX_ENTRY_BYTES",
    "MAX_READ_ENTRIES",
    "Diagnosis",
    "Loglet",
    "LogletError",
    "LogletUnavailable",
    "Membership",
    "MemoryLoglet",
    "STRIPED_BUGS",
    "StripedLoglet",
    "StripedLogletConfig",
    "StripedOptions",
    "SealedError",
    "Tail",
    "TrimmedError",
]
