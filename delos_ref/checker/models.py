"""Sequential specifications of the objects whose histories the checker judges.

The linearizability checker (:mod:`delos_ref.checker.linearizability`) knows nothing about
registers or logs. It asks a *model* one question, over and over: "the object is in ``state``;
operation ``f(arg)`` takes effect now and its client saw ``result``; is that possible, and what
is the state afterwards?" The answer is the pure step function

    ``step(state, f, arg, result) -> (accepted, next_state)``

and a model is nothing more than that function, an initial state, and (optionally) a way to cut
a history into independent pieces. A model is the *sequential specification* of an object: how
a single copy of it would behave if operations arrived one at a time. It is the shortest,
plainest statement of what the object promises, so it is worth reading next to the paper.

Two rules keep the checker sound and fast:

* **States are hashable values** (tuples, named tuples, frozensets). The checker remembers every
  ``(set of linearized operations, state)`` pair it has visited, and prunes a branch that
  reaches a pair it has already seen; a mutable state would make that memo lie.
* **A result may be** :data:`UNKNOWN`. An operation whose outcome the client never learned
  (Jepsen's ``info``) may still have taken effect, and then any result is acceptable: the step
  must accept and still compute the state change.

A model may also ``prepare`` a history before the search, replacing every written value that
no client ever observed -- no read returned it, no compare-and-set compared against it -- with
the one marker :data:`UNOBSERVED`. No operation can tell such values apart, so nothing is lost,
and states that differed only in them become equal, which the checker's memo then merges. It
matters most for writes with unknown outcomes, whose values usually go unread: after ``prepare``
they are identical, and the checker tries only the earliest of identical ones. The log's
``prepare`` also pins an append with an unknown outcome to the position where a read saw its
entry. Every rewrite must keep every verdict; the checker reports the operations as recorded.

All three models here are *deterministic*: the state and the argument fix the result. They
subclass :class:`DeterministicModel` and write only ``apply(state, f, arg) -> (result,
next_state)``, one ``case`` per operation; ``step`` compares the result the client saw with the
one the specification gives, and the same comparison explains a failure to a student ("a read
here would return (1, 'a'), not (0, None)").

The objects, from "Virtual Consensus in Delos" (OSDI 2020; see ``docs/design.md``):

* :class:`VersionedRegister` -- the MetaStore (§3.2, §3.3; docs/design.md §3): one register with a
  version, read whole, written only by a conditional write that names the version it expects.
* :class:`Log` -- a shared log, the Loglet and VirtualLog API (Fig. 2, §3.4; docs/design.md §2):
  ``append``, ``check_tail``, ``read``. One object: it cannot be split.
* :class:`KVStore` -- the table a Delos database keeps above the log (§4 and SOSP'21;
  docs/design.md §8): independent keys, so the history is split by key and each key is checked
  alone. :class:`KVTable` adds multi-key ``txn`` and ``multi_get``, and so cannot be split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Hashable, NamedTuple, Sequence

if TYPE_CHECKING:  # the checker's paired operation (an invoke and its completion)
    from delos_ref.checker.linearizability import Operation


class Marker:
    """A stand-in the checker puts where a value is missing. Each marker equals only itself,
    and hashes by identity at C speed (states full of markers are hashed on every step)."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


UNKNOWN = Marker("?")
"""The result of an operation whose outcome the client never learned (a Jepsen ``info``)."""

UNOBSERVED = Marker("<a value no client observed>")
"""What :meth:`Model.prepare` writes in place of a value that no result ever showed."""


class ModelError(ValueError):
    """An operation the model does not understand: the caller's mistake, not the system's.

    Raised for an unknown operation name or a malformed argument, before any search starts.
    """


Partition = list[tuple[Hashable, list["Operation"]]]


# ------------------------------------------------------------------------------ base classes


class Model:
    """A sequential specification. Subclasses provide ``init`` and ``step``."""

    name = "model"

    def init(self) -> Hashable:
        """The state of a freshly created object."""
        raise NotImplementedError

    def step(self, state: Hashable, f: str, arg: Any, result: Any) -> tuple[bool, Hashable]:
        """Can ``f(arg)`` take effect in ``state`` and return ``result``? Then where do we go?

        ``result`` may be :data:`UNKNOWN`. On rejection the returned state is ignored.
        """
        raise NotImplementedError

    def validate(self, f: str, arg: Any) -> None:
        """Raise :class:`ModelError` if ``f(arg)`` is not an operation of this object."""

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        """Rewrite operations to equivalent ones that search faster (same order, same events).

        The default keeps them; the models below hide unobserved values (see the module).
        """
        return list(ops)

    def partition(self, ops: Sequence[Operation]) -> Partition:
        """Split a history into pieces that can be checked independently.

        Sound only for pieces that touch disjoint objects: linearizability is *local* (Herlihy
        and Wing, 1990, Theorem 1), so a history is linearizable iff each object's sub-history
        is. The default keeps the history whole.
        """
        return [(None, list(ops))]

    def describe_state(self, state: Hashable) -> str:
        return repr(state)

    def explain(self, state: Hashable, f: str, arg: Any, result: Any) -> str:
        """One phrase on why ``f(arg) -> result`` can or cannot take effect in ``state``."""
        accepted, _ = self.step(state, f, arg, result)
        return "could take effect here" if accepted else "is rejected by the model here"


class DeterministicModel(Model):
    """A model whose state and argument fix the result: write ``apply``, get ``step``."""

    def apply(self, state: Hashable, f: str, arg: Any) -> tuple[Any, Hashable]:
        """Run ``f(arg)`` on one copy of the object: ``(result, next_state)``."""
        raise NotImplementedError

    def step(self, state: Hashable, f: str, arg: Any, result: Any) -> tuple[bool, Hashable]:
        expected, next_state = self.apply(state, f, arg)
        if result is UNKNOWN or result == expected:
            return True, next_state
        return False, state

    def explain(self, state: Hashable, f: str, arg: Any, result: Any) -> str:
        expected, _ = self.apply(state, f, arg)
        if result is UNKNOWN or result == expected:
            return "could take effect here"
        return f"would return {expected!r} here, not {result!r}"


def _group_by(ops: Sequence[Operation], key_of: Callable[[Operation], Hashable]) -> Partition:
    """Group operations by key, keys in order of first appearance (deterministic, no sorting
    of keys that may not be mutually comparable)."""
    groups: dict[Hashable, list[Operation]] = {}
    for op in ops:
        groups.setdefault(key_of(op), []).append(op)
    return list(groups.items())


def _hide_unobserved(ops: Sequence[Operation], observed: set,
                     hide: Callable[[Operation, Callable[[Any], Any]], Any]) -> list[Operation]:
    """Replace each written value outside ``observed`` with :data:`UNOBSERVED`.

    ``hide(op, mask)`` rebuilds ``op.arg`` with its written values passed through ``mask``.
    ``None`` means "absent" to the models, so it is always treated as observed.
    """
    def mask(value: Any) -> Any:
        return value if value is None or value in observed else UNOBSERVED

    return [replace(op, arg=hide(op, mask)) for op in ops]


def _ok_results(ops: Sequence[Operation], *names: str) -> list[Any]:
    return [op.result for op in ops if op.f in names and op.result is not UNKNOWN]


def _require(condition: bool, f: str, arg: Any, shape: str) -> None:
    if not condition:
        raise ModelError(f"{f} takes {shape}, got {arg!r}")


def _is_version(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# ------------------------------------------------------------------------------ MetaStore


class RegisterState(NamedTuple):
    version: int
    value: Any


class VersionedRegister(DeterministicModel):
    """The MetaStore: a versioned register with a conditional write (§3.2; docs/design.md §3).

    * ``read()`` returns ``(version, value)``.
    * ``write_if((expected_version, value))`` returns ``("written", new_version)`` when the
      current version is ``expected_version`` -- and the version rises by one -- otherwise
      ``("conflict", version, value)``, the current state, which the loser needs to retry.

    The initial state is version 0 holding ``None``. ``Op.key`` names the register: a history
    of several MetaStores (one per key) is split by it.
    """

    name = "versioned-register"

    def init(self) -> RegisterState:
        return RegisterState(0, None)

    def validate(self, f: str, arg: Any) -> None:
        match f:
            case "read":
                return
            case "write_if":
                ok = isinstance(arg, tuple) and len(arg) == 2 and _is_version(arg[0])
                _require(ok, f, arg, "(expected_version, value)")
            case _:
                raise ModelError(f"a versioned register has read and write_if, not {f!r}")

    def apply(self, state: RegisterState, f: str, arg: Any) -> tuple[Any, RegisterState]:
        match f:
            case "read":
                return (state.version, state.value), state
            case "write_if":
                expected_version, value = arg
                if expected_version != state.version:
                    return ("conflict", state.version, state.value), state
                return ("written", state.version + 1), RegisterState(state.version + 1, value)
        raise ModelError(f"a versioned register has read and write_if, not {f!r}")

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        # Values are seen only in read results and in conflict results; versions are kept.
        observed = {r[1] for r in _ok_results(ops, "read")}
        observed |= {r[2] for r in _ok_results(ops, "write_if") if r[0] == "conflict"}
        return _hide_unobserved(ops, observed, lambda op, mask: (
            (op.arg[0], mask(op.arg[1])) if op.f == "write_if" else op.arg))

    def partition(self, ops: Sequence[Operation]) -> Partition:
        return _group_by(ops, lambda op: op.key)

    def describe_state(self, state: RegisterState) -> str:
        return f"version {state.version} holding {state.value!r}"


# ------------------------------------------------------------------------------ shared log


class Log(DeterministicModel):
    """A shared log: the Loglet / VirtualLog API of Fig. 2 (docs/design.md §2).

    * ``append(data)`` returns the position the entry was placed at: the tail before it.
      Positions start at 0, so the n-th append to take effect returns n - 1.
    * ``check_tail()`` returns the tail, the first unwritten position.
    * ``read(pos)`` returns the entry at ``pos``, or ``None`` if ``pos`` is at or past the tail.

    The state is the tuple of entries. A log is one object, so the history is not split.

    The model is exact whatever the entries are, but histories are only informative when each
    append writes a *unique* entry (a client id and sequence number, say): then a read names
    the append it saw, and ``prepare`` can pin that append to its position, which is what keeps
    appends with unknown outcomes cheap. The tests and their generators use unique entries;
    an entry appended twice is still checked correctly, only without the pinning.
    Sealing is not modelled: a loglet may keep taking "zombie" appends after a seal (§3.4),
    which only the VirtualLog's chain hides.
    """

    name = "log"

    def init(self) -> tuple:
        return ()

    def validate(self, f: str, arg: Any) -> None:
        match f:
            case "append" | "check_tail":
                return
            case "read":
                _require(_is_version(arg), f, arg, "a position (an int >= 0)")
            case _:
                raise ModelError(f"a log has append, check_tail and read, not {f!r}")

    def step(self, state: tuple, f: str, arg: Any, result: Any) -> tuple[bool, tuple]:
        if f == "append" and result is not UNKNOWN and result != len(state):
            return False, state  # the common rejection, without copying the log
        return super().step(state, f, arg, result)

    def apply(self, state: tuple, f: str, arg: Any) -> tuple[Any, tuple]:
        match f:
            case "append":
                return len(state), state + (arg,)
            case "check_tail":
                return len(state), state
            case "read":
                return (state[arg] if arg < len(state) else None), state
        raise ModelError(f"a log has append, check_tail and read, not {f!r}")

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        """Hide entries no read returned, and pin down appends with unknown outcomes that a
        read did see: if ``read(p)`` returned the entry only one append wrote, that append
        took effect at ``p``, exactly as if it had returned ``p``."""
        read_at = {op.result: op.arg for op in ops
                   if op.f == "read" and op.ret is not None and op.result is not None}
        writers = Counter(op.arg for op in ops if op.f == "append")
        ops = [replace(op, result=read_at[op.arg])
               if op.f == "append" and op.result is UNKNOWN and writers[op.arg] == 1
               and op.arg in read_at else op for op in ops]
        return _hide_unobserved(ops, set(read_at), lambda op, mask: (
            mask(op.arg) if op.f == "append" else op.arg))

    def describe_state(self, state: tuple) -> str:
        shown = ", ".join(repr(entry) for entry in state[-8:])
        more = f"... {len(state) - 8} earlier entries, " if len(state) > 8 else ""
        return f"tail {len(state)}, entries [{more}{shown}]"


# ------------------------------------------------------------------------------ key-value table


class KVStore(DeterministicModel):
    """A key-value table, one register per key: the store a Delos database keeps (docs/design.md §8).

    * ``put((key, value))`` returns ``None``;
    * ``get(key)`` returns the value, or ``None`` for an absent key;
    * ``delete(key)`` returns ``None``;
    * ``cas((key, expected, new))`` returns ``True`` and writes ``new`` iff the value is
      ``expected``, else ``False``.

    ``None`` means "absent" throughout: ``put`` of ``None`` deletes, and ``cas`` with
    ``expected=None`` creates a key only if it does not exist. The state is a frozenset of
    ``(key, value)`` pairs. The key is read from the argument, so ``Op.key`` is not needed;
    keys never interact, so the history is split by key.
    """

    name = "kv-store"
    OPS = ("put", "get", "delete", "cas")

    def init(self) -> frozenset:
        return frozenset()

    def validate(self, f: str, arg: Any) -> None:
        match f:
            case "get" | "delete":
                _require(isinstance(arg, Hashable), f, arg, "a hashable key")
            case "put":
                _require(isinstance(arg, tuple) and len(arg) == 2, f, arg, "(key, value)")
            case "cas":
                _require(isinstance(arg, tuple) and len(arg) == 3, f, arg, "(key, expected, new)")
            case _:
                raise ModelError(f"{self.name} has {', '.join(self.OPS)}, not {f!r}")

    def apply(self, state: frozenset, f: str, arg: Any) -> tuple[Any, frozenset]:
        match f:
            case "get":
                return _get(state, arg), state
            case "put":
                key, value = arg
                return None, _put(state, key, value)
            case "delete":
                return None, _put(state, arg, None)
            case "cas":
                key, expected, new = arg
                if _get(state, key) != expected:
                    return False, state
                return True, _put(state, key, new)
        raise ModelError(f"{self.name} has {', '.join(self.OPS)}, not {f!r}")

    def prepare(self, ops: Sequence[Operation]) -> list[Operation]:
        # Values are seen in get results, and compared by cas (and txn) conditions.
        observed = set(_ok_results(ops, "get"))
        observed.update(v for r in _ok_results(ops, "multi_get") for v in r)
        observed.update(op.arg[1] for op in ops if op.f == "cas")
        observed.update(v for op in ops if op.f == "txn" for _, v in op.arg[0])
        return _hide_unobserved(ops, observed, _hide_kv_values)

    def partition(self, ops: Sequence[Operation]) -> Partition:
        return _group_by(ops, lambda op: op.arg if op.f in ("get", "delete") else op.arg[0])

    def describe_state(self, state: frozenset) -> str:
        items = sorted(state, key=repr)
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in items) + "}"


class KVTable(KVStore):
    """A :class:`KVStore` with multi-key operations, so its history cannot be split by key.

    * ``txn((conditions, writes))`` where ``conditions`` is a tuple of ``(key, expected)`` and
      ``writes`` a tuple of ``(key, value)``: if every condition holds, apply every write and
      return ``True``; otherwise change nothing and return ``False``.
    * ``multi_get(keys)`` returns the tuple of their values, read at one instant.
    """

    name = "kv-table"
    OPS = KVStore.OPS + ("txn", "multi_get")

    def validate(self, f: str, arg: Any) -> None:
        match f:
            case "txn":
                ok = isinstance(arg, tuple) and len(arg) == 2
                ok = ok and all(_is_pairs(part) for part in arg)
                _require(ok, f, arg, "((key, expected)..., (key, value)...)")
            case "multi_get":
                _require(isinstance(arg, tuple), f, arg, "a tuple of keys")
            case _:
                super().validate(f, arg)

    def apply(self, state: frozenset, f: str, arg: Any) -> tuple[Any, frozenset]:
        match f:
            case "txn":
                conditions, writes = arg
                if any(_get(state, key) != expected for key, expected in conditions):
                    return False, state
                for key, value in writes:
                    state = _put(state, key, value)
                return True, state
            case "multi_get":
                return tuple(_get(state, key) for key in arg), state
        return super().apply(state, f, arg)

    def partition(self, ops: Sequence[Operation]) -> Partition:
        return [(None, list(ops))]


def _hide_kv_values(op: Operation, mask: Callable[[Any], Any]) -> Any:
    """Mask the written values in a KV argument: put's value, cas's new value, txn's writes."""
    match op.f:
        case "put":
            key, value = op.arg
            return key, mask(value)
        case "cas":
            key, expected, new = op.arg
            return key, expected, mask(new)
        case "txn":
            conditions, writes = op.arg
            return conditions, tuple((key, mask(value)) for key, value in writes)
    return op.arg  # get, delete, multi_get: nothing written


def _is_pairs(x: Any) -> bool:
    return isinstance(x, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in x)


def _get(state: frozenset, key: Hashable) -> Any:
    # A linear scan: after partitioning a state holds one key; a KVTable holds few.
    for k, v in state:
        if k == key:
            return v
    return None


def _put(state: frozenset, key: Hashable, value: Any) -> frozenset:
    kept = frozenset(pair for pair in state if pair[0] != key)
    return kept if value is None else kept | {(key, value)}
