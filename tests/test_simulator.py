"""The deterministic simulator: seeds replay exactly; faults happen as configured; the rpc
workload's checks hold without bugs and catch each bug switch (delos_ref/sim/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trio
import trio.testing


from delos_ref.rpc import CallTimeout, RemoteError
from delos_ref.sim import ALL_FAULTS, RunConfig, Simulation, get_workload, run_seed, sweep
from delos_ref.sim.harness import BadSimArgument, parse_faults
from delos_ref.sim.workload_rpc import Echo, EchoCore
from transports.memory import LinkModel

RPC = get_workload("rpc")


def test_trio_deterministic_scheduling_hooks_exist():
    """Canary: the simulator relies on trio's private scheduling hooks (see simulation.py)."""
    import trio._core._run as run_mod

    assert hasattr(run_mod, "_ALLOW_DETERMINISTIC_SCHEDULING")
    assert hasattr(run_mod, "_r")


def test_same_seed_same_trace_digest():
    faults = frozenset(ALL_FAULTS)
    a = run_seed(RPC, RunConfig(11, faults))
    b = run_seed(RPC, RunConfig(11, faults))
    assert a.events > 100
    assert a.digest == b.digest


def test_different_seeds_differ():
    faults = frozenset(ALL_FAULTS)
    assert run_seed(RPC, RunConfig(1, faults)).digest != run_seed(RPC, RunConfig(2, faults)).digest


def test_same_seed_in_a_subprocess_with_another_hash_seed_gives_the_same_digest():
    faults = frozenset(ALL_FAULTS)
    here = run_seed(RPC, RunConfig(5, faults)).digest
    code = (
        "from delos_ref.sim import get_workload, run_seed, RunConfig, ALL_FAULTS;"
        "print(run_seed(get_workload('rpc'), RunConfig(5, frozenset(ALL_FAULTS))).digest)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert there == here


def test_rpc_sweep_has_no_violations_under_all_faults():
    summary = sweep(RPC, seeds=60, faults=frozenset(RPC.faults))
    assert summary["runs"] == 60
    assert summary["violations"] == [], summary["violations"][:3]


@pytest.mark.parametrize("bug", sorted(RPC.bugs))
def test_rpc_bug_switch_is_caught(bug):
    summary = sweep(RPC, seeds=30, faults=frozenset(RPC.faults), bug=bug, stop_at_first=True)
    assert summary["violations"], f"bug {bug} was not caught in 30 seeds"
    first = summary["violations"][0]
    assert first["replay"].startswith("delos-ref sim --workload rpc --seeds 1 --seed ")
    assert f"--bug {bug}" in first["replay"]


def test_faults_none_turns_every_fault_off():
    assert parse_faults(RPC, "none") == frozenset()
    result = run_seed(RPC, RunConfig(3, frozenset()))
    assert result.stats["net"]["lost"] == 0 and result.stats["nemesis"]["crashes"] == 0
    assert result.violations == []


def test_unknown_fault_is_refused():
    with pytest.raises(BadSimArgument):
        parse_faults(RPC, "loss,earthquake")


# ------------------------------------------------------------------- network semantics


async def _echo_sim(seed: int, link: LinkModel, body):
    async with Simulation(seed, link=link).run() as sim:
        sim.add_node("s", lambda node, storage_for: node.add_role("echo", EchoCore(node.node_id)))
        client = sim.client("c")
        return await body(sim, client)


async def test_partition_blocks_then_heal_restores(autojump_clock):
    async def body(sim, client):
        sim.partition({"c"}, {"s"})
        with pytest.raises(CallTimeout):
            await client.endpoint.call("s", Echo(1, False), timeout_s=0.5)
        sim.heal()
        return await client.endpoint.call("s", Echo(2, False), timeout_s=0.5)

    reply = await _echo_sim(1, LinkModel(), body)
    assert reply.nonce == 2


async def test_one_way_cut_drops_only_that_direction(autojump_clock):
    async def body(sim, client):
        sim.cut("s", "c")  # requests arrive, replies do not
        with pytest.raises(CallTimeout):
            await client.endpoint.call("s", Echo(1, False), timeout_s=0.5)
        executed = [e for e in sim.trace.events if e["event"] == "Executed"]
        return executed

    executed = await _echo_sim(1, LinkModel(), body)
    assert [e["nonce"] for e in executed] == [1]


async def test_crashed_node_answers_nothing_and_restart_serves_again(autojump_clock):
    async def body(sim, client):
        sim.crash("s")
        with pytest.raises(CallTimeout):
            await client.endpoint.call("s", Echo(1, False), timeout_s=0.5)
        sim.restart("s")
        return await client.endpoint.call("s", Echo(2, False), timeout_s=0.5)

    assert (await _echo_sim(1, LinkModel(), body)).nonce == 2


async def test_definite_refusal_is_a_remote_error(autojump_clock):
    async def body(sim, client):
        with pytest.raises(RemoteError) as info:
            await client.endpoint.call("s", Echo(1, True), timeout_s=0.5)
        return info.value.code

    assert await _echo_sim(1, LinkModel(), body) == "refused"


async def test_duplicating_link_delivers_copies(autojump_clock):
    async def body(sim, client):
        for i in range(20):
            await client.endpoint.call("s", Echo(i, False), timeout_s=0.5)
        await trio.sleep(0.1)
        return sim.net.stats

    stats = await _echo_sim(4, LinkModel(duplicate=1.0), body)
    assert stats["duplicated"] >= 40 and stats["delivered"] >= 80


async def test_lossy_link_loses_and_resends_recover(autojump_clock):
    from delos_ref.rpc import RESEND

    async def body(sim, client):
        ok = 0
        for i in range(30):
            try:
                await client.endpoint.call("s", Echo(i, False), timeout_s=2.0, retry=RESEND)
                ok += 1
            except CallTimeout:
                pass
        return ok, sim.net.stats["lost"]

    ok, lost = await _echo_sim(2, LinkModel(loss=0.3), body)
    assert lost > 0 and ok >= 28


def test_sim_cli_json_summary_shape():
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "sim", "--workload", "rpc", "--seeds", "3", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert {"workload", "runs", "violations", "events_per_s"} <= summary.keys()
    assert summary["runs"] == 3 and summary["violations"] == []


def test_sim_cli_replay_reproduces_a_caught_bug():
    cmd = [sys.executable, "-m", "cli.main", "sim", "--workload", "rpc", "--seeds", "10", "--bug", "ignore_rid", "--json", "--stop-at-first"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    first = json.loads(proc.stdout)["violations"][0]
    replay = first["replay"].split()[1:]  # drop "delos-ref"
    again = subprocess.run([sys.executable, "-m", "cli.main", *replay], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert json.loads(again.stdout)["violations"][0]["what"] == first["what"]


def test_sim_cli_list_bugs_json():
    proc = subprocess.run([sys.executable, "-m", "cli.main", "sim", "--workload", "rpc", "--list-bugs", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert set(json.loads(proc.stdout)["bugs"]) == set(RPC.bugs)
