"""ZooKeeper for ``bench compare``: a 3-server ensemble from Debian's ``zookeeper`` package and
a load generator (``ZkLoad.java``) compiled at run time against that package's jars.

The servers run ``org.apache.zookeeper.server.quorum.QuorumPeerMain`` with ZooKeeper's
defaults (``forceSync=yes``: a write is acknowledged after a quorum fsynced its transaction
log), the admin server off, each with its own data directory and ports. The load generator
uses ZooKeeper's Java client, the one ZooKeeper ships: k sessions, one ``setData`` of 100 bytes
in flight per session, on its own znode.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import AsyncIterator

from delos_ref.bench import peers
from delos_ref.bench.peers import HERE

NAME = "zookeeper"
JAR = "/usr/share/java/zookeeper.jar"
#: slf4j's simple binding: the servers log to their log files (Debian's jar names it).
LOGGING_JAR = "/usr/share/java/slf4j-simple.jar"
SERVERS = 3
PORT_START = 18101


def check() -> tuple[str, str]:
    """(java, classpath), or :class:`~delos_ref.bench.peers.PeerMissing` with how to install."""
    java = peers.need("java", "zookeeper")
    peers.need_file(JAR, "zookeeper")
    classpath = JAR + (":" + LOGGING_JAR if Path(LOGGING_JAR).exists() else "")
    return java, classpath


def version() -> str:
    """From the versioned name Debian gives the jar (``zookeeper-3.8.0.jar -> zookeeper.jar``)."""
    for jar in sorted(Path(JAR).parent.glob("zookeeper-[0-9]*.jar")):
        return jar.name.removeprefix("zookeeper-").removesuffix(".jar")
    return "?"


def _config(i: int, data: Path, ports: list[int]) -> str:
    lines = [
        "tickTime=2000", "initLimit=10", "syncLimit=5", f"dataDir={data}",
        f"clientPort={ports[i]}", "clientPortAddress=127.0.0.1", "admin.enableServer=false",
        "4lw.commands.whitelist=srvr", "maxClientCnxns=0",
    ]
    lines += [f"server.{j + 1}=127.0.0.1:{ports[SERVERS + j]}:{ports[2 * SERVERS + j]}" for j in range(SERVERS)]
    return "\n".join(lines) + "\n"


def _serving(port: int) -> bool:
    """The ``srvr`` four-letter word: a server in a quorum says ``Mode: leader`` or ``follower``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"srvr")
            reply = s.makefile("rb").read()
    except OSError:
        return False
    return b"Mode: leader" in reply or b"Mode: follower" in reply


@contextlib.asynccontextmanager
async def ensemble(workdir: Path) -> AsyncIterator[dict]:
    """A running 3-server ensemble under ``workdir``; yields ``{"connect", "pids", "argv_for"}``
    (``argv_for(clients, seconds, op)``: a load process's command line, ``op`` one of
    ``peers.PEER_OPS``). Stopped on
    the way out, whatever happens."""
    java, classpath = check()
    classes = workdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    peers.javac([HERE / "ZkLoad.java", HERE / "Cpu.java"], classpath, classes, NAME)
    ports = peers.free_ports(3 * SERVERS, PORT_START)
    commands = []
    for i in range(SERVERS):
        data = workdir / f"zk{i + 1}"
        data.mkdir()
        (data / "myid").write_text(f"{i + 1}\n")
        (data / "zoo.cfg").write_text(_config(i, data, ports))
        argv = [java, "-Xmx512m", "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(data / "zoo.cfg")]
        commands.append((f"zookeeper server {i + 1}", argv, data / "server.log"))
    with peers.processes(commands) as procs:
        await peers.wait_ready(lambda: all(_serving(ports[i]) for i in range(SERVERS)), procs, commands, NAME)
        connect = ",".join(f"127.0.0.1:{ports[i]}" for i in range(SERVERS))

        def argv_for(clients: int, seconds: float, op: str = "put") -> list[str]:
            return [java, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", f"{classes}:{classpath}", "ZkLoad", connect, str(clients), str(seconds), str(peers.VALUE_BYTES), peers.PEER_OPS[op]]

        yield {"connect": connect, "pids": [p.pid for p in procs], "argv_for": argv_for, "check": lambda: peers.exited(procs, commands)}


__all__ = ["NAME", "check", "ensemble", "version"]
