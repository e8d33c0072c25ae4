"""Minimal counterexamples: shrink a failing run by delta debugging (``sim --minimize``).

A failing seed usually fails amid a crowd: dozens of crashes and partitions, hundreds of
client operations, thousands of events. Most of them have nothing to do with the bug. This
module finds a much smaller run that still fails **the same check**, so that a student can
read (or chart) the few events that matter.

How:

1. Run the seed as it is, with the recorder on (:mod:`delos_ref.sim.schedule`): the run's
   fault kinds, the nemesis actions it played and the client operations it ran become an
   explicit :class:`~delos_ref.sim.schedule.Schedule`. Replay that schedule once: it must fail
   the same check (a schedule replays the nemesis at recorded times, which is close to but not
   always the same run as the seed's own).
2. Shrink, one part at a time, with Zeller's *ddmin* (:func:`ddmin`): the fault kinds, then
   the nemesis actions, then whole client streams, then single operations. A candidate is a
   schedule with some items left out; it is *interesting* if its run fails the same check.
3. Stop when ddmin can remove nothing more, or after ``max_runs`` runs (the best so far is
   the answer; it always fails the same check, because only interesting runs are kept).

"The same check" is :func:`check_name` of the first violation: the violation's text with its
variable parts (numbers, quoted values, node names, lists) blanked and cut to its first
words, e.g. ``history not linearizable: not linearizable on key _ (KVTable)``. Nothing here
prints; the CLI (``cli/minimize.py``) reports progress through the ``progress`` callback.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence, TypeVar

from delos_ref.sim.harness import RunConfig, RunResult, Workload, _first_line, replay_command, run_seed, scheduled_config
from delos_ref.sim.schedule import Schedule

T = TypeVar("T", bound=Hashable)

_VARIABLE = re.compile(r"""b?'[^']*'|b?"[^"]*"|\[[^\]]*\]|\([^)]*\d[^)]*\)|\{[^}]*\}|\S*\d\S*""")


def check_name(violation: str) -> str:
    """The check a violation comes from: its first sentence, variable parts blanked as ``_``,
    its first eight words. ``"acknowledged b'a1/3' at 7, but ..."`` -> ``"acknowledged _ at _ but ..."``."""
    text = violation.splitlines()[0] if violation else ""
    text = text.split(". ")[0]
    words = _VARIABLE.sub("_", text).replace(",", " ").split()
    return " ".join(words[:8])


class OutOfRuns(Exception):
    """The run budget is spent: ddmin stops and keeps what it has."""


def ddmin(items: Sequence[T], interesting: Callable[[list[T]], bool]) -> list[T]:
    """Zeller's ddmin: a 1-minimal sublist of ``items`` that is still ``interesting``.

    ``interesting(items)`` is assumed true; the empty list is tried first. Split the list into ``n`` chunks; keep a chunk
    that is interesting on its own, or else a complement (the list without one chunk) that
    is; else split finer. 1-minimal: removing any single item makes it uninteresting. If
    ``interesting`` raises :class:`OutOfRuns`, the smallest interesting list so far returns.
    """
    answers: dict[tuple, bool] = {}

    def test(subset: list[T]) -> bool:
        """``interesting``, asked once per subset (ddmin may meet one twice)."""
        if tuple(subset) not in answers:
            answers[tuple(subset)] = interesting(subset)
        return answers[tuple(subset)]

    current = list(items)
    n = 2
    try:
        if current and test([]):
            return []  # none of them is needed (cheap to ask first, and often true)
        while len(current) >= 2:
            chunks = _split(current, n)
            for chunk in chunks:
                if test(chunk):
                    current, n = chunk, 2
                    break
            else:
                for i in range(len(chunks) if len(chunks) > 2 else 0):  # of two, a complement is a chunk
                    rest = [x for j, c in enumerate(chunks) if j != i for x in c]
                    if test(rest):
                        current, n = rest, max(n - 1, 2)
                        break
                else:
                    if n >= len(current):
                        break
                    n = min(len(current), 2 * n)
    except OutOfRuns:
        pass
    return current


def _split(items: list[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append(items[start:end])
        start = end
    return out


@dataclass
class Minimizer:
    """One minimization: the failing run, its target check, the runs spent, the best schedule."""

    workload: Workload
    seed: int
    bug: str | None
    max_runs: int
    progress: Callable[[str, int, int], None] | None = None
    runs: int = 0
    target: str = ""
    best: Schedule | None = None
    best_result: RunResult | None = None
    phase: str = ""

    def run(self, schedule: Schedule | None, faults: frozenset[str], keep_trace: bool = False) -> RunResult:
        """One run (counted against the budget); a run that raises is a violation too."""
        if self.runs >= self.max_runs:
            raise OutOfRuns()
        self.runs += 1
        cfg = RunConfig(self.seed, faults, self.bug, keep_trace) if schedule is None else scheduled_config(self.seed, schedule, self.bug, keep_trace)
        try:
            result = run_seed(self.workload, cfg)
        except Exception as e:  # a run that crashes is a finding, as in sweep()
            result = RunResult(self.seed, [f"the run raised {_first_line(e)}"], 0, "", schedule=schedule)
        if self.progress is not None:
            self.progress(self.phase, self.runs, self.max_runs)
        return result

    def fails_same(self, result: RunResult) -> bool:
        return any(check_name(v) == self.target for v in result.violations)

    def attempt(self, candidate: Schedule) -> bool:
        """Run ``candidate``; if it fails the target check, it becomes the best."""
        result = self.run(candidate, candidate.faults)
        if not self.fails_same(result):
            return False
        self.best, self.best_result = candidate, result
        return True

    # ------------------------------------------------------------------------ the phases

    def shrink_faults(self) -> None:
        self.phase = "fault kinds"
        best = self.best
        assert best is not None
        ddmin(sorted(best.faults), lambda kinds: self.attempt(_with(self.best, faults=frozenset(kinds))))

    def shrink_nemesis(self) -> None:
        self.phase = "nemesis actions"
        assert self.best is not None
        ddmin(list(self.best.nemesis), lambda actions: self.attempt(_with(self.best, nemesis=tuple(actions))))

    def shrink_streams(self) -> None:
        self.phase = "client streams"
        ops = self._ops()
        streams = [s for s in sorted(ops) if ops[s]]

        def keep(kept: list[str]) -> bool:
            return self.attempt(_with(self.best, ops={s: (ops[s] if s in kept else frozenset()) for s in ops}))

        ddmin(streams, keep)

    def shrink_ops(self) -> None:
        self.phase = "operations"
        ops = self._ops()
        units = [(s, i) for s in sorted(ops) for i in sorted(ops[s])]

        def keep(kept: list[tuple[str, int]]) -> bool:
            new: dict[str, set[int]] = {s: set() for s in ops}
            for s, i in kept:
                new[s].add(i)
            return self.attempt(_with(self.best, ops={s: frozenset(v) for s, v in new.items()}))

        ddmin(units, keep)

    def _ops(self) -> dict[str, frozenset[int]]:
        """Each stream's operations that ran in the best run (asked about and kept)."""
        assert self.best is not None and self.best_result is not None and self.best_result.schedule is not None
        asked = self.best_result.schedule.ops or {}
        return {s: frozenset(i for i in asked[s] if self.best.op_kept(s, i)) for s in asked}


def _with(schedule: Schedule | None, **changes: Any) -> Schedule:
    assert schedule is not None
    fields = {"faults": schedule.faults, "nemesis": schedule.nemesis, "ops": schedule.ops}
    fields.update(changes)
    return Schedule(**fields)


class NotFailing(Exception):
    """The seed's run does not fail (nothing to minimize), or its schedule does not replay."""


def minimize(
    workload: Workload,
    seed: int,
    faults: frozenset[str],
    bug: str | None,
    *,
    max_runs: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Shrink the failing run of ``seed``; the report ``sim --minimize --json`` prints.

    Raises :class:`NotFailing` when the seed's run passes, or when the schedule recorded from
    it does not fail the same check on replay (rare: say so rather than guess)."""
    assert max_runs >= 2, "minimize: at least two runs (the seed and its schedule)"
    started = time.perf_counter()
    m = Minimizer(workload, seed, bug, max_runs, progress)
    m.phase = "the seed"
    first = m.run(None, faults)
    if not first.violations:
        raise NotFailing(f"seed {seed} of workload {workload.name} passes{' with bug ' + bug if bug else ''}: nothing to minimize")
    m.target = check_name(first.violations[0])
    assert first.schedule is not None
    m.phase = "its schedule"
    if not m.attempt(first.schedule):
        raise NotFailing(f"the schedule recorded from seed {seed} does not fail {m.target!r} when replayed")
    for shrink in (m.shrink_faults, m.shrink_nemesis, m.shrink_streams, m.shrink_ops):
        if m.runs >= max_runs:
            break
        shrink()
    assert m.best is not None
    final = run_seed(workload, scheduled_config(seed, m.best, bug, keep_trace=True))  # its history (not counted)
    assert m.fails_same(final), "minimize: the best schedule stopped failing on a rerun: the simulator is not deterministic"
    before_faults, _ = first.schedule.size()
    after_faults, _ = m.best.size()
    return {
        "workload": workload.name,
        "seed": seed,
        "bug": bug,
        "check": m.target,
        "violation": next(v for v in final.violations if check_name(v) == m.target),
        "events_before": first.events,
        "events_after": final.events,
        "faults_before": before_faults,
        "faults_after": after_faults,
        "ops_before": _ran(first.schedule, None),
        "ops_after": _ran(final.schedule, m.best),
        "runs": m.runs,
        "max_runs": max_runs,
        "exhausted": m.runs >= max_runs,
        "wall_s": round(time.perf_counter() - started, 2),
        "schedule": m.best.encode(),
        "replay": replay_command(workload, seed, m.best.faults, bug, m.best),
        "history": final.trace or [],
    }


def _ran(recorded: Schedule | None, schedule: Schedule | None) -> int:
    """How many client operations ran: those the run asked about that ``schedule`` kept."""
    asked = (recorded.ops or {}) if recorded is not None else {}
    return sum(1 for s, idx in asked.items() for i in idx if schedule is None or schedule.op_kept(s, i))
