"""Checkers for recorded client histories.

A simulation or a test cluster records what its clients did -- each invocation and each
completion, in real-time order -- and a checker decides afterwards whether a correct object
could have produced it. :mod:`~delos_ref.checker.linearizability` holds the history types and
the search; :mod:`~delos_ref.checker.models` the sequential specifications of the objects the
paper promises are linearizable (the MetaStore, the shared log, the key-value table).

    >>> from delos_ref.checker import History, check, VersionedRegister
    >>> h = History()
    >>> _ = h.invoke("c1", "write_if", (0, "chain-1"))
    >>> _ = h.ok("c1", ("written", 1))
    >>> _ = h.invoke("c2", "read")
    >>> _ = h.ok("c2", (0, None))         # a stale read after a completed write
    >>> check(h, VersionedRegister()).ok
    False
"""

from delos_ref.checker.linearizability import (
    DEFAULT_MAX_STATES,
    CheckResult,
    History,
    HistoryError,
    Op,
    Operation,
    check,
    dump_history,
    load_history,
    operations,
)
from delos_ref.checker.models import (
    UNKNOWN,
    DeterministicModel,
    KVStore,
    KVTable,
    Log,
    Model,
    ModelError,
    RegisterState,
    VersionedRegister,
)

__all__ = [
    "DEFAULT_MAX_STATES",
    "UNKNOWN",
    "CheckResult",
    "DeterministicModel",
    "History",
    "HistoryError",
    "KVStore",
    "KVTable",
    "Log",
    "Model",
    "ModelError",
    "Op",
    "Operation",
    "RegisterState",
    "VersionedRegister",
    "check",
    "dump_history",
    "load_history",
    "operations",
]
