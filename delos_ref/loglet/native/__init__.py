"""The NativeLoglet (docs/design.md §5): one sequencer, an odd number of LogServers, no leader.

Modules, bottom up:

* ``messages.py``  -- the wire messages and :class:`NativeLogletConfig`;
* ``storage.py``   -- the LogServer's on-disk layout and recovery (pure);
* ``logserver.py`` -- the LogServer core (pure): gapless prefix, seal bit, repair, reads;
* ``sequencer.py`` -- the sequencer core (pure): positions, batching, commit, retry, window;
* ``roles.py``     -- puts the cores on a :class:`~delos_ref.runtime.Node`;
* ``cluster.py``   -- :func:`default_config`: the loglet a ``delos-ref up`` cluster serves;
* ``client.py``    -- :class:`NativeLoglet`, the Loglet API over RPC: seal, the three-case
  check_tail with repair, reads from the co-located LogServer first.

Bug switches (all off by default; the ``loglet`` simulation workload must catch each one):
:data:`NATIVE_BUGS`.
"""

from delos_ref.loglet.native.client import CLIENT_BUGS, NativeLoglet, NativeOptions
from delos_ref.loglet.native.cluster import DEFAULT_LOGLET_ID, default_config
from delos_ref.loglet.native.logserver import LOGSERVER_BUGS, LogServerCore, LogServerLimits
from delos_ref.loglet.native.messages import NativeLogletConfig
from delos_ref.loglet.native.roles import add_logserver, add_sequencer
from delos_ref.loglet.native.sequencer import SEQUENCER_BUGS, SequencerCore, SequencerLimits
from delos_ref.loglet.native.storage import LOGSERVER_TABLES, SEQUENCER_TABLES

#: Every bug switch of the NativeLoglet: name -> one line.
NATIVE_BUGS = {**CLIENT_BUGS, **LOGSERVER_BUGS, **SEQUENCER_BUGS}

__all__ = [
    "DEFAULT_LOGLET_ID",
    "LOGSERVER_TABLES",
    "NATIVE_BUGS",
    "SEQUENCER_TABLES",
    "LogServerCore",
    "LogServerLimits",
    "NativeLoglet",
    "NativeLogletConfig",
    "NativeOptions",
    "SequencerCore",
    "SequencerLimits",
    "add_logserver",
    "add_sequencer",
    "default_config",
]
