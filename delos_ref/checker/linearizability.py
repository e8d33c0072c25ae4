"""Is a recorded client history linearizable? A checker in the manner of Knossos and Porcupine.

Linearizability (Herlihy and Wing, 1990) is the promise Delos makes to its clients: the
MetaStore (§3.2), the shared log (Fig. 2, §3.4) and the database above it (§4) all behave as if
each operation took effect at a single instant, its *linearization point*, somewhere between
the moment the client invoked it and the moment the client saw it complete; and every result
the clients saw is exactly what one copy of the object would have returned had the operations
run one at a time, in the order of their points. A test cannot see linearization points. It
sees only a *history* -- the invocations and completions each client recorded, in real-time
order -- and the checker's question is whether *some* choice of points explains every result.

The history format is Jepsen's. Each event is an :class:`Op` whose ``type`` is

* ``invoke`` -- a client starts operation ``f`` with argument ``value``;
* ``ok`` -- it completed and ``value`` is its result: it took effect between the two events;
* ``fail`` -- it certainly did not take effect; the checker drops it;
* ``info`` -- the client does not know (a timeout, a lost reply, a crash). The operation may
  take effect at any time after its invocation -- even long after the client gave up -- or
  never, and its result is unknown. An invocation that never completes is treated the same way.

Only a client that *knows* an operation had no effect may record ``fail``. The paper warns why
(§3.4): "a failed append may still become durable". A client that sees a timeout or a sealed
error must record ``info``; otherwise the checker will blame a correct system.

**The search** is Wing and Gong's (1993) with Lowe's just-in-time linearization (2017), the
algorithm of Porcupine and of Knossos's ``linear`` checker. Lay every call and return out in one
doubly linked list, in history order, and walk it from the front:

* At a *call*, the operation could take effect now. Ask the model whether it accepts the
  operation's result in the current state. If so, *lift* the operation (its call and its
  return) out of the list, push it on a stack, and start again from the front.
* At a *return* whose operation is still in the list, that operation's deadline has passed and
  nothing has linearized it: the last choice was wrong. Pop it, put its entries back (they kept
  their own links, so that is O(1): Knuth's "dancing links"), and try the next call after it.

When every ``ok`` operation is on the stack, the stack is a witness order (``info`` operations
still in the list simply never took effect). When a return is reached with an empty stack, no
order exists. Backtracking alone is exponential; Lowe's memo tames it. Two points of the search
that have linearized the same *set* of operations and reached the same model *state* have the
same future, so the second is pruned. The memo holds ``(bitset of linearized ops, state)``
pairs, which is why model states must be hashable.

**Operations with unknown outcomes** are the hard part. Nothing bounds them, so they are
candidates at every step to the end of the history, and a plain search tries each of them
everywhere (Knossos is known to drown in them). Four rules keep them in their place. Each one
skips an order only when another order the search will try explains the same results:

1. *Last resort.* At each step the ``ok`` calls are tried first; info calls only when none of
   those can go next. (Any order of trying candidates is complete; this one finds witnesses
   fast, because info operations are rarely what a step needs.)
2. *No idle effects.* An info operation that would leave the state as it is (a read, a failed
   compare-and-set) is not linearized: dropping it changes nothing.
3. *Just before a dependant.* An info operation is kept only if the operation linearized right
   after it *needs* it: one that would not be accepted without it, or would end elsewhere. If
   the next one overwrites its effect, the info operation is dropped; if the two commute, the
   order with the info operation later is the one tried. (Moving an info operation later is
   always allowed: it has no deadline.) This rule looks at the previous step, so after an info
   operation the memo key also names it and the state before it.
4. *Twins in order.* Info operations with the same ``f`` and argument are interchangeable, so
   only the earliest invoked one still pending is tried. Models make twins common: their
   ``prepare`` step replaces each written value that no client ever observed with one marker
   (see :mod:`delos_ref.checker.models`).

Checking linearizability is NP-complete all the same (Gibbons and Korach, 1997), so the search
is bounded: after ``max_states`` distinct memo entries it stops and says *undetermined*
instead of hanging. The tests check the pruned search against plain enumeration.

**Locality** (Herlihy and Wing, Theorem 1): a history is linearizable iff the sub-history of
each object is. A model holding independent objects -- the keys of a table -- splits the history
with ``Model.partition`` and each piece is searched alone: the state spaces would multiply, the
searches only add. The check stops at the first key that fails.

Everything here is pure: events in, a :class:`CheckResult` out; no I/O, no clock, no randomness.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping, Sequence

from delos_ref.checker.models import UNKNOWN, Model, ModelError

EVENT_TYPES = ("invoke", "ok", "fail", "info")
DEFAULT_MAX_STATES = 100_000  # memo entries per key: at most ~1-3 s of search, bounded memory
MAX_EVENTS = 10_000_000  # a History builder refuses to grow past this
#: A recorder that wants to see every client operation as a workload records it (the charts of
#: ``delos_ref.viz`` draw them): called with the history and each event of
#: :meth:`History.invoke`, ``ok``, ``fail`` and ``info`` -- not of :meth:`History.append`,
#: which checkers use to rebuild histories they split.
HISTORY_TAP: ContextVar[Callable[["History", "Op"], None] | None] = ContextVar("history_tap", default=None)
SHOWN_PREFIX_OPS = 12  # a failure report shows at most this many ops of the prefix...
SHOWN_CANDIDATES = 8  # ...and at most this many candidates that could not go next


class HistoryError(ValueError):
    """The history is malformed: the recorder's fault, not the system under test's."""


# ------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class Op:
    """One event of a history: a client ``process`` invoking or completing operation ``f``.

    ``value`` is the argument on ``invoke`` and the result on ``ok``; ``key`` optionally names
    the object acted on, for models that split histories by it.
    """

    process: Hashable
    type: str
    f: str
    value: Any = None
    key: Hashable = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise HistoryError(f"event type must be one of {EVENT_TYPES}, got {self.type!r}")


def _tapped(history: "History", op: Op) -> Op:
    tap = HISTORY_TAP.get()
    if tap is not None:
        tap(history, op)
    return op


class History:
    """Builds a well-formed history, one event at a time, checking it as it goes.

    >>> h = History()
    >>> _ = h.invoke("c1", "write_if", (0, "a")); _ = h.invoke("c2", "read")
    >>> _ = h.ok("c1", ("written", 1)); _ = h.ok("c2", (1, "a"))
    >>> len(h)
    4

    Completions copy ``f`` and ``key`` from the process's outstanding invocation. A process may
    invoke again after an ``info``: its old operation stays concurrent with everything after.
    """

    def __init__(self, events: Iterable[Op] = (), max_events: int = MAX_EVENTS) -> None:
        self._events: list[Op] = []
        self._outstanding: dict[Hashable, Op] = {}
        self._max_events = max_events
        for event in events:
            self.append(event)

    def invoke(self, process: Hashable, f: str, value: Any = None, key: Hashable = None) -> Op:
        return _tapped(self, self.append(Op(process, "invoke", f, value, key)))

    def ok(self, process: Hashable, value: Any = None) -> Op:
        return self._complete(process, "ok", value)

    def fail(self, process: Hashable) -> Op:
        return self._complete(process, "fail", None)

    def info(self, process: Hashable) -> Op:
        return self._complete(process, "info", None)

    def append(self, event: Op) -> Op:
        """Add an event built elsewhere (a replayed trace), with the same checks."""
        if len(self._events) >= self._max_events:
            raise HistoryError(f"history is longer than max_events={self._max_events}")
        if event.type == "invoke":
            if event.process in self._outstanding:
                raise HistoryError(_overlap_message(len(self._events), event,
                                                    self._outstanding[event.process]))
            self._outstanding[event.process] = event
        elif self._outstanding.pop(event.process, None) is None:
            raise HistoryError(_orphan_message(len(self._events), event))
        self._events.append(event)
        return event

    def _complete(self, process: Hashable, type_: str, value: Any) -> Op:
        pending = self._outstanding.get(process)
        if pending is None:
            raise HistoryError(f"process {process!r} has no outstanding operation to mark {type_}")
        return _tapped(self, self.append(Op(process, type_, pending.f, value, pending.key)))

    @property
    def events(self) -> tuple[Op, ...]:
        return tuple(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._events)


def _overlap_message(index: int, event: Op, pending: Op) -> str:
    return (f"event {index}: process {event.process!r} invokes {event.f} while its "
            f"{pending.f} is still outstanding; a process has one operation at a time")


def _orphan_message(index: int, event: Op) -> str:
    return (f"event {index}: {event.type} {event.f} for process {event.process!r}, "
            f"which has no outstanding invocation")


# ------------------------------------------------------------------------------ JSON form


def dump_history(history: Iterable[Op]) -> list[dict[str, Any]]:
    """The history as JSON-able dicts (one NDJSON line each); tuples become lists."""
    return [_dump_event(event) for event in history]


def _dump_event(event: Op) -> dict[str, Any]:
    record = {"process": _to_json(event.process), "type": event.type, "f": event.f,
              "value": _to_json(event.value)}
    if event.key is not None:
        record["key"] = _to_json(event.key)
    return record


def load_history(records: Iterable[Mapping[str, Any]]) -> list[Op]:
    """The inverse of :func:`dump_history`. JSON arrays come back as tuples, so results
    compare equal to what models return; extra fields (a trace's ``t``, ``node``) are ignored."""
    events = []
    for index, record in enumerate(records):
        missing = [name for name in ("process", "type", "f") if name not in record]
        if missing:
            raise HistoryError(f"record {index} lacks {', '.join(missing)}: {record!r}")
        events.append(Op(_freeze(record["process"]), record["type"], record["f"],
                         _freeze(record.get("value")), _freeze(record.get("key"))))
    return events


def _to_json(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise HistoryError(f"{value!r} has no JSON form; use None, str, numbers, bools and tuples")


def _freeze(value: Any) -> Any:
    """Lists become tuples, recursively: results must compare equal and states hash."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (dict, set)):
        raise HistoryError(f"{value!r} is unhashable; record tuples instead")
    return value


# ------------------------------------------------------------------------------ operations


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion. ``ret`` is None for an unknown outcome."""

    process: Hashable
    f: str
    arg: Any
    result: Any  # UNKNOWN when the outcome is unknown
    key: Hashable
    call: int  # index of the invoke event in the history
    ret: int | None  # index of the ok event; None: may take effect any time after call, or never

    def describe(self) -> str:
        if isinstance(self.arg, tuple):  # (expected_version, value) reads as two arguments
            arg = ", ".join(repr(a) for a in self.arg)
        else:
            arg = "" if self.arg is None else repr(self.arg)
        result = "?" if self.ret is None else repr(self.result)
        when = (f"events {self.call}..{self.ret}" if self.ret is not None
                else f"invoked at event {self.call}, outcome unknown")
        return f"{self.process}: {self.f}({arg}) -> {result}  [{when}]"


def operations(history: Iterable[Op]) -> list[Operation]:
    """Pair invocations with completions, drop ``fail`` ops, keep unknown outcomes as info.

    Returns operations in invocation order. Raises :class:`HistoryError` on a malformed history.
    """
    outstanding: dict[Hashable, tuple[int, Op]] = {}
    ops: list[Operation] = []
    for index, event in enumerate(history):
        if event.type == "invoke":
            if event.process in outstanding:
                raise HistoryError(_overlap_message(index, event, outstanding[event.process][1]))
            outstanding[event.process] = (index, event)
            continue
        if event.process not in outstanding:
            raise HistoryError(_orphan_message(index, event))
        call, invoke = outstanding.pop(event.process)
        if event.f != invoke.f:
            raise HistoryError(f"event {index}: {event.type} {event.f} completes {invoke.f}")
        if event.type == "ok":
            ops.append(_pair(call, invoke, _freeze(event.value), index))
        elif event.type == "info":
            ops.append(_pair(call, invoke, UNKNOWN, None))
    ops.extend(_pair(call, invoke, UNKNOWN, None) for call, invoke in outstanding.values())
    ops.sort(key=lambda op: op.call)
    return ops


def _pair(call: int, invoke: Op, result: Any, ret: int | None) -> Operation:
    return Operation(invoke.process, invoke.f, _freeze(invoke.value), result,
                     invoke.key, call, ret)


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict. ``ok`` is True (linearizable), False (not), or None (undetermined: the
    search hit ``max_states``). ``reason`` explains it in words meant for a student.

    On a failure, ``key`` names the failing sub-history, ``longest_prefix`` is the longest
    order of operations the search could explain, ``state_after_prefix`` the model state it
    reaches, and ``stuck_op`` the operation that had to take effect next but could not.
    On success, ``witness`` maps each key to one valid linearization.
    """

    ok: bool | None
    reason: str
    key: Hashable = None
    longest_prefix: tuple[Operation, ...] = ()
    state_after_prefix: Any = None
    stuck_op: Operation | None = None
    witness: Mapping[Hashable, tuple[Operation, ...]] = field(default_factory=dict)
    states_explored: int = 0
    keys_checked: int = 0

    @property
    def verdict(self) -> str:
        return {True: "linearizable", False: "not linearizable", None: "undetermined"}[self.ok]


@dataclass(slots=True)
class _Stuck:
    """The deepest point a failed search reached, kept to explain the failure."""

    prefix: tuple[Operation, ...]
    state: Hashable
    op: Operation
    candidates: tuple[Operation, ...]


@dataclass(slots=True)
class _Outcome:
    ok: bool | None
    explored: int
    linearization: tuple[Operation, ...] = ()
    stuck: _Stuck | None = None


# ------------------------------------------------------------------------------ checking


def check(history: Iterable[Op], model: Model, *, max_states: int = DEFAULT_MAX_STATES
          ) -> CheckResult:
    """Check a history against a model: linearizable, not, or undetermined.

    ``max_states`` bounds the memo of each key's search. Raises :class:`HistoryError` for a
    malformed history and :class:`ModelError` for an operation the model does not know.
    """
    if max_states < 1:
        raise ValueError(f"max_states must be positive, got {max_states}")
    ops = operations(history)
    for op in ops:
        try:
            model.validate(op.f, op.arg)
        except ModelError as error:
            raise ModelError(f"{op.describe()}: {error}") from error
    parts = model.partition(model.prepare(ops))
    return _check_partitions(model, parts, max_states, {op.call: op for op in ops})


def _check_partitions(model: Model, parts: list, max_states: int,
                      recorded: dict[int, Operation]) -> CheckResult:
    """Search each key in turn; stop at the first that fails; an undetermined key taints the
    verdict but later keys are still searched, since one of them may fail outright.
    ``recorded`` maps call indices back to operations as recorded, for the report."""
    explored = 0
    witness: dict[Hashable, tuple[Operation, ...]] = {}
    undetermined_keys: list[Hashable] = []
    for checked, (key, part) in enumerate(parts, start=1):
        outcome = _search(model, part, max_states)
        explored += outcome.explored
        if outcome.ok is False:
            stuck = _as_recorded(model, outcome.stuck, recorded)
            return _failure(model, key, stuck, explored, checked)
        if outcome.ok is None:
            undetermined_keys.append(key)
        witness[key] = tuple(recorded[op.call] for op in outcome.linearization)
    if undetermined_keys:
        return _undetermined(model, undetermined_keys[0], max_states, explored, len(parts))
    reason = (f"linearizable: {model.name}, {sum(len(p) for _, p in parts)} operations "
              f"in {len(parts)} independent part(s), {explored} states explored")
    return CheckResult(True, reason, witness=witness, states_explored=explored,
                       keys_checked=len(parts))


def _as_recorded(model: Model, stuck: _Stuck, recorded: dict[int, Operation]) -> _Stuck:
    """The dead end in the operations as recorded, not as :meth:`Model.prepare` rewrote them,
    with the state recomputed from them, so a report shows values a student can find."""
    prefix = tuple(recorded[op.call] for op in stuck.prefix)
    state = model.init()
    for op in prefix:
        accepted, state = model.step(state, op.f, op.arg, op.result)
        assert accepted, f"prepare() must not change a verdict, yet {op.describe()} fails"
    candidates = tuple(recorded[op.call] for op in stuck.candidates)
    return _Stuck(prefix, state, recorded[stuck.op.call], candidates)


class _Entry:
    """A call or return in the search's doubly linked list."""

    __slots__ = ("op", "bit", "is_call", "match", "twin", "prev", "next")

    def __init__(self, op: Operation | None, bit: int, is_call: bool) -> None:
        self.op, self.bit, self.is_call = op, bit, is_call
        self.match: _Entry | None = None  # a call's return entry; None for info ops
        self.twin = 0  # an info call: the bit of the last earlier info op identical to it
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build_list(ops: Sequence[Operation]) -> _Entry:
    """Link calls and returns in history order behind a sentinel head. Info ops get no return
    entry: their return is 'after the end of time', so nothing forces them to be linearized."""
    timed: list[tuple[int, _Entry]] = []
    last_twin: dict[tuple[str, Any], int] = {}
    for index, op in enumerate(ops):
        call = _Entry(op, 1 << index, True)
        timed.append((op.call, call))
        if op.ret is not None:
            call.match = _Entry(op, 1 << index, False)
            timed.append((op.ret, call.match))
        else:
            call.twin = last_twin.get((op.f, op.arg), 0)
            last_twin[(op.f, op.arg)] = call.bit
    timed.sort(key=lambda pair: pair[0])
    head = prev = _Entry(None, 0, False)
    for _, entry in timed:
        prev.next, entry.prev = entry, prev
        prev = entry
    return head


def _lift(call: _Entry) -> None:
    """Unlink a call and its return; both keep their own links for :func:`_unlift`."""
    call.prev.next = call.next
    if call.next is not None:
        call.next.prev = call.prev
    ret = call.match
    if ret is not None:
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev


def _unlift(call: _Entry) -> None:
    """Relink exactly what :func:`_lift` unlinked, in reverse order."""
    ret = call.match
    if ret is not None:
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
    call.prev.next = call
    if call.next is not None:
        call.next.prev = call


def _search(model: Model, ops: Sequence[Operation], max_states: int) -> _Outcome:
    """Wing & Gong's search with Lowe's memo, iterative; see the module docstring.

    Each walk over the candidates (the calls before the first return) runs in two passes:
    the ``ok`` calls, then the info calls (rule 1); rules 2 and 3 live in :func:`_needless`,
    rule 4 in the ``twin`` links of :func:`_build_list`.
    """
    head = _build_list(ops)
    state, linearized = model.init(), 0
    must_linearize = sum(op.ret is not None for op in ops)
    seen = {(0, state)}
    stack: list[tuple[_Entry, Hashable]] = []  # (lifted call, state before it)
    stuck: _Stuck | None = None
    entry, info_pass = head.next, False
    while must_linearize:
        assert entry is not None, "search invariant: an unlinearized ok op's return is ahead"
        if len(seen) > max_states:
            return _Outcome(None, len(seen), stuck=stuck)
        if entry.is_call:
            op = entry.op
            if (op.ret is None) != info_pass or (entry.twin and not linearized & entry.twin):
                entry = entry.next  # not this pass's kind of call; or a twin goes first
                continue
            accepted, after = model.step(state, op.f, op.arg, op.result)
            config = _config(linearized | entry.bit, entry, state, after)
            if not accepted or config in seen or _needless(model, stack, entry, state, after):
                entry = entry.next
                continue
            seen.add(config)
            stack.append((entry, state))
            state, linearized = after, config[0]
            must_linearize -= 1 if op.ret is not None else 0
            _lift(entry)
            entry, info_pass = head.next, False
            continue
        if not info_pass:  # no ok call can go next: try the info calls before this return
            entry, info_pass = head.next, True
            continue
        if stuck is None or len(stack) > len(stuck.prefix):
            stuck = _snapshot(head, entry, stack, state)
        if not stack:
            return _Outcome(False, len(seen), stuck=stuck)
        call, state = stack.pop()
        linearized &= ~call.bit
        must_linearize += 1 if call.op.ret is not None else 0
        _unlift(call)
        entry, info_pass = call.next, call.op.ret is None
    return _Outcome(True, len(seen), tuple(call.op for call, _ in stack))


def _config(linearized: int, entry: _Entry, before: Hashable, after: Hashable) -> tuple:
    """The memo key. After an info op it also names that op and the state before it, because
    :func:`_needless` restricts what may follow by both."""
    if entry.op.ret is not None:
        return (linearized, after)
    return (linearized, after, entry.bit, before)


def _needless(model: Model, stack: list, entry: _Entry, state: Hashable, after: Hashable
              ) -> bool:
    """Would taking ``entry`` next only repeat an order the search tries elsewhere?

    Info operations may be linearized anywhere after their call, so a search that tries every
    place for each drowns. But one may always move an info op later (nothing bounds it) or drop
    it (it need not take effect), so only these placements are kept: an info op that changes
    the state, immediately followed by an operation that depends on it.
    """
    if entry.op.ret is None and after == state:
        return True  # an info op that changes nothing: dropping it gives the same future
    if not stack or stack[-1][0].op.ret is not None:
        return False  # the previous op was not an info op: no rule applies
    last, before = stack[-1]
    op = entry.op
    accepted, direct = model.step(before, op.f, op.arg, op.result)
    if not accepted:
        return False  # the info op enabled this one: that is what it is for
    if direct == after:
        return True  # this op hides the info op's effect (an overwrite): drop the info op
    if op.ret is None and entry.bit > last.bit:
        return False  # two info ops that commute: keep one order of the pair, the other here
    accepted, swapped = model.step(direct, last.op.f, last.op.arg, last.op.result)
    return accepted and swapped == after  # they commute: the order with the info op later


def _snapshot(head: _Entry, blocked: _Entry, stack: list, state: Hashable) -> _Stuck:
    """Record the deepest dead end: the prefix, its state, the op whose return came too soon,
    and the calls still pending before that return (every one of which was tried)."""
    candidates = []
    entry = head.next
    while entry is not blocked:
        candidates.append(entry.op)
        entry = entry.next
    prefix = tuple(call.op for call, _ in stack)
    return _Stuck(prefix, state, blocked.op, tuple(candidates))


# ------------------------------------------------------------------------------ explaining


def _failure(model: Model, key: Hashable, stuck: _Stuck, explored: int, checked: int
             ) -> CheckResult:
    assert stuck is not None, "a failed search always records where it got stuck"
    where = "" if key is None else f" for key {key!r}"
    lines = [f"not linearizable{where} ({model.name}).", *_describe_prefix(model, stuck),
             "Stuck: this operation returned, so it must have taken effect by now:",
             f"    {stuck.op.describe()}",
             "but none of the operations pending at that point can take effect next:",
             *_describe_candidates(model, stuck)]
    return CheckResult(False, "\n".join(lines), key=key, longest_prefix=stuck.prefix,
                       state_after_prefix=stuck.state, stuck_op=stuck.op,
                       states_explored=explored, keys_checked=checked)


def _describe_prefix(model: Model, stuck: _Stuck) -> list[str]:
    n = len(stuck.prefix)
    lines = [f"The search tried every order that real time allows. The one that got furthest "
             f"explains {n} operation(s):"]
    hidden = max(0, n - SHOWN_PREFIX_OPS)
    if hidden:
        lines.append(f"    ... {hidden} earlier operation(s)")
    for position, op in enumerate(stuck.prefix[hidden:], start=hidden + 1):
        lines.append(f"  {position:3d}. {op.describe()}")
    lines.append(f"leaving the object at: {model.describe_state(stuck.state)}")
    return lines


def _describe_candidates(model: Model, stuck: _Stuck) -> list[str]:
    lines = []
    for op in stuck.candidates[:SHOWN_CANDIDATES]:
        why = model.explain(stuck.state, op.f, op.arg, op.result)
        if why == "could take effect here":
            why += ", but every order continuing from there fails too"
        lines.append(f"    {op.describe()}\n        {why}")
    hidden = len(stuck.candidates) - SHOWN_CANDIDATES
    if hidden > 0:
        lines.append(f"    ... and {hidden} more")
    return lines


def _undetermined(model: Model, key: Hashable, max_states: int, explored: int, checked: int
                  ) -> CheckResult:
    where = "" if key is None else f" for key {key!r}"
    reason = (f"undetermined{where} ({model.name}): the search gave up after max_states="
              f"{max_states} states. Raise max_states, or record fewer concurrent "
              f"operations with unknown outcomes (info), which multiply the orders to try.")
    return CheckResult(None, reason, key=key, states_explored=explored, keys_checked=checked)
