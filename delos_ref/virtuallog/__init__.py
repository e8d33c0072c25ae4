"""The VirtualLog: one shared log over a chain of loglets (Delos, OSDI 2020, §3; docs/design.md §1-4, §7).

The control plane of virtual consensus. Applications see one log with the Loglet API; under
it, a *chain* of segments kept in the MetaStore register maps virtual positions onto loglets,
and reconfiguration (seal, check_tail, conditional write, fetch) swaps the active loglet --
another kind, another sequencer, fresh servers -- with no downtime.

Modules, bottom up:

* ``chain.py``    -- :class:`Chain` and :class:`Segment` (pure data): invariants, ``extend``,
  ``truncate``, ``modify``, ``segment_for``, and the register encoding;
* ``registry.py`` -- :class:`LogletRegistry`: builds a loglet from a segment's kind and
  params, and clones configs for roll-forward;
* ``entry.py``    -- the entry envelope: each stored entry names its appender (client id,
  sequence number), so an append whose outcome is unknown can be looked for;
* ``client.py``   -- :class:`VirtualLog`: routing by the cached chain, retries on sealed
  loglets, exactly-once appends (an unknown outcome is resolved before a retry),
  roll-forward, ``reconfig_extend`` / ``reconfig_truncate`` / ``reconfig_modify``;
* ``supervisor.py`` -- failure-driven reconfiguration: heartbeats, a damped
  :class:`~delos_ref.virtuallog.supervisor.FailureDetector`, and a ``Supervisor`` that asks
  the active loglet to ``diagnose`` itself and extends the chain onto the successor it names
  (trace events, role ``supervisor``: Diagnosis, Reconfigured, SupervisorError).

Trace events: the register's (``metastore`` Chosen / ReadDone carry the encoded chains of
each version) and the loglets', plus ``AppendAck`` (role ``virtuallog``: client, vpos,
lpos, start, loglet, seq, how -- the client's seq-th append acknowledged at virtual position
vpos, loglet position lpos of the segment starting at start; how is "appended", or "found"
when an attempt whose reply was lost was found there). ``delos_ref.tracecheck.virtuallog`` checks them
against ``specs/VirtualLog.tla``.
"""

from delos_ref.virtuallog.chain import Chain, Segment, decode_chain, encode_chain, violations
from delos_ref.virtuallog.client import (
    VIRTUALLOG_BUGS,
    AppendFailed,
    AppendOutcomeUnknown,
    LogletContractBroken,
    NotBootstrapped,
    VirtualLog,
    VirtualLogError,
    VirtualLogOptions,
    VirtualLogUnavailable,
)
from delos_ref.virtuallog.registry import (
    MEMORY,
    NATIVE,
    LogletKind,
    LogletRegistry,
    MemoryLogletConfig,
    MemoryLogletStore,
    UnknownKind,
    default_registry,
    memory_kind,
    native_kind,
)

__all__ = [
    "MEMORY",
    "VIRTUALLOG_BUGS",
    "NATIVE",
    "AppendFailed",
    "AppendOutcomeUnknown",
    "Chain",
    "LogletContractBroken",
    "LogletKind",
    "LogletRegistry",
    "MemoryLogletConfig",
    "MemoryLogletStore",
    "NotBootstrapped",
    "Segment",
    "UnknownKind",
    "VirtualLog",
    "VirtualLogError",
    "VirtualLogOptions",
    "VirtualLogUnavailable",
    "decode_chain",
    "default_registry",
    "encode_chain",
    "memory_kind",
    "native_kind",
    "violations",
]
