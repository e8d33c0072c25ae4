"""Overall deadlines that stretch with the network (issue 24, ``delos_ref/rtt.py::overall``).

On a real 3-node cluster under ``delos-ref net delay 300ms`` (every node's sends wait 300 ms,
so a round trip between nodes takes over 600 ms), a fresh client measures its round trips
when it connects (``delos_ref/process.py::measure_round_trips``), and then, with no failed
or abandoned attempt:

* three database puts: each is one attempt at the first replica (no probe found it silent,
  no attempt was given up as slow: ``patience_s`` and the probes stretched to the round
  trips; with the loopback constants every put was abandoned at least once, and some failed);
* three MetaStore writes and a read, each within the client's stretched deadline;
* a ``reconfigure`` (seal, sealed tail, conditional write, fetch) through ``delos_ref/ops.py``.

``tests/test_net_timeouts.py`` checks, without processes, that the simulator keeps its
constants (no estimator: :func:`~delos_ref.rtt.overall` returns the base exactly).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from cluster_fixture import cli, running_cluster
from delos_ref import ops
from delos_ref.db.client import KvClient
from delos_ref.process import open_client
from paxos.register import ClientTimeouts, MetaStoreClient, Written

pytestmark = pytest.mark.cluster

DELAY = "300ms"


async def _checks(directory: Path) -> dict:
    with trio.fail_after(120):
        return await _run_checks(directory)


async def _run_checks(directory: Path) -> dict:
    cfg = ops.cluster.load(directory)
    async with open_client(cfg, "deadlines") as node:
        rtt = node.endpoint.rtt
        assert rtt is not None and rtt.max_rto() > 0.3, f"the client did not measure the delay: {rtt and rtt.snapshot()}"

        table = KvClient(node.endpoint, ops.replica_nodes(cfg), f"{node.node_id}-kv")
        for i in range(3):
            await table.put(f"k{i}", f"v{i}")  # a KvError fails the test
        kv = dict(table.stats)

        acceptors = cfg.with_role("acceptor")
        metastore = MetaStoreClient(node.endpoint, acceptors, node.rng("test"), f"{node.node_id}/test", timeouts=ClientTimeouts(deadline_s=2.0), register="test/deadlines")
        version, _ = await metastore.read()
        for i in range(3):
            assert type(await metastore.write_if(version + i, b"x%d" % i)) is Written
        assert (await metastore.read())[0] == version + 3
        meta = dict(metastore.stats)
    async with ops.session(str(directory), timeout_s=5.0) as s:
        result = await ops.reconfigure(s, "native")
    return {"kv": kv, "metastore": meta, "reconfigured": result["installed"], "deadline_s": metastore.deadline_s()}


def test_a_300ms_network_gets_writes_and_a_reconfiguration_through_without_a_failed_attempt(tmp_path):
    d = tmp_path / "c"
    with running_cluster(d, nodes=3, transport="tcp"):
        cli("net", "delay", DELAY, "--dir", str(d), "--json", check=True)
        got = trio.run(_checks, d)
        print(f"\n{DELAY} delay: {json.dumps(got)}")
        assert got["kv"]["attempts"] == 3 and got["kv"]["silent"] == 0 and got["kv"]["slow"] == 0, got["kv"]
        assert got["metastore"]["unavailable"] == 0 and got["metastore"]["unknown"] == 0, got["metastore"]
        assert got["reconfigured"]
        assert got["deadline_s"] > 2.0, "the MetaStore deadline did not stretch"
