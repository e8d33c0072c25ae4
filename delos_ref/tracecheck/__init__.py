"""Trace checking: replay implementation traces against executable transcriptions of the specs.

TLA+ trace validation (Cirstea, Kuppe, Merz et al. 2024; the etcd-raft and CCF trace
validators) asks TLC whether a logged run is a behaviour of a spec: ``specs/Trace*.tla`` read
an NDJSON trace and, line by line, take the spec action the line names with the logged
parameters, then compare the spec's variables with the logged state (``delos-ref trace
validate``, :mod:`.tla`, when TLC is installed). This package also does the same in Python,
fast enough for the test suite's thousands of traces: each module transcribes one spec --
its variables as a state object, each action as a method named exactly like the TLA+ action,
enabling condition first, then the effect -- and checks the spec's invariants after every
step. A trace that no behaviour of the spec explains raises :class:`TraceViolation` naming
the line, the action and the failed condition.

=====================  ================================  ==================================
module                 spec                              trace events (role: event)
=====================  ================================  ==================================
:mod:`.metastore`      ``specs/MetaStorePaxos.tla``       acceptor: Promise, RejectPrepare,
                                                         Accepted, RejectAccept; metastore:
                                                         Propose, Chosen, ReadDone, WriteDone
:mod:`.loglet`         ``specs/NativeLoglet.tla``         sequencer: Activate, Append, Stored,
                                                         Commit, SequencerSealed; logserver:
                                                         Store, StoreRefused, Seal, Repair;
                                                         loglet: SealReturned, CheckTail
:mod:`.virtuallog`     ``specs/VirtualLog.tla``           metastore: Chosen, ReadDone (the
                                                         register's chains); virtuallog:
                                                         AppendAck; logserver: Seal, Repair;
                                                         loglet: CheckTail; sequencer: Activate;
                                                         migrate: ColdVerified (Modify's guard)
:mod:`.striped`        ``specs/StripedLoglet.tla``        loglet: StripedAppend, StripedFill,
                                                         StripedAck, StripedSeal,
                                                         StripedCheckTail (observed: sequencer
                                                         Commit, loglet SealReturned/CheckTail)
=====================  ================================  ==================================

Every checker accepts the events of *all* layers (a ``log`` workload trace holds Paxos,
loglet and VirtualLog events at once) and ignores the ones its spec does not model.
:func:`check_trace` runs one; :func:`check_workload` runs seeded simulations and checks
their traces (``delos-ref trace check``). Trace files of real clusters are read by
:mod:`.ndjson`, which also finds crash cuts (a check stopping after one is *truncated*, not
a violation).
"""

from delos_ref.tracecheck.base import Checker, TraceViolation
from delos_ref.tracecheck.ndjson import load_trace, merge_traces
from delos_ref.tracecheck.run import CHECKERS, SPEC_OF_WORKLOAD, check_events, check_trace, check_workload

__all__ = [
    "CHECKERS",
    "SPEC_OF_WORKLOAD",
    "Checker",
    "TraceViolation",
    "check_events",
    "check_trace",
    "check_workload",
    "load_trace",
    "merge_traces",
]
