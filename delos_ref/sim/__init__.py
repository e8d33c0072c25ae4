"""Deterministic simulation: seeded runs of real protocol code on a simulated network.

* :mod:`delos_ref.sim.simulation` -- :class:`Simulation` (nodes, crash/restart, partitions),
  :class:`Nemesis` (random faults within a bound);
* :mod:`delos_ref.sim.harness` -- workloads, seeds, sweeps, replay commands;
* :mod:`delos_ref.sim.schedule` -- a run's faults and client operations made explicit
  (``sim --schedule``), so that a run can be replayed with some of them left out;
* :mod:`delos_ref.sim.minimize` -- delta debugging of a failing run (``sim --minimize``);
* ``workload_*.py`` -- one module per workload (``delos-ref sim --workload NAME``).
"""

from delos_ref.sim.harness import RunConfig, RunResult, Workload, get_workload, load_workloads, register, run_seed, sweep
from delos_ref.sim.simulation import ALL_FAULTS, Nemesis, Simulation, link_for

__all__ = [
    "ALL_FAULTS",
    "Nemesis",
    "RunConfig",
    "RunResult",
    "Simulation",
    "Workload",
    "get_workload",
    "link_for",
    "load_workloads",
    "register",
    "run_seed",
    "sweep",
]
